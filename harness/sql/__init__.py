"""SQL for Spider scoring: pull the query out of model text, run it safely, compare results.

Three parts, in the order an item meets them, each in its own module:

* :func:`extract_sql` (pure, :mod:`harness.sql.extract`): the first SQL statement in raw model
  output.
* :func:`execute_readonly` (the only side effect, :mod:`harness.sql.sandbox`): one statement on a
  SQLite file that cannot be changed, in a worker process that is killed at the deadline, with
  caps on the text, the rows and the memory of the result; returns an :class:`ExecOutcome` and
  never raises on bad model SQL.
* :func:`compare_results` (pure, :mod:`harness.sql.compare`): the official test-suite
  evaluator's ``result_eq`` (taoyds/test-suite-sql-eval, ``exec_eval.py``): bags of rows, ordered
  only when the gold query has ORDER BY, columns in any order. :func:`execution_match`
  (:mod:`harness.sql.match`) ties them together.

Beside them: :mod:`harness.sql.lexing`, the tokenizer they share (code, string literals, quoted
names, comments); :mod:`harness.sql.official`, the rewrites of the text (:func:`strip_distinct`,
and the evaluator's own for ``official=True``); :mod:`harness.sql.paths`, where
:func:`database_file` turns a Spider ``db_id`` into its database file, refusing any that would
leave the ``database`` folder. Imports point one way: lexing, then compare and official, then
sandbox, then extract and match; paths stands alone.

One deliberate difference from that evaluator: DISTINCT is kept in both queries (its default
strips every ``distinct`` token first), so a prediction that forgets DISTINCT fails here.
``execution_match(..., official=True)`` reproduces the evaluator's own handling of the text
instead (see :func:`execution_match`).
"""

from __future__ import annotations

from harness.sql.compare import Verdict, compare_results, gold_orders_rows
from harness.sql.extract import extract_sql
from harness.sql.match import EMPTY_PREDICTION, GOLD_FAILED, PREDICTION_FAILED, execution_match
from harness.sql.official import strip_distinct
from harness.sql.paths import database_file, is_plain_name
from harness.sql.sandbox import EXEC_KINDS, MAX_SQL_BYTES, ExecOutcome, execute_readonly

__all__ = [
    "EXEC_KINDS",
    "MAX_SQL_BYTES",
    "ExecOutcome",
    "Verdict",
    "compare_results",
    "EMPTY_PREDICTION",
    "GOLD_FAILED",
    "PREDICTION_FAILED",
    "database_file",
    "is_plain_name",
    "execute_readonly",
    "execution_match",
    "extract_sql",
    "gold_orders_rows",
    "strip_distinct",
]
