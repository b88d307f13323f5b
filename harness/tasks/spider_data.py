"""Spider's data: the items of a split (the official layout, or the hub copy ``xlangai/spider``
for the rows), the databases' schemas from ``tables.json``, the folder's databases, the
seeded validation split of train, and sampling.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from harness.data.sources import DataNotFound, locate
from harness.sql import (
    database_file,
)
from harness.tasks.base import (
    seeded_sample,
)
from harness.tasks.spider_hardness import hardness_of
from harness.tasks.sql_prompts import Column, Schema, Table

SPLIT_FILES = {"dev": ("dev.json",), "train": ("train_spider.json", "train_others.json")}


class SpiderDataError(ValueError):
    """The Spider folder or one of its files is missing or malformed."""


# -- items, schemas, databases -------------------------------------------------------------------


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


def find_spider_dir(
    explicit: str | os.PathLike | None = None, *, option: str = "--data-dir spider=PATH"
) -> Path:
    """The Spider folder (one with tables.json): ``explicit`` if given, else ``$HARNESS_SPIDER_DIR``,
    else ``$HARNESS_DATA_DIR/spider``, ./data/spider, ../shared/data/spider
    (harness.data.sources); the error names every folder looked at, ``harness data fetch`` and
    ``option``, the command's way to name a folder."""
    try:
        return locate("spider", explicit, option=option)
    except DataNotFound as e:
        raise SpiderDataError(str(e)) from None


def database_path(spider_dir: Path, db_id: str) -> Path:
    """``<spider_dir>/database/<db_id>/<db_id>.sqlite`` (harness.sql.database_file): a db_id that
    is not a plain name, or that resolves outside ``database/``, is refused, so no item can
    open, and then quote, a database elsewhere."""
    try:
        return database_file(Path(spider_dir), db_id)
    except ValueError as e:
        raise SpiderDataError(str(e)) from None


def _read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise SpiderDataError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SpiderDataError(f"{path}: not valid JSON ({e})") from None


def items_from_rows(rows: list[dict], split: str, source: str) -> list[SpiderItem]:
    """Turn official-layout rows (``db_id``, ``question``, ``query``) into items."""
    items = []
    for index, row in enumerate(rows):
        missing = [k for k in ("db_id", "question", "query") if not isinstance(row, dict) or not row.get(k)]
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


# A validation split carved from train, for choosing a sweep's point without peeking at dev: the
# items of a seeded tenth of train's databases (Spider's train and dev databases are disjoint, so
# these are disjoint from dev's too). Training configs with data.hold_out = "validation" never
# see them.
VALIDATION_FRACTION = 0.1
VALIDATION_SEED = 0


def validation_databases(
    train: Sequence[SpiderItem], fraction: float = VALIDATION_FRACTION, seed: int = VALIDATION_SEED
) -> frozenset[str]:
    """The train databases whose items form the validation split: a seeded sample of
    ``fraction`` of them (at least one), the same in every process."""
    databases = sorted({item.db_id for item in train})
    if not databases:
        return frozenset()
    k = max(1, round(fraction * len(databases)))
    return frozenset(random.Random(f"spider-validation:{seed}").sample(databases, k))


def split_validation(train: Sequence[SpiderItem]) -> tuple[list[SpiderItem], list[SpiderItem]]:
    """(train without the validation databases, the validation items relabelled
    ``validation-<train index>``), both in file order."""
    held = validation_databases(train)
    rest = [item for item in train if item.db_id not in held]
    validation = [replace(item, split="validation") for item in train if item.db_id in held]
    return rest, validation


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
                qualified(c)
                for pk in entry.get("primary_keys", [])
                for c in (pk if isinstance(pk, list) else [pk])
            )
            fks = tuple((qualified(a), qualified(b)) for a, b in entry.get("foreign_keys", []))
            schemas[entry["db_id"]] = Schema(
                db_id=entry["db_id"],
                tables=tuple(Table(n, tuple(c)) for n, c in zip(tables, by_table)),
                primary_keys=pks,
                foreign_keys=fks,
            )
        except (KeyError, IndexError, TypeError, AttributeError) as e:
            db_id = entry.get("db_id", "?") if isinstance(entry, dict) else "?"
            raise SpiderDataError(f"{path}: malformed entry {db_id!r} ({e!r})") from None
    return schemas


def sample_items(items: list[SpiderItem], limit: int | None, seed: int) -> list[SpiderItem]:
    """A seeded sample of ``limit`` items (all of them when ``limit`` is None or 0), in split order.

    A simple random sample, not stratified by hardness: the default experiment's 50 items and
    every number computed on them stay what they were.
    """
    return seeded_sample(items, limit or 0, seed)


def select_shots(
    pool: Sequence[SpiderItem], k: int, seed: int, exclude_question: str | None = None
) -> list[SpiderItem]:
    """``k`` examples drawn from ``pool`` (the **train** split), deterministic in ``seed``.

    The same seed gives the same shots for every item and every variant, so variants differ
    only in the model.
    """
    if k <= 0:
        return []
    candidates = [s for s in pool if s.question != exclude_question]
    if len(candidates) < k:
        raise ValueError(f"asked for {k} shots but the shot pool has only {len(candidates)} items")
    if any(s.split != "train" for s in candidates[:1]):
        raise ValueError("Spider shots must come from the train split, never from dev")
    return random.Random(seed).sample(candidates, k)
