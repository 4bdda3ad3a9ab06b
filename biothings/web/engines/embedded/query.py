"""Elasticsearch query DSL (the subset the builder emits) -> tantivy ``Query``.

``query_string`` is parsed with ``luqum`` and translated here, clause by clause,
with Lucene's classic-parser semantics (``a OR b AND c`` is ``a +b +c``; a
purely negative query matches everything but its negations, as in ES). The
tantivy query parser is never used.
"""

import fnmatch
import math
import re

from luqum.exceptions import ParseError
from luqum.parser import parser as luqum_parser
from luqum import tree as lt
import tantivy

from biothings.web.engines.errors import QueryError
from biothings.web.engines.embedded.schema import analyze, to_bool, to_float, to_int

Q = tantivy.Query
MUST, SHOULD, MUST_NOT = tantivy.Occur.Must, tantivy.Occur.Should, tantivy.Occur.MustNot

ID = "_id"
FIELDS = "_fields"

TEXT_FIELD_REASON = (
    "Text fields are not optimised for operations that require per-document field data "
    "like aggregations and sorting, so these operations are disabled by default. Please "
    "use a keyword field instead. Alternatively, set fielddata=true on [{name}] in order "
    "to load field data by uninverting the inverted index. Note that this can use "
    "significant memory.")

_REGEX_META = set("\\.+*?()|[]{}^$#&-~")


def regex_escape(text):
    return "".join("\\" + c if c in _REGEX_META else c for c in text)


def wildcard_to_regex(pattern):
    """Lucene wildcard (``*``, ``?``, backslash escapes) -> tantivy (anchored) regex."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(regex_escape(pattern[i + 1]))
            i += 2
            continue
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        else:
            out.append(regex_escape(c))
        i += 1
    return "".join(out)


def unescape(text):
    return re.sub(r"\\(.)", r"\1", text)


def has_wildcard(text):
    return re.search(r"(?<!\\)(?:\\\\)*[*?]", text) is not None


def none():
    return Q.empty_query()


def everything():
    return Q.all_query()


def boolean(clauses, minimum=None):
    return Q.boolean_query(clauses, minimum) if minimum is not None else Q.boolean_query(clauses)


def boosted(query, boost):
    if boost is None:
        return query
    try:
        boost = float(boost)
    except (TypeError, ValueError):
        raise QueryError(f"[boost] must be a number, got {boost!r}")
    if boost == 1.0:
        return query
    return Q.boost_query(query, boost)


def disjunction(queries):
    queries = [q for q in queries if q is not None]
    if not queries:
        return none()
    if len(queries) == 1:
        return queries[0]
    return Q.disjunction_max_query(queries)


class _IdField:
    """``_id`` behaves as a keyword field."""

    name = ID
    es_type = "keyword"
    kind = "keyword"
    tname = ID
    indexed = True
    fast = True
    ignore_above = None


ID_FIELD = _IdField()


class Compiler:
    """Compiles query clauses against one index's layout (and searcher, for string ranges)."""

    def __init__(self, layout, schema, searcher):
        self.layout = layout
        self.schema = schema
        self.searcher = searcher
        self.random = None  # set by function_score/random_score: {"seed": ...}

    # ------------------------------------------------------------------ fields

    def resolve(self, name):
        """The searchable fields a (possibly wildcard) field name designates."""
        if name == ID:
            return [ID_FIELD]
        if "*" in name or "?" in name:
            if name in ("*", "*.*"):
                return list(self.layout.searchable)
            return [f for f in self.layout.searchable if fnmatch.fnmatchcase(f.name, name)]
        field = self.layout.fields.get(name)
        if field is None or not field.kind or not field.indexed:
            return []
        return [field]

    def default_fields(self, spec):
        """``fields`` / ``default_field`` entries (``name^boost``) -> [(field, boost)]."""
        out = []
        for entry in spec:
            name, _, boost = str(entry).partition("^")
            try:
                boost = float(boost) if boost else None
            except ValueError:
                raise QueryError(f"invalid boost in field [{entry}]")
            for field in self.resolve(name):
                out.append((field, boost))
        return out

    # ------------------------------------------------------------------ values per field

    def _number(self, field, value, lenient):
        try:
            if field.kind == "int":
                if isinstance(value, str):
                    text = value.strip()
                    if not re.fullmatch(r"[+-]?\d+", text):
                        number = float(text)
                        if not number.is_integer():
                            raise ValueError(value)
                        return int(number)
                    return int(text)
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError(value)
                return to_int(value, field, field.name)
            if field.kind == "float":
                return to_float(value, field, field.name)
            return to_bool(value if not isinstance(value, str) else value.strip().lower(), field, field.name)
        except (ValueError, TypeError):
            if lenient:
                return None
            raise QueryError(f"failed to create query: For input string: \"{value}\" "
                             f"on field [{field.name}] of type [{field.es_type}]")

    def _keyword_text(self, value):
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def term(self, field, value, lenient=False):
        """Exact term, no analysis (ES ``term``)."""
        if field.kind in ("text", "keyword"):
            return Q.term_query(self.schema, field.tname, self._keyword_text(value))
        number = self._number(field, value, lenient)
        if number is None:
            return None
        return Q.term_query(self.schema, field.tname, number)

    def match(self, field, value, operator="or", lenient=False):
        """Analyzed match (ES ``match``): tokens combined with the operator."""
        if field.kind == "text":
            tokens = analyze(self._keyword_text(value))
            if not tokens:
                return None
            if len(tokens) == 1:
                return Q.term_query(self.schema, field.tname, tokens[0])
            occur = MUST if str(operator).lower() == "and" else SHOULD
            return boolean([(occur, Q.term_query(self.schema, field.tname, t)) for t in tokens])
        return self.term(field, value, lenient)

    def phrase(self, field, value, slop=0, lenient=False):
        if field.kind == "text":
            tokens = analyze(str(value))
            if not tokens:
                return None
            if len(tokens) == 1:
                return Q.term_query(self.schema, field.tname, tokens[0])
            return Q.phrase_query(self.schema, field.tname, tokens, slop=int(slop or 0))
        return self.term(field, value, lenient)

    def regex(self, field, pattern, lenient=False):
        if field.kind not in ("text", "keyword"):
            if lenient:
                return None
            raise QueryError(f"Can only use regexp/wildcard/prefix queries on keyword and text "
                             f"fields - not on [{field.name}] which is of type [{field.es_type}]")
        try:
            return Q.regex_query(self.schema, field.tname, pattern)
        except ValueError as exc:
            raise QueryError(f"invalid regular expression [{pattern}]: {exc}")

    def wildcard(self, field, pattern, lenient=False, case_insensitive=False, normalize=True):
        """``normalize``: lowercase for text fields, as query_string does; the
        term-level ``wildcard``/``prefix`` queries match the pattern as given."""
        if pattern == "*":
            return self.exists(field.name)
        if (field.kind == "text" and normalize) or case_insensitive:
            pattern = pattern.lower()
        return self.regex(field, wildcard_to_regex(pattern), lenient)

    def prefix(self, field, value, lenient=False, case_insensitive=False, normalize=True):
        value = self._keyword_text(value)
        if (field.kind == "text" and normalize) or case_insensitive:
            value = value.lower()
        return self.regex(field, regex_escape(value) + ".*", lenient)

    def fuzzy(self, field, value, fuzziness="AUTO", lenient=False):
        value = self._keyword_text(value)
        if field.kind not in ("text", "keyword"):
            return self.term(field, value, lenient)
        if field.kind == "text":
            value = value.lower()
        distance = fuzzy_distance(value, fuzziness)
        if distance == 0:
            return Q.term_query(self.schema, field.tname, value)
        return Q.fuzzy_term_query(self.schema, field.tname, value, distance, True, False)

    def exists(self, name):
        if name == ID or name in ("*",):
            return everything()
        if "*" in name:
            names = [n for n in list(self.layout.fields) + list(self.layout.objects)
                     if fnmatch.fnmatchcase(n, name)]
        else:
            names = [name]
        names = [n for n in names if n in self.layout.fields or n in self.layout.objects]
        if not names:
            return none()
        if len(names) == 1:
            query = Q.term_query(self.schema, FIELDS, names[0])
        else:
            query = Q.term_set_query(self.schema, FIELDS, names)
        return Q.const_score_query(query, 1.0)

    def range(self, field, gt=None, gte=None, lt=None, lte=None, lenient=False):
        lower, include_lower = (gte, True) if gte is not None else (gt, False)
        upper, include_upper = (lte, True) if lte is not None else (lt, False)
        if lower is None and upper is None:
            return self.exists(field.name)
        if field.kind in ("int", "float"):
            return self._numeric_range(field, lower, include_lower, upper, include_upper, lenient)
        if field.kind == "bool":
            values = [v for v in (False, True)
                      if _in_range(v, self._number(field, lower, True) if lower is not None else None,
                                   include_lower,
                                   self._number(field, upper, True) if upper is not None else None,
                                   include_upper)]
            return self._set(field, values)
        # keyword / text / _id: walk the term dictionary
        lower = None if lower is None else self._keyword_text(lower)
        upper = None if upper is None else self._keyword_text(upper)
        if field.kind == "text":
            lower = lower.lower() if lower is not None else None
            upper = upper.lower() if upper is not None else None
        terms = [t for t, _n in self.searcher.terms_with_prefix(field.tname, "")
                 if _in_range(t, lower, include_lower, upper, include_upper)]
        return self._set(field, terms)

    def _set(self, field, values):
        if not values:
            return none()
        return Q.const_score_query(Q.term_set_query(self.schema, field.tname, values), 1.0)

    def _numeric_range(self, field, lower, include_lower, upper, include_upper, lenient):
        def bound(value, is_lower, inclusive):
            if value is None:
                return None, True
            if field.kind == "float":
                number = self._number(field, value, lenient)
                return number, inclusive
            try:
                number = float(value)
            except (TypeError, ValueError):
                if lenient:
                    return "bad", True
                raise QueryError(f"failed to create query: For input string: \"{value}\" "
                                 f"on field [{field.name}] of type [{field.es_type}]")
            if math.isinf(number) or math.isnan(number):
                return None, True
            if number.is_integer():
                number = int(value) if isinstance(value, int) else int(number)
                return number, inclusive
            # 5.5: > or >= -> >= 6; < or <= -> <= 5
            return (math.ceil(number), True) if is_lower else (math.floor(number), True)

        low, include_lower = bound(lower, True, include_lower)
        high, include_upper = bound(upper, False, include_upper)
        if low == "bad" or high == "bad":
            return None
        if low is None and high is None:
            return self.exists(field.name)
        if field.kind == "int":
            # exclusive integer bounds are turned inclusive (tantivy checks them the same)
            if low is not None and not include_lower:
                low, include_lower = low + 1, True
            if high is not None and not include_upper:
                high, include_upper = high - 1, True
            if low is not None and high is not None and low > high:
                return none()
            ftype = tantivy.FieldType.Integer
        else:
            if low is not None and high is not None and (low > high or (
                    low == high and not (include_lower and include_upper))):
                return none()
            ftype = tantivy.FieldType.Float
        return Q.range_query(self.schema, field.tname, ftype, low, high, include_lower, include_upper)

    # ------------------------------------------------------------------ DSL

    def compile(self, clause):
        if clause is None:
            return everything()
        if not isinstance(clause, dict) or len(clause) != 1:
            raise QueryError(f"[query] malformed query, expected a single clause object: {clause!r}")
        (kind, spec), = clause.items()
        method = getattr(self, "q_" + kind, None)
        if method is None:
            raise QueryError(f"unknown query [{kind}]")
        try:
            query = method(spec)
        except QueryError:
            raise
        except (TypeError, AttributeError, KeyError, IndexError) as exc:
            raise QueryError(f"[{kind}] malformed query: {exc}")
        return none() if query is None else query

    def _clauses(self, value):
        if value is None:
            return []
        if isinstance(value, dict):
            return [value]
        return list(value)

    def q_match_all(self, spec):
        return boosted(everything(), (spec or {}).get("boost"))

    def q_match_none(self, spec):
        return none()

    def q_bool(self, spec):
        clauses = []
        for sub in self._clauses(spec.get("must")):
            clauses.append((MUST, self.compile(sub)))
        for sub in self._clauses(spec.get("filter")):
            clauses.append((MUST, Q.const_score_query(self.compile(sub), 0.0)))
        shoulds = [self.compile(sub) for sub in self._clauses(spec.get("should"))]
        nots = [self.compile(sub) for sub in self._clauses(spec.get("must_not"))]
        minimum = spec.get("minimum_should_match")
        if minimum is not None:
            minimum = minimum_should_match(minimum, len(shoulds))
        elif shoulds and not clauses:
            minimum = 1
        if minimum is not None and shoulds and minimum > len(shoulds):
            return none()
        clauses.extend((SHOULD, q) for q in shoulds)
        if not clauses:
            clauses.append((MUST, Q.const_score_query(everything(), 1.0) if not nots else everything()))
        clauses.extend((MUST_NOT, q) for q in nots)
        if not shoulds or not minimum:
            minimum = None
        if len(clauses) == 1 and clauses[0][0] is MUST and minimum is None:
            query = clauses[0][1]
        else:
            query = boolean(clauses, minimum)
        return boosted(query, spec.get("boost"))

    def q_constant_score(self, spec):
        inner = spec.get("filter", spec.get("query"))
        return Q.const_score_query(self.compile(inner), float(spec.get("boost", 1.0)))

    def q_dis_max(self, spec):
        queries = [self.compile(q) for q in self._clauses(spec.get("queries"))]
        if not queries:
            return none()
        tie = spec.get("tie_breaker")
        query = Q.disjunction_max_query(queries, float(tie)) if tie else Q.disjunction_max_query(queries)
        return boosted(query, spec.get("boost"))

    def q_function_score(self, spec):
        query = self.compile(spec.get("query", {"match_all": {}}))
        random_score = spec.get("random_score")
        if random_score is None:
            for function in spec.get("functions") or []:
                if "random_score" in function:
                    random_score = function["random_score"]
        if random_score is not None:
            self.random = {"seed": (random_score or {}).get("seed")}
        return boosted(query, spec.get("boost"))

    def q_nested(self, spec):
        # objects are flattened (ES "object" semantics): a nested query is its inner query
        return self.compile(spec.get("query"))

    def q_ids(self, spec):
        values = spec.get("values", []) if isinstance(spec, dict) else spec
        values = [str(v) for v in values]
        if not values:
            return none()
        return boosted(Q.const_score_query(Q.term_set_query(self.schema, ID, values), 1.0),
                       spec.get("boost") if isinstance(spec, dict) else None)

    @staticmethod
    def _field_spec(spec, value_key="value"):
        """``{"field": value}`` or ``{"field": {"value": ..., ...}}`` -> (field, value, options)."""
        options = {k: v for k, v in spec.items() if k in ("boost", "_name")}
        items = [(k, v) for k, v in spec.items() if k not in ("boost", "_name")]
        if len(items) != 1:
            raise QueryError(f"query expects exactly one field, got {sorted(spec)}")
        name, value = items[0]
        if isinstance(value, dict):
            options = dict(value)
            value = options.pop(value_key, options.pop("query", None))
        return name, value, options

    def _per_field(self, name, build):
        fields = self.resolve(name)
        return disjunction([build(field) for field in fields])

    def q_term(self, spec):
        name, value, options = self._field_spec(spec)
        if value is None:
            raise QueryError("[term] query requires a value")
        insensitive = options.get("case_insensitive")
        if insensitive:
            return boosted(self._per_field(name, lambda f: self.regex(
                f, "(?i)" + regex_escape(self._keyword_text(value)), True)), options.get("boost"))
        return boosted(self._per_field(name, lambda f: self.term(f, value)), options.get("boost"))

    def q_terms(self, spec):
        options = {k: v for k, v in spec.items() if k in ("boost", "_name")}
        items = [(k, v) for k, v in spec.items() if k not in ("boost", "_name")]
        if len(items) != 1 or not isinstance(items[0][1], list):
            raise QueryError("[terms] query expects one field with a list of values")
        name, values = items[0]

        def build(field):
            if field.kind in ("text", "keyword"):
                converted = [self._keyword_text(v) for v in values]
            else:
                converted = [n for n in (self._number(field, v, False) for v in values) if n is not None]
            return self._set(field, converted)

        return boosted(self._per_field(name, build), options.get("boost"))

    def q_range(self, spec):
        if len(spec) != 1:
            raise QueryError("[range] query expects exactly one field")
        (name, bounds), = spec.items()
        unknown = set(bounds) - {"gt", "gte", "lt", "lte", "boost", "format", "relation",
                                 "time_zone", "from", "to", "include_lower", "include_upper"}
        if unknown:
            raise QueryError(f"[range] query does not support [{sorted(unknown)[0]}]")
        gt, gte, lt, lte = bounds.get("gt"), bounds.get("gte"), bounds.get("lt"), bounds.get("lte")
        if "from" in bounds and gt is None and gte is None:
            if bounds.get("include_lower", True):
                gte = bounds["from"]
            else:
                gt = bounds["from"]
        if "to" in bounds and lt is None and lte is None:
            if bounds.get("include_upper", True):
                lte = bounds["to"]
            else:
                lt = bounds["to"]
        query = self._per_field(name, lambda f: self.range(f, gt, gte, lt, lte))
        return boosted(query, bounds.get("boost"))

    def q_exists(self, spec):
        return self.exists(spec["field"])

    def q_prefix(self, spec):
        name, value, options = self._field_spec(spec)
        insensitive = options.get("case_insensitive", False)
        return boosted(self._per_field(name, lambda f: self.prefix(f, value, False, insensitive, normalize=False)),
                       options.get("boost"))

    def q_wildcard(self, spec):
        name, value, options = self._field_spec(spec)
        if value is None:
            value = options.get("wildcard")
        insensitive = options.get("case_insensitive", False)
        return boosted(self._per_field(name, lambda f: self.wildcard(f, str(value), False, insensitive,
                                                                   normalize=False)),
                       options.get("boost"))

    def q_regexp(self, spec):
        name, value, options = self._field_spec(spec)
        pattern = str(value)
        if options.get("case_insensitive"):
            pattern = "(?i)" + pattern
        return boosted(self._per_field(name, lambda f: self.regex(f, pattern)), options.get("boost"))

    def q_fuzzy(self, spec):
        name, value, options = self._field_spec(spec)
        fuzziness = options.get("fuzziness", "AUTO")
        return boosted(self._per_field(name, lambda f: self.fuzzy(f, value, fuzziness)),
                       options.get("boost"))

    def q_match(self, spec):
        name, value, options = self._field_spec(spec, value_key="query")
        if value is None:
            raise QueryError("[match] query requires a [query]")
        check_analyzer("match", options)
        operator = options.get("operator", "or")
        lenient = bool(options.get("lenient", False))
        return boosted(self._per_field(name, lambda f: self.match(f, value, operator, lenient)),
                       options.get("boost"))

    def q_match_phrase(self, spec):
        name, value, options = self._field_spec(spec, value_key="query")
        slop = options.get("slop", 0)
        return boosted(self._per_field(name, lambda f: self.phrase(f, value, slop)), options.get("boost"))

    def q_multi_match(self, spec):
        if "query" not in spec:
            raise QueryError("[multi_match] requires a [query]")
        check_analyzer("multi_match", spec)
        value = spec["query"]
        fields = spec.get("fields") or ["*"]
        operator = spec.get("operator", "or")
        lenient = bool(spec.get("lenient", False))
        kind = spec.get("type", "best_fields")
        queries = []
        for field, boost in self.default_fields(fields):
            if kind in ("phrase", "phrase_prefix"):
                query = self.phrase(field, value, spec.get("slop", 0), lenient)
            else:
                query = self.match(field, value, operator, lenient)
            if query is not None:
                queries.append(boosted(query, boost))
        if not queries:
            return none()
        tie = spec.get("tie_breaker")
        if len(queries) == 1:
            query = queries[0]
        elif tie:
            query = Q.disjunction_max_query(queries, float(tie))
        else:
            query = Q.disjunction_max_query(queries)
        return boosted(query, spec.get("boost"))

    def q_query_string(self, spec):
        if isinstance(spec, str):
            spec = {"query": spec}
        check_analyzer("query_string", spec)
        text = spec.get("query")
        if not isinstance(text, str):
            raise QueryError("[query_string] requires a [query] string")
        if "fields" in spec and spec["fields"]:
            fields = spec["fields"]
        elif spec.get("default_field"):
            fields = [spec["default_field"]]
        else:
            fields = ["*"]
        # ES: searching all fields ("*") is implicitly lenient
        lenient = bool(spec.get("lenient", False)) or list(fields) == ["*"]
        translator = QueryStringTranslator(
            self, self.default_fields(fields),
            and_default=str(spec.get("default_operator", "OR")).upper() == "AND",
            lenient=lenient)
        return boosted(translator.translate(text), spec.get("boost"))

    q_simple_query_string = q_query_string


# Elasticsearch's built-in analyzers: accepted (the field's own analysis is used); any
# other name fails the query as it does in Elasticsearch without a custom analyzer.
BUILTIN_ANALYZERS = {"standard", "simple", "whitespace", "stop", "keyword", "pattern", "fingerprint",
                     "english", "default", "snowball"}


def check_analyzer(kind, spec):
    name = spec.get("analyzer") if isinstance(spec, dict) else None
    if name is not None and name not in BUILTIN_ANALYZERS:
        raise QueryError(f"[{kind}] analyzer [{name}] not found")


def minimum_should_match(spec, count):
    """ES ``minimum_should_match``: an int, "2", "-1", "75%", "-25%"."""
    text = str(spec).strip()
    try:
        if text.endswith("%"):
            percent = float(text[:-1])
            value = int(count * abs(percent) / 100.0)
            return value if percent >= 0 else count - value
        value = int(text)
    except ValueError:
        raise QueryError(f"invalid minimum_should_match [{spec}]")
    return value if value >= 0 else max(count + value, 0)


def fuzzy_distance(term, fuzziness):
    if fuzziness is None or str(fuzziness).upper().startswith("AUTO"):
        length = len(term)
        return 0 if length < 3 else (1 if length < 6 else 2)
    try:
        value = float(fuzziness)
    except ValueError:
        raise QueryError(f"invalid fuzziness [{fuzziness}]")
    if value < 1:  # legacy similarity (0.5): ES treats it like AUTO
        return fuzzy_distance(term, "AUTO")
    return min(int(value), 2)


def _in_range(value, lower, include_lower, upper, include_upper):
    if lower is not None and (value < lower or (value == lower and not include_lower)):
        return False
    if upper is not None and (value > upper or (value == upper and not include_upper)):
        return False
    return True


# ---------------------------------------------------------------------- query_string

MOD_NONE, MOD_REQ, MOD_NOT = 0, 1, 2
CONJ_NONE, CONJ_AND, CONJ_OR = 0, 1, 2


class QueryStringTranslator:
    """Lucene syntax (via luqum) -> tantivy query, with ES ``query_string`` semantics."""

    def __init__(self, compiler, fields, and_default, lenient):
        self.c = compiler
        self.fields = fields  # [(Field, boost)]
        self.and_default = and_default
        self.lenient = lenient

    def translate(self, text):
        if not text.strip():
            return none()
        try:
            node = luqum_parser.parse(text)
        except (ParseError, Exception) as exc:  # luqum raises several types
            raise QueryError(f"Failed to parse query [{text}]: {exc}".strip())
        query = self.node(node, None)
        return none() if query is None else query

    # clause list with Lucene's addClause rules
    def _flatten(self, node, conj, out):
        if isinstance(node, (lt.AndOperation, lt.OrOperation, lt.UnknownOperation)):
            op = CONJ_AND if isinstance(node, lt.AndOperation) else (
                CONJ_OR if isinstance(node, lt.OrOperation) else CONJ_NONE)
            for i, child in enumerate(node.children):
                self._flatten(child, conj if i == 0 else op, out)
            return
        mods = MOD_NONE
        if isinstance(node, (lt.Not, lt.Prohibit)):
            mods, node = MOD_NOT, node.a
        elif isinstance(node, lt.Plus):
            mods, node = MOD_REQ, node.a
        out.append((conj, mods, node))

    def operation(self, node, field):
        items = []
        self._flatten(node, CONJ_NONE, items)
        clauses = []  # [occur, query]
        for conj, mods, child in items:
            if clauses and conj == CONJ_AND and clauses[-1][0] is not MUST_NOT:
                clauses[-1][0] = MUST
            if clauses and self.and_default and conj == CONJ_OR and clauses[-1][0] is not MUST_NOT:
                clauses[-1][0] = SHOULD
            query = self.node(child, field)
            if query is None:
                continue
            if not self.and_default:
                prohibited = mods == MOD_NOT
                required = mods == MOD_REQ or (conj == CONJ_AND and not prohibited)
            else:
                prohibited = mods == MOD_NOT
                required = not prohibited and conj != CONJ_OR
            if required and not prohibited:
                occur = MUST
            elif prohibited:
                occur = MUST_NOT
            else:
                occur = SHOULD
            clauses.append([occur, query])
        return self._bool(clauses)

    @staticmethod
    def _bool(clauses):
        if not clauses:
            return None
        if all(occur is MUST_NOT for occur, _ in clauses):
            clauses = [[MUST, everything()]] + clauses  # ES fixes purely negative queries
        if len(clauses) == 1 and clauses[0][0] is not MUST_NOT:
            return clauses[0][1]
        return boolean([tuple(c) for c in clauses])

    def node(self, node, field):
        if isinstance(node, (lt.AndOperation, lt.OrOperation, lt.UnknownOperation)):
            return self.operation(node, field)
        if isinstance(node, (lt.Not, lt.Prohibit, lt.Plus)):
            return self.operation(node, field)
        if isinstance(node, (lt.Group, lt.FieldGroup)):
            return self.node(node.expr, field)
        if isinstance(node, lt.Boost):
            query = self.node(node.expr, field)
            return None if query is None else boosted(query, float(node.force))
        if isinstance(node, lt.SearchField):
            return self.search_field(node, field)
        return self.leaf(node, field)

    def search_field(self, node, field):
        name = unescape(node.name)
        if name == "_exists_":
            target = node.expr
            if isinstance(target, (lt.Group, lt.FieldGroup)):
                target = target.expr
            if not isinstance(target, (lt.Word, lt.Phrase)):
                raise QueryError("[_exists_] expects a field name")
            value = target.value.strip('"') if isinstance(target, lt.Phrase) else unescape(target.value)
            return self.c.exists(value)
        if name == "*" and isinstance(node.expr, lt.Word) and node.expr.value == "*":
            return everything()
        return self.node(node.expr, [(f, None) for f in self.c.resolve(name)] if name != "*"
                         else [(f, None) for f in self.c.layout.searchable])

    def leaf(self, node, fields):
        fields = self.fields if fields is None else fields
        builders = []
        if isinstance(node, lt.Word):
            raw = node.value
            if raw == "*":
                if fields is self.fields:
                    return everything()
                return disjunction([self.c.exists(f.name) for f, _ in fields])
            if has_wildcard(raw):
                builders = [lambda f: self.c.wildcard(f, raw, lenient=True)]
            else:
                value = unescape(raw)
                operator = "and" if self.and_default else "or"
                builders = [lambda f: self.c.match(f, value, operator, self.lenient)]
        elif isinstance(node, lt.Phrase):
            value = unescape(node.value[1:-1])
            builders = [lambda f: self.c.phrase(f, value, 0, self.lenient)]
        elif isinstance(node, lt.Proximity):
            value = unescape(node.term.value[1:-1])
            slop = int(node.degree or 0)
            builders = [lambda f: self.c.phrase(f, value, slop, self.lenient)]
        elif isinstance(node, lt.Fuzzy):
            value = unescape(node.term.value)
            fuzziness = "AUTO" if getattr(node, "_implicit_degree", False) else node.degree
            builders = [lambda f: self.c.fuzzy(f, value, fuzziness, self.lenient)]
        elif isinstance(node, lt.Regex):
            pattern = node.value[1:-1]
            builders = [lambda f: self.c.regex(f, pattern, lenient=True)]
        elif isinstance(node, lt.Range):
            low = None if node.low.value == "*" else unescape(node.low.value.strip('"'))
            high = None if node.high.value == "*" else unescape(node.high.value.strip('"'))
            gt, gte = (None, low) if node.include_low else (low, None)
            lt_, lte = (None, high) if node.include_high else (high, None)
            builders = [lambda f: self.c.range(f, gt, gte, lt_, lte, lenient=self.lenient)]
        elif isinstance(node, (lt.From, lt.To)):
            value = node.a.value
            value = unescape(value.strip('"')) if isinstance(node.a, (lt.Word, lt.Phrase)) else str(value)
            if isinstance(node, lt.From):
                kwargs = {"gte": value} if node.include else {"gt": value}
            else:
                kwargs = {"lte": value} if node.include else {"lt": value}
            builders = [lambda f: self.c.range(f, lenient=self.lenient, **kwargs)]
        else:
            raise QueryError(f"unsupported query syntax: {node}")
        queries = []
        for field, boost in fields:
            for build in builders:
                query = build(field)
                if query is not None:
                    queries.append(boosted(query, boost))
        return disjunction(queries)
