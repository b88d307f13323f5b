"""compare_results (pure): whether two query results are the same answer, and why not.

The official test-suite evaluator's ``result_eq`` (taoyds/test-suite-sql-eval,
``exec_eval.py``): bags of rows, ordered only when the gold query has ORDER BY
(:func:`gold_orders_rows`), columns in any order; a :class:`Verdict` carries the reason, written
for a human. Only the standard library: the sandbox's worker processes import
:func:`gold_orders_rows` from here.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

# How a comparison that ran out of time begins its reason (harness.sql.match adds the rest).
COMPARISON_TIMED_OUT = "prediction timed out"


class _OutOfTime(Exception):
    """The column-permutation search passed its deadline."""


@dataclass(frozen=True)
class Verdict:
    """Whether a prediction matches, and why, written for a human."""

    ok: bool
    reason: str


def gold_orders_rows(gold_sql: str) -> bool:
    """Whether row order matters: the official test, ``'order by' in gold.lower()``."""
    return "order by" in gold_sql.lower()


def compare_results(
    gold_rows: list, pred_rows: list, *, ordered: bool, show_rows: bool = True, deadline: float | None = None
) -> Verdict:
    """The test-suite evaluator's ``result_eq``, with a reason.

    Equal when some permutation of the prediction's columns makes the two results equal as
    bags of rows (duplicates count), or as lists when ``ordered``. Values compare with
    Python ``==`` as in the official code (so 1 equals 1.0, and 'a' differs from b'a').

    The reason of a failure quotes a missing and an unexpected row when ``show_rows``;
    otherwise it only counts them ("missing 1 row, unexpected 2 rows"), so that it can go in
    a file that is shared without showing what the database holds.

    ``deadline`` (a ``time.monotonic()`` value): the search over column orders, exponential in
    the number of columns when many columns hold the same values (a Latin square), stops
    there, and the verdict is a failure saying the comparison timed out.
    """
    gold_rows, pred_rows = [tuple(r) for r in gold_rows], [tuple(r) for r in pred_rows]
    if not gold_rows and not pred_rows:
        return Verdict(True, "both results are empty")
    if len(gold_rows) != len(pred_rows):
        return Verdict(False, _count_reason(gold_rows, pred_rows, show_rows))
    ncols, pcols = len(gold_rows[0]), len(pred_rows[0])
    if ncols != pcols:
        return Verdict(False, f"gold has {ncols} column{_s(ncols)}, prediction {pcols}")
    try:
        perm = _matching_permutation(gold_rows, pred_rows, ordered, deadline)
        reordered = (
            ordered
            and perm is None
            and _matching_permutation(gold_rows, pred_rows, False, deadline) is not None
        )
    except _OutOfTime:
        return Verdict(
            False,
            f"{COMPARISON_TIMED_OUT}: comparing its {len(pred_rows)} rows of {pcols} columns with the gold's "
            "passed the time limit (too many column orders to try)",
        )
    if perm is not None:
        moved = "" if perm == tuple(range(ncols)) else ", with the columns in another order"
        return Verdict(True, f"same {len(gold_rows)} row{_s(len(gold_rows))}{moved}")
    if reordered:
        return Verdict(False, "same rows in another order, and the gold query orders them (ORDER BY)")
    n = len(gold_rows)
    return Verdict(False, f"both have {n} row{_s(n)} but differ; {_diff(gold_rows, pred_rows, show_rows)}")


def _unorder_row(row: tuple) -> tuple:
    # The official key: values sorted by str(value) + str(type(value)).
    return tuple(sorted(row, key=lambda x: str(x) + str(type(x))))


def _matching_permutation(
    gold: list[tuple], pred: list[tuple], ordered: bool, deadline: float | None = None
) -> tuple | None:
    """A column permutation ``p`` with ``[row[p[i]] ...]`` of pred equal to gold, or None.

    The official code prunes with 20 random rows and tries the product of the remaining
    candidates; here column ``j`` of the prediction is a candidate for gold column ``i`` only
    when the two columns hold the same multiset of values (the same list when ``ordered``),
    which every matching permutation satisfies, so the answer is the same but deterministic.
    Identical prediction columns are interchangeable, so only the first unused one is tried.
    """
    # Quick rejection, as the official quick_rej: rows with their values sorted must agree.
    g_unordered = [_unorder_row(r) for r in gold]
    p_unordered = [_unorder_row(r) for r in pred]
    if ordered and g_unordered != p_unordered:
        return None
    if not ordered and set(g_unordered) != set(p_unordered):
        return None

    ncols = len(gold[0])
    g_cols = [tuple(r[i] for r in gold) for i in range(ncols)]
    p_cols = [tuple(r[j] for r in pred) for j in range(ncols)]
    keys_g: list[tuple] | list[Counter]  # a column as it is, or its values as a multiset
    keys_p: list[tuple] | list[Counter]
    if ordered:
        keys_g, keys_p = g_cols, p_cols
    else:
        keys_g = [Counter(c) for c in g_cols]
        keys_p = [Counter(c) for c in p_cols]
    candidates = [[j for j in range(ncols) if keys_p[j] == keys_g[i]] for i in range(ncols)]
    if any(not c for c in candidates):
        return None
    gold_bag = None if ordered else Counter(gold)

    def matches(perm: tuple) -> bool:
        permuted = [tuple(r[j] for j in perm) for r in pred]
        return permuted == gold if ordered else Counter(permuted) == gold_bag

    perm: list[int] = []
    used: set[int] = set()

    def search(i: int) -> tuple | None:
        # Looked at on every step, the leaves (which call matches) included.
        if deadline is not None and time.monotonic() > deadline:
            raise _OutOfTime()
        if i == ncols:
            return tuple(perm) if matches(tuple(perm)) else None
        tried: list[tuple] = []
        for j in candidates[i]:
            if j in used or p_cols[j] in tried:
                continue
            tried.append(p_cols[j])
            perm.append(j)
            used.add(j)
            found = search(i + 1)
            perm.pop()
            used.discard(j)
            if found is not None:
                return found
        return None

    return search(0)


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _show(row: tuple, limit: int = 80) -> str:
    # Each value is cut before repr, so that a row of huge values costs no huge string.
    cut = tuple(v[:limit] if isinstance(v, (str, bytes)) else v for v in row[:limit])
    text = repr(cut)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _diff(gold: list[tuple], pred: list[tuple], show_rows: bool) -> str:
    """The first gold row the prediction lacks and the first row it has too many of, or
    their counts when rows are not to be shown."""
    missing = Counter(gold) - Counter(pred)
    extra = Counter(pred) - Counter(gold)
    parts = []
    if show_rows:
        if missing:
            parts.append(f"missing {_show(next(iter(missing)))}")
        if extra:
            parts.append(f"unexpected {_show(next(iter(extra)))}")
        sep = "; "
    else:
        for word, bag in (("missing", missing), ("unexpected", extra)):
            n = sum(bag.values())
            if n:
                parts.append(f"{word} {n} row{_s(n)}")
        sep = ", "
    if len(gold[0]) > 1 and not parts:
        parts.append("no column order makes them equal")
    return sep.join(parts) or "the rows differ"


def _count_reason(gold: list[tuple], pred: list[tuple], show_rows: bool) -> str:
    head = f"gold has {len(gold)} row{_s(len(gold))}, prediction {len(pred)}"
    same_width = gold and pred and len(gold[0]) == len(pred[0])
    if not same_width:
        return head
    return f"{head}; {_diff(gold, pred, show_rows)}"
