"""Score a file of Spider dev predictions, as the official evaluator's input, item by item.

The input is what ``evaluation.py --pred`` reads: one SQL query per line, line *i* answering
item *i* of ``dev.json``. Each line is stripped of surrounding whitespace and cut at its first
tab, as the official script does. Every item is scored with :func:`harness.sql.execution_match`,
the same code as the ``ExecutionAccuracy`` metric, so the CLI and the benchmarks agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.data.spider import database_path, load_spider_split
from harness.sql import execution_match

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
    predictions: Path, spider_dir: Path, out: Path, *, timeout_s: float = 5.0, keep_distinct: bool = True
) -> ScoreSummary:
    """Score every line of ``predictions`` against Spider dev in ``spider_dir``; write one TSV
    row per item to ``out`` (``index  db_id  correct  reason``, correct being 1, 0, or NA
    when the item's database is absent) and return the counts.

    ``keep_distinct=False`` reproduces the test-suite evaluator's default (DISTINCT stripped
    from both queries); the default keeps it, as the ``ExecutionAccuracy`` metric does.
    """
    items = load_spider_split(Path(spider_dir), "dev")
    preds = read_prediction_lines(Path(predictions), len(items))

    rows = []
    scored = correct = 0
    missing: dict[str, int] = {}
    by_hardness: dict[str, list[int]] = {}
    for item, pred in zip(items, preds):
        db = database_path(Path(spider_dir), item.db_id)
        if not db.is_file():
            missing[item.db_id] = missing.get(item.db_id, 0) + 1
            rows.append((item.index, item.db_id, "NA", f"database {item.db_id} is absent ({db}); not scored"))
            continue
        verdict = execution_match(db, item.gold_sql, pred, timeout_s=timeout_s, keep_distinct=keep_distinct)
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


def _write_tsv(out: Path, rows: list[tuple]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
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
        lines.append(
            f"not scored: {summary.n_missing_db} items whose database is absent ({', '.join(summary.missing_db_ids)})"
        )
    levels = [k for k in _LEVELS if k in summary.by_hardness] + sorted(set(summary.by_hardness) - set(_LEVELS))
    if levels:
        parts = []
        for level in levels:
            n, ok = summary.by_hardness[level]
            parts.append(f"{level} {ok / n:.3f} ({ok}/{n})" if n else f"{level} -")
        lines.append("by hardness: " + ", ".join(parts))
    return "\n".join(lines)
