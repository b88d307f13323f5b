"""SQL for Spider scoring: pull the query out of model text, run it safely, compare results.

Three parts, in the order an item meets them:

* :func:`extract_sql` (pure): the first SQL statement in raw model output.
* :func:`execute_readonly` (the only side effect): one statement on a SQLite file that cannot
  be changed, with a time limit and caps on rows and value sizes; returns an
  :class:`ExecOutcome` and never raises on bad model SQL.
* :func:`compare_results` (pure): the official test-suite evaluator's ``result_eq``
  (taoyds/test-suite-sql-eval, ``exec_eval.py``): bags of rows, ordered only when the gold
  query has ORDER BY, columns in any order. :func:`execution_match` ties them together.

One deliberate difference from that evaluator: DISTINCT is kept in both queries (its default
strips every ``distinct`` token first), so a prediction that forgets DISTINCT fails here.
"""

from __future__ import annotations

import itertools
import re
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

__all__ = [
    "ExecOutcome",
    "Verdict",
    "compare_results",
    "execute_readonly",
    "execution_match",
    "extract_sql",
    "gold_orders_rows",
    "strip_distinct",
]

# --------------------------------------------------------------------------------------------
# Lexing: just enough to tell code from string literals, quoted names and comments.
# --------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
      (?P<str>'(?:[^']|'')*'?)                              # 'it''s'; unterminated runs to the end
    | (?P<ident>"(?:[^"]|"")*"?|`(?:[^`]|``)*`?|\[[^\]]*\]?)  # "name", `name`, [name]
    | (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
    | (?P<code>[^'"`\[/-]+|[/-])
    """,
    re.S | re.X,
)


def _tokens(text: str) -> list[tuple[str, int, int]]:
    """(kind, start, end) spans covering ``text``; kind is str, ident, comment or code."""
    return [(m.lastgroup, m.start(), m.end()) for m in _TOKEN.finditer(text)]


def _collapse(sql: str) -> str:
    """Comments dropped, code whitespace collapsed, ends stripped, trailing ``;`` removed.

    Literals and quoted names are kept byte for byte: collapsing inside them changes values.
    """
    pieces: list[list] = []  # [is_code, text], neighbouring code merged
    for kind, a, b in _tokens(sql):
        is_code = kind in ("code", "comment")
        text = " " if kind == "comment" else sql[a:b]
        if pieces and is_code and pieces[-1][0]:
            pieces[-1][1] += text
        else:
            pieces.append([is_code, text])
    text = "".join(re.sub(r"\s+", " ", t) if is_code else t for is_code, t in pieces).strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text


# --------------------------------------------------------------------------------------------
# extract_sql
# --------------------------------------------------------------------------------------------

# Places where model output changes voice: code fences and chat-template markers. The paper's
# model wrote its query, then "[/INST]", then the query again; everything after a marker is
# another turn.
_MARKER = re.compile(r"```+|\[/?INST\]|</?s>|<\|[A-Za-z0-9_]+\|>")
_START = re.compile(r"\b(select|with)\b", re.I)
_SET_OPS = {"UNION", "INTERSECT", "EXCEPT", "ALL"}
_CLAUSE = re.compile(r"\(|\)|;|\n[ \t\r\f\v]*\n|[A-Za-z_][A-Za-z0-9_$]*")
# Capitalised words that can open prose after a query ("This query ...", "Explanation: ...")
# but never SQL keywords, so a query is not cut at "Group" or "Order".
_PROSE_WORD = re.compile(r"(?<=\s)([A-Z][a-z]+)\b")
_SQL_WORDS = frozenset(
    """ABORT ACTION ADD AFTER ALL ALTER ALWAYS ANALYZE AND AS ASC ATTACH AUTOINCREMENT BEFORE BEGIN
    BETWEEN BY CASCADE CASE CAST CHECK COLLATE COLUMN COMMIT CONFLICT CONSTRAINT CREATE CROSS
    CURRENT DATABASE DEFAULT DEFERRABLE DEFERRED DELETE DESC DETACH DISTINCT DO DROP EACH ELSE END
    ESCAPE EXCEPT EXCLUDE EXCLUSIVE EXISTS EXPLAIN FAIL FILTER FIRST FOLLOWING FOR FOREIGN FROM FULL
    GENERATED GLOB GROUP GROUPS HAVING IF IGNORE IMMEDIATE IN INDEX INDEXED INITIALLY INNER INSERT
    INSTEAD INTERSECT INTO IS ISNULL JOIN KEY LAST LEFT LIKE LIMIT MATCH MATERIALIZED NATURAL NO NOT
    NOTHING NOTNULL NULL NULLS OF OFFSET ON OR ORDER OTHERS OUTER OVER PARTITION PLAN PRAGMA
    PRECEDING PRIMARY QUERY RAISE RANGE RECURSIVE REFERENCES REGEXP REINDEX RELEASE RENAME REPLACE
    RESTRICT RETURNING RIGHT ROLLBACK ROW ROWS SAVEPOINT SELECT SET TABLE TEMP TEMPORARY THEN TIES
    TO TRANSACTION TRIGGER UNBOUNDED UNION UNIQUE UPDATE USING VACUUM VALUES VIEW VIRTUAL WHEN WHERE
    WINDOW WITH WITHOUT COUNT SUM AVG MIN MAX""".split()
)
_MAX_STARTS = 64  # candidate statement starts examined per output; runaway outputs repeat
_MAX_PROSE_CUTS = 32
_MAX_PASSES = 8


def extract_sql(raw: str) -> str:
    """The SQL query in raw model output, or "" when there is none.

    The result has comments removed, whitespace collapsed to single spaces (except inside
    string literals and quoted names, which are kept byte for byte) and no final ``;``.

    Handles code fences, prose before and after the query, chat markers such as ``[/INST]``
    and what follows them, queries repeated after the first (as further statements, in
    ``--`` comments or after ``;``). A candidate statement is accepted when SQLite can compile
    it (missing tables are fine, syntax errors are not); when none compiles, the first
    SQL-looking candidate is returned as is, so that execution reports the real error.

    Idempotent: ``extract_sql(extract_sql(x)) == extract_sql(x)``.
    """
    if not isinstance(raw, str):
        return ""
    text = raw
    # One pass can expose a shorter answer in its own output (a candidate that ran past the
    # end of the first choice), so repeat to a fixed point: that makes idempotence hold by
    # construction rather than by a case analysis of every heuristic below.
    for _ in range(_MAX_PASSES):
        nxt = _extract_once(text)
        if nxt == text:
            break
        text = nxt
    return text


def _extract_once(text: str) -> str:
    # Every SELECT/WITH is a possible start; the first that yields a statement SQLite can
    # compile wins. Prose ("we select the names ...") fails to compile and is passed over.
    starts = (
        (m.group(1), _cut_statement(segment[m.start() :])) for segment in _segments(text) for m in _START.finditer(segment)
    )
    candidates = list(itertools.islice(starts, _MAX_STARTS))
    if not candidates:
        return ""
    with _Compiler() as compiler:
        for _, statement in candidates:
            sql = _collapse(statement)
            if compiler.compiles(sql):
                return sql
            trimmed = _trim_prose(statement, compiler)
            if trimmed:
                return trimmed
    return _fallback(candidates)


def _segments(text: str) -> list[str]:
    """Pieces of ``text`` between markers, fenced pieces first (a fence marks code)."""
    parts = _MARKER.split(text)
    fences = [m.group(0).startswith("`") for m in _MARKER.finditer(text)]
    fenced, plain, inside = [], [], False
    for i, part in enumerate(parts):
        (fenced if inside else plain).append(part)
        if i < len(fences) and fences[i]:
            inside = not inside
    return fenced + plain


def _cut_statement(text: str) -> str:
    """``text`` (which starts with SELECT or WITH) up to the end of its first statement: the
    first ``;``, a blank line, or a new top-level SELECT/WITH that is not part of it."""
    depth = 0
    seen_select = False
    prev_word = ""
    for kind, a, b in _tokens(text):
        if kind != "code":
            continue
        for m in _CLAUSE.finditer(text, a, b):
            tok = m.group(0)
            if tok == "(":
                depth += 1
            elif tok == ")":
                depth = max(depth - 1, 0)
            elif tok == ";" or tok.startswith("\n"):
                return text[: m.start()]
            else:
                word = tok.upper()
                if depth == 0 and word == "SELECT":
                    if seen_select and prev_word not in _SET_OPS:
                        return text[: m.start()]  # the same query again, or another one
                    seen_select = True
                elif depth == 0 and word == "WITH" and seen_select:
                    return text[: m.start()]
                prev_word = word
    return text


def _trim_prose(statement: str, compiler: "_Compiler") -> str:
    """The longest prefix of ``statement`` that compiles and is followed by prose (a
    capitalised non-keyword word and at least two more words), collapsed; "" if none."""
    cuts = []
    for m in _PROSE_WORD.finditer(statement):
        if m.group(1).upper() in _SQL_WORDS:
            continue
        if len(re.findall(r"[A-Za-z]+", statement[m.start() :])) < 3:
            continue
        cuts.append(m.start())
    for cut in reversed(cuts[-_MAX_PROSE_CUTS:]):
        sql = _collapse(statement[:cut])
        if sql and compiler.compiles(sql):
            return sql
    return ""


def _fallback(candidates: list[tuple[str, str]]) -> str:
    """When nothing compiles: the first candidate that looks like SQL (an upper-case keyword,
    or a lower-case ``select ... from``), else "" (prose that merely says "with")."""
    for keyword, statement in candidates:
        if keyword.isupper():
            return _collapse(statement)
    for keyword, statement in candidates:
        if keyword.lower() == "select" and re.search(r"\bfrom\b", statement, re.I):
            return _collapse(statement)
    return ""


class _Compiler:
    """Asks SQLite whether a statement is syntactically complete, without running it.

    ``EXPLAIN`` compiles the statement on an empty in-memory database: syntax errors and
    incomplete input fail, unknown tables and columns only mean that the schema is absent.
    """

    _SYNTAX = ("syntax error", "incomplete input", "unrecognized token", "one statement at a time", "null character")

    def __enter__(self) -> "_Compiler":
        self._conn = sqlite3.connect(":memory:")
        self._conn.set_authorizer(_deny_writes)
        return self

    def __exit__(self, *exc) -> None:
        self._conn.close()

    def compiles(self, sql: str) -> bool:
        if not sql or not _START.match(sql):
            return False
        try:
            self._conn.execute("EXPLAIN " + sql)
        except UnicodeError:
            return False  # lone surrogates: not text SQLite can take
        except (sqlite3.Error, sqlite3.Warning) as e:
            return not any(s in str(e) for s in self._SYNTAX)
        return True


# --------------------------------------------------------------------------------------------
# execute_readonly
# --------------------------------------------------------------------------------------------

EXEC_KINDS = ("ok", "error", "timeout", "too_many_rows", "forbidden")


@dataclass(frozen=True)
class ExecOutcome:
    """What running one query gave. ``kind`` is one of ``EXEC_KINDS``; ``rows`` is empty
    unless ``ok``; ``error`` says what went wrong, for a human."""

    ok: bool
    rows: list
    error: str | None
    kind: str
    elapsed_s: float


# Only these authorizer actions are allowed: reading tables and columns, calling functions,
# and recursive CTEs. Everything else (writes, ATTACH/DETACH, PRAGMA, transactions, and the
# ATTACH that VACUUM INTO performs) is denied. An allow-list cannot miss a new write action.
_ALLOWED_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, getattr(sqlite3, "SQLITE_RECURSIVE", 33)}
)
_DENIED_FUNCTIONS = frozenset({"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"})
_READ_STATEMENTS = {"SELECT", "WITH", "VALUES"}
_PROGRESS_STEPS = 100  # SQLite VM instructions between two looks at the clock (each can cost ~1 ms)
_MAX_COLUMNS = 256  # with the value cap, bounds the memory of one result row
_MAX_RESULT_BYTES = 256 << 20  # text and blobs of a whole result held in Python
_GRACE_S = 0.5  # how long past the deadline we wait for a worker before giving up on it


def _deny_writes(action, arg1, arg2, db_name, trigger) -> int:
    if action not in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _statement_problem(sql: str) -> str | None:
    """Why ``sql`` may not run (not one read-only statement), or None."""
    # Literals become '' and comments a space, so that only real code is looked at.
    code = "".join(
        sql[a:b] if kind == "code" else (" " if kind == "comment" else "''") for kind, a, b in _tokens(sql)
    )
    end = code.find(";")
    if end >= 0 and code[end:].replace(";", "").strip():
        return "more than one statement; only a single SELECT may run"
    m = re.match(r"[\s(]*([A-Za-z_]+)", code)
    if not m:
        return f"only SELECT queries may run; this one starts with {code.strip()[:20]!r}"
    if m.group(1).upper() not in _READ_STATEMENTS:
        return f"only SELECT queries may run; this one starts with {m.group(1).upper()}"
    return None


def execute_readonly(
    db_path: str | Path,
    sql: str,
    *,
    timeout_s: float = 5.0,
    max_rows: int = 100_000,
    max_value_bytes: int = 1 << 20,
) -> ExecOutcome:
    """Run one SELECT on the SQLite file ``db_path`` without any way to change it.

    Two defences against writes, each sufficient by itself: the file is opened with
    ``mode=ro`` (which also never creates a missing file), and an authorizer allows only
    reads and function calls (no PRAGMA, ATTACH, DETACH, VACUUM INTO, load_extension).
    Besides, extension loading is off, no database can be attached, and the text must be a
    single statement starting with SELECT, WITH or VALUES (refused as "forbidden" otherwise).

    Limits: ``timeout_s`` of wall time, ``max_rows`` rows, ``max_value_bytes`` per text or
    blob value (``randomblob(2000000000)`` fails at once), 256 columns and 256 MiB of
    fetched text. ``PRAGMA hard_heap_limit`` is not used: it is process-wide, so it would cap
    every other SQLite user in the process; the value and column caps bound one row instead.

    Never raises on bad SQL: problems come back as ``kind`` "error", "timeout",
    "too_many_rows" or "forbidden" with a message.
    """
    start = time.perf_counter()

    def outcome(kind: str, error: str | None = None, rows: list | None = None) -> ExecOutcome:
        return ExecOutcome(kind == "ok", rows or [], error, kind, time.perf_counter() - start)

    if not isinstance(sql, str) or not _collapse(sql):
        return outcome("error", "empty query: nothing to execute")
    problem = _statement_problem(sql)
    if problem:
        return outcome("forbidden", problem)
    path = Path(db_path)
    if not path.is_file():
        return outcome("error", f"database file not found: {path}")

    # The progress handler stops SQLite between VM instructions, but one instruction can run
    # long by itself (printf('%.*c', 2000000000, 'x') takes ~10 s), so the query runs in a
    # worker thread (sqlite3 releases the GIL) and we stop waiting shortly after the
    # deadline. An abandoned worker finishes that instruction in the background, alone with
    # its read-only connection, and closes it.
    box: dict[str, tuple] = {}
    deadline = start + timeout_s
    worker = threading.Thread(
        target=lambda: box.setdefault("result", _execute(path, sql, deadline, max_rows, max_value_bytes)),
        name="execute_readonly",
        daemon=True,
    )
    worker.start()
    worker.join(timeout_s + _GRACE_S)
    if "result" not in box:
        return outcome("timeout", f"took longer than {timeout_s:g} s (one SQLite step did not return)")
    kind, error, rows = box["result"]
    if kind == "timeout":
        error = f"took longer than {timeout_s:g} s"
    return outcome(kind, error, rows)


def _execute(path: Path, sql: str, deadline: float, max_rows: int, max_value_bytes: int) -> tuple:
    """(kind, error, rows) of running ``sql``; runs in the worker thread, never raises."""
    try:
        # mode=ro rather than immutable=1: immutable skips locking and change detection, so it
        # could read a file mid-write, and it saves only ~15% (0.14 s vs 0.17 s for the 972
        # gold queries of Spider dev, one connection per query, measured on this machine).
        conn = sqlite3.connect(
            f"file:{quote(str(path.resolve()))}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
    except Exception as e:  # noqa: BLE001 - reported as the outcome, never raised
        return "error", f"cannot open {path} read-only: {e}", None
    try:
        if hasattr(conn, "enable_load_extension"):
            conn.enable_load_extension(False)
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, max_value_bytes)
        conn.setlimit(sqlite3.SQLITE_LIMIT_COLUMN, _MAX_COLUMNS)
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        # Spider has text that is not valid UTF-8; decode it instead of failing the query.
        conn.text_factory = lambda b: b.decode("utf-8", errors="replace")
        conn.set_progress_handler(lambda: int(time.perf_counter() > deadline), _PROGRESS_STEPS)
        # Last, so that our own set-up above is not subject to it.
        conn.set_authorizer(_deny_writes)
        return _fetch(conn, sql, deadline, max_rows, max_value_bytes)
    finally:
        conn.close()


def _fetch(conn: sqlite3.Connection, sql: str, deadline: float, max_rows: int, max_value_bytes: int) -> tuple:
    try:
        rows: list[tuple] = []
        size = 0
        for row in conn.execute(sql):
            rows.append(row)
            size += sum(len(v) for v in row if isinstance(v, (str, bytes)))
            if len(rows) > max_rows:
                return "too_many_rows", f"more than {max_rows} rows", None
            if size > _MAX_RESULT_BYTES:
                return "too_many_rows", f"result larger than {_MAX_RESULT_BYTES >> 20} MiB", None
        return "ok", None, rows
    except (sqlite3.Error, sqlite3.Warning) as e:
        message = str(e)
        if time.perf_counter() > deadline and "interrupt" in message:
            return "timeout", None, None
        if "not authorized" in message or "readonly" in message or "one statement" in message:
            return "forbidden", message, None
        if "too big" in message:
            return "error", f"{message} (values are capped at {max_value_bytes} bytes)", None
        return "error", message, None
    except Exception as e:  # noqa: BLE001 - the promise is "never raises on bad SQL"
        return "error", f"{type(e).__name__}: {e}", None


# --------------------------------------------------------------------------------------------
# compare_results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """Whether a prediction matches, and why, written for a human."""

    ok: bool
    reason: str


def gold_orders_rows(gold_sql: str) -> bool:
    """Whether row order matters: the official test, ``'order by' in gold.lower()``."""
    return "order by" in gold_sql.lower()


def compare_results(gold_rows: list, pred_rows: list, *, ordered: bool) -> Verdict:
    """The test-suite evaluator's ``result_eq``, with a reason.

    Equal when some permutation of the prediction's columns makes the two results equal as
    bags of rows (duplicates count), or as lists when ``ordered``. Values compare with
    Python ``==`` as in the official code (so 1 equals 1.0, and 'a' differs from b'a').
    """
    gold_rows, pred_rows = [tuple(r) for r in gold_rows], [tuple(r) for r in pred_rows]
    if not gold_rows and not pred_rows:
        return Verdict(True, "both results are empty")
    if len(gold_rows) != len(pred_rows):
        return Verdict(False, _count_reason(gold_rows, pred_rows))
    ncols, pcols = len(gold_rows[0]), len(pred_rows[0])
    if ncols != pcols:
        return Verdict(False, f"gold has {ncols} column{_s(ncols)}, prediction {pcols}")
    perm = _matching_permutation(gold_rows, pred_rows, ordered)
    if perm is not None:
        moved = "" if perm == tuple(range(ncols)) else ", with the columns in another order"
        return Verdict(True, f"same {len(gold_rows)} row{_s(len(gold_rows))}{moved}")
    if ordered and _matching_permutation(gold_rows, pred_rows, False) is not None:
        return Verdict(False, "same rows in another order, and the gold query orders them (ORDER BY)")
    return Verdict(False, f"both have {len(gold_rows)} row{_s(len(gold_rows))} but differ; {_diff(gold_rows, pred_rows)}")


def _unorder_row(row: tuple) -> tuple:
    # The official key: values sorted by str(value) + str(type(value)).
    return tuple(sorted(row, key=lambda x: str(x) + str(type(x))))


def _matching_permutation(gold: list[tuple], pred: list[tuple], ordered: bool) -> tuple | None:
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
    text = repr(row)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _diff(gold: list[tuple], pred: list[tuple]) -> str:
    """The first gold row the prediction lacks and the first row it has too many of."""
    missing = Counter(gold) - Counter(pred)
    extra = Counter(pred) - Counter(gold)
    parts = []
    if missing:
        parts.append(f"missing {_show(next(iter(missing)))}")
    if extra:
        parts.append(f"unexpected {_show(next(iter(extra)))}")
    if len(gold[0]) > 1 and not parts:
        parts.append("no column order makes them equal")
    return "; ".join(parts) or "the rows differ"


def _count_reason(gold: list[tuple], pred: list[tuple]) -> str:
    head = f"gold has {len(gold)} row{_s(len(gold))}, prediction {len(pred)}"
    same_width = gold and pred and len(gold[0]) == len(pred[0])
    if not same_width:
        return head
    return f"{head}; {_diff(gold, pred)}"


# --------------------------------------------------------------------------------------------
# execution_match
# --------------------------------------------------------------------------------------------

_SPLIT_OPERATOR = re.compile(r"([<>!])\s+=")


def _join_operators(sql: str) -> str:
    """The official ``postprocess``: "> =" becomes ">=" (also "< =", "! ="), but only in code,
    not inside string literals as the official plain string replace would."""
    out = []
    for kind, a, b in _tokens(sql):
        piece = sql[a:b]
        out.append(_SPLIT_OPERATOR.sub(r"\1=", piece) if kind == "code" else piece)
    return "".join(out)


def strip_distinct(sql: str) -> str:
    """``sql`` without the word DISTINCT anywhere in code (string literals untouched): what the
    test-suite evaluator does to both queries unless given ``--keep_distinct``."""
    out = []
    for kind, a, b in _tokens(sql):
        piece = sql[a:b]
        out.append(_DISTINCT.sub("", piece) if kind == "code" else piece)
    return "".join(out)


_DISTINCT = re.compile(r"\bdistinct\b", re.I)


def execution_match(
    db_path: str | Path, gold_sql: str, pred_sql: str, *, timeout_s: float = 5.0, keep_distinct: bool = True
) -> Verdict:
    """Run gold and prediction on ``db_path`` and compare their results (see module doc).

    An empty prediction, an error, a timeout or a refused statement is a failure with that
    reason; so is a gold query that fails, with a reason that says so.
    ``keep_distinct=False`` strips DISTINCT from both queries first, reproducing the
    test-suite evaluator's default numbers; the harness keeps it, because a query that
    forgets DISTINCT returns a different answer to the question.
    """
    if not isinstance(pred_sql, str) or not _collapse(pred_sql):
        return Verdict(False, "empty prediction: no SQL to execute")
    if not keep_distinct:
        gold_sql, pred_sql = strip_distinct(gold_sql), strip_distinct(pred_sql)
    gold = execute_readonly(db_path, _join_operators(gold_sql), timeout_s=timeout_s)
    if not gold.ok:
        return Verdict(False, f"gold query failed ({gold.kind}): {gold.error}")
    pred = execute_readonly(db_path, _join_operators(pred_sql), timeout_s=timeout_s)
    if not pred.ok:
        label = {"error": "failed", "timeout": "timed out", "too_many_rows": "returned too much",
                 "forbidden": "was refused"}[pred.kind]
        return Verdict(False, f"prediction {label}: {pred.error}")
    return compare_results(gold.rows, pred.rows, ordered=gold_orders_rows(gold_sql))
