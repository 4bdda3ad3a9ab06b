"""Lucene's classic query syntax, as Elasticsearch's ``query_string`` reads it.

``parse(text)`` gives a small syntax tree (``Bool``, ``Boost`` and leaves that
carry their field); what a leaf *means* for a mapping (analysis, fields, dis_max)
is the engine's business (``engines/embedded/query.py``), and the builder walks
the same tree to refuse costly queries (``leaves``).

Why our own parser and not luqum: luqum reads a different language. It lacks
``&&``, ``||`` and ``!``, accepts ``field:-1``, ``a/b`` and ``a:b:c`` (Lucene:
syntax errors), cannot take a negative number as a range bound, and keeps its
ply tables in a module-level parser that threads share (concurrent parses
corrupt each other). This parser follows the JavaCC grammar of Lucene's
``QueryParser`` token for token (longest match, the same token classes, the
``Range`` and ``Boost`` lexical states, the multi-term rule that sends
consecutive bare words to analysis together), keeps no state outside one call,
and refuses groups nested deeper than ``max_depth`` with a ``QueryStringError``
instead of recursing until the interpreter gives up.
"""

import functools
import re

__all__ = ["QueryStringError", "parse", "leaves", "Bool", "Boost", "Text", "Phrase", "Fuzzy",
           "Prefix", "Wildcard", "Regexp", "Range", "CONJ_AND", "CONJ_OR", "MOD_REQ", "MOD_NOT",
           "MOD_MULTI", "occurs", "MUST", "SHOULD", "MUST_NOT", "DEFAULT_MAX_DEPTH"]

# Groups deeper than this are refused (Elasticsearch refuses bool queries nested deeper
# than 30, indices.query.bool.max_nested_depth).
DEFAULT_MAX_DEPTH = 30
PARSED_CACHE_SIZE = 1024  # syntax trees kept (see parse)


class QueryStringError(ValueError):
    """The text is not valid query syntax (Elasticsearch answers 400)."""


# ---------------------------------------------------------------------- tree

class Node:
    __slots__ = ()

    def __eq__(self, other):
        return type(self) is type(other) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__)

    def __hash__(self):
        return hash((type(self),) + tuple(getattr(self, name) for name in self.__slots__))

    def __repr__(self):
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({values})"


class Bool(Node):
    """Clauses as the parser met them: ``(conj, mods, node)``; see ``occurs``."""
    __slots__ = ("items",)

    def __init__(self, items):
        self.items = tuple(items)


class Boost(Node):
    __slots__ = ("node", "boost")

    def __init__(self, node, boost):
        self.node = node
        self.boost = boost


class Leaf(Node):
    """A leaf names its field: ``None`` for the default fields, ``"*"`` for all."""
    __slots__ = ()


class Text(Leaf):
    """Bare word(s), unescaped: analysed per field (Lucene ``getFieldQuery``)."""
    __slots__ = ("field", "text")

    def __init__(self, field, text):
        self.field = field
        self.text = text


class Phrase(Leaf):
    """A quoted phrase, unescaped, with its slop (``"a b"~2``)."""
    __slots__ = ("field", "text", "slop")

    def __init__(self, field, text, slop=0):
        self.field = field
        self.text = text
        self.slop = slop


class Fuzzy(Leaf):
    """``term~`` (``distance`` None: AUTO) or ``term~N``."""
    __slots__ = ("field", "text", "distance")

    def __init__(self, field, text, distance=None):
        self.field = field
        self.text = text
        self.distance = distance


class Prefix(Leaf):
    """``abc*``: the unescaped text before the star."""
    __slots__ = ("field", "text")

    def __init__(self, field, text):
        self.field = field
        self.text = text


class Wildcard(Leaf):
    """A term with ``*`` or ``?`` (escapes kept: ``\\*`` is a literal star), or ``*`` alone."""
    __slots__ = ("field", "pattern")

    def __init__(self, field, pattern):
        self.field = field
        self.pattern = pattern


class Regexp(Leaf):
    """``/pattern/``: the text between the slashes, as written."""
    __slots__ = ("field", "pattern")

    def __init__(self, field, pattern):
        self.field = field
        self.pattern = pattern


class Range(Leaf):
    """``[a TO b]``, ``{a TO *]``...: open ends are None."""
    __slots__ = ("field", "low", "high", "include_low", "include_high")

    def __init__(self, field, low, high, include_low, include_high):
        self.field = field
        self.low = low
        self.high = high
        self.include_low = include_low
        self.include_high = include_high


CONJ_NONE, CONJ_AND, CONJ_OR = 0, 1, 2
MOD_NONE, MOD_REQ, MOD_NOT, MOD_MULTI = 0, 1, 2, 3
MUST, SHOULD, MUST_NOT = "must", "should", "must_not"


def occurs(items, and_default):
    """Lucene's ``addClause``: ``[(conj, mods, query)]`` -> ``[(occur, query)]``.

    ``query`` None (analysed away) is dropped, but still changes its neighbour as
    Lucene does. ``MOD_MULTI`` marks consecutive bare words (``addMultiTermClauses``).
    """
    clauses = []
    for conj, mods, query in items:
        if mods == MOD_MULTI:
            if query is not None:
                clauses.append([MUST if and_default else SHOULD, query])
            continue
        if clauses and conj == CONJ_AND and clauses[-1][0] != MUST_NOT:
            clauses[-1][0] = MUST
        if clauses and and_default and conj == CONJ_OR and clauses[-1][0] != MUST_NOT:
            clauses[-1][0] = SHOULD
        if query is None:
            continue
        prohibited = mods == MOD_NOT
        if and_default:
            required = not prohibited and conj != CONJ_OR
        else:
            required = mods == MOD_REQ or (conj == CONJ_AND and not prohibited)
        clauses.append([MUST_NOT if prohibited else (MUST if required else SHOULD), query])
    return [tuple(clause) for clause in clauses]


def leaves(node):
    """Every leaf of a tree, depth first (iteratively: trees are shallow, but why recurse)."""
    stack = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, Bool):
            stack.extend(child for _conj, _mods, child in reversed(node.items))
        elif isinstance(node, Boost):
            stack.append(node.node)
        else:
            yield node


# ---------------------------------------------------------------------- tokens

_WS = " \t\n\r\u3000"
_TERM_START = r'(?:[^ \t\n\r\u3000+\-!():^\[\]"{}~*?\\/]|\\[\s\S])'
_TERM_CHAR = r'(?:[^ \t\n\r\u3000!():^\[\]"{}~*?\\/]|\\[\s\S])'

# DEFAULT lexical state, in Lucene's declaration order (ties go to the first)
_DEFAULT = [(kind, re.compile(pattern)) for kind, pattern in [
    ("AND", r"AND|&&"),
    ("OR", r"OR|\|\|"),
    ("NOT", r"NOT|!"),
    ("PLUS", r"\+"),
    ("MINUS", r"-"),
    ("BAREOPER", r"[+\-!][ \t\n\r\u3000]"),
    ("LPAREN", r"\("),
    ("RPAREN", r"\)"),
    ("COLON", r":"),
    ("STAR", r"\*"),
    ("CARAT", r"\^"),
    ("QUOTED", r'"(?:[^"\\]|\\[\s\S])*"'),
    ("TERM", _TERM_START + _TERM_CHAR + "*"),
    ("FUZZY_SLOP", r"~(?:[0-9]+(?:\.[0-9]+)?)?"),
    ("PREFIXTERM", r"\*|" + _TERM_START + _TERM_CHAR + r"*\*"),
    ("WILDTERM", r"(?:" + _TERM_START + r"|[*?])(?:" + _TERM_CHAR + r"|[*?])*"),
    ("REGEXPTERM", r"/(?:\\/|[^/])*/"),
    ("RANGEIN_START", r"\["),
    ("RANGEEX_START", r"\{"),
]]
_RANGE = [(kind, re.compile(pattern)) for kind, pattern in [
    ("RANGE_TO", r"TO"),
    ("RANGEIN_END", r"\]"),
    ("RANGEEX_END", r"\}"),
    ("RANGE_QUOTED", r'"(?:\\"|[^"])+"'),
    ("RANGE_GOOP", r"[^ \]}]+"),
]]
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")

_NAMES = {"AND": "AND", "OR": "OR", "NOT": "NOT", "PLUS": "+", "MINUS": "-", "LPAREN": "(",
          "RPAREN": ")", "COLON": ":", "STAR": "*", "CARAT": "^", "RANGE_TO": "TO",
          "RANGEIN_END": "]", "RANGEEX_END": "}", "RANGEIN_START": "[", "RANGEEX_START": "{"}


class Token:
    __slots__ = ("kind", "image", "position")

    def __init__(self, kind, image, position):
        self.kind = kind
        self.image = image
        self.position = position

    def describe(self):
        if self.kind == "EOF":
            return "the end of the query"
        return f"'{self.image}'"


def tokenize(text):
    """The token list of ``text`` (JavaCC's longest match, first declared on ties)."""
    tokens = []
    state = "DEFAULT"
    position, end = 0, len(text)
    while position < end:
        char = text[position]
        if state == "BOOST":
            match = _NUMBER.match(text, position)
            if not match:
                raise QueryStringError(f"a boost (^) must be followed by a number, at position {position + 1}")
            tokens.append(Token("NUMBER", match.group(), position))
            position = match.end()
            state = "DEFAULT"
            continue
        table = _DEFAULT if state == "DEFAULT" else _RANGE
        best, best_length = None, 0
        for kind, pattern in table:
            match = pattern.match(text, position)
            if match and len(match.group()) > best_length:
                best, best_length = kind, len(match.group())
        if char in _WS and best_length <= 1:  # skipped, unless a longer token starts here
            position += 1
            continue
        if best is None:
            if char == "/":
                raise QueryStringError(f"unterminated regular expression starting at position {position + 1}")
            if char == '"':
                raise QueryStringError(f"unterminated phrase starting at position {position + 1}")
            if char == "\\":
                raise QueryStringError("a term cannot end with the escape character (\\)")
            raise QueryStringError(f"unexpected '{char}' at position {position + 1}")
        tokens.append(Token(best, text[position:position + best_length], position))
        position += best_length
        if best == "CARAT":
            state = "BOOST"
        elif best in ("RANGEIN_START", "RANGEEX_START"):
            state = "RANGE"
        elif best in ("RANGEIN_END", "RANGEEX_END"):
            state = "DEFAULT"
    if state == "BOOST":
        raise QueryStringError("a boost (^) must be followed by a number")
    tokens.append(Token("EOF", "", end))
    return tokens


def unescape(text):
    """Lucene's ``discardEscapeChar``: ``\\x`` -> ``x``, ``\\uXXXX`` -> the character."""
    if "\\" not in text:
        return text
    out = []
    i, end = 0, len(text)
    while i < end:
        char = text[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        if i + 1 >= end:
            raise QueryStringError("a term cannot end with the escape character (\\)")
        following = text[i + 1]
        if following == "u":
            digits = text[i + 2:i + 6]
            if len(digits) < 4:
                raise QueryStringError("truncated unicode escape sequence")
            if not re.fullmatch(r"[0-9a-fA-F]{4}", digits):
                raise QueryStringError(f"non-hex character in unicode escape sequence: \\u{digits}")
            out.append(chr(int(digits, 16)))
            i += 6
        else:
            out.append(following)
            i += 2
    return "".join(out)


# ---------------------------------------------------------------------- grammar

_CLAUSE_START = {"TERM", "STAR", "PREFIXTERM", "WILDTERM", "REGEXPTERM", "BAREOPER", "QUOTED",
                 "RANGEIN_START", "RANGEEX_START", "LPAREN"}
_NOT_AFTER_MULTI = {"COLON", "STAR", "FUZZY_SLOP", "CARAT", "AND", "OR"}


class _Parser:
    """One parse: the token list and a cursor (nothing shared between calls)."""

    def __init__(self, text, max_depth):
        self.tokens = tokenize(text)
        self.at = 0
        self.max_depth = max_depth
        self.depth = 0

    def peek(self, ahead=0):
        return self.tokens[min(self.at + ahead, len(self.tokens) - 1)]

    def take(self, *kinds):
        token = self.peek()
        if token.kind not in kinds:
            self.unexpected(token)
        self.at += 1
        return token

    def unexpected(self, token):
        raise QueryStringError(f"unexpected {token.describe()} at position {token.position + 1}")

    def top(self):
        node = self.query(None)
        token = self.peek()
        if token.kind != "EOF":
            self.unexpected(token)
        return node

    def is_multi_term(self):
        return (self.peek().kind == "TERM" and self.peek(1).kind == "TERM"
                and self.peek(2).kind not in _NOT_AFTER_MULTI)

    def query(self, field):
        items = []
        first = True
        while True:
            if self.is_multi_term():
                words = [self.take("TERM").image]
                while self.peek().kind == "TERM" and self.peek(1).kind not in _NOT_AFTER_MULTI:
                    words.append(self.take("TERM").image)
                items.append((CONJ_NONE, MOD_MULTI, Text(field, unescape(" ".join(words)))))
                first = False
                continue
            conj = CONJ_NONE
            kind = self.peek().kind
            if not first and kind in ("AND", "OR"):
                conj = CONJ_AND if kind == "AND" else CONJ_OR
                self.at += 1
                kind = self.peek().kind
            mods = MOD_NONE
            if kind in ("PLUS", "MINUS", "NOT"):
                mods = MOD_REQ if kind == "PLUS" else MOD_NOT
                self.at += 1
                kind = self.peek().kind
            if kind not in _CLAUSE_START:
                if first or conj != CONJ_NONE or mods != MOD_NONE or kind not in ("EOF", "RPAREN"):
                    self.unexpected(self.peek())
                break
            items.append((conj, mods, self.clause(field)))
            first = False
        return Bool(items)

    def clause(self, field):
        token, following = self.peek(), self.peek(1)
        if following.kind == "COLON" and token.kind in ("TERM", "STAR"):
            field = "*" if token.kind == "STAR" else unescape(token.image)
            self.at += 2
        if self.peek().kind == "LPAREN":
            self.at += 1
            self.depth += 1
            if self.depth > self.max_depth:
                raise QueryStringError(f"the query nests groups deeper than {self.max_depth} levels")
            node = self.query(field)
            self.depth -= 1
            self.take("RPAREN")
            return self.boost(node)
        return self.term(field)

    def boost(self, node):
        if self.peek().kind != "CARAT":
            return node
        self.at += 1
        return Boost(node, float(self.take("NUMBER").image))

    def fuzzy_and_boost(self):
        """``[^N [~]] | [~ [^N]]`` after a term: (fuzzy token or None, boost or None)."""
        fuzzy = boost = None
        if self.peek().kind == "CARAT":
            self.at += 1
            boost = float(self.take("NUMBER").image)
            if self.peek().kind == "FUZZY_SLOP":
                fuzzy = self.take("FUZZY_SLOP").image
        elif self.peek().kind == "FUZZY_SLOP":
            fuzzy = self.take("FUZZY_SLOP").image
            if self.peek().kind == "CARAT":
                self.at += 1
                boost = float(self.take("NUMBER").image)
        return fuzzy, boost

    def term(self, field):
        token = self.peek()
        kind = token.kind
        if kind in ("RANGEIN_START", "RANGEEX_START"):
            return self.range(field)
        if kind == "QUOTED":
            self.at += 1
            slop = 0
            if self.peek().kind == "FUZZY_SLOP":
                value = self.take("FUZZY_SLOP").image[1:]
                slop = int(float(value)) if value else 0
            node = Phrase(field, unescape(token.image[1:-1]), slop)
            return self.boost(node)
        if kind not in ("TERM", "STAR", "PREFIXTERM", "WILDTERM", "REGEXPTERM", "BAREOPER"):
            self.unexpected(token)
        self.at += 1
        fuzzy, boost = self.fuzzy_and_boost()
        image = token.image
        if kind in ("STAR", "WILDTERM"):
            node = Wildcard(field, image)
        elif kind == "PREFIXTERM":
            node = Prefix(field, unescape(image[:-1])) if image != "*" else Wildcard(field, "*")
        elif kind == "REGEXPTERM":
            node = Regexp(field, image[1:-1])
        elif fuzzy is not None:
            node = Fuzzy(field, unescape(image), fuzzy_distance(fuzzy))
        else:
            node = Text(field, image[0] if kind == "BAREOPER" else unescape(image))
        return node if boost is None else Boost(node, boost)

    def range(self, field):
        include_low = self.take("RANGEIN_START", "RANGEEX_START").kind == "RANGEIN_START"
        low = self.take("RANGE_GOOP", "RANGE_QUOTED", "RANGE_TO")
        self.take("RANGE_TO")
        high = self.take("RANGE_GOOP", "RANGE_QUOTED", "RANGE_TO")
        include_high = self.take("RANGEIN_END", "RANGEEX_END").kind == "RANGEIN_END"
        node = Range(field, _bound(low), _bound(high), include_low, include_high)
        return self.boost(node)


def _bound(token):
    if token.kind == "RANGE_QUOTED":
        value = unescape(token.image[1:-1])
    else:
        value = unescape(token.image)
    return None if value == "*" else value  # Elasticsearch opens "*" even when quoted


def fuzzy_distance(image):
    """``~`` -> None (AUTO); ``~N`` -> edits as Elasticsearch counts them (at most 2)."""
    value = image[1:]
    if not value:
        return None
    return min(2, int(float(value)))


@functools.lru_cache(maxsize=PARSED_CACHE_SIZE)
def parse(text, max_depth=DEFAULT_MAX_DEPTH):
    """The syntax tree of ``text``; raises ``QueryStringError``. Blank text is an empty ``Bool``.

    Trees are immutable, so the last ``PARSED_CACHE_SIZE`` are kept: the builder's checks and
    the embedded engine's compiler read the same query, and clients repeat theirs."""
    if not text.strip():
        return Bool(())
    return _Parser(text, max_depth).top()
