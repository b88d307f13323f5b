"""compare_results: the test-suite evaluator's result_eq, by case table and by properties."""

import itertools
import tracemalloc
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.sql import compare_results, gold_orders_rows
from harness.sql.compare import _show

CASES = [
    # (id, gold rows, predicted rows, ordered, expected ok, words the reason must contain)
    ("both empty", [], [], False, True, "empty"),
    ("both empty, different widths", [], [], True, True, "empty"),
    ("gold empty", [], [(1,)], False, False, "gold has 0 rows, prediction 1"),
    ("prediction empty", [("Ann", 41)], [], False, False, "gold has 1 row, prediction 0"),
    ("same", [("Ann", 41), ("Bob", 30)], [("Ann", 41), ("Bob", 30)], False, True, "same 2 rows"),
    ("rows reordered, unordered", [(1,), (2,), (3,)], [(3,), (1,), (2,)], False, True, "same 3 rows"),
    ("rows reordered, ordered", [(1,), (2,), (3,)], [(3,), (1,), (2,)], True, False, "another order"),
    (
        "columns swapped",
        [("Ann", 41), ("Bob", 30)],
        [(41, "Ann"), (30, "Bob")],
        False,
        True,
        "columns in another order",
    ),
    (
        "columns swapped, ordered",
        [("Ann", 41), ("Bob", 30)],
        [(41, "Ann"), (30, "Bob")],
        True,
        True,
        "same 2 rows",
    ),
    (
        "missing row named",
        [("Ann", 41), ("Bob", 30), ("Cy", 25)],
        [("Bob", 30), ("Cy", 25)],
        False,
        False,
        "gold has 3 rows, prediction 2; missing ('Ann', 41)",
    ),
    ("duplicates count", [(1,), (1,), (2,)], [(1,), (2,), (2,)], False, False, "missing (1,)"),
    (
        "distinct vs duplicates",
        [(1,), (2,)],
        [(1,), (1,), (2,)],
        False,
        False,
        "gold has 2 rows, prediction 3",
    ),
    ("more columns", [(1,)], [(1, 2)], False, False, "gold has 1 column, prediction 2"),
    ("int equals float", [(1,)], [(1.0,)], False, True, "same 1 row"),
    ("exact values", [(0.1 + 0.2,)], [(0.3,)], False, False, "differ"),
    ("text is not blob", [("a",)], [(b"a",)], False, False, "differ"),
    ("null", [(None, 1)], [(1, None)], False, True, "columns in another order"),
    (
        # Each column holds the same values, but no single permutation matches the rows.
        "columns match, rows do not",
        [(1, 2), (2, 1)],
        [(1, 1), (2, 2)],
        False,
        False,
        "differ",
    ),
    (
        "wrong value",
        [("Ann", 41)],
        [("Ann", 42)],
        False,
        False,
        "missing ('Ann', 41); unexpected ('Ann', 42)",
    ),
]


@pytest.mark.parametrize("gold, pred, ordered, ok, reason", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_compare_results_cases(gold, pred, ordered, ok, reason):
    verdict = compare_results(gold, pred, ordered=ordered)
    assert verdict.ok is ok
    assert reason in verdict.reason


@pytest.mark.parametrize(
    "gold_sql, ordered",
    [
        ("SELECT a FROM t ORDER BY a", True),
        ("select a from t order by a desc limit 1", True),
        ("SELECT a FROM t", False),
        ("SELECT a FROM t GROUP BY a", False),
        ("SELECT a FROM t ORDER  BY a", False),  # the official test is a plain substring check
    ],
)
def test_gold_orders_rows(gold_sql, ordered):
    assert gold_orders_rows(gold_sql) is ordered


def test_many_identical_columns_stay_fast():
    # Twelve equal columns would be 12! permutations without de-duplication.
    gold = [tuple([1] * 12 + [i]) for i in range(50)]
    pred = [tuple([i] + [1] * 12) for i in reversed(range(50))]
    assert compare_results(gold, pred, ordered=False).ok


# --- properties ------------------------------------------------------------------------------

values = st.one_of(
    st.integers(-3, 3), st.sampled_from(["a", "b", "Ann"]), st.none(), st.sampled_from([0.5, 1.0])
)


@st.composite
def tables(draw, min_rows=0):
    ncols = draw(st.integers(1, 4))
    rows = draw(st.lists(st.tuples(*[values] * ncols), min_size=min_rows, max_size=8))
    return rows


def oracle(gold, pred, ordered):
    """result_eq by its definition: some column permutation makes the results equal as
    bags of rows (as lists when ordered). Brute force, for small tables."""
    if not gold and not pred:
        return True
    if len(gold) != len(pred) or len(gold[0]) != len(pred[0]):
        return False
    for perm in itertools.permutations(range(len(gold[0]))):
        permuted = [tuple(r[j] for j in perm) for r in pred]
        if (permuted == gold) if ordered else (Counter(permuted) == Counter(gold)):
            return True
    return False


@settings(max_examples=200, deadline=None)
@given(tables(min_rows=1), st.randoms(use_true_random=False))
def test_shuffling_rows_keeps_unordered_verdict(gold, rnd):
    pred = list(gold)
    rnd.shuffle(pred)
    assert compare_results(gold, pred, ordered=False).ok


@settings(max_examples=200, deadline=None)
@given(tables(min_rows=1), st.randoms(use_true_random=False))
def test_permuting_columns_keeps_verdict(gold, rnd):
    perm = list(range(len(gold[0])))
    rnd.shuffle(perm)
    pred = [tuple(r[j] for j in perm) for r in gold]
    assert compare_results(gold, pred, ordered=False).ok
    assert compare_results(gold, pred, ordered=True).ok


@settings(max_examples=200, deadline=None)
@given(tables(), tables(), st.booleans(), st.randoms(use_true_random=False))
def test_shuffle_and_permute_leave_any_unordered_verdict_unchanged(gold, pred, ordered, rnd):
    before = compare_results(gold, pred, ordered=False).ok
    shuffled = list(pred)
    rnd.shuffle(shuffled)
    if shuffled:
        perm = list(range(len(shuffled[0])))
        rnd.shuffle(perm)
        shuffled = [tuple(r[j] for j in perm) for r in shuffled]
    assert compare_results(gold, shuffled, ordered=False).ok is before


@settings(max_examples=300, deadline=None)
@given(tables(), tables(), st.booleans())
def test_agrees_with_brute_force_definition(gold, pred, ordered):
    assert compare_results(gold, pred, ordered=ordered).ok is oracle(gold, pred, ordered)


@settings(max_examples=300, deadline=None)
@given(tables(min_rows=1), st.booleans())
def test_near_misses_agree_with_definition(gold, ordered):
    # Random pairs are mostly far apart; a one-value change probes the close calls.
    pred = [list(r) for r in gold]
    pred[0][0] = "changed"
    pred = [tuple(r) for r in pred]
    assert compare_results(gold, pred, ordered=ordered).ok is oracle(gold, pred, ordered)


# --- reasons without rows ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "gold, pred, ordered, reason",
    [
        (
            [("Ann", 41), ("Bob", 30), ("Cy", 25)],
            [("Bob", 30), ("Cy", 25)],
            False,
            "gold has 3 rows, prediction 2; missing 1 row",
        ),
        ([("Ann", 41)], [("Ann", 42)], False, "both have 1 row but differ; missing 1 row, unexpected 1 row"),
        ([(1,), (1,), (2,)], [(1,), (2,), (2,)], False, "missing 1 row, unexpected 1 row"),
        ([(1,)], [(1,), (2,), (3,)], False, "gold has 1 row, prediction 3; unexpected 2 rows"),
        ([(1, 2), (2, 1)], [(1, 1), (2, 2)], False, "missing 2 rows, unexpected 2 rows"),
        ([(1,), (2,)], [(2,), (1,)], True, "same rows in another order"),
    ],
)
def test_reasons_count_rows_when_rows_are_not_to_be_shown(gold, pred, ordered, reason):
    hidden = compare_results(gold, pred, ordered=ordered, show_rows=False)
    assert not hidden.ok and reason in hidden.reason
    assert "Ann" not in hidden.reason and "(" not in hidden.reason.replace("(ORDER BY)", "")
    assert hidden.ok is compare_results(gold, pred, ordered=ordered).ok


def test_row_excerpts_of_huge_values_cost_no_huge_strings():
    huge, blob = "x" * 10_000_000, b"y" * 10_000_000
    tracemalloc.start()
    try:
        text = _show((huge, huge, blob))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(text) <= 80 and text.startswith("('xxx")
    assert peak < 100_000, f"{peak} bytes allocated to show 80 characters"
