"""Spider: items, schemas and databases, from the official layout on disk or from the hub.

The official layout is a folder with ``dev.json``, ``train_spider.json`` (and optionally
``train_others.json``), ``tables.json`` and ``database/<db_id>/<db_id>.sqlite``. The hub
loader (``xlangai/spider``) gives the same rows; databases and ``tables.json`` still come from a
folder, because the hub copy carries none.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

# Where the data is looked for when neither an option nor the config names a folder.
SPIDER_DIR_ENV = "HARNESS_SPIDER_DIR"
_DEFAULT_SPIDER_DIRS = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "spider",)

SPLIT_FILES = {"dev": ("dev.json",), "train": ("train_spider.json", "train_others.json")}


class SpiderDataError(ValueError):
    """The Spider folder or one of its files is missing or malformed."""


@dataclass(frozen=True)
class SpiderItem:
    """One Spider question with its gold query.

    ``index`` is the 0-based position in the split (the line of ``dev_gold.sql``), so it is
    stable across samplings and matches the official evaluator's line numbers.
    """

    split: str
    index: int
    db_id: str
    question: str
    gold_sql: str
    hardness: str | None = None

    @property
    def item_id(self) -> str:
        return f"{self.split}-{self.index:04d}"


@dataclass(frozen=True)
class Column:
    name: str
    type: str


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class Schema:
    """The tables of one database as ``tables.json`` gives them (original names)."""

    db_id: str
    tables: tuple[Table, ...]
    primary_keys: tuple[str, ...] = ()  # "table.column"
    foreign_keys: tuple[tuple[str, str], ...] = ()  # ("table.column", "table.column")


def find_spider_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The Spider folder: ``explicit`` if given, else ``$HARNESS_SPIDER_DIR``, else ../shared."""
    candidates = []
    if explicit:
        candidates = [Path(explicit)]
    elif os.environ.get(SPIDER_DIR_ENV):
        candidates = [Path(os.environ[SPIDER_DIR_ENV])]
    else:
        candidates = list(_DEFAULT_SPIDER_DIRS)
    for path in candidates:
        if (path / "tables.json").is_file():
            return path.resolve()
    raise SpiderDataError(
        f"no Spider folder with tables.json at {', '.join(str(p) for p in candidates)}; "
        f"pass --spider-dir, set {SPIDER_DIR_ENV} or spider.data_dir in the experiment config"
    )


def database_path(spider_dir: Path, db_id: str) -> Path:
    return Path(spider_dir) / "database" / db_id / f"{db_id}.sqlite"


def _read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise SpiderDataError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise SpiderDataError(f"{path}: not valid JSON ({e})") from None


def items_from_rows(rows: list[dict], split: str, source: str) -> list[SpiderItem]:
    """Turn official-layout rows (``db_id``, ``question``, ``query``) into items."""
    from harness.data.spider_hardness import hardness_of

    items = []
    for index, row in enumerate(rows):
        missing = [k for k in ("db_id", "question", "query") if not row.get(k)]
        if missing:
            raise SpiderDataError(f"{source}: item {index} lacks {', '.join(missing)}")
        sql_tree = row.get("sql")
        items.append(
            SpiderItem(
                split=split,
                index=index,
                db_id=row["db_id"],
                question=row["question"].strip(),
                gold_sql=row["query"].strip(),
                hardness=hardness_of(sql_tree) if isinstance(sql_tree, dict) else None,
            )
        )
    return items


def load_spider_split(spider_dir: Path, split: str) -> list[SpiderItem]:
    """All items of ``split`` ("dev" or "train") from the official layout, in file order.

    For "train", ``train_others.json`` is appended when present (it is optional).
    """
    if split not in SPLIT_FILES:
        raise SpiderDataError(f"unknown Spider split {split!r}; choose from {sorted(SPLIT_FILES)}")
    rows: list[dict] = []
    files = SPLIT_FILES[split]
    for i, name in enumerate(files):
        path = Path(spider_dir) / name
        if i > 0 and not path.exists():
            continue  # train_others.json is optional
        data = _read_json(path)
        if not isinstance(data, list):
            raise SpiderDataError(f"{path}: expected a JSON list of items")
        rows.extend(data)
    return items_from_rows(rows, split, str(Path(spider_dir) / files[0]))


def load_spider_hub(split: str, spider_dir: Path | None = None) -> list[SpiderItem]:
    """Items from the Hugging Face hub copy ``xlangai/spider`` (needs internet, or a local
    copy of the same schema passed as ``spider_dir`` to ``datasets.load_dataset``).

    The hub calls the dev split "validation"; its rows have the official fields.
    """
    from datasets import load_dataset

    hub_split = {"dev": "validation", "train": "train"}[split]
    if spider_dir is not None and Path(spider_dir).is_dir():
        ds = load_dataset(str(spider_dir), split=hub_split)
    else:
        ds = load_dataset("xlangai/spider", split=hub_split)
    return items_from_rows([dict(r) for r in ds], split, f"xlangai/spider[{hub_split}]")


def load_schemas(spider_dir: Path) -> dict[str, Schema]:
    """Every database schema of ``tables.json``, keyed by ``db_id``."""
    path = Path(spider_dir) / "tables.json"
    schemas = {}
    for entry in _read_json(path):
        try:
            tables = entry["table_names_original"]
            cols = entry["column_names_original"]
            types = entry["column_types"]
            by_table: list[list[Column]] = [[] for _ in tables]
            for (t, name), ctype in zip(cols, types):
                if t >= 0:
                    by_table[t].append(Column(name, ctype))

            def qualified(col_index: int) -> str:
                t, name = cols[col_index]
                return f"{tables[t]}.{name}"

            pks = tuple(
                qualified(c) for pk in entry.get("primary_keys", []) for c in (pk if isinstance(pk, list) else [pk])
            )
            fks = tuple((qualified(a), qualified(b)) for a, b in entry.get("foreign_keys", []))
            schemas[entry["db_id"]] = Schema(
                db_id=entry["db_id"],
                tables=tuple(Table(n, tuple(c)) for n, c in zip(tables, by_table)),
                primary_keys=pks,
                foreign_keys=fks,
            )
        except (KeyError, IndexError, TypeError) as e:
            raise SpiderDataError(f"{path}: malformed entry {entry.get('db_id', '?')!r} ({e!r})") from None
    return schemas


def sample_items(items: list[SpiderItem], limit: int | None, seed: int) -> list[SpiderItem]:
    """A seeded sample of ``limit`` items (all of them when ``limit`` is None), in split order.

    The same (items, limit, seed) always gives the same sample, whatever the variant.
    """
    if limit is None or limit >= len(items):
        return list(items)
    if limit <= 0:
        raise SpiderDataError(f"limit must be positive, got {limit}")
    chosen = random.Random(seed).sample(range(len(items)), limit)
    return [items[i] for i in sorted(chosen)]
