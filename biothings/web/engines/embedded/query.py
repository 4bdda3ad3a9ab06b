"""Elasticsearch query DSL (the subset the builder emits) -> tantivy ``Query``.

``query_string`` is parsed by ``biothings.web.querystring`` (Lucene's classic
syntax) and translated here with the semantics of Elasticsearch's
``QueryStringQueryParser``: consecutive bare words are analysed together per
field, each field's query is built from the field's type and search analyzer,
fields combine in a ``dis_max`` (``best_fields``), a field that cannot take a
value matches nothing when lenient, and a purely negative group matches
everything but its negations. The tantivy query parser is never used.

Scores follow Lucene's BM25 where tantivy's differ: each text term is boosted
so that its inverse document frequency counts the documents that *have the
field* (Lucene's ``docCount``), not every document, and without tantivy's
``(k1 + 1)`` factor; keyword terms (Elasticsearch indexes them without
frequencies or norms) score a constant per term; numeric terms, ranges,
wildcards, regular expressions and ``exists`` score 1 as in Elasticsearch;
fuzzy terms expand to at most ``max_expansions`` terms scored with the
blended document frequency of ``FuzzyQuery``'s default rewrite; phrases with a
slop weigh each match by its distance (``biothings.web.engines.embedded.sloppy``).
"""

import fnmatch
import math
import re

from rapidfuzz import process as fuzzy_process
from rapidfuzz.distance import OSA
import tantivy

from biothings.web import querystring as qs
from biothings.web.engines.errors import QueryError
from biothings.web.engines.embedded.analysis import AnalysisError
from biothings.web.engines.embedded.sloppy import lucene_sloppy_phrase

Q = tantivy.Query
MUST, SHOULD, MUST_NOT = tantivy.Occur.Must, tantivy.Occur.Should, tantivy.Occur.MustNot
OCCUR = {qs.MUST: MUST, qs.SHOULD: SHOULD, qs.MUST_NOT: MUST_NOT}

ID = "_id"
FIELDS = "_fields"

# Lucene's BM25 constants (Elasticsearch's defaults)
K1, B = 1.2, 0.75
# Most leaf queries one search may build (a query_string term counts once per field,
# a fuzzy term once per expansion): Elasticsearch's indices.query.bool.max_clause_count.
MAX_CLAUSE_COUNT = 16384
# Longest regular expression (Elasticsearch's index.max_regex_length).
MAX_REGEX_LENGTH = 1000
# Elasticsearch's integer types: a term or bound outside one is a 400
INTEGER_RANGES = {"byte": (-2 ** 7, 2 ** 7 - 1), "short": (-2 ** 15, 2 ** 15 - 1),
                  "integer": (-2 ** 31, 2 ** 31 - 1), "token_count": (-2 ** 31, 2 ** 31 - 1),
                  "long": (-2 ** 63, 2 ** 63 - 1), "unsigned_long": (0, 2 ** 64 - 1)}
# what a function_score may hold here: its query and a random order (boost_mode and score_mode
# change nothing with random_score the only function)
FUNCTION_SCORE_KEYS = {"query", "random_score", "functions", "boost", "boost_mode", "score_mode"}
# The options of the one-field queries' object form ({"field": {"value": ..., options}}),
# as Elasticsearch names them; any other is a 400
_COMMON = {"boost", "_name"}
FIELD_QUERY_OPTIONS = {
    "term": _COMMON | {"value", "case_insensitive"},
    "prefix": _COMMON | {"value", "case_insensitive", "rewrite"},
    "wildcard": _COMMON | {"value", "wildcard", "case_insensitive", "rewrite"},
    "regexp": _COMMON | {"value", "flags", "case_insensitive", "max_determinized_states", "rewrite"},
    "fuzzy": _COMMON | {"value", "fuzziness", "max_expansions", "prefix_length", "transpositions", "rewrite"},
    "match": _COMMON | {"query", "operator", "lenient", "analyzer", "auto_generate_synonyms_phrase_query"},
    "match_phrase": _COMMON | {"query", "analyzer", "slop"},
}
# Elasticsearch options this engine does not run: refused rather than ignored, unless given a
# value that answers the same hits and scores (lowercase)
_CONSTANT_REWRITES = {"constant_score", "constant_score_blended", "constant_score_boolean"}
UNSUPPORTED_FIELD_OPTIONS = {
    "prefix": {"rewrite": _CONSTANT_REWRITES},
    "wildcard": {"rewrite": _CONSTANT_REWRITES},
    "regexp": {"flags": {"all"}, "rewrite": _CONSTANT_REWRITES},
    "fuzzy": {"rewrite": set()},
    "match": {"fuzziness": set(), "prefix_length": set(), "max_expansions": set(), "fuzzy_transpositions": set(),
              "fuzzy_rewrite": set(), "minimum_should_match": set(), "zero_terms_query": {"none"}},
    "match_phrase": {"zero_terms_query": {"none"}},
}
# Fuzzy terms expand to at most this many terms unless the query says otherwise.
DEFAULT_MAX_EXPANSIONS = 50
# Groups nested deeper are refused (the builder's MAX_QUERY_DEPTH is the public limit).
MAX_QUERY_DEPTH = 100

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
            out.append("(?s:.)*")
        elif c == "?":
            out.append("(?s:.)")
        else:
            out.append(regex_escape(c))
        i += 1
    return "".join(out)


_WILDCARD_PARTS = re.compile(r"(\\.)|([?*]+)", re.S)


def normalize_wildcard(pattern, analyzer):
    """Elasticsearch's ``normalizedWildcardQuery``: normalise the text between wildcards
    (escaped characters and the wildcards themselves stay as written)."""
    if analyzer is None:
        return pattern
    out, last = [], 0
    for match in _WILDCARD_PARTS.finditer(pattern):
        if match.start() > last:
            out.append(analyzer.normalize(pattern[last:match.start()]))
        out.append(match.group())
        last = match.end()
    if last < len(pattern):
        out.append(analyzer.normalize(pattern[last:]))
    return "".join(out)


def _char(c):
    return "\\x{%X}" % ord(c)


def _chars(text):
    return "".join(map(_char, text))


def _above(c):
    return "[\\x{%X}-\\x{10FFFF}]" % (ord(c) + 1) if ord(c) < 0x10FFFF else None


def _below(c):
    return "[\\x{0}-\\x{%X}]" % (ord(c) - 1) if ord(c) > 0 else None


def _at_least(text, inclusive):
    """Alternatives matching the strings >= ``text`` (> when not inclusive)."""
    options = [_chars(text) + ("(?s:.)*" if inclusive else "(?s:.)+")]
    for i, c in enumerate(text):
        bigger = _above(c)
        if bigger:
            options.append(_chars(text[:i]) + bigger + "(?s:.)*")
    return options


def _at_most(text, inclusive, empty=True):
    """Alternatives matching the strings <= ``text`` (< when not inclusive); ``empty``:
    whether the empty string is one of them."""
    options = [_chars(text[:i]) for i in range(0 if empty else 1, len(text) + (1 if inclusive else 0))]
    for i, c in enumerate(text):
        smaller = _below(c)
        if smaller:
            options.append(_chars(text[:i]) + smaller + "(?s:.)*")
    return options


def string_range_regex(lower, include_lower, upper, include_upper):
    """One regex matching the terms between two bounds (code point order, as Lucene
    compares UTF-8 bytes), so a term range runs as an automaton inside tantivy; None
    when no string lies between them."""
    def alternatives(options):
        options = [o for o in options if o is not None]
        return "|".join(f"(?:{o})" for o in options) if options else None

    def then(head, tail):
        return None if tail is None else head + "(?:" + tail + ")"

    if upper is None:
        found = alternatives(_at_least(lower, include_lower))
    elif lower is None:
        found = alternatives(_at_most(upper, include_upper))
    else:
        common = 0
        while common < min(len(lower), len(upper)) and lower[common] == upper[common]:
            common += 1
        if common == len(lower):  # lower is a prefix of upper: lower + (what is <= the rest)
            found = then(_chars(lower), alternatives(_at_most(upper[common:], include_upper, empty=include_lower)))
        else:
            low, high = lower[common], upper[common]
            options = [then(_char(low), alternatives(_at_least(lower[common + 1:], include_lower)))]
            if ord(high) - ord(low) > 1:
                options.append("[\\x{%X}-\\x{%X}](?s:.)*" % (ord(low) + 1, ord(high) - 1))
            options.append(then(_char(high), alternatives(_at_most(upper[common + 1:], include_upper))))
            found = then(_chars(lower[:common]), alternatives(options))
    return found


def none():
    return Q.empty_query()


def everything():
    return Q.all_query()


def constant(query, score=1.0):
    return Q.const_score_query(query, float(score))


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
    if boost < 0:
        raise QueryError(f"negative [boost] is not allowed, got [{boost}]")
    return Q.boost_query(query, boost)


def disjunction(queries, tie_breaker=None):
    """Elasticsearch's dis_max of per-field queries; None when no field gave one."""
    queries = [q for q in queries if q is not None]
    if not queries:
        return None
    if len(queries) == 1:
        return queries[0]
    if tie_breaker:
        return Q.disjunction_max_query(queries, float(tie_breaker))
    return Q.disjunction_max_query(queries)


def idf(doc_count, doc_freq):
    return math.log(1 + (doc_count - doc_freq + 0.5) / (doc_freq + 0.5))


class _IdField:
    """``_id`` behaves as a keyword field."""

    name = ID
    es_type = "_id"
    kind = "keyword"
    tname = ID
    indexed = True
    fast = True
    ignore_above = None
    normalizer = None
    analyzer = search_analyzer = None


ID_FIELD = _IdField()


class Compiler:
    """Compiles query clauses against one index's layout and searcher."""

    def __init__(self, layout, schema, searcher, max_clauses=MAX_CLAUSE_COUNT):
        self.layout = layout
        self.schema = schema
        self.searcher = searcher
        self.random = None  # set by function_score/random_score: {"seed": ...}
        self.max_clauses = max_clauses
        self.clauses = 0
        self._doc_counts = {}

    def count_clause(self, number=1):
        self.clauses += number
        if self.clauses > self.max_clauses:
            raise QueryError(f"the query expands to more than {self.max_clauses} clauses "
                             f"(terms times fields, fuzzy expansions): make it simpler")

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

    def analyzer(self, field, override=None):
        """The search analyzer of ``field`` (None: the whole text is one term)."""
        try:
            return self.layout.search_analyzer(field, override)
        except AnalysisError:
            raise QueryError(f"analyzer [{override}] not found") from None

    # ------------------------------------------------------------------ scoring

    def doc_count(self, field):
        """Documents having ``field`` (Lucene's docCount, the base of its idf)."""
        count = self._doc_counts.get(field.name)
        if count is None:
            if field is ID_FIELD:
                count = self.searcher.num_docs
            else:
                count = self.searcher.doc_freq(FIELDS, field.name)
            count = self._doc_counts[field.name] = max(count, 1)
        return count

    def text_term(self, field, token, blended_df=None, boost=1.0):
        """A term of a text field, scored as Lucene's BM25 would score it."""
        self.count_clause()
        query = Q.term_query(self.schema, field.tname, token)
        df = self.searcher.doc_freq(field.tname, token)
        if not df:
            return query
        lucene = idf(self.doc_count(field), blended_df or df)
        tantivy_idf = idf(self.searcher.num_docs, df)
        return Q.boost_query(query, boost * lucene / (tantivy_idf * (1 + K1)))

    def keyword_term(self, field, value, blended_df=None, boost=1.0):
        """A keyword term: Elasticsearch indexes keywords without norms or frequencies,
        so every match scores idf / (1 + k1 (1 - b + b / average values per document))."""
        self.count_clause()
        query = Q.term_query(self.schema, field.tname, value)
        df = self.searcher.doc_freq(field.tname, value)
        if not df:
            return query
        per_doc = self.layout.values_per_doc(field.name)
        score = idf(self.doc_count(field), blended_df or df) / (1 + K1 * (1 - B + B / per_doc))
        return constant(query, score * boost)

    # ------------------------------------------------------------------ values per field

    def _number(self, field, value, lenient):
        """``value`` as a term of the field's type, read as Elasticsearch reads one: an
        integer field matches nothing for a value with a decimal part (or not finite) and
        refuses one outside its type; a floating-point field refuses a value not finite; a
        boolean takes ``true``/``false`` only (JSON, or those exact strings). None when the
        value cannot be one and ``lenient``; else a ``QueryError`` with Elasticsearch's reason."""
        try:
            if field.kind == "int":
                return self._integer_term(field, value)
            if field.kind == "float":
                return self._float_term(field, value)
            return self._boolean_term(value)
        except QueryError:
            if lenient:
                return None
            raise

    def _not_a_number(self, field, value):
        return QueryError(f"failed to create query: For input string: \"{self._keyword_text(value)}\" "
                          f"on field [{field.name}] of type [{field.es_type}]")

    def _integer_term(self, field, value):
        number = exact_integer(value)
        if number is None:
            try:
                double = java_double(value)
            except ValueError:
                raise self._not_a_number(field, value) from None
            if not math.isfinite(double) or not double.is_integer():
                return _NOT_INTEGRAL
            number = int(double)
        if not self._in_integer_range(field, number):
            raise self._out_of_range(field, value)
        return number

    @staticmethod
    def _in_integer_range(field, number):
        low, high = INTEGER_RANGES.get(field.es_type, INTEGER_RANGES["long"])
        return low <= number <= high

    def _out_of_range(self, field, value):
        article = "an" if field.es_type[0] in "aeiou" else "a"
        return QueryError(f"failed to create query: Value [{self._keyword_text(value)}] is out of range "
                          f"for {article} {field.es_type}")

    def _float_term(self, field, value):
        try:
            number = java_double(value)
        except ValueError:
            raise self._not_a_number(field, value) from None
        if not math.isfinite(number):
            shown = "NaN" if math.isnan(number) else "Infinity" if number > 0 else "-Infinity"
            raise QueryError(f"failed to create query: [{field.es_type}] supports only finite values, "
                             f"but got [{shown}]")
        return number

    def _boolean_term(self, value):
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise QueryError(f"failed to create query: Can't parse boolean value [{self._keyword_text(value)}], "
                         f"expected [true] or [false]")

    def _keyword_text(self, value):
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def term(self, field, value, lenient=False):
        """Exact term (ES ``term``: keyword normalizers apply, text is not analysed).
        A value the field cannot take matches nothing when ``lenient``."""
        if field.kind == "text":
            return self.text_term(field, self._keyword_text(value))
        if field.kind == "keyword":
            text = self._keyword_text(value)
            normalizer = self.analyzer(field) if field is not ID_FIELD else None
            return self.keyword_term(field, normalizer.normalize(text) if normalizer else text)
        number = self._number(field, value, lenient)
        if number is None:
            return none()
        if number is _NOT_INTEGRAL:
            return none()
        self.count_clause()
        return constant(Q.term_query(self.schema, field.tname, number))

    def match(self, field, value, operator="or", lenient=False, analyzer=None):
        """ES ``match`` (boolean) on one field: the text analysed by the field's search
        analyzer (or ``analyzer``), its tokens combined with the operator. None when
        analysis leaves no token."""
        text = self._keyword_text(value)
        chain = self.analyzer(field, analyzer)
        if chain is None or (field.kind == "keyword" and analyzer is None):
            return self.term(field, text, lenient)
        tokens = chain.tokens(text)
        if not tokens:
            return None
        queries = [self.term(field, token, lenient) for token in tokens]
        if len(queries) == 1:
            return queries[0]
        occur = MUST if str(operator).lower() == "and" else SHOULD
        return boolean([(occur, q) for q in queries])

    def phrase(self, field, value, slop=0, lenient=False, analyzer=None):
        """ES ``match_phrase`` on one field."""
        text = self._keyword_text(value)
        chain = self.analyzer(field, analyzer)
        if chain is None or (field.kind == "keyword" and analyzer is None):
            return self.term(field, text, lenient)
        tokens = chain.tokens(text)
        if not tokens:
            return None
        if len(tokens) == 1:
            return self.term(field, tokens[0], lenient)
        if field.kind != "text":
            if lenient:
                return none()
            raise QueryError(f"field:[{field.name}] was indexed without position data; cannot run PhraseQuery")
        self.count_clause(len(tokens))
        query = Q.phrase_query(self.schema, field.tname, tokens, slop=int(slop or 0))
        dfs = [self.searcher.doc_freq(field.tname, t) for t in tokens]
        if not all(dfs):
            return query
        lucene = sum(idf(self.doc_count(field), df) for df in dfs)
        tantivy_idfs = [idf(self.searcher.num_docs, df) for df in dfs]
        if slop:  # tantivy counts the matches, Lucene weighs each by its distance
            rescored = lucene_sloppy_phrase(self, field, tokens, int(slop), query, lucene, tantivy_idfs, K1, B)
            if rescored is not None:
                return rescored
        return Q.boost_query(query, lucene / (sum(tantivy_idfs) * (1 + K1)))

    def _not_a_string(self, field, what, lenient):
        if lenient:
            return none()
        raise QueryError(f"Can only use {what} queries on keyword and text fields - not on "
                         f"[{field.name}] which is of type [{field.es_type}]")

    def regex(self, field, pattern, lenient=False, kind="regexp"):
        """A tantivy regex (already translated) on a keyword or text field; ``kind``: the
        query named when the field is neither."""
        if field.kind not in ("text", "keyword"):
            return self._not_a_string(field, kind, lenient)
        self.count_clause()
        return constant(self.layout.automaton(self.schema, field.tname, pattern))

    def regexp(self, field, pattern, lenient=False, case_insensitive=False, normalize=False):
        """Lucene regular expression syntax on one field; ``normalize``: the pattern goes through
        the field's normalizer first, as the term-level queries on a keyword do in Elasticsearch."""
        if len(pattern) > MAX_REGEX_LENGTH:
            raise QueryError(f"The length of regex [{len(pattern)}] used in the query has exceeded "
                             f"the allowed maximum of [{MAX_REGEX_LENGTH}].")
        if normalize and field is not ID_FIELD:
            chain = self.analyzer(field)
            pattern = chain.normalize(pattern) if chain else pattern
        translated = lucene_regex(pattern)
        return self.regex(field, ("(?i)" if case_insensitive else "") + translated, lenient)

    def wildcard(self, field, pattern, lenient=False, case_insensitive=False, normalize=True):
        """``normalize``: the field's normalizer / search analyzer applies between the
        wildcards, as query_string does (the term-level ``wildcard`` query: on keywords only)."""
        if pattern == "*":
            return self.exists(field.name)
        if field.kind not in ("text", "keyword"):
            return self._not_a_string(field, "wildcard", lenient)
        if normalize and field is not ID_FIELD:
            pattern = normalize_wildcard(pattern, self.analyzer(field))
        return self.regex(field, ("(?i)" if case_insensitive else "") + wildcard_to_regex(pattern), lenient)

    def prefix(self, field, value, lenient=False, case_insensitive=False, normalize=True):
        value = self._keyword_text(value)
        if field.kind not in ("text", "keyword"):
            return self._not_a_string(field, "prefix", lenient)
        if normalize and field is not ID_FIELD:
            chain = self.analyzer(field)
            value = chain.normalize(value) if chain else value
        return self.regex(field, ("(?i)" if case_insensitive else "") + regex_escape(value) + "(?s:.)*", lenient)

    def fuzzy(self, field, value, distance=None, lenient=False, normalize=True,
              max_expansions=DEFAULT_MAX_EXPANSIONS, prefix_length=0, transpositions=True):
        """Lucene's ``FuzzyQuery``: the ``max_expansions`` terms nearest to ``value``
        (``distance`` edits at most, None for AUTO), scored with their blended frequency."""
        text = self._keyword_text(value)
        if field.kind not in ("text", "keyword"):
            return self._not_a_string(field, "fuzzy", lenient)
        edits = auto_distance(text) if distance is None else int(distance)
        if edits not in (0, 1, 2):
            raise QueryError(f"Valid edit distances are [0, 1, 2] but was [{edits}]")
        if normalize and field is not ID_FIELD:
            chain = self.analyzer(field)
            text = chain.normalize(text) if chain else text
        if edits == 0:
            return self.term(field, text) if field.kind == "text" else self.keyword_term(field, text)
        expansions = self.expand(field, text, edits, max_expansions, prefix_length, transpositions)
        if not expansions:
            return none()
        blended = max(df for _term, df, _boost in expansions)
        build = self.text_term if field.kind == "text" else self.keyword_term
        queries = [build(field, term, blended_df=blended, boost=boost) for term, _df, boost in expansions]
        return queries[0] if len(queries) == 1 else boolean([(SHOULD, q) for q in queries])

    def expand(self, field, text, edits, max_expansions, prefix_length, transpositions):
        """``[(term, doc freq, boost)]``: terms within ``edits`` of ``text``, the best
        ``max_expansions`` by similarity then term, as Lucene's top-terms rewrite keeps them."""
        try:
            max_expansions = int(max_expansions)
            prefix_length = int(prefix_length)
        except (TypeError, ValueError):
            raise QueryError("[fuzzy] max_expansions and prefix_length must be integers")
        if max_expansions < 1:
            raise QueryError("[fuzzy] max_expansions must be positive")
        terms = self.layout.terms(self.searcher, field.tname)
        if prefix_length:
            prefix = text[:prefix_length]
            choices = [t for t in terms if t.startswith(prefix)]
        else:
            choices = terms
        if transpositions:
            scorer = OSA.distance
        else:
            from rapidfuzz.distance import Levenshtein
            scorer = Levenshtein.distance
        found = fuzzy_process.extract(text, choices, scorer=scorer, score_cutoff=edits, limit=None)
        length = len(text)
        ranked = []
        for term, distance, _index in found:
            if distance == 0:
                boost = 1.0
            else:
                boost = 1.0 - distance / min(len(term), length) if min(len(term), length) else 0.0
            ranked.append((-boost, term))
        ranked.sort()
        out = []
        for negative_boost, term in ranked[:max_expansions]:
            out.append((term, self.searcher.doc_freq(field.tname, term), max(-negative_boost, 0.0)))
        return out

    def exists(self, name):
        if name == ID or name in ("*",):
            return everything()
        if "*" in name or "?" in name:
            names = [n for n in list(self.layout.fields) + list(self.layout.objects)
                     if fnmatch.fnmatchcase(n, name)]
        else:
            names = [name]
        names = [n for n in names if n in self.layout.fields or n in self.layout.objects]
        if not names:
            return none()
        self.count_clause()
        if len(names) == 1:
            query = Q.term_query(self.schema, FIELDS, names[0])
        else:
            query = Q.term_set_query(self.schema, FIELDS, names)
        return constant(query)

    def range(self, field, gt=None, gte=None, lt=None, lte=None, lenient=False, normalize=False):
        """ES ``range``; ``normalize``: bounds go through the field's normalizer or
        search analyzer (query_string ranges). Constant score 1."""
        lower, include_lower = (gte, True) if gte is not None else (gt, False)
        upper, include_upper = (lte, True) if lte is not None else (lt, False)
        if field is ID_FIELD:
            if lenient:
                return none()
            raise QueryError("Field [_id] of type [_id] does not support range queries")
        if lower is None and upper is None:
            return self.exists(field.name)
        if field.kind in ("int", "float"):
            return self._numeric_range(field, lower, include_lower, upper, include_upper, lenient)
        if field.kind == "bool":
            bounds = [self._number(field, b, lenient) if b is not None else None for b in (lower, upper)]
            if any(bound is None for bound, given in zip(bounds, (lower, upper)) if given is not None):
                return none()  # a bound no boolean can be, and lenient
            values = [v for v in (False, True)
                      if _in_range(v, bounds[0], include_lower, bounds[1], include_upper)]
            return self._set(field, values)
        lower = None if lower is None else self._keyword_text(lower)
        upper = None if upper is None else self._keyword_text(upper)
        if normalize:
            chain = self.analyzer(field)
            if chain is not None:
                lower = None if lower is None else chain.normalize(lower)
                upper = None if upper is None else chain.normalize(upper)
        if lower is not None and upper is not None and (
                lower > upper or (lower == upper and not (include_lower and include_upper))):
            return none()
        self.count_clause()
        pattern = string_range_regex(lower, include_lower, upper, include_upper)
        if pattern is None:
            return none()
        return constant(self.layout.automaton(self.schema, field.tname, pattern))

    def _set(self, field, values):
        if not values:
            return none()
        self.count_clause()
        return constant(Q.term_set_query(self.schema, field.tname, values))

    def _numeric_range(self, field, lower, include_lower, upper, include_upper, lenient):
        def bound(value, is_lower, inclusive):
            if value is None:
                return None, True
            if field.kind == "float":
                number = self._number(field, value, lenient)
                return ("bad", True) if number is None else (number, inclusive)
            try:
                number = java_double(value)
            except ValueError:
                if lenient:
                    return "bad", True
                raise self._not_a_number(field, value) from None
            if math.isnan(number):
                return None, True
            exact = exact_integer(value)
            if not self._in_integer_range(field, number if exact is None else exact):  # infinities too
                if lenient:
                    return "bad", True
                raise self._out_of_range(field, value)
            if exact is not None:
                return exact, inclusive
            if number.is_integer():
                return int(number), inclusive
            # 5.5: > or >= -> >= 6; < or <= -> <= 5
            return (math.ceil(number), True) if is_lower else (math.floor(number), True)

        low, include_lower = bound(lower, True, include_lower)
        high, include_upper = bound(upper, False, include_upper)
        if low == "bad" or high == "bad":
            return none()
        if low is None and high is None:
            return self.exists(field.name)
        if field.kind == "int":
            # exclusive integer bounds are turned inclusive (tantivy checks them the same)
            if low is not None and not include_lower:
                low, include_lower = low + 1, True
            if high is not None and not include_upper:
                high, include_upper = high - 1, True
            lowest, highest = INTEGER_RANGES["long"]  # every integer field is kept as a long
            if (low is not None and low > highest) or (high is not None and high < lowest):
                return none()  # a step past the type (gt its largest value): Lucene's MatchNoDocsQuery
            if low is not None and high is not None and low > high:
                return none()
            ftype = tantivy.FieldType.Integer
        else:
            if low is not None and high is not None and (low > high or (
                    low == high and not (include_lower and include_upper))):
                return none()
            ftype = tantivy.FieldType.Float
        self.count_clause()
        return constant(Q.range_query(self.schema, field.tname, ftype, low, high, include_lower, include_upper))

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
        except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
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
        # more than there are should clauses (none at all too): Lucene matches nothing; an empty
        # bool is match_all before minimum_should_match applies (Elasticsearch's BoolQueryBuilder)
        if minimum is not None and minimum > len(shoulds) and (clauses or shoulds or nots):
            return none()
        clauses.extend((SHOULD, q) for q in shoulds)
        if not clauses:  # every document, scored 1 (an empty bool) or 0 (must_not only: a filter)
            clauses.append((MUST, Q.const_score_query(everything(), 0.0 if nots else 1.0)))
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
        """Its query in a random order (``random_score``); other score functions, and what
        only they use, are refused rather than ignored."""
        unknown = set(spec) - FUNCTION_SCORE_KEYS
        if unknown:
            raise QueryError(f"[function_score] [{sorted(unknown)[0]}] is not supported by the embedded engine "
                             f"(only random_score)")
        query = self.compile(spec.get("query", {"match_all": {}}))
        random_score = spec.get("random_score")
        for function in spec.get("functions") or []:
            other = set(function) - {"random_score"} if isinstance(function, dict) else {"a function"}
            if other:
                raise QueryError(f"[function_score] function [{sorted(other)[0]}] is not supported by the embedded "
                                 f"engine (only random_score)")
            if random_score is None:
                random_score = function["random_score"]
        if random_score is not None:
            self.random = {"seed": (random_score or {}).get("seed")}
        return boosted(query, spec.get("boost"))

    def q_nested(self, spec):
        # objects are flattened (ES "object" semantics): a nested query is its inner query
        return self.compile(spec.get("query"))

    def q_ids(self, spec):
        if not isinstance(spec, dict):
            raise QueryError("[ids] query malformed, no start_object after query name")
        unknown = set(spec) - {"values", "boost", "_name"}
        if unknown:
            raise QueryError(f"[ids] query does not support [{sorted(unknown)[0]}]")
        values = [str(v) for v in spec.get("values") or ()]
        if not values:
            return none()
        return boosted(Q.const_score_query(Q.term_set_query(self.schema, ID, values), 1.0), spec.get("boost"))

    @staticmethod
    def _field_spec(kind, spec, value_key="value"):
        """``{"field": value}`` or ``{"field": {"value": ..., ...}}`` -> (field, value, options),
        refused as Elasticsearch refuses it: a second key beside the field (``boost`` too: it
        belongs in the object form), an option the query does not have, or one it has that
        this engine does not run (it would answer other hits, silently)."""
        if not isinstance(spec, dict) or not spec:
            raise QueryError("field name is null or empty")
        names = list(spec)
        if len(names) > 1:
            raise QueryError(f"[{kind}] query doesn't support multiple fields, found [{names[0]}] and [{names[1]}]")
        name, value = names[0], spec[names[0]]
        options = {}
        if isinstance(value, dict):
            options = dict(value)
            unsupported = UNSUPPORTED_FIELD_OPTIONS.get(kind, {})
            for option, given in options.items():
                if option in unsupported:
                    if str(given).lower() not in unsupported[option]:
                        raise QueryError(f"[{kind}] option [{option}] is not supported by the embedded engine")
                elif option not in FIELD_QUERY_OPTIONS[kind]:
                    raise QueryError(f"[{kind}] query does not support [{option}]")
            value = options.pop(value_key, None)
        return name, value, options

    def _per_field(self, name, build):
        query = disjunction([build(field) for field in self.resolve(name)])
        return none() if query is None else query

    def q_term(self, spec):
        name, value, options = self._field_spec("term", spec)
        if value is None:
            raise QueryError("[term] query requires a value")
        insensitive = options.get("case_insensitive")
        if insensitive:
            return boosted(self._per_field(name, lambda f: self.regex(
                f, "(?i)" + regex_escape(self._keyword_text(value)))), options.get("boost"))
        return boosted(self._per_field(name, lambda f: self.term(f, value)), options.get("boost"))

    def q_terms(self, spec):
        options = {k: v for k, v in spec.items() if k in ("boost", "_name")}
        items = [(k, v) for k, v in spec.items() if k not in ("boost", "_name")]
        if len(items) != 1 or not isinstance(items[0][1], list):
            raise QueryError("[terms] query expects one field with a list of values")
        name, values = items[0]

        def build(field):
            if field.kind == "text":
                converted = [self._keyword_text(v) for v in values]
            elif field.kind == "keyword":
                chain = self.analyzer(field) if field is not ID_FIELD else None
                converted = [chain.normalize(self._keyword_text(v)) if chain else self._keyword_text(v)
                             for v in values]
            else:
                converted = [n for n in (self._number(field, v, False) for v in values)
                             if n is not None and n is not _NOT_INTEGRAL]
            return self._set(field, converted)

        return boosted(self._per_field(name, build), options.get("boost"))

    def q_range(self, spec):
        if len(spec) != 1:
            raise QueryError("[range] query expects exactly one field")
        (name, bounds), = spec.items()
        if not isinstance(bounds, dict):  # Elasticsearch's words for a field given a value
            raise QueryError(f"[range] query does not support [{name}]")
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
        name, value, options = self._field_spec("prefix", spec)
        insensitive = bool(options.get("case_insensitive", False))
        return boosted(self._per_field(name, lambda f: self.prefix(f, value, False, insensitive,
                                                                 normalize=f.kind == "keyword")),
                       options.get("boost"))

    def q_wildcard(self, spec):
        name, value, options = self._field_spec("wildcard", spec)
        if value is None:
            value = options.get("wildcard")
        insensitive = bool(options.get("case_insensitive", False))
        return boosted(self._per_field(name, lambda f: self.wildcard(f, str(value), False, insensitive,
                                                                   normalize=f.kind == "keyword")),
                       options.get("boost"))

    def q_regexp(self, spec):
        name, value, options = self._field_spec("regexp", spec)
        insensitive = bool(options.get("case_insensitive"))
        return boosted(self._per_field(name, lambda f: self.regexp(f, str(value), False, insensitive,
                                                                 normalize=f.kind == "keyword")),
                       options.get("boost"))

    def q_fuzzy(self, spec):
        """A term-level query: the value is not analyzed, but a keyword's normalizer applies
        (Elasticsearch: ``indexedValueForSearch``), as in prefix, wildcard and regexp."""
        name, value, options = self._field_spec("fuzzy", spec)
        distance = fuzziness_edits(options.get("fuzziness", "AUTO"), self._keyword_text(value))
        return boosted(self._per_field(name, lambda f: self.fuzzy(
            f, value, distance, normalize=f.kind == "keyword",
            max_expansions=options.get("max_expansions", DEFAULT_MAX_EXPANSIONS),
            prefix_length=options.get("prefix_length", 0),
            transpositions=options.get("transpositions", True))), options.get("boost"))

    def q_match(self, spec):
        name, value, options = self._field_spec("match", spec, value_key="query")
        if value is None:
            raise QueryError("[match] query requires a [query]")
        operator = options.get("operator", "or")
        lenient = bool(options.get("lenient", False))
        analyzer = options.get("analyzer")
        return boosted(self._per_field(name, lambda f: self.match(f, value, operator, lenient, analyzer)),
                       options.get("boost"))

    def q_match_phrase(self, spec):
        name, value, options = self._field_spec("match_phrase", spec, value_key="query")
        slop = options.get("slop", 0)
        analyzer = options.get("analyzer")
        return boosted(self._per_field(name, lambda f: self.phrase(f, value, slop, False, analyzer)),
                       options.get("boost"))

    def q_multi_match(self, spec):
        if "query" not in spec:
            raise QueryError("[multi_match] requires a [query]")
        value = spec["query"]
        fields = spec.get("fields") or ["*"]
        operator = spec.get("operator", "or")
        lenient = spec.get("lenient")  # ES: all fields ("*") are searched leniently unless told
        lenient = bool(lenient) if lenient is not None else any(str(f).partition("^")[0] == "*" for f in fields)
        analyzer = spec.get("analyzer")
        kind = spec.get("type", "best_fields")
        if kind not in ("best_fields", "phrase"):
            raise QueryError(f"[multi_match] type [{kind}] is not supported by the embedded engine")
        queries = []
        for field, boost in self.default_fields(fields):
            if kind == "phrase":
                query = self.phrase(field, value, spec.get("slop", 0), lenient, analyzer)
            else:
                query = self.match(field, value, operator, lenient, analyzer)
            if query is not None:
                queries.append(boosted(query, boost))
        query = disjunction(queries, spec.get("tie_breaker"))
        return none() if query is None else boosted(query, spec.get("boost"))

    def q_query_string(self, spec):
        if isinstance(spec, str):
            spec = {"query": spec}
        unknown = set(spec) - QUERY_STRING_OPTIONS
        if unknown:
            raise QueryError(f"[query_string] query does not support [{sorted(unknown)[0]}]")
        text = spec.get("query")
        if not isinstance(text, str):
            raise QueryError("[query_string] requires a [query] string")
        if spec.get("type", "best_fields") != "best_fields":
            raise QueryError(f"[query_string] type [{spec['type']}] is not supported by the embedded engine")
        if "fields" in spec and spec["fields"]:
            fields = list(spec["fields"])
            default_field = None
        else:
            default_field = spec.get("default_field") or "*"
            fields = [default_field]
        # ES: searching all fields ("*") is implicitly lenient
        lenient = spec.get("lenient")
        lenient = bool(lenient) if lenient is not None else default_field == "*"
        translator = QueryStringTranslator(
            self, self.default_fields(fields), default_field,
            and_default=str(spec.get("default_operator", "OR")).upper() == "AND",
            lenient=lenient, options=spec)
        return boosted(translator.translate(text), spec.get("boost"))

    q_simple_query_string = q_query_string


# query_string options the translator honours (others: a QueryError naming them)
QUERY_STRING_OPTIONS = {
    "query", "fields", "default_field", "default_operator", "lenient", "boost", "analyzer",
    "quote_analyzer", "fuzziness", "fuzzy_max_expansions", "fuzzy_prefix_length",
    "fuzzy_transpositions", "phrase_slop", "tie_breaker", "allow_leading_wildcard", "type",
    "analyze_wildcard", "auto_generate_synonyms_phrase_query", "enable_position_increments",
    "max_determinized_states", "rewrite", "fuzzy_rewrite", "time_zone", "escape", "_name",
}

_NOT_INTEGRAL = object()  # a number with decimals for an integer field: matches nothing

# What Java's Double.parseDouble reads, which Elasticsearch reads numbers with: no Python
# spellings (``inf``, ``1_000``), a trailing ``d`` or ``f`` allowed, spaces around ignored.
_JAVA_DOUBLE = re.compile(r"[+-]?(?:NaN|Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fFdD]?)")
_DIGITS = re.compile(r"[+-]?[0-9]+")  # a whole number as a long reads it exactly


def exact_integer(value):
    """``value`` read exactly when it is written as a whole number (a JSON integer, or a
    string of digits), as Elasticsearch reads a long: a long has more digits than a double
    keeps (9223372036854775807 is 2**63 as a double). None for any other value."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        return int(value)
    return None


def java_double(value):
    """A JSON number, or a string as Java's ``Double.parseDouble`` reads it; ValueError
    for anything else (booleans included: Elasticsearch reads ``true`` as the text "true")."""
    if isinstance(value, str):
        text = value.strip()
        if not _JAVA_DOUBLE.fullmatch(text):
            raise ValueError(value)
        return float(text.rstrip("fFdD"))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(value)
    try:
        return float(value)
    except OverflowError:  # an integer past any double: Java's BigInteger.doubleValue()
        return math.inf if value > 0 else -math.inf


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


def auto_distance(text, low=3, high=6):
    """Elasticsearch's ``AUTO`` fuzziness: 0 edits under 3 characters, 1 under 6, else 2."""
    length = len(text)
    return 0 if length < low else (1 if length < high else 2)


def fuzziness_edits(fuzziness, text):
    """ES ``fuzziness`` (``AUTO``, ``AUTO:3,6``, 0, 1, 2) -> edits for ``text``."""
    spec = str(fuzziness if fuzziness is not None else "AUTO").strip().upper()
    if spec.startswith("AUTO"):
        low, high = 3, 6
        if spec.startswith("AUTO:"):
            try:
                low, high = (int(part) for part in spec[5:].split(","))
            except ValueError:
                raise QueryError(f"failed to parse [AUTO:] fuzziness [{fuzziness}]")
        return auto_distance(text, low, high)
    try:
        value = float(spec)
    except ValueError:
        raise QueryError(f"invalid fuzziness [{fuzziness}]")
    if value < 0:
        raise QueryError(f"invalid fuzziness [{fuzziness}]")
    return min(2, int(value))


def _in_range(value, lower, include_lower, upper, include_upper):
    if lower is not None and (value < lower or (value == lower and not include_lower)):
        return False
    if upper is not None and (value > upper or (value == upper and not include_upper)):
        return False
    return True


# ---------------------------------------------------------------------- Lucene regular expressions

_LUCENE_REGEX_TOKEN = re.compile(r'\\(.)|"([^"]*)"|(\[)|([.@#])|([()|?*+])|(\{[0-9]*(?:,[0-9]*)?\})|(<|~|&)|(.)',
                                 re.S)


def lucene_regex(pattern):
    """Lucene ``RegExp`` syntax (what ES regexp and ``/.../`` use) -> tantivy's regex.

    ``\\x`` is the character x (no ``\\d`` classes), ``"..."`` a literal string, ``.``
    any character, ``@`` any string; ``^`` and ``$`` are plain characters, and so is an
    operator with nothing before it to repeat or join (``*a``, ``(|a)``). The empty language
    (``#``), complement (``~``), intersection (``&``) and numeric intervals (``<1-10>``) have
    no equivalent in tantivy: refused rather than misread."""
    out = []
    position = 0
    starts = True  # where an expression starts (Lucene's parseSimpleExp): the beginning, after ( or |
    while position < len(pattern):
        if pattern[position] == "[":
            end, translated = _lucene_class(pattern, position)
            out.append(translated)
            position = end
            starts = False
            continue
        match = _LUCENE_REGEX_TOKEN.match(pattern, position)
        escaped, quoted, _bracket, special, operator, repeat, unsupported, char = match.groups()
        position = match.end()
        opens = operator in ("(", "|")
        if starts and (repeat is not None or operator in ("?", "*", "+", "|")
                       or (operator == ")" and out[-1:] != ["("])):
            # nothing to repeat or to join yet: Lucene reads the operator as the character itself
            out.append("".join(map(_literal, match.group())))
            starts = False
            continue
        starts = opens
        if escaped is not None:
            out.append(_literal(escaped))
        elif quoted is not None:
            out.append("(?:" + "".join(map(_literal, quoted)) + ")")
        elif special == ".":
            out.append("(?s:.)")
        elif special == "@":
            out.append("(?s:.)*")
        elif special == "#":  # tantivy's automata have no empty language (an empty class is refused)
            raise QueryError(f"regular expression [{pattern}]: the operator '#' (the empty language) "
                             f"is not supported by the embedded engine")
        elif operator is not None:
            out.append(operator)
        elif repeat is not None:
            out.append(repeat)
        elif unsupported is not None:
            raise QueryError(f"regular expression [{pattern}]: the operator '{unsupported}' "
                             f"(complement, intersection, numeric interval) is not supported by the embedded engine")
        else:
            out.append(_literal(char))
    if starts and out:  # the pattern ends after ( or |
        raise QueryError(f"invalid regular expression [{pattern}]: unexpected end-of-string")
    depth = 0
    for part in out:
        depth += (part == "(") - (part == ")")
        if depth < 0:
            break
    if depth:
        raise QueryError(f"invalid regular expression [{pattern}]: unbalanced parentheses")
    return "".join(out)


def _literal(char):
    return char if char.isalnum() else "\\x{%X}" % ord(char)


def _lucene_class(pattern, start):
    """``[...]`` from ``start``: (end position, tantivy class)."""
    position = start + 1
    out = ["["]
    if position < len(pattern) and pattern[position] == "^":
        out.append("^")
        position += 1
    first = True
    while position < len(pattern):
        char = pattern[position]
        if char == "]" and not first:
            out.append("]")
            return position + 1, "".join(out)
        if char == "\\" and position + 1 < len(pattern):
            char = pattern[position + 1]
            position += 1
        elif char == "-" and not first and position + 1 < len(pattern) and pattern[position + 1] != "]":
            out.append("-")
            position += 1
            first = False
            continue
        out.append(_literal(char))
        position += 1
        first = False
    raise QueryError(f"invalid regular expression [{pattern}]: unterminated character class")


# ---------------------------------------------------------------------- query_string

class QueryStringTranslator:
    """A ``querystring`` tree -> tantivy query, as Elasticsearch's QueryStringQueryParser."""

    def __init__(self, compiler, fields, default_field, and_default, lenient, options=None):
        self.c = compiler
        self.fields = fields              # [(Field, boost)]: the default fields
        self.default_field = default_field  # "*" (all fields), a name, or None (a fields list)
        self.and_default = and_default
        self.lenient = lenient
        options = options or {}
        self.analyzer = options.get("analyzer")
        self.quote_analyzer = options.get("quote_analyzer") or self.analyzer
        self.tie_breaker = options.get("tie_breaker")
        self.fuzziness = options.get("fuzziness", "AUTO")
        self.max_expansions = options.get("fuzzy_max_expansions", DEFAULT_MAX_EXPANSIONS)
        self.prefix_length = options.get("fuzzy_prefix_length", 0)
        self.transpositions = options.get("fuzzy_transpositions", True)
        self.phrase_slop = options.get("phrase_slop", 0)
        self.leading_wildcard = options.get("allow_leading_wildcard", True)
        for name in (self.analyzer, self.quote_analyzer):
            if name is not None:
                compiler.analyzer(None, name)

    def translate(self, text):
        try:
            tree = qs.parse(text, max_depth=MAX_QUERY_DEPTH)
        except qs.QueryStringError as exc:
            raise QueryError(f"Failed to parse query [{text}]: {exc}") from None
        query = self.node(tree)
        return none() if query is None else query

    def node(self, node):
        if isinstance(node, qs.Bool):
            return self.group(node)
        if isinstance(node, qs.Boost):
            query = self.node(node.node)
            return None if query is None else boosted(query, node.boost)
        return getattr(self, "leaf_" + type(node).__name__.lower())(node)

    def group(self, node):
        items = [(conj, mods, self.node(child)) for conj, mods, child in node.items]
        clauses = qs.occurs(items, self.and_default)
        if not clauses:
            return None
        if len(clauses) == 1 and clauses[0][0] != qs.MUST_NOT:
            return clauses[0][1]
        clauses = [(OCCUR[occur], query) for occur, query in clauses]
        if all(occur is MUST_NOT for occur, _ in clauses):
            clauses.append((MUST, constant(everything(), 0.0)))  # ES fixNegativeQueryIfNeeded
        return boolean(clauses)

    # ------------------------------------------------------------------ fields

    def fields_of(self, name):
        """[(Field, boost)] a leaf searches: the default fields, or those ``name`` names."""
        if name is None:
            return self.fields
        if name == "*" and self.default_field == "*":
            return self.fields
        fields = self.c.resolve(name)
        if len(fields) > self.c.max_clauses:
            raise QueryError(f"field expansion for [{name}] matches too many fields, "
                             f"limit: {self.c.max_clauses}, got: {len(fields)}")
        return [(field, None) for field in fields]

    def per_field(self, name, build):
        """dis_max over the fields of ``name`` of ``build(field)``; unmapped: no match."""
        fields = self.fields_of(name)
        if not fields:
            return none()
        queries = []
        for field, boost in fields:
            query = build(field)
            if query is not None:
                queries.append(boosted(query, boost))
        return disjunction(queries, self.tie_breaker)

    # ------------------------------------------------------------------ leaves

    def leaf_text(self, node):
        field, text = node.field, node.text
        if field == "_exists_":
            return self.c.exists(text)
        if field is not None and len(text) > 1 and text[0] in "<>":
            # field:>=10, field:<5: one-sided ranges (Elasticsearch's getFieldQuery)
            inclusive = len(text) > 2 and text[1] == "="
            bound = text[2:] if inclusive else text[1:]
            if text[0] == ">":
                return self.range(field, bound, None, inclusive, True)
            return self.range(field, None, bound, True, inclusive)
        operator = "and" if self.and_default else "or"
        return self.per_field(field, lambda f: self.c.match(f, text, operator, self.lenient, self.analyzer))

    def leaf_phrase(self, node):
        if node.field == "_exists_":
            return self.c.exists(node.text)
        slop = node.slop or self.phrase_slop
        return self.per_field(node.field, lambda f: self.c.phrase(
            f, node.text, slop, self.lenient, self.quote_analyzer))

    def leaf_fuzzy(self, node):
        distance = node.distance
        if distance is None:
            distance = fuzziness_edits(self.fuzziness, node.text)
        return self.per_field(node.field, lambda f: self.c.fuzzy(
            f, node.text, distance, self.lenient, max_expansions=self.max_expansions,
            prefix_length=self.prefix_length, transpositions=self.transpositions))

    def leaf_prefix(self, node):
        return self.per_field(node.field, lambda f: self.c.prefix(f, node.text, self.lenient))

    def leaf_wildcard(self, node):
        field, pattern = node.field, node.pattern
        actual = field if field is not None else self.default_field
        if pattern == "*" and actual is not None:
            return everything() if actual == "*" else self.c.exists(actual)
        if not self.leading_wildcard and pattern[:1] in ("*", "?"):
            raise QueryError("'*' or '?' not allowed as first character in WildcardQuery")
        return self.per_field(field, lambda f: self.c.wildcard(f, pattern, self.lenient))

    def leaf_regexp(self, node):
        if len(node.pattern) > MAX_REGEX_LENGTH:
            raise QueryError(f"The length of regex [{len(node.pattern)}] used in the [query_string] has "
                             f"exceeded the allowed maximum of [{MAX_REGEX_LENGTH}].")
        translated = lucene_regex(node.pattern)
        return self.per_field(node.field, lambda f: self.c.regex(f, translated, self.lenient))

    def leaf_range(self, node):
        return self.range(node.field, node.low, node.high, node.include_low, node.include_high)

    def range(self, field, low, high, include_low, include_high):
        gt, gte = (None, low) if include_low else (low, None)
        lt, lte = (None, high) if include_high else (high, None)
        return self.per_field(field, lambda f: self.c.range(f, gt, gte, lt, lte, self.lenient, normalize=True))
