"""Score a file of Spider dev predictions, as the official evaluator's input, item by item.

The input is what ``evaluation.py --pred`` reads: one SQL query per line, line *i* answering
item *i* of ``dev.json``. Each line is stripped of surrounding whitespace and cut at its first
tab, as the official script does; a UTF-8 byte order mark at the start of the file is dropped.
Every item is scored with :func:`harness.sql.execution_match`, the same code as the
``ExecutionAccuracy`` metric, so the CLI and the benchmarks agree.

The TSV written is meant to be shared: its reasons count missing and unexpected rows instead
of quoting them, unless ``show_rows`` asks for the excerpts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from harness.sql import database_file, execution_match
from harness.tasks.spider import load_spider_split

__all__ = ["ScoreSummary", "format_summary", "read_prediction_lines", "score_spider_file"]

TSV_HEADER = ("index", "db_id", "correct", "reason")


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


def read_prediction_lines(predictions: Path, expected: int) -> list[str]:
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
            f"{path}: {len(lines)} lines, but the dev split has {expected} items; "
            "give exactly one SQL query per line, in dev.json order (an empty line is an empty prediction)"
        )
    return [line.strip().split("\t")[0] for line in lines]


def score_spider_file(
    predictions: Path,
    spider_dir: Path,
    out: Path,
    *,
    timeout_s: float = 5.0,
    keep_distinct: bool | None = None,
    show_rows: bool = False,
    official: bool = False,
) -> ScoreSummary:
    """Score every line of ``predictions`` against Spider dev in ``spider_dir``; write one TSV
    row per item to ``out`` (``index  db_id  correct  reason``, correct being 1, 0, or NA
    when the item's database is absent) and return the counts.

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

    Raises ``ValueError``, before any scoring, when the predictions do not match the dev
    split, an item's ``db_id`` is not a plain name inside ``spider_dir/database`` (see
    :func:`harness.sql.database_file`), or ``out`` cannot be written as a file.
    """
    items = load_spider_split(Path(spider_dir), "dev")
    preds = read_prediction_lines(Path(predictions), len(items))
    dbs = _database_files(Path(spider_dir), items)
    _check_output(Path(out))

    rows = []
    scored = correct = 0
    missing: dict[str, int] = {}
    by_hardness: dict[str, list[int]] = {}
    for item, pred, db in zip(items, preds, dbs):
        if not db.is_file():
            missing[item.db_id] = missing.get(item.db_id, 0) + 1
            rows.append((item.index, item.db_id, "NA", f"database {item.db_id} is absent ({db}); not scored"))
            continue
        verdict = execution_match(
            db,
            item.gold_sql,
            pred,
            timeout_s=timeout_s,
            keep_distinct=keep_distinct,
            show_rows=show_rows,
            official=official,
        )
        scored += 1
        correct += verdict.ok
        level = by_hardness.setdefault(item.hardness or "unknown", [0, 0])
        level[0] += 1
        level[1] += verdict.ok
        rows.append((item.index, item.db_id, "1" if verdict.ok else "0", verdict.reason))

    _write_tsv(Path(out), rows)
    return ScoreSummary(
        n=len(items),
        scored=scored,
        correct=correct,
        accuracy=correct / scored if scored else None,
        n_missing_db=sum(missing.values()),
        missing_db_ids=tuple(sorted(missing)),
        by_hardness={k: (v[0], v[1]) for k, v in by_hardness.items()},
    )


def _database_files(spider_dir: Path, items: list) -> list[Path]:
    """Each item's database file; a ``db_id`` that leaves the database folder stops the run."""
    paths = []
    for item in items:
        try:
            paths.append(database_file(spider_dir, item.db_id))
        except ValueError as e:
            raise ValueError(f"{spider_dir / 'dev.json'}: item {item.index}: {e}") from None
    return paths


def _check_output(out: Path) -> None:
    """Fail now, not after scoring every item, when ``out`` cannot be written as a file: it is
    a folder, its folder cannot be made, or writing there is not allowed."""
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


def _write_tsv(out: Path, rows: list[tuple]) -> None:
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        f.write("\t".join(TSV_HEADER) + "\n")
        for index, db_id, correct, reason in rows:
            # A reason quotes model SQL and values; keep each row on one line of four fields.
            clean = " ".join(str(reason).replace("\t", " ").split())
            f.write(f"{index}\t{db_id}\t{correct}\t{clean}\n")


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
