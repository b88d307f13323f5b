"""The harness's and the official evaluator's handling of the text of a query before it runs.

The harness's rewrites touch code only, never string literals: :func:`strip_distinct` (what the
test-suite evaluator does to both queries unless given ``--keep_distinct``) and
``_join_operators`` (its ``postprocess``). The official evaluator's own rewrites are reproduced
exactly, literals included, for ``execution_match(..., official=True)``: ``_official_postprocess``,
``_replace_cur_year`` and ``_official_remove_distinct``, which needs sqlparse's lexer and
statement splitter, emulated here (``_sp_*``) because sqlparse is not a dependency. All of it runs
in the sandbox's worker processes (see ``harness.sql.sandbox_query._prepare``), so only the standard
library and :mod:`harness.sql.lexing` may be imported.
"""

from __future__ import annotations

import bisect
import re

from harness.sql.lexing import _tokens

_SPLIT_OPERATOR = re.compile(r"([<>!])\s+=")
_DISTINCT = re.compile(r"\bdistinct\b", re.I)


def _sub_in_code(pattern: re.Pattern, repl: str, sql: str) -> str:
    """``pattern.sub(repl, ...)`` on the code of ``sql``, string literals untouched."""
    return "".join(pattern.sub(repl, sql[a:b]) if kind == "code" else sql[a:b] for kind, a, b in _tokens(sql))


def _join_operators(sql: str) -> str:
    """The official ``postprocess``: "> =" becomes ">=" (also "< =", "! ="), but only in code,
    not inside string literals as the official plain string replace would."""
    return _sub_in_code(_SPLIT_OPERATOR, r"\1=", sql)


def strip_distinct(sql: str) -> str:
    """``sql`` without the word DISTINCT anywhere in code (string literals untouched): what the
    test-suite evaluator does to both queries unless given ``--keep_distinct``."""
    return _sub_in_code(_DISTINCT, "", sql)


def _official_postprocess(sql: str) -> str:
    """exec_eval.py ``postprocess``, exactly: plain replaces, literals included."""
    return sql.replace("> =", ">=").replace("< =", "<=").replace("! =", "!=")


_CUR_YEAR = re.compile(r"YEAR\s*\(\s*CURDATE\s*\(\s*\)\s*\)\s*", re.I)


def _replace_cur_year(sql: str) -> str:
    """exec_eval.py ``replace_cur_year``, exactly (it also eats the spaces that follow)."""
    return _CUR_YEAR.sub("2020", sql)


def _official_remove_distinct(sql: str) -> str:
    """parse.py ``remove_distinct``: the tokens of sqlparse's FIRST statement, joined, less
    those spelled ``distinct`` in any case. So "SELECT 1; DROP TABLE t" becomes "SELECT 1; ".
    sqlparse is not a dependency; its lexer and splitter are emulated below."""
    tokens = _sp_tokens(sql)
    end = _sp_first_statement_end(tokens)
    return "".join(value for _, value in tokens[:end] if value.lower() != "distinct")


# sqlparse 0.6.0's lexer: keywords.SQL_REGEX, rule by rule, in order, each tagged with what the
# statement splitter asks of its tokens: ws (Whitespace), nl (Newline), c1 (Comment.Single),
# cm (Comment.Multiline), h1/hm (their Hint subtypes), punct, kw (exactly Keyword), kwsub
# (another Keyword subtype), ddl (the CREATE rule), word (looked up in its keyword lists), x.
_SP_RULES = (
    (r"(?:--|# )\+.*?(?:\r\n|\r|\n|$)", "h1"),
    (r"(?:--|# ).*?(?:\r\n|\r|\n|$)", "c1"),
    (r"\r\n|\r|\n", "nl"),
    (r"\s+?", "ws"),
    (r":=", "x"),
    (r"::", "punct"),
    (r"\*", "x"),
    (r"`(?:``|[^`])*`", "x"),
    (r"´(?:´´|[^´])*´", "x"),
    (r"\?", "x"),
    (r"%(?:\(\w+\))?s", "x"),
    (r"(?<!\w)[$:?]\w+", "x"),
    (r"\\\w+", "x"),
    (r"(?:CASE|IN|VALUES|USING|FROM|AS)\b", "kw"),
    (r"(?:@|##|#)[A-ZÀ-Ü]\w+", "x"),
    (r"[A-ZÀ-Ü]\w*(?=\s*\.(?!\d))", "x"),
    (r"(?<=\.)[A-ZÀ-Ü]\w*", "x"),
    (r"[A-ZÀ-Ü]\w*(?=\()", "x"),
    (r"-?0x[\dA-F]+", "x"),
    (r"-?\d+(?:\.\d+)?E-?\d+", "x"),
    (r"(?![_A-ZÀ-Ü])-?(?:\d+(?:\.\d*)|\.\d+)(?![_A-ZÀ-Ü])", "x"),
    (r"(?![_A-ZÀ-Ü])-?\d+(?![_A-ZÀ-Ü])", "x"),
    (r"'(?:''|\\'|[^'])*'", "x"),
    (r'"(?:""|\\"|[^"])*"', "x"),
    (r'(?:""|".*?[^\\]")', "x"),
    (r"(?<![\w\])])(?:\[[^\]\[]+\])", "x"),
    (
        r"(?:(?:LEFT\s+|RIGHT\s+|FULL\s+)?(?:INNER\s+|OUTER\s+|STRAIGHT\s+)?"
        r"|(?:CROSS\s+|NATURAL\s+)?)?JOIN\b",
        "kw",
    ),
    (r"END(?:\s+IF|\s+LOOP|\s+WHILE|\s+FOR|\s+CASE)?\b", "kw"),
    (r"IF\s+(?:NOT\s+)?EXISTS\b", "kw"),
    (r"NOT\s+NULL\b", "kw"),
    (r"(?:ASC|DESC)(?:\s+NULLS\s+(?:FIRST|LAST))?\b", "kwsub"),
    (r"(?:ASC|DESC)\b", "kwsub"),
    (r"NULLS\s+(?:FIRST|LAST)\b", "kwsub"),
    (r"UNION\s+ALL\b", "kw"),
    (r"CREATE(?:\s+OR\s+REPLACE)?\b", "ddl"),
    (r"DOUBLE\s+PRECISION\b", "x"),
    (r"GROUP\s+BY\b", "kw"),
    (r"ORDER\s+BY\b", "kw"),
    (r"PRIMARY\s+KEY\b", "kw"),
    (r"HANDLER\s+FOR\b", "kw"),
    (r"GO(?:\s\d+)\b", "kw"),
    (r"(?:LATERAL\s+VIEW\s+)(?:EXPLODE|INLINE|PARSE_URL_TUPLE|POSEXPLODE|STACK)\b", "kw"),
    (r"(?:AT|WITH')\s+TIME\s+ZONE\s+'[^']+'", "kwsub"),
    (r"(?:NOT\s+)?(?:LIKE|ILIKE|RLIKE)\b", "x"),
    (r"(?:NOT\s+)?(?:REGEXP)(?:\s+(?:BINARY))?\b", "x"),
    (r"\w[$#\w]*", "word"),
    (r"[;:()\[\],\.]", "punct"),
    (r"(?:\->>?|#>>?|@>|<@|\?\|?|\?&|\-|#\-)", "x"),
    (r"[<>=~!]+", "x"),
    (r"[+/@#%^&|^-]+", "x"),
)
# One alternation tries the rules in order at a position, as sqlparse's loop over them does.
_SP_REGEX = re.compile("|".join(f"(?P<r{i}>{rule})" for i, (rule, _) in enumerate(_SP_RULES)), re.I)
_SP_KIND = {f"r{i}": kind for i, (_, kind) in enumerate(_SP_RULES)}
# The only words whose keyword type the splitter acts on (all plain Keyword in sqlparse).
_SP_KEYWORDS = frozenset(
    {
        "BEGIN",
        "DECLARE",
        "END",
        "IF",
        "CASE",
        "FOR",
        "WHILE",
        "LOOP",
        "DO",
        "GO",
        "TRANSACTION",
        "WORK",
        "DEFERRED",
        "IMMEDIATE",
        "EXCLUSIVE",
    }
)
# Dollar-quoted literals and /* */ comments: sqlparse finds their delimiters in one pass and
# pairs an opener with the first closer after it when the lexer reaches that opener.
_SP_DOLLAR = re.compile(r"(?=(\$(?:[_A-ZÀ-Ü]\w*)?\$))", re.I)
_SP_DOLLAR_OPENS = re.compile(r'(?<![\w"$])')


def _sp_spans(text: str) -> tuple[dict, dict]:
    openers: dict[int, tuple[int, str, str]] = {}  # start -> (end of opener, tag, kind)
    closers: dict[str, list[tuple[int, int]]] = {}  # tag -> [(start, end)] ascending
    if "$" in text:
        for m in _SP_DOLLAR.finditer(text):
            tag = m.group(1)
            closers.setdefault(tag, []).append((m.start(), m.start() + len(tag)))
            if _SP_DOLLAR_OPENS.match(text, m.start()):
                openers[m.start()] = (m.start() + len(tag), tag, "x")
    if "/*" in text:
        for m in re.finditer(r"/\*\+", text):
            openers[m.start()] = (m.end(), "/*", "hm")
        for m in re.finditer(r"/\*(?!\+)", text):
            openers[m.start()] = (m.end(), "/*", "cm")
        closers["/*"] = [(m.start(), m.end()) for m in re.finditer(r"\*/", text)]
    return openers, closers


def _sp_tokens(text: str) -> list[tuple[str, str]]:
    """(kind, value) tokens of ``text`` as sqlparse's lexer cuts it."""
    openers, closers = _sp_spans(text)
    tokens: list[tuple[str, str]] = []
    pos, n = 0, len(text)
    while pos < n:
        if pos in openers:
            opener_end, tag, kind = openers[pos]
            spans = closers.get(tag, [])
            i = bisect.bisect_left(spans, (opener_end, -1))
            if i < len(spans):
                tokens.append((kind, text[pos : spans[i][1]]))
                pos = spans[i][1]
                continue
        m = _SP_REGEX.match(text, pos)
        if not m:
            tokens.append(("x", text[pos]))  # sqlparse's Error token
            pos += 1
            continue
        kind = _SP_KIND[m.lastgroup or ""]  # every alternative is a named group: never ""
        if kind == "word":
            kind = "kw" if m.group().upper() in _SP_KEYWORDS else "x"
        tokens.append((kind, m.group()))
        pos = m.end()
    return tokens


_TRANSACTION_WORDS = ("TRANSACTION", "WORK", "TRAN", "DISTRIBUTED", "DEFERRED", "IMMEDIATE", "EXCLUSIVE")
_CLOSES = {  # an END word and the blocks it closes
    "END IF": ("IF",),
    "END FOR": ("FOR",),
    "END WHILE": ("WHILE",),
    "END LOOP": ("LOOP", "FOR", "WHILE"),
    "END CASE": ("CASE",),
}


class _SpSplitter:
    """sqlparse 0.6.0's StatementSplitter state: blocks, parentheses and BEGIN handling."""

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self.unconfirmed: str | None = None
        self.is_create = False
        self.seen_begin = False
        self.level = 0

    def change(self, kind: str, value: str) -> int:
        if kind == "punct" and value == ";":
            self.unconfirmed = None
            if self.seen_begin:
                self.seen_begin = False
                if self.blocks and self.blocks[-1] == "BEGIN":
                    self.blocks.pop()
                    return -1
            return 0
        if kind == "punct" and value in "()":
            return 1 if value == "(" else -1
        if kind not in ("kw", "kwsub", "ddl"):
            return 0
        word = value.upper()
        if kind == "ddl" and word.startswith("CREATE"):
            self.is_create = True
            return 0
        if word == "DECLARE" and self.is_create and not self.blocks:
            self.blocks.append("DECLARE")
            return 1
        if word == "BEGIN":
            self.seen_begin = True
            if self.blocks and self.blocks[-1] == "DECLARE":
                self.blocks[-1] = "BEGIN"
                return 0
            self.blocks.append("BEGIN")
            return 1
        if self.seen_begin and kind == "kw" and word in _TRANSACTION_WORDS:
            self.seen_begin = False
            if self.blocks and self.blocks[-1] == "BEGIN":
                self.blocks.pop()
                return -1
            return 0
        if "BEGIN" in self.blocks:
            nested = self._nested(word)
            if nested is not None:
                return nested
        return self._closing(word)

    def _nested(self, word: str) -> int | None:
        if word in ("FOR", "WHILE"):
            self.unconfirmed = word
            return 0
        if word in ("LOOP", "DO"):
            if self.unconfirmed in ("FOR", "WHILE"):
                self.blocks.append(self.unconfirmed)
                self.unconfirmed = None
                return 1
            if word == "LOOP":
                self.blocks.append("LOOP")
                return 1
        if word in ("IF", "CASE"):
            self.blocks.append(word)
            return 1
        return None

    def _closing(self, word: str) -> int:
        if word in _CLOSES:
            if self.blocks and self.blocks[-1] in _CLOSES[word]:
                self.blocks.pop()
                return -1
            return 0
        if word == "END":
            if self.blocks:
                self.blocks.pop()
            return -1
        return 0


def _sp_first_statement_end(tokens: list[tuple[str, str]]) -> int:
    """How many of ``tokens`` make up sqlparse's first statement: up to a ``;`` outside any
    block, then the spaces and ``--`` comments that follow it (not a newline)."""
    state = _SpSplitter()
    ending = False
    for i, (kind, value) in enumerate(tokens):
        if ending and kind not in ("ws", "c1"):
            return i
        state.level += state.change(kind, value)
        if kind == "punct" and value == ";":
            if state.level <= 0 and "BEGIN" not in state.blocks:
                ending = True
        elif kind == "kw" and value.split()[0] == "GO":
            ending = True
        elif kind not in ("ws", "nl", "c1", "cm") and not (kind == "kw" and value.upper() == "BEGIN"):
            state.seen_begin = False
    return len(tokens)
