"""The Spider difficulty level of a gold query, as the official evaluator assigns it.

A faithful port of ``Evaluator.eval_hardness`` and its helpers ``count_component1``,
``count_component2`` and ``count_others`` from ``evaluation.py`` (taoyds/spider and
taoyds/test-suite-sql-eval share this code). It reads the parsed ``sql`` tree that every
``dev.json`` item carries, so it needs neither the database nor the SQL parser.

The tree layout (from the official file's header)::

    col_unit:  (agg_id, col_id, isDistinct)
    val_unit:  (unit_op, col_unit1, col_unit2)
    cond_unit: (not_op, op_id, val_unit, val1, val2)
    condition: [cond_unit1, 'and'/'or', cond_unit2, ...]
    sql: {select: (isDistinct, [(agg_id, val_unit), ...]), from: {table_units, conds},
          where, groupBy, orderBy: ('asc'/'desc', [val_unit, ...]), having, limit,
          intersect, except, union}

Quirks of the original are kept on purpose, because the labels must match the published
split (248 easy, 446 medium, 174 hard, 166 extra on dev): ``count_others`` passes whole
condition lists to ``count_agg``, so it tests a cond_unit's ``not_op`` and the first letter
of an ``'and'``/``'or'`` connective against 0, not an aggregation id.
"""

from __future__ import annotations

__all__ = ["HARDNESS_LEVELS", "hardness_of"]

HARDNESS_LEVELS = ("easy", "medium", "hard", "extra")

_WHERE_OPS = ("not", "between", "=", ">", "<", ">=", "<=", "!=", "in", "like", "is", "exists")
_LIKE_OP = _WHERE_OPS.index("like")
_UNIT_OP_NONE = 0  # UNIT_OPS.index('none')
_AGG_NONE = 0  # AGG_OPS.index('none')

_REQUIRED_KEYS = (
    "select",
    "from",
    "where",
    "groupBy",
    "having",
    "orderBy",
    "limit",
    "intersect",
    "except",
    "union",
)


def _has_agg(unit) -> bool:
    # unit[0] is an agg id for select items and col_units, but count_others also feeds it
    # cond_units (not_op) and connectives ('and'[0] == 'a'); all compare "!= 0" as the original.
    return unit[0] != _AGG_NONE


def _count_agg(units) -> int:
    return len([unit for unit in units if _has_agg(unit)])


def _nested_sql(sql: dict) -> list[dict]:
    nested = []
    for cond_unit in sql["from"]["conds"][::2] + sql["where"][::2] + sql["having"][::2]:
        if type(cond_unit[3]) is dict:
            nested.append(cond_unit[3])
        if type(cond_unit[4]) is dict:
            nested.append(cond_unit[4])
    for key in ("intersect", "except", "union"):
        if sql[key] is not None:
            nested.append(sql[key])
    return nested


def count_component1(sql: dict) -> int:
    """WHERE, GROUP BY, ORDER BY, LIMIT, each JOIN, each OR and each LIKE."""
    count = 0
    if len(sql["where"]) > 0:
        count += 1
    if len(sql["groupBy"]) > 0:
        count += 1
    if len(sql["orderBy"]) > 0:
        count += 1
    if sql["limit"] is not None:
        count += 1
    if len(sql["from"]["table_units"]) > 0:  # JOIN
        count += len(sql["from"]["table_units"]) - 1
    connectives = sql["from"]["conds"][1::2] + sql["where"][1::2] + sql["having"][1::2]
    count += len([token for token in connectives if token == "or"])
    cond_units = sql["from"]["conds"][::2] + sql["where"][::2] + sql["having"][::2]
    count += len([cond_unit for cond_unit in cond_units if cond_unit[1] == _LIKE_OP])
    return count


def count_component2(sql: dict) -> int:
    """Nested queries: subqueries in conditions plus INTERSECT / EXCEPT / UNION."""
    return len(_nested_sql(sql))


def count_others(sql: dict) -> int:
    """More than one aggregation, select column, where condition or group-by column."""
    count = 0
    agg_count = _count_agg(sql["select"][1])
    agg_count += _count_agg(sql["where"][::2])
    agg_count += _count_agg(sql["groupBy"])
    if len(sql["orderBy"]) > 0:
        agg_count += _count_agg(
            [unit[1] for unit in sql["orderBy"][1] if unit[1]]
            + [unit[2] for unit in sql["orderBy"][1] if unit[2]]
        )
    agg_count += _count_agg(sql["having"])
    if agg_count > 1:
        count += 1
    if len(sql["select"][1]) > 1:
        count += 1
    if len(sql["where"]) > 1:
        count += 1
    if len(sql["groupBy"]) > 1:
        count += 1
    return count


def hardness_of(sql_tree: dict) -> str:
    """ "easy", "medium", "hard" or "extra" for a parsed Spider query (the item's ``sql`` field).

    Raises ``ValueError`` naming the missing keys when ``sql_tree`` is not a Spider tree.
    """
    if not isinstance(sql_tree, dict):
        raise ValueError(f"expected the parsed 'sql' dict of a Spider item, got {type(sql_tree).__name__}")
    missing = [k for k in _REQUIRED_KEYS if k not in sql_tree]
    if missing:
        raise ValueError(
            f"not a Spider sql tree: missing keys {', '.join(missing)} (pass the item's 'sql' field)"
        )
    comp1 = count_component1(sql_tree)
    comp2 = count_component2(sql_tree)
    others = count_others(sql_tree)

    if comp1 <= 1 and others == 0 and comp2 == 0:
        return "easy"
    if (others <= 2 and comp1 <= 1 and comp2 == 0) or (comp1 <= 2 and others < 2 and comp2 == 0):
        return "medium"
    if (
        (others > 2 and comp1 <= 2 and comp2 == 0)
        or (2 < comp1 <= 3 and others <= 2 and comp2 == 0)
        or (comp1 <= 1 and others == 0 and comp2 <= 1)
    ):
        return "hard"
    return "extra"
