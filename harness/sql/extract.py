"""extract_sql (pure): the first SQL statement in raw model output.

Model output mixes the query with prose, code fences, chat-template markers and repeats of the
query. Every SELECT/WITH is a possible start; the first candidate that SQLite can compile (on an
empty in-memory database, under the sandbox's authorizer, without running it) wins, prose is
trimmed off a candidate's end when that makes it compile, and when nothing compiles the first
SQL-looking candidate is returned as is, so that execution reports the real error. Nothing here
opens a database file: running the query is :mod:`harness.sql.sandbox`'s job.
"""

from __future__ import annotations

import bisect
import itertools
import re
import sqlite3

from harness.sql.lexing import _collapse, _tokens
from harness.sql.sandbox_query import _authorize

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
_WORD = re.compile(r"[A-Za-z]+")
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
    WINDOW WITH WITHOUT COUNT SUM AVG MIN MAX""".split()  # noqa: SIM905 - 149 words, unquoted
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
        (m.group(1), _cut_statement(segment[m.start() :]))
        for segment in _segments(text)
        for m in _START.finditer(segment)
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
    fenced: list[str] = []
    plain: list[str] = []
    inside = False
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


def _trim_prose(statement: str, compiler: _Compiler) -> str:
    """The longest prefix of ``statement`` that compiles and is followed by prose (a
    capitalised non-keyword word and at least two more words), collapsed; "" if none."""
    # Word starts, found once: counting the words after each cut by slicing and searching
    # the rest of the text again would be quadratic in the length of the statement.
    words = [m.start() for m in _WORD.finditer(statement)]
    cuts = []
    for m in _PROSE_WORD.finditer(statement):
        if m.group(1).upper() in _SQL_WORDS:
            continue
        if len(words) - bisect.bisect_left(words, m.start()) < 3:
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

    _SYNTAX = (
        "syntax error",
        "incomplete input",
        "unrecognized token",
        "one statement at a time",
        "null character",
    )

    def __enter__(self) -> _Compiler:
        self._conn = sqlite3.connect(":memory:")
        self._conn.set_authorizer(_authorize)
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
