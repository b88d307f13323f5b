"""extract_sql: a case table of real model-output shapes, idempotence under Hypothesis, linear cost."""

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.sql import extract_sql
from harness.sql.lexing import _collapse

CASES = [
    # (id, raw model output, expected SQL)
    ("plain", "SELECT name FROM singer", "SELECT name FROM singer"),
    ("semicolon", "SELECT name FROM singer;", "SELECT name FROM singer"),
    (
        "whitespace",
        "  SELECT name\n   FROM  singer\n\tWHERE age > 20 ;\n",
        "SELECT name FROM singer WHERE age > 20",
    ),
    (
        "literal whitespace kept",
        "SELECT id FROM city WHERE name = 'New  York';",
        "SELECT id FROM city WHERE name = 'New  York'",
    ),
    (
        "semicolon inside literal",
        "SELECT id FROM t WHERE note = 'a;b'; SELECT 2",
        "SELECT id FROM t WHERE note = 'a;b'",
    ),
    (
        "escaped quote",
        "SELECT id FROM t WHERE name = 'O''Brien';",
        "SELECT id FROM t WHERE name = 'O''Brien'",
    ),
    ("fence sql", "```sql\nSELECT count(*) FROM singer;\n```", "SELECT count(*) FROM singer"),
    (
        "fence bare",
        "Here you go:\n```\nSELECT count(*) FROM singer\n```\nDone.",
        "SELECT count(*) FROM singer",
    ),
    ("fence unclosed", "```sql\nSELECT count(*) FROM singer", "SELECT count(*) FROM singer"),
    (
        "fence wins over prose select",
        "We select the rows we need.\n```sql\nSELECT name FROM singer WHERE age < 30\n```",
        "SELECT name FROM singer WHERE age < 30",
    ),
    (
        "prose before",
        "To answer this question, we need to select the names: SELECT name FROM singer WHERE age > 20",
        "SELECT name FROM singer WHERE age > 20",
    ),
    (
        "prose after, next line",
        "SELECT name FROM singer\nThis query returns the name of every singer.",
        "SELECT name FROM singer",
    ),
    (
        "prose after, same line",
        "SELECT name FROM singer This query returns the names.",
        "SELECT name FROM singer",
    ),
    (
        "prose after blank line",
        "SELECT name FROM singer\n\nExplanation: it lists singers.",
        "SELECT name FROM singer",
    ),
    (
        "inst marker",
        "SELECT name FROM singer [/INST] SELECT name FROM singer [/INST]",
        "SELECT name FROM singer",
    ),
    ("leading inst marker", "[/INST] SELECT name FROM singer", "SELECT name FROM singer"),
    ("eos marker", "SELECT name FROM singer</s>[INST] next question", "SELECT name FROM singer"),
    (
        # The paper's Figure 2: the query, then the same query again as comments.
        "paper repetition",
        "SELECT model FROM car GROUP BY model ORDER BY count(*) DESC LIMIT 1;\n\n"
        "-- SELECT model FROM car GROUP BY model ORDER BY count(*) DESC LIMIT 1;\n"
        "-- SELECT model FROM car GROUP BY model ORDER BY count(*) DESC LIMIT 1;",
        "SELECT model FROM car GROUP BY model ORDER BY count(*) DESC LIMIT 1",
    ),
    ("repeated without separator", "SELECT a FROM t\nSELECT a FROM t\nSELECT a FROM t", "SELECT a FROM t"),
    ("repeated same line", "SELECT a FROM t SELECT a FROM t", "SELECT a FROM t"),
    ("truncated repetition", "SELECT a FROM t; SELECT a FR", "SELECT a FROM t"),
    (
        "comments dropped",
        "SELECT a -- the name\nFROM t /* table */ WHERE b = 1",
        "SELECT a FROM t WHERE b = 1",
    ),
    ("union kept", "SELECT a FROM t UNION SELECT b FROM u", "SELECT a FROM t UNION SELECT b FROM u"),
    (
        "union all kept",
        "SELECT a FROM t UNION ALL\nSELECT b FROM u",
        "SELECT a FROM t UNION ALL SELECT b FROM u",
    ),
    (
        "intersect kept",
        "SELECT a FROM t INTERSECT SELECT a FROM u;",
        "SELECT a FROM t INTERSECT SELECT a FROM u",
    ),
    (
        "subquery kept",
        "SELECT a FROM t WHERE b IN (SELECT b FROM u) ORDER BY a",
        "SELECT a FROM t WHERE b IN (SELECT b FROM u) ORDER BY a",
    ),
    ("cte kept", "WITH c AS (SELECT 1 AS x) SELECT x FROM c;", "WITH c AS (SELECT 1 AS x) SELECT x FROM c"),
    ("lowercase", "select name from singer where age > 20", "select name from singer where age > 20"),
    (
        "keywords capitalised are not prose",
        "SELECT Name FROM singer ORDER BY Age",
        "SELECT Name FROM singer ORDER BY Age",
    ),
    # A truncated query is returned as is, not "repaired" to a shorter one that runs.
    ("truncated", "SELECT name FROM singer WHERE age >", "SELECT name FROM singer WHERE age >"),
    ("no sql", "I cannot answer that with the given schema.", ""),
    ("empty", "", ""),
    ("only whitespace", " \n\t ", ""),
    ("conversation", "Sure! The singers are listed in the table.", ""),
    ("not a string", None, ""),
]


@pytest.mark.parametrize("raw, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_extract_sql_cases(raw, expected):
    assert extract_sql(raw) == expected


@pytest.mark.parametrize("raw", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_extract_sql_is_idempotent_on_cases(raw):
    once = extract_sql(raw)
    assert extract_sql(once) == once


# Fragments that exercise every rule: keywords, literals, quotes, comments, fences, markers.
FRAGMENTS = [
    "SELECT",
    "select",
    "WITH",
    "with",
    "FROM",
    "t",
    "a",
    "name",
    "WHERE",
    "=",
    ">",
    "1",
    "'x'",
    "'",
    "''",
    '"',
    "`",
    "[",
    "]",
    "(",
    ")",
    ",",
    ";",
    " ",
    "  ",
    "\n",
    "\n\n",
    "\t",
    "--",
    "/*",
    "*/",
    "```",
    "```sql\n",
    "[/INST]",
    "[INST]",
    "</s>",
    "<|eot_id|>",
    "UNION",
    "ALL",
    "INTERSECT",
    "This",
    "query",
    "returns",
    "names.",
    "Explanation:",
    "AS",
    "c",
    "ORDER BY",
    "count(*)",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map(" ".join))
def test_extract_sql_idempotent_on_sql_like_text(raw):
    once = extract_sql(raw)
    assert extract_sql(once) == once


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join))
def test_extract_sql_idempotent_on_glued_fragments(raw):
    once = extract_sql(raw)
    assert extract_sql(once) == once


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_extract_sql_idempotent_on_any_text(raw):
    once = extract_sql(raw)
    assert extract_sql(once) == once
    assert once == once.strip()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=30).map(" ".join))
def test_extract_sql_output_has_no_markers(raw):
    out = extract_sql(raw)
    for marker in ("```", "[/INST]", "[INST]", "</s>", "<|eot_id|>"):
        assert marker not in out


# --- work on the text is linear in its length --------------------------------------------------


def _best_time(fn, arg, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(arg)
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.parametrize(
    "unit, prefix",
    [("-1", "SELECT 1"), (";", "SELECT 1"), (" /* c */ 1", "SELECT 1")],
    ids=["many code tokens", "many trailing semicolons", "many comments"],
)
def test_collapse_is_linear(unit, prefix):
    # Four times the text may take about four times as long, not sixteen.
    small = _best_time(_collapse, prefix + unit * 20_000)
    big = _best_time(_collapse, prefix + unit * 80_000)
    assert big / max(small, 1e-4) < 8, f"{small:.4f} s, then {big:.4f} s for four times the text"


def test_extract_sql_is_linear_in_trailing_prose():
    small = _best_time(extract_sql, "SELECT a FROM t " + "Word " * 4_000, repeat=2)
    big = _best_time(extract_sql, "SELECT a FROM t " + "Word " * 16_000, repeat=2)
    assert big / max(small, 1e-4) < 8, f"{small:.4f} s, then {big:.4f} s for four times the text"
