"""Lexing SQL text: just enough to tell code from string literals, quoted names and comments.

:func:`_tokens` cuts a text into spans of code, string literals, quoted names and comments, and
:func:`_collapse` uses them to drop comments and collapse the whitespace of code. Every other
module of :mod:`harness.sql` that reads SQL text builds on these two (extraction, the sandbox's
statement check, the rewrites of :mod:`harness.sql.official`), because each must leave string
literals and quoted names exactly as written. This module is at the bottom of the package: it
imports nothing of the project, and it runs in the sandbox's worker processes too.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(
    r"""
      (?P<str>'(?:[^']|'')*'?)                              # 'it''s'; unterminated runs to the end
    | (?P<ident>"(?:[^"]|"")*"?|`(?:[^`]|``)*`?|\[[^\]]*\]?)  # "name", `name`, [name]
    | (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
    | (?P<code>[^'"`\[/-]+|[/-])
    """,
    re.S | re.X,
)
_SPACES = re.compile(r"\s+")


def _tokens(text: str) -> list[tuple[str, int, int]]:
    """(kind, start, end) spans covering ``text``; kind is str, ident, comment or code."""
    # Every alternative of _TOKEN is a named group, so lastgroup is always set ("or" tells mypy).
    return [(m.lastgroup or "code", m.start(), m.end()) for m in _TOKEN.finditer(text)]


def _collapse(sql: str) -> str:
    """Comments dropped, code whitespace collapsed, ends stripped, trailing ``;`` removed.

    Literals and quoted names are kept byte for byte: collapsing inside them changes values.
    Linear in the length of ``sql``: pieces are gathered in lists and joined once, because
    growing one string piece by piece copies it again at every step.
    """
    out: list[str] = []
    code: list[str] = []  # neighbouring code and comments, collapsed together
    for kind, a, b in _tokens(sql):
        if kind in ("code", "comment"):
            code.append(" " if kind == "comment" else sql[a:b])
            continue
        if code:
            out.append(_SPACES.sub(" ", "".join(code)))
            code = []
        out.append(sql[a:b])
    if code:
        out.append(_SPACES.sub(" ", "".join(code)))
    text = "".join(out).strip()
    end = len(text)
    while end and (text[end - 1] == ";" or text[end - 1].isspace()):
        end -= 1
    return text[:end]
