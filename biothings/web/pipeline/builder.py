"""``ESQueryBuilder``: request options -> Elasticsearch query DSL (a dict).

Each decision is a method a subclass can override: how a string query, a
scoped term, a userquery or the extras (paging, sort, fields, facets) become
DSL. Hot paths build plain dicts: an ``elasticsearch.dsl`` object per clause
costs ~20 us, which a 1,000-term batch would pay 1,000 times; ``elasticsearch.dsl``
is used where it composes clauses of arbitrary shape (userquery filters).
"""

import functools
import glob
import os
import re

import orjson
from elasticsearch.dsl import Q

from biothings.web import querystring
from biothings.web.pipeline.errors import BadRequest

# Suffix of the aggregation counting documents without the faceted field.
MISSING_SUFFIX = "__missing"
_FACET_TOKEN = re.compile(r"\s*([^,()\s]+)\s*(\()?|\s*(\))\s*|\s*,\s*")
# DSL clauses of a userquery template whose values are patterns the guard checks
_PATTERN_CLAUSES = ("wildcard", "regexp", "fuzzy", "prefix")
# what a field name (sort, facets, scopes) may look like: no DSL, no scripts
_FIELD_NAME = re.compile(r"[\w@-][\w.@-]*")
# scopes may also be wildcard patterns of field names (``*``, ``accession.*``), as in
# Elasticsearch's multi_match ``fields``
_SCOPE_NAME = re.compile(r"[\w@*-][\w.@*-]*")


def scope_fields(scopes):
    """The field names of ``scopes`` (a tuple), checked: a batch's terms share their scopes,
    so each distinct tuple is checked once (a bad one raises every time, it is not kept)."""
    try:
        return _checked_scopes(scopes)
    except TypeError:  # an entry that is not hashable (a list, an object) is no field name
        return _check_scopes(scopes)


def _check_scopes(scopes):
    for field in scopes:
        if not isinstance(field, str) or not _SCOPE_NAME.fullmatch(field) or field == "_script":
            raise BadRequest(f"Invalid field name {str(field)[:100]!r} in 'scopes'.", keyword="scopes")
    return scopes


_checked_scopes = functools.lru_cache(maxsize=256)(_check_scopes)
# terms of a batch: scalars only (a JSON object would be handed to the engine as DSL)
_SCALARS = (str, int, float, bool)


def check_field_name(name, keyword):
    """Refuse what cannot be a field name (objects, scripts, DSL fragments)."""
    if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name) or name == "_script":
        raise BadRequest(f"Invalid field name {str(name)[:100]!r} in '{keyword}'.", keyword=keyword)
    return name


def check_term(term, keyword):
    """A batch term is a scalar (or, for compound queries, a list of scalars)."""
    if not isinstance(term, _SCALARS) or term is None:
        raise BadRequest(f"Query terms must be strings or numbers, got {type(term).__name__}.", keyword=keyword)
    return term


def parse_facets(specs):
    """``["a(b(c))", "d"]`` -> ``[("a", [("b", [("c", [])])]), ("d", [])]``."""
    text = ",".join(str(spec) for spec in specs)
    stack, root, position = [], [], 0
    current = root
    while position < len(text):
        match = _FACET_TOKEN.match(text, position)
        if not match or match.end() == position:
            raise BadRequest(f"Invalid facets near {text[position:position + 20]!r}.", keyword="facets")
        name, opening, closing = match.groups()
        position = match.end()
        if name:
            children = []
            current.append((name, children))
            if opening:
                stack.append(current)
                current = children
        elif closing:
            if not stack:
                raise BadRequest("Unbalanced parentheses in facets.", keyword="facets")
            current = stack.pop()
    if stack:
        raise BadRequest("Unbalanced parentheses in facets.", keyword="facets")
    return root


def _buckets(facets, size):
    """Most buckets a facet tree can return: size per facet, times its children's."""
    return sum(size * (1 + _buckets(children, size)) for _, children in facets)


def _depth(facets):
    return 1 + max(_depth(children) for _, children in facets) if facets else 0


class ESQueryBuilder:
    """Build the engine query of a request; see ``build``."""

    def __init__(self, web_settings):
        self.web_settings = web_settings
        self.id_rules = web_settings.annotation_id_rules
        self._userqueries = {}

    # ---------------------------------------------------------- entry point
    def build(self, q, options):
        """The DSL to run: a dict for one search, a list of dicts for a batch
        (``q`` a list), or ``{"scroll_id": ...}`` to continue a scroll."""
        if options.scroll_id:
            return {"scroll_id": options.scroll_id}
        if isinstance(q, list):
            return self.build_batch(q, options)
        if options.annotation:
            return self.build_term(q, options)
        return self.build_search(q, options)

    # ---------------------------------------------------------- single search
    def build_search(self, q, options):
        """GET query: q string -> search body with all extras applied."""
        if options.userquery:
            query = self.build_userquery(options.userquery, q, options)
        else:
            query = self.build_string_query(q, options)
        self.check_answer_hits(1, options)
        return self.apply_extras({"query": query}, options)

    def build_string_query(self, q, options):
        """``__all__``, ``__any__``, empty string or a Lucene query string."""
        if q is None or q == "":
            return {"match_none": {}}
        if q == "__all__":
            return {"match_all": {}}
        if q == "__any__" and self.web_settings.ALLOW_RANDOM_QUERY:
            return {"function_score": {"query": {"match_all": {}}, "random_score": {}, "boost_mode": "replace"}}
        self.check_query_string(q, "q")
        return {"query_string": {"query": q, "default_operator": "AND", "lenient": True}}

    def check_query_string(self, q, keyword):
        """Refuse query strings too long, malformed, or too costly to run.

        The checks read the parsed query (``biothings.web.querystring``), not the
        raw text, so ``a&&*ase`` or ``name:/(.*)ase/`` cannot slip past them."""
        limit = self.web_settings.MAX_QUERY_LENGTH
        if len(q) > limit:
            raise BadRequest(f"Query string too long: {len(q)} characters, the maximum is {limit}.",
                             keyword=keyword, max=limit, num=len(q))
        self.check_parsed(self.parse_query_string(q, keyword), keyword)

    def parse_query_string(self, q, keyword):
        """The syntax tree of ``q``; a syntax error or too deep a nesting is a 400."""
        depth = self.web_settings.MAX_QUERY_DEPTH
        try:
            return querystring.parse(q, max_depth=depth)
        except querystring.QueryStringError as exc:
            details = {"max": depth} if "deeper than" in str(exc) else {}
            raise BadRequest(f"Failed to parse query [{q[:200]}]: {exc}", keyword=keyword, **details) from None

    def check_parsed(self, tree, keyword):
        """Clause count, regex length and the expensive kinds of leaves of a parsed query."""
        settings = self.web_settings
        expensive = settings.ALLOW_EXPENSIVE_QUERIES
        leading = expensive or settings.ALLOW_LEADING_WILDCARD
        leaves = list(querystring.leaves(tree))
        if len(leaves) > settings.MAX_QUERY_CLAUSES:
            raise BadRequest(f"The query holds {len(leaves)} clauses, the maximum is {settings.MAX_QUERY_CLAUSES}.",
                             keyword=keyword, max=settings.MAX_QUERY_CLAUSES, num=len(leaves))
        fuzzy = 0
        for leaf in leaves:
            if isinstance(leaf, querystring.Regexp):
                self.check_regexp(leaf.pattern, keyword)
            elif isinstance(leaf, querystring.Wildcard) and not leading and leaf.pattern != "*" \
                    and leaf.pattern[:1] in ("*", "?"):
                raise BadRequest("Leading wildcards are not allowed in queries (ALLOW_EXPENSIVE_QUERIES).",
                                 keyword=keyword)
            elif isinstance(leaf, querystring.Fuzzy):
                fuzzy += 1
            elif isinstance(leaf, querystring.Range) and not expensive and self.is_text_field(leaf.field):
                raise BadRequest(f"Ranges over text fields are expensive queries, disabled on this API "
                                 f"(ALLOW_EXPENSIVE_QUERIES): [{leaf.field or 'default fields'}].", keyword=keyword)
        if not expensive and fuzzy > settings.MAX_FUZZY_TERMS:
            raise BadRequest(f"The query holds {fuzzy} fuzzy terms, the maximum is {settings.MAX_FUZZY_TERMS} "
                             f"(ALLOW_EXPENSIVE_QUERIES).", keyword=keyword, max=settings.MAX_FUZZY_TERMS, num=fuzzy)

    def check_regexp(self, pattern, keyword):
        settings = self.web_settings
        if not settings.ALLOW_EXPENSIVE_QUERIES:
            raise BadRequest("Regular expressions are expensive queries, disabled on this API "
                             "(ALLOW_EXPENSIVE_QUERIES).", keyword=keyword)
        if len(pattern) > settings.MAX_REGEX_LENGTH:
            raise BadRequest(f"Regular expression too long: {len(pattern)} characters, the maximum is "
                             f"{settings.MAX_REGEX_LENGTH}.", keyword=keyword,
                             max=settings.MAX_REGEX_LENGTH, num=len(pattern))

    def is_text_field(self, name):
        """Whether ``name`` (None: the default fields; a pattern) may designate a text field."""
        types = self.web_settings.metadata.field_types()
        if name is None or name == "*":
            return "text" in types.values() or not types
        if "*" in name or "?" in name:
            import fnmatch
            return any(kind == "text" for field, kind in types.items() if fnmatch.fnmatchcase(field, name))
        return types.get(name) == "text"

    def check_dsl(self, dsl, keyword):
        """The query-string and pattern checks over every clause of a DSL tree (userquery
        templates: the client's text lands inside them)."""
        stack = [dsl]
        while stack:
            node = stack.pop()
            if isinstance(node, list):
                stack.extend(node)
                continue
            if not isinstance(node, dict):
                continue
            for kind, spec in node.items():
                if kind in ("query_string", "simple_query_string") and isinstance(spec, dict) \
                        and isinstance(spec.get("query"), str):
                    self.check_parsed(self.parse_query_string(spec["query"], keyword), keyword)
                elif kind in _PATTERN_CLAUSES and isinstance(spec, dict):
                    self.check_pattern_clause(kind, spec, keyword)
                else:
                    stack.append(spec)

    def check_pattern_clause(self, kind, spec, keyword):
        """A ``wildcard``/``regexp``/``fuzzy``/``prefix`` clause of a template."""
        for value in spec.values():
            if isinstance(value, dict):
                value = value.get("value", value.get("wildcard"))
            if not isinstance(value, str):
                continue
            if kind == "regexp":
                self.check_regexp(value, keyword)
            elif kind == "wildcard" and value[:1] in ("*", "?") and not (
                    self.web_settings.ALLOW_EXPENSIVE_QUERIES or self.web_settings.ALLOW_LEADING_WILDCARD):
                raise BadRequest("Leading wildcards are not allowed in queries (ALLOW_EXPENSIVE_QUERIES).",
                                 keyword=keyword)

    def build_userquery(self, name, q, options):
        """A named query template from ``USERQUERY_DIR/name``; ``{{q}}`` gets q."""
        query, query_filter = self.load_userquery(name)
        text = orjson.dumps("" if q is None else q).decode()[1:-1]
        try:
            built = Q(orjson.loads(query.replace("{{q}}", text))) if query else None
            filtered = Q(orjson.loads(query_filter.replace("{{q}}", text))) if query_filter else None
        except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
            raise BadRequest(f"Userquery '{name}' is not a valid query: {exc}", keyword="userquery") from None
        if built is None:
            built = Q(self.build_string_query(q, options)) if q is not None else Q("match_all")
        if filtered is not None:
            built = Q("bool", must=[built], filter=[filtered])
        if q is not None:
            limit = self.web_settings.MAX_QUERY_LENGTH
            if len(q) > limit:
                raise BadRequest(f"Query string too long: {len(q)} characters, the maximum is {limit}.",
                                 keyword="q", max=limit, num=len(q))
        dsl = built.to_dict()
        self.check_dsl(dsl, "q")
        return dsl

    def load_userquery(self, name):
        """``(query text, filter text)`` of a template, read once and cached."""
        if name in self._userqueries:
            return self._userqueries[name]
        directory = self.web_settings.USERQUERY_DIR
        if not directory or not re.fullmatch(r"[\w.-]+", name) or name.startswith("."):
            raise BadRequest(f"Unknown userquery '{name}'.", keyword="userquery")
        folder = os.path.join(directory, name)
        if not os.path.isdir(folder):
            raise BadRequest(f"Unknown userquery '{name}'.", keyword="userquery")

        def read(pattern):
            files = sorted(glob.glob(os.path.join(folder, pattern)))
            if not files:
                return None
            with open(files[0], encoding="utf-8") as handle:
                return handle.read()

        found = self._userqueries[name] = (read("query*.txt"), read("filter*.txt"))
        return found

    # ---------------------------------------------------------- batches
    def build_batch(self, terms, options):
        """One search body per term. The extras hang on the options alone, so a
        batch works them out once (``options.batch_extras``), not once per term."""
        self.check_answer_hits(len(terms), options)
        options.batch_extras = self.extras(options)
        try:
            return [self.build_term(term, options) for term in terms]
        finally:
            del options["batch_extras"]

    def build_term(self, term, options):
        """One batch term (POST query or annotation) -> its search body."""
        scopes = dict.get(options, "scopes")
        if isinstance(term, list):
            if not scopes or len(term) != len(scopes):
                raise BadRequest(
                    f"Compound query {term!r} has {len(term)} parts but {len(scopes or [])} scopes were given.",
                    keyword="scopes")
            query = {"bool": {"must": [self.build_match(check_term(part, "q"), scope, options)
                                       for part, scope in zip(term, scopes)]}}
        elif scopes:
            query = self.build_match(check_term(term, "q"), scopes, options)
        else:
            query = self.build_id_match(check_term(term, "q"), options)
        body = {"query": query}
        if dict.get(options, "annotation"):
            body["version"] = True
        return self.apply_extras(body, options)

    def build_id_match(self, term, options):
        """A term with no explicit scopes: regex rules, then ``field:value`` when
        field is in the mapping, then the default scopes."""
        text = str(term)
        for pattern, scopes in self.id_rules:
            match = pattern.fullmatch(text)
            if match is None:
                continue
            groups = match.groupdict()
            value = groups.get("term") or text
            if not scopes and groups.get("scope"):
                field = groups["scope"]
                if not self.is_field(field):
                    continue
                scopes = [field]
            if scopes:
                return self.build_match(value, scopes, options)
        field, colon, value = text.partition(":")
        if colon and value and self.is_field(field):
            return self.build_match(value, [field], options)
        return self.build_match(term, self.web_settings.ANNOTATION_DEFAULT_SCOPES, options)

    def is_field(self, name):
        """Whether ``name`` is a field of the mapping (from the metadata cache)."""
        return self.web_settings.metadata.has_field(name)

    def build_match(self, term, scopes, options):
        """Match ``term`` in any of ``scopes`` (field names or wildcard patterns of them):
        a ``multi_match`` with operator AND, as BioThings builds it. Only ``_id``: an ``ids``
        query, where BioThings sends a ``multi_match`` over ``_id``; Elasticsearch runs both as
        the same term query on ``_id``, and ``ids`` also works on engines that do not search
        ``_id`` through ``multi_match`` (noida-db)."""
        fields = scope_fields((scopes,) if isinstance(scopes, str) else tuple(scopes))
        if fields == ("_id",):
            return {"ids": {"values": [str(term)]}}
        clause = {"query": term, "fields": list(fields), "operator": "and", "lenient": True}
        analyzer = dict.get(options, "analyzer")
        if analyzer:
            clause["analyzer"] = analyzer
        return {"multi_match": clause}

    def check_answer_hits(self, searches, options):
        """Refuse a request asking for more than ``MAX_ANSWER_HITS`` hits: ``size`` per
        search, ``searches`` of them. Annotation batches give no size (an id may match up to
        ``ANNOTATION_MAX_MATCH`` documents): their answers are counted by the backend."""
        size = dict.get(options, "size")
        limit = self.web_settings.MAX_ANSWER_HITS
        if size is None or not limit or dict.get(options, "fetch_all") or dict.get(options, "streaming"):
            return  # streams are how a client reads past the budget
        if searches * size > limit:
            raise BadRequest(f"The request asks for up to {searches * size} hits ({searches} x size {size}), "
                             f"the maximum is {limit} (MAX_ANSWER_HITS): ask for fewer terms or a smaller size.",
                             keyword="size", max=limit, num=searches * size)

    # ---------------------------------------------------------- extras
    def apply_extras(self, body, options):
        """Complete a search body: the keys of ``extras``, then ``filter`` around its query.

        Runs once per body (per term of a batch); the bodies of a batch share the
        values of the extras, so treat those as read-only.
        """
        extras = dict.get(options, "batch_extras")
        body.update(self.extras(options) if extras is None else extras)
        filter_text = dict.get(options, "filter")
        if filter_text:
            body["query"] = {"bool": {"must": [body["query"]], "filter": [
                {"query_string": {"query": filter_text, "default_operator": "AND", "lenient": True}}]}}
        return body

    def extras(self, options):
        """The body keys the options ask for: paging, sort, source filtering, facets,
        post_filter, explain (checks the filter too, so a bad one fails a batch once)."""
        settings = self.web_settings
        get = dict.get.__get__(options)  # one dict.get per read, whatever the name (even "get")
        extras = {"track_total_hits": True}  # exact totals, never capped at 10,000
        if get("fetch_all"):
            extras["size"] = settings.ES_SCROLL_SIZE
        else:
            size = get("size")
            if size is None:
                size = settings.ANNOTATION_MAX_MATCH
            start = get("from") or 0
            if start + size > settings.MAX_RESULT_WINDOW:
                raise BadRequest(
                    f"from + size must be at most {settings.MAX_RESULT_WINDOW}, got {start + size}.",
                    keyword="from", max=settings.MAX_RESULT_WINDOW, num=start + size)
            extras["size"] = size
            if start:
                extras["from"] = start
        if get("fields"):
            source = self.build_source(get("fields"))
            if source is not None:
                extras["_source"] = source
        if get("sort"):
            extras["sort"] = self.build_sort(get("sort"))
        if get("facets"):
            extras["aggs"] = self.build_aggs(get("facets"), get("facet_size"))
        if get("filter"):
            self.check_query_string(get("filter"), "filter")
        if get("post_filter"):
            self.check_query_string(get("post_filter"), "post_filter")
            extras["post_filter"] = {"query_string": {"query": get("post_filter"),
                                                      "default_operator": "AND", "lenient": True}}
        if get("explain"):
            extras["explain"] = True
        return extras

    @staticmethod
    def build_source(fields):
        """``fields`` -> ``_source``: ``-x`` excludes, ``all`` keeps everything."""
        includes = [str(field) for field in fields if not str(field).startswith("-")]
        excludes = [str(field)[1:] for field in fields if str(field).startswith("-")]
        if "all" in includes or "*" in includes:
            includes = []
        if not excludes:
            return includes or None
        return {"includes": includes, "excludes": excludes}

    @staticmethod
    def build_sort(fields):
        """``["-pubmed_count", "symbol"]`` -> ES sort clauses."""
        sort = []
        for field in fields:
            field = str(field)
            check_field_name(field.lstrip("+-"), "sort")
            if field.startswith("-"):
                sort.append({field[1:]: {"order": "desc"}})
            elif field in ("_score", "score"):
                sort.append("_score")
            else:
                sort.append({field.lstrip("+"): {"order": "asc"}})
        return sort

    def build_aggs(self, facets, size):
        """Terms aggregations (nested when allowed) plus a missing count per facet."""
        tree = parse_facets(facets)
        depth = _depth(tree)
        if depth > 1 and not self.web_settings.ALLOW_NESTED_AGGS:
            raise BadRequest("Nested facets are not enabled on this API.", keyword="facets")
        if depth > self.web_settings.MAX_AGGS_DEPTH:
            raise BadRequest(f"Facets nest {depth} deep, the maximum is {self.web_settings.MAX_AGGS_DEPTH}.",
                             keyword="facets", max=self.web_settings.MAX_AGGS_DEPTH, num=depth)
        size = size if size is not None else 10
        if size < 1:  # Elasticsearch: [size] must be greater than 0
            raise BadRequest(f"facet_size must be greater than 0, got {size}.", keyword="facet_size")
        buckets = _buckets(tree, size)
        limit = self.web_settings.MAX_FACET_BUCKETS
        if limit and buckets > limit:
            raise BadRequest(f"Facets could return {buckets} buckets, the maximum is {limit}: "
                             f"ask for fewer facets, a smaller facet_size or less nesting.",
                             keyword="facets", max=limit, num=buckets)
        return self._aggs(tree, size)

    def _aggs(self, tree, size):
        aggs = {}
        for name, children in tree:
            check_field_name(name, "facets")
            terms = {"terms": {"field": name, "size": size}}
            if children:
                terms["aggs"] = self._aggs(children, size)
            aggs[name] = terms
            aggs[name + MISSING_SUFFIX] = {"missing": {"field": name}}
        return aggs

