"""execution_match: whether a predicted query gives the gold query's answer on a database.

The top of :mod:`harness.sql`: both texts go through the sandbox (:mod:`harness.sql.sandbox`,
which also rewrites them in its worker as asked), and their results through
:func:`harness.sql.compare.compare_results`; every failure comes back as a :class:`Verdict` with
its reason, never as an exception.
"""

from __future__ import annotations

import time
from pathlib import Path

from harness.sql.compare import Verdict, compare_results
from harness.sql.sandbox import _execute
from harness.sql.sandbox_query import _EMPTY

# How a failure's reason begins, per kind of failure (harness.tasks.sql_task.sql_failure_kind
# reads them back).
EMPTY_PREDICTION = "empty prediction: no SQL to execute"
GOLD_FAILED = "gold query failed"
PREDICTION_FAILED = {
    "error": "prediction failed",
    "timeout": "prediction timed out",
    "too_many_rows": "prediction returned too much",
    "forbidden": "prediction was refused",
}


def execution_match(
    db_path: str | Path,
    gold_sql: str,
    pred_sql: str,
    *,
    timeout_s: float = 5.0,
    keep_distinct: bool | None = None,
    show_rows: bool = True,
    official: bool = False,
) -> Verdict:
    """Run gold and prediction on ``db_path`` and compare their results (see :mod:`harness.sql`).

    An empty prediction, an error, a timeout or a refused statement is a failure with that
    reason; so is a gold query that fails, with a reason that says so. All work on both
    texts happens in the worker, under ``timeout_s`` each (see :func:`execute_readonly`);
    running the prediction and comparing its result share one ``timeout_s``.

    ``keep_distinct`` (default: True, or False when ``official``): False strips DISTINCT from
    both queries first, as the test-suite evaluator does by default; the harness keeps it,
    because a query that forgets DISTINCT returns a different answer to the question.

    ``show_rows``: whether a failure's reason may quote rows of the database (see
    :func:`compare_results`). True by default: benchmark reports are private run folders, and
    a row excerpt says at a glance what went wrong. Files meant to be shared pass False.

    ``official=True`` reproduces the exec comparison of taoyds/test-suite-sql-eval
    (``evaluation.py --etype exec``, ``exec_eval.eval_exec_match``) on the text: "value"
    replaced by "1" in the prediction, "> =", "< =", "! =" joined everywhere (inside string
    literals too), DISTINCT removed by sqlparse's tokens (``remove_distinct``), which also
    keeps only the first statement, order decided on the result, ``YEAR(CURDATE())`` read as
    2020, and text that is not UTF-8 decoded with ``errors="ignore"``. What stays different,
    on purpose: the sandbox (a statement other than one read-only query, which the evaluator
    would run, writes included, is refused and scores 0), the time limit (the evaluator has
    none that works), and a gold query that fails (the evaluator stops with an assertion).
    sqlparse is emulated as of version 0.6.0 (see ``_sp_tokens``); versions differ on rare
    texts (BEGIN blocks, ``/* */`` comments without an end).
    """
    if keep_distinct is None:
        keep_distinct = not official
    if not isinstance(pred_sql, str):
        return Verdict(False, EMPTY_PREDICTION)
    job = {
        "timeout_s": timeout_s,
        "rewrite": "official" if official else "harness",
        "strip_distinct": not keep_distinct,
    }
    gold, ordered = _execute(db_path, gold_sql, **job)
    if not gold.ok:
        return Verdict(False, f"{GOLD_FAILED} ({gold.kind}): {gold.error}")
    pred_start = time.monotonic()
    pred, _ = _execute(db_path, pred_sql, prediction=True, **job)
    if pred.kind == "error" and pred.error == _EMPTY:
        return Verdict(False, EMPTY_PREDICTION)
    if not pred.ok:
        return Verdict(False, f"{PREDICTION_FAILED[pred.kind]}: {pred.error}")
    # The comparison shares the prediction's deadline: its result must be judged in time too.
    return compare_results(
        gold.rows, pred.rows, ordered=ordered, show_rows=show_rows, deadline=pred_start + timeout_s
    )
