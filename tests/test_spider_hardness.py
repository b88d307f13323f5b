"""hardness_of: the official Spider difficulty levels, on small trees and on all of dev."""

import csv
import json
from collections import Counter

import pytest

from harness.tasks.spider_data import SpiderDataError, find_spider_dir
from harness.tasks.spider_hardness import HARDNESS_LEVELS, hardness_of


def tree(**overrides) -> dict:
    """A parsed Spider query: SELECT col FROM one table, plus ``overrides``."""
    base = {
        "select": [False, [[0, [0, [0, 1, False], None]]]],
        "from": {"table_units": [["table_unit", 0]], "conds": []},
        "where": [],
        "groupBy": [],
        "having": [],
        "orderBy": [],
        "limit": None,
        "intersect": None,
        "union": None,
        "except": None,
    }
    base.update(overrides)
    return base


def cond(op: int = 2, val=1.0, not_op: bool = False) -> list:
    return [not_op, op, [0, [0, 1, False], None], val, None]


CASES = [
    ("plain select", tree(), "easy"),
    ("one where", tree(where=[cond()]), "easy"),
    ("where and group", tree(where=[cond()], groupBy=[[0, 1, False]]), "medium"),
    (
        "two columns",
        tree(select=[False, [[0, [0, [0, 1, False], None]], [0, [0, [0, 2, False], None]]]]),
        "medium",
    ),
    (
        "join",
        tree(**{"from": {"table_units": [["table_unit", 0], ["table_unit", 1]], "conds": [cond()]}}),
        "easy",
    ),
    (
        "order, limit, where",
        tree(where=[cond()], orderBy=["desc", [[0, [0, 1, False], None]]], limit=1),
        "hard",
    ),
    ("nested in where", tree(where=[cond(op=8, val=tree())]), "hard"),
    ("union", tree(union=tree()), "hard"),
    ("union and where", tree(where=[cond(), "or", cond()], union=tree()), "extra"),
    # The original counts a NOT condition and each and/or connective of HAVING as an
    # aggregation (count_agg tests unit[0] != 0); the port keeps that.
    (
        "not conditions count as aggregations",
        tree(where=[cond(not_op=True), "and", cond(not_op=True)]),
        "medium",
    ),
]


@pytest.mark.parametrize("sql_tree, level", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hardness_cases(sql_tree, level):
    assert hardness_of(sql_tree) == level


@pytest.mark.parametrize("bad, message", [(None, "NoneType"), ({"select": []}, "missing keys")])
def test_hardness_rejects_non_trees(bad, message):
    with pytest.raises(ValueError, match=message):
        hardness_of(bad)


def test_hardness_matches_official_labels_on_all_of_dev():
    try:
        spider = find_spider_dir()
    except SpiderDataError as e:
        pytest.skip(f"the Spider data is absent: {e}")
    verdicts = spider / "reference_predictions" / "dail_sql_gpt4.verdicts.tsv"
    if not verdicts.is_file():
        pytest.skip(f"{verdicts} is absent")
    dev = json.loads((spider / "dev.json").read_text(encoding="utf-8"))
    with open(verdicts, encoding="utf-8") as f:
        official = [row["hardness"] for row in csv.DictReader(f, delimiter="\t")]
    ours = [hardness_of(item["sql"]) for item in dev]
    assert len(ours) == len(official) == 1034
    assert [i for i, (a, b) in enumerate(zip(ours, official)) if a != b] == []
    assert Counter(ours) == {"easy": 248, "medium": 446, "hard": 174, "extra": 166}
    assert set(ours) == set(HARDNESS_LEVELS)
