"""Score a file of Spider predictions, as the official evaluator's input, item by item.

The input is what ``evaluation.py --pred`` reads: one SQL query per line, line *i* answering
item *i* of ``dev.json``, or, for a run's ``predictions/<variant>.spider.sql``, item *i* of the
subset its sidecar names (``<variant>.spider.ids.json``, ``{"split": "dev", "ids": [...]}``,
or ``--ids``), so that the run's own items are scored again. Each line is stripped of
surrounding whitespace and cut at its first tab, as the official script does; a UTF-8 byte
order mark at the start of the file is dropped. Every item is scored with
:func:`harness.sql.execution_match`, the same code and the same default as the
``ExecutionAccuracy`` metric (DISTINCT kept), so the CLI and the benchmarks agree item by item.

The TSV written (by default beside the input, ``<name>.scores.tsv``) is meant to be shared: its
reasons count missing and unexpected rows instead of quoting them, unless ``show_rows`` asks
for the excerpts. Its fields are escaped (a tab, a newline, a carriage return or a backslash in
a ``db_id`` is written ``\\t``, ``\\n``, ``\\r``, ``\\\\``), so each item is one row of five fields.
The output is never one of the inputs nor inside the Spider folder.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.files import atomic_write
from harness.sql import Verdict, database_file, execution_match
from harness.tasks.spider_data import SpiderItem, find_spider_dir, load_spider_split
from harness.tasks.sql_task import subset_files

__all__ = [
    "ScoreSummary",
    "default_out",
    "format_summary",
    "read_ids",
    "read_prediction_lines",
    "run",
    "score_spider_file",
]

TSV_HEADER = ("index", "db_id", "hardness", "correct", "reason")


@dataclass(frozen=True)
class ScoreSummary:
    """Counts over one predictions file. ``accuracy`` is over the scored items only (those
    whose database is present), and None when none could be scored."""

    n: int
    scored: int
    correct: int
    accuracy: float | None
    n_missing_db: int
    missing_db_ids: tuple[str, ...] = ()
    by_hardness: dict[str, tuple[int, int]] = field(default_factory=dict)  # level -> (scored, correct)


def default_out(predictions: Path) -> Path:
    """Where the verdicts go when ``--out`` is not given: ``<name>.scores.tsv`` beside the input."""
    predictions = Path(predictions)
    return predictions.with_name(predictions.name.removesuffix(".sql") + ".scores.tsv")


def read_ids(path: Path) -> tuple[str, list[int]]:
    """(split, item indices) of an ids file: the JSON sidecar a run writes
    (``{"split": "dev", "ids": [...]}``), or plain text, one dev index per line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read the item ids ({e})") from None
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
        split, ids = data.get("split", "dev"), data.get("ids")
    else:
        split = "dev"
        try:
            ids = [int(line) for line in text.split() if line]
        except ValueError:
            raise ValueError(f"{path}: expected one item index per line") from None
    if split == "validation":  # a validation item is a Spider train item, named by its train index
        split = "train"
    if split not in ("dev", "train") or not isinstance(ids, list):
        raise ValueError(f'{path}: expected {{"split": "dev" or "train", "ids": [index, ...]}}')
    if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
        raise ValueError(f"{path}: item ids must be indices (whole numbers >= 0)")
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: an item index appears twice")
    return split, ids


def read_prediction_lines(predictions: Path, expected: int, items: str = "the dev split") -> list[str]:
    """The ``expected`` predictions of ``predictions``, one per line, stripped and cut at the
    first tab. Raises ``ValueError`` naming the file and both counts when they differ."""
    path = Path(predictions)
    try:
        # Split on "\n" only, as the official readlines() does: a form feed or U+2028 inside a
        # prediction is part of it, not a line break.
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise ValueError(f"{path}: predictions file not found") from None
    # Editors on Windows start UTF-8 files with a byte order mark; it is not part of item 0.
    text = text.removeprefix("\ufeff")
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()  # the newline that ends the last line does not start another one
    if len(lines) != expected:
        raise ValueError(
            f"{path}: {len(lines)} lines, but {items} has {expected} items; give exactly one SQL "
            "query per line, in the items' order (an empty line is an empty prediction)"
        )
    return [line.strip().split("\t")[0] for line in lines]


def score_spider_file(
    predictions: Path,
    spider_dir: Path,
    out: Path | None = None,
    *,
    timeout_s: float = 5.0,
    keep_distinct: bool | None = None,
    show_rows: bool = False,
    official: bool = False,
    ids: Path | None = None,
) -> ScoreSummary:
    """Score every line of ``predictions`` against Spider dev in ``spider_dir`` (or the subset
    that ``ids``, else the sidecar beside ``predictions``, names); write one TSV row per item to
    ``out`` (default :func:`default_out`: ``index  db_id  hardness  correct  reason``, correct
    being 1, 0, or NA when the item's database is absent) and return the counts.

    ``official=True`` reproduces the exec comparison of the official test-suite evaluator
    (``evaluation.py --etype exec``), text handling included: "value" read as 1, split
    operators joined, DISTINCT removed as its sqlparse tokens and only the first statement
    kept, ``YEAR(CURDATE())`` read as 2020 (see :func:`harness.sql.execution_match` for the
    details and the few deliberate differences). Use it to compare with published numbers.

    ``keep_distinct`` (default: True, or False when ``official``, the evaluator's defaults):
    False strips DISTINCT from both queries; without ``official`` it is the harness's own
    handling with DISTINCT stripped, close to but not exactly the official evaluator.

    ``show_rows``: quote database rows in the reasons of failed items. Off by default, since
    the TSV is meant to be shared; reasons then give counts ("missing 1 row, unexpected 2 rows").

    Raises ``ValueError``, before any scoring, when the predictions do not match the items,
    an item's ``db_id`` is not a plain name inside ``spider_dir/database`` (see
    :func:`harness.sql.database_file`), or ``out`` cannot be written as a file, is one of the
    inputs or lies inside ``spider_dir``.
    """
    predictions, spider_dir = Path(predictions), Path(spider_dir)
    ids_file = Path(ids) if ids is not None else subset_files(predictions)[0]
    inputs = [predictions] + ([ids_file] if ids_file.exists() else [])
    out = Path(out) if out is not None else default_out(predictions)
    _check_output(out, inputs, spider_dir)
    items, preds = _items_and_predictions(predictions, spider_dir, ids_file, explicit_ids=ids is not None)
    dbs = _database_files(spider_dir, items)

    def match(db: Path, gold: str, pred: str) -> Verdict:
        return execution_match(
            db,
            gold,
            pred,
            timeout_s=timeout_s,
            keep_distinct=keep_distinct,
            show_rows=show_rows,
            official=official,
        )

    rows, summary = _score(items, preds, dbs, match)
    _write_tsv(out, rows)
    return summary


def _items_and_predictions(
    predictions: Path, spider_dir: Path, ids_file: Path, *, explicit_ids: bool
) -> tuple[list[SpiderItem], list[str]]:
    """The items the predictions answer (dev, or the subset the ids file names) and one
    prediction per item; a mismatch is a ``ValueError`` naming the file."""
    split = "dev"
    chosen = None
    if explicit_ids or ids_file.is_file():
        split, chosen = read_ids(ids_file)
    items = load_spider_split(spider_dir, split)
    if chosen is not None:
        beyond = [i for i in chosen if i >= len(items)]
        if beyond:
            raise ValueError(f"{ids_file}: item {beyond[0]} is beyond the {split} split's {len(items)} items")
        items = [items[i] for i in chosen]
    preds = read_prediction_lines(
        predictions, len(items), f"the {split} split" if chosen is None else f"the subset in {ids_file}"
    )
    return items, preds


def _score(
    items: Sequence[SpiderItem],
    preds: Sequence[str],
    dbs: Sequence[Path],
    match: Callable[[Path, str, str], Verdict],
) -> tuple[list[tuple], ScoreSummary]:
    """One TSV row per item (NA where its database is absent) and the counts."""
    rows: list[tuple] = []
    scored = correct = 0
    missing: dict[str, int] = {}
    by_hardness: dict[str, list[int]] = {}
    for item, pred, db in zip(items, preds, dbs):
        hardness = item.hardness or "unknown"
        if not db.is_file():
            missing[item.db_id] = missing.get(item.db_id, 0) + 1
            rows.append(
                (
                    item.index,
                    item.db_id,
                    hardness,
                    "NA",
                    f"database {item.db_id} is absent ({db}); not scored",
                )
            )
            continue
        verdict = match(db, item.gold_sql, pred)
        scored += 1
        correct += verdict.ok
        level = by_hardness.setdefault(hardness, [0, 0])
        level[0] += 1
        level[1] += verdict.ok
        rows.append((item.index, item.db_id, hardness, "1" if verdict.ok else "0", verdict.reason))
    summary = ScoreSummary(
        n=len(items),
        scored=scored,
        correct=correct,
        accuracy=correct / scored if scored else None,
        n_missing_db=sum(missing.values()),
        missing_db_ids=tuple(sorted(missing)),
        by_hardness={k: (v[0], v[1]) for k, v in by_hardness.items()},
    )
    return rows, summary


def _database_files(spider_dir: Path, items: list) -> list[Path]:
    """Each item's database file; a ``db_id`` that leaves the database folder stops the run."""
    paths = []
    for item in items:
        try:
            paths.append(database_file(spider_dir, item.db_id))
        except ValueError as e:
            raise ValueError(f"{spider_dir / 'dev.json'}: item {item.index}: {e}") from None
    return paths


def _check_output(out: Path, inputs: Sequence[Path] = (), data: Path | None = None) -> None:
    """Fail now, not after scoring every item, when ``out`` cannot be written as a file: it is
    a folder, one of the ``inputs``, inside the ``data`` folder, its folder cannot be made, or
    writing there is not allowed."""
    target = out.resolve()
    for given in inputs:
        if target == Path(given).resolve():
            raise ValueError(f"--out {out} is one of the inputs ({given}); give another file")
    if data is not None and target.is_relative_to(Path(data).resolve()):
        raise ValueError(f"--out {out} is inside the Spider data folder {data}; write the verdicts elsewhere")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give the path of the TSV file to write")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--out {out}: cannot make its folder ({e})") from None
    try:
        if out.exists():
            with open(out, "r+b"):  # opening for writing without truncating proves we may
                pass
        else:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.close(fd)
            out.unlink()
    except OSError as e:
        raise ValueError(f"--out {out}: cannot be written ({e})") from None


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def tsv_field(value) -> str:
    """``value`` as one TSV field: a backslash, tab, newline or carriage return escaped."""
    return str(value).translate(_ESCAPES)


def _write_tsv(out: Path, rows: list[tuple]) -> None:
    lines = ["\t".join(TSV_HEADER)]
    for index, db_id, hardness, correct, reason in rows:
        # A reason quotes model SQL and values; its whitespace runs become one space.
        clean = " ".join(str(reason).split())
        lines.append("\t".join(tsv_field(v) for v in (index, db_id, hardness, correct, clean)))
    atomic_write(out, "".join(line + "\n" for line in lines))


_LEVELS = ("easy", "medium", "hard", "extra")


def format_summary(summary: ScoreSummary) -> str:
    """A few lines for a terminal: accuracy over scored items, what was skipped and why,
    and accuracy per Spider hardness level."""
    if summary.accuracy is None:
        head = f"no item of {summary.n} could be scored"
    else:
        head = (
            f"execution accuracy {summary.accuracy:.3f} ({summary.correct} of {summary.scored} scored items; "
            f"{summary.n} in the file)"
        )
    lines = [head]
    if summary.n_missing_db:
        absent = ", ".join(summary.missing_db_ids)
        lines.append(f"not scored: {summary.n_missing_db} items whose database is absent ({absent})")
    others = sorted(set(summary.by_hardness) - set(_LEVELS))
    levels = [k for k in _LEVELS if k in summary.by_hardness] + others
    if levels:
        parts = []
        for level in levels:
            n, ok = summary.by_hardness[level]
            parts.append(f"{level} {ok / n:.3f} ({ok}/{n})" if n else f"{level} -")
        lines.append("by hardness: " + ", ".join(parts))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """``harness score-spider``: score the file, write the TSV, print the summary."""
    keep = None if args.distinct is None else args.distinct == "keep"
    out = Path(args.out) if args.out else default_out(Path(args.predictions))
    summary = score_spider_file(
        Path(args.predictions),
        find_spider_dir(args.spider_dir, option="--spider-dir"),
        out,
        timeout_s=args.timeout,
        keep_distinct=keep,
        show_rows=args.show_rows,
        official=args.official,
        ids=Path(args.ids) if args.ids else None,
    )
    print(format_summary(summary))
    print(f"verdicts: {out}")
    return 0
