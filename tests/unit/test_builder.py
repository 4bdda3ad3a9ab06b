"""ESQueryBuilder: options -> the exact Elasticsearch DSL dicts."""

import pytest

from biothings.web.options import Options
from biothings.web.pipeline import BadRequest, ESQueryBuilder
from biothings.web.pipeline.builder import parse_facets
from biothings.web.settings import BiothingWebSettings


@pytest.fixture(scope="module")
def settings():
    return BiothingWebSettings(ES_INDICES={"gene": "genes"}, ALLOW_RANDOM_QUERY=True,
                               ANNOTATION_ID_REGEX_LIST=[(r"rs[0-9]+", "dbsnp.rsid")])


@pytest.fixture(scope="module")
def builder(settings):
    return ESQueryBuilder(settings)


def options(**values):
    base = {"size": 10, "from": 0}
    base.update(values)
    return Options(base)


QS = {"default_operator": "AND", "lenient": True}


def test_query_string(builder):
    assert builder.build("cdk2", options()) == {
        "query": {"query_string": {"query": "cdk2", **QS}}, "size": 10, "track_total_hits": True}


def test_specials(builder):
    assert builder.build("__all__", options())["query"] == {"match_all": {}}
    assert builder.build("", options())["query"] == {"match_none": {}}
    assert builder.build("__any__", options())["query"] == {
        "function_score": {"query": {"match_all": {}}, "random_score": {}, "boost_mode": "replace"}}


def test_random_needs_setting():
    strict = ESQueryBuilder(BiothingWebSettings(ALLOW_RANDOM_QUERY=False))
    assert strict.build("__any__", options())["query"] == {"query_string": {"query": "__any__", **QS}}


def test_extras(builder):
    body = builder.build("cdk2", options(
        size=5, **{"from": 20}, fields=["symbol", "-go"], sort=["-taxid", "symbol"],
        facets=["type_of_gene"], facet_size=3, filter="taxid:9606", post_filter="symbol:A*", explain=True))
    assert body == {
        "query": {"bool": {"must": [{"query_string": {"query": "cdk2", **QS}}],
                           "filter": [{"query_string": {"query": "taxid:9606", **QS}}]}},
        "size": 5, "from": 20,
        "_source": {"includes": ["symbol"], "excludes": ["go"]},
        "sort": [{"taxid": {"order": "desc"}}, {"symbol": {"order": "asc"}}],
        "aggs": {"type_of_gene": {"terms": {"field": "type_of_gene", "size": 3}},
                 "type_of_gene__missing": {"missing": {"field": "type_of_gene"}}},
        "track_total_hits": True,
        "post_filter": {"query_string": {"query": "symbol:A*", **QS}},
        "explain": True,
    }


def test_fields_all_means_everything(builder):
    assert "_source" not in builder.build("x", options(fields=["all"]))
    assert builder.build("x", options(fields=["a", "b"]))["_source"] == ["a", "b"]


def test_fetch_all_uses_scroll_size(builder, settings):
    assert builder.build("x", options(fetch_all=True))["size"] == settings.ES_SCROLL_SIZE
    assert builder.build(None, options(scroll_id="abc")) == {"scroll_id": "abc"}


def test_batch_terms(builder):
    bodies = builder.build(["CDK2", 1017], options(scopes=["symbol", "alias"]))
    assert bodies == [
        {"query": {"multi_match": {"query": "CDK2", "fields": ["symbol", "alias"], "operator": "and",
                                   "lenient": True}}, "size": 10, "track_total_hits": True},
        {"query": {"multi_match": {"query": 1017, "fields": ["symbol", "alias"], "operator": "and",
                                   "lenient": True}}, "size": 10, "track_total_hits": True},
    ]


def test_batch_terms_each_get_the_extras(builder):
    """The extras are worked out once per batch; every body gets them, the filter around its own query."""
    opts = options(scopes=["symbol"], fields=["symbol"], sort=["-taxid"], filter="taxid:9606", explain=True)
    bodies = builder.build(["CDK2", "CDK3"], opts)
    for body, term in zip(bodies, ["CDK2", "CDK3"]):
        assert body == {
            "query": {"bool": {"must": [{"multi_match": {"query": term, "fields": ["symbol"], "operator": "and",
                                                         "lenient": True}}],
                               "filter": [{"query_string": {"query": "taxid:9606", **QS}}]}},
            "size": 10, "_source": ["symbol"], "sort": [{"taxid": {"order": "desc"}}], "explain": True,
            "track_total_hits": True}
    assert "batch_extras" not in opts and opts.batch_extras is None  # nothing left behind
    with pytest.raises(BadRequest, match="Leading wildcards"):
        builder.build(["CDK2", "CDK3"], options(scopes=["symbol"], filter="*dk2"))
    failing = options(scopes=["symbol"])
    with pytest.raises(BadRequest):
        builder.build(["CDK2", {"a": 1}], failing)
    assert "batch_extras" not in failing


def test_batch_default_scope_and_regex_rules(builder):
    bodies = builder.build(["1017", "rs58991260"], options())
    assert bodies[0]["query"] == {"ids": {"values": ["1017"]}}
    assert bodies[1]["query"]["multi_match"]["fields"] == ["dbsnp.rsid"]


def test_compound_terms(builder):
    body = builder.build([["cdk2", "9606"]], options(scopes=[["symbol", "alias"], "taxid"], analyzer="standard"))[0]
    assert body["query"] == {"bool": {"must": [
        {"multi_match": {"query": "cdk2", "fields": ["symbol", "alias"], "operator": "and", "lenient": True,
                         "analyzer": "standard"}},
        {"multi_match": {"query": "9606", "fields": ["taxid"], "operator": "and", "lenient": True,
                         "analyzer": "standard"}},
    ]}}
    with pytest.raises(BadRequest):
        builder.build([["cdk2"]], options(scopes=["symbol", "taxid"]))


def test_annotation_uses_max_match_and_version(builder, settings):
    body = builder.build("1017", options(annotation=True, size=None))
    assert body == {"query": {"ids": {"values": ["1017"]}}, "version": True,
                    "size": settings.ANNOTATION_MAX_MATCH, "track_total_hits": True}


def test_parse_facets():
    assert parse_facets(["a(b(c)),d", "e"]) == [("a", [("b", [("c", [])])]), ("d", []), ("e", [])]
    for bad in ("a(", "a)", "a(b))"):
        with pytest.raises(BadRequest):
            parse_facets([bad])


def test_nested_aggs(settings):
    nested = ESQueryBuilder(BiothingWebSettings(ALLOW_NESTED_AGGS=True))
    aggs = nested.build("x", options(facets=["a(b)"], facet_size=2))["aggs"]
    assert aggs == {
        "a": {"terms": {"field": "a", "size": 2},
              "aggs": {"b": {"terms": {"field": "b", "size": 2}}, "b__missing": {"missing": {"field": "b"}}}},
        "a__missing": {"missing": {"field": "a"}},
    }


def test_limits(builder):
    with pytest.raises(BadRequest):
        builder.build("x" * 20000, options())
    assert builder.build("cdk*", options())  # trailing wildcards are fine
    assert builder.build(r"a\*b", options())  # escaped star is not a wildcard


def test_leading_wildcard_setting():
    loose = ESQueryBuilder(BiothingWebSettings(ALLOW_LEADING_WILDCARD=True))
    assert loose.build("*dk2", options())["query"]["query_string"]["query"] == "*dk2"


def test_userquery(tmp_path):
    folder = tmp_path / "byname"
    folder.mkdir()
    (folder / "query.txt").write_text('{"match": {"name": "{{q}}"}}')
    (folder / "filter.txt").write_text('{"term": {"taxid": 9606}}')
    builder = ESQueryBuilder(BiothingWebSettings(USERQUERY_DIR=str(tmp_path)))
    body = builder.build('say "hi"', options(userquery="byname"))
    assert body["query"] == {"bool": {"must": [{"match": {"name": 'say "hi"'}}],
                                      "filter": [{"term": {"taxid": 9606}}]}}
    for name in ("missing", "../etc", ""):
        with pytest.raises(BadRequest):
            builder.build("x", options(userquery=name or "."))


# ---------------------------------------------------------------- what mutation testing asked for

def test_sort_directions_and_score():
    assert ESQueryBuilder.build_sort(["+symbol", "-taxid", "score", "_score", "entrezgene"]) == [
        {"symbol": {"order": "asc"}}, {"taxid": {"order": "desc"}}, "_score", "_score",
        {"entrezgene": {"order": "asc"}}]
    for bad in ("+sym bol", "-{x}", "_script"):
        with pytest.raises(BadRequest) as error:
            ESQueryBuilder.build_sort([bad])
        assert error.value.body == {"keyword": "sort"}


def test_bad_field_names_are_named_at_most_100_characters():
    from biothings.web.pipeline.builder import check_field_name
    with pytest.raises(BadRequest) as error:
        check_field_name("{" + "x" * 150, "fields")
    assert str(error.value) == f"Invalid field name {'{' + 'x' * 99!r} in 'fields'."
    assert error.value.body == {"keyword": "fields"}
    assert check_field_name("go.BP.id", "fields") == "go.BP.id"


@pytest.mark.parametrize("text, message", [
    ("a(", "Unbalanced parentheses in facets."), ("a)", "Unbalanced parentheses in facets."),
    ("a(b))", "Unbalanced parentheses in facets."), ("a,(b)", "Invalid facets near '(b)'."),
    ("a,(" + "b" * 30, "Invalid facets near '(" + "b" * 19 + "'.")])
def test_facet_syntax_errors_say_where(text, message):
    with pytest.raises(BadRequest) as error:
        parse_facets([text])
    assert str(error.value) == message and error.value.body == {"keyword": "facets"}


def test_query_strings_are_parsed_once_per_text():
    """The builder's checks and the embedded compiler read the same tree: parsed once and
    kept (trees are immutable); a syntax error is raised at every call, never kept."""
    from biothings.web import querystring
    tree = querystring.parse("symbol:cdk2 AND taxid:9606")
    assert querystring.parse("symbol:cdk2 AND taxid:9606") is tree
    assert querystring.parse("symbol:cdk2 AND taxid:9606", max_depth=1) is not tree
    for _ in range(2):
        with pytest.raises(querystring.QueryStringError):
            querystring.parse("symbol:(cdk2")
    with pytest.raises(querystring.QueryStringError):
        querystring.parse("((a))", max_depth=1)
    assert querystring.parse("((a))", max_depth=3) == querystring.parse("((a))")


def test_a_userquery_that_is_no_json_is_named_in_the_400(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "query.txt").write_text('{"match": {"name": "{{q}}"}')
    builder = ESQueryBuilder(BiothingWebSettings(USERQUERY_DIR=str(tmp_path)))
    with pytest.raises(BadRequest) as refused:
        builder.build("x", options(userquery="broken"))
    assert str(refused.value).startswith("Userquery 'broken' is not a valid query: ")
    assert refused.value.body == {"keyword": "userquery"}


def test_a_userquery_of_a_filter_alone_filters_the_query_string(tmp_path):
    (tmp_path / "human").mkdir()
    (tmp_path / "human" / "filter.txt").write_text('{"term": {"taxid": 9606}}')
    builder = ESQueryBuilder(BiothingWebSettings(USERQUERY_DIR=str(tmp_path)))
    assert builder.build("cdk2", options(userquery="human"))["query"] == {"bool": {
        "must": [{"query_string": {"query": "cdk2", **QS}}], "filter": [{"term": {"taxid": 9606}}]}}
    assert builder.build(None, options(userquery="human"))["query"] == {"bool": {
        "must": [{"match_all": {}}], "filter": [{"term": {"taxid": 9606}}]}}


# ---------------------------------------------------------------- id rules, scopes and terms (mutation survivors)

class FieldsBuilder(ESQueryBuilder):
    """A builder whose mapping has the fields named (``is_field`` is the hook for it)."""
    FIELDS = {"symbol", "entrezgene", "ensembl.gene", "dbsnp.rsid", "HGNC", "other"}

    def is_field(self, name):
        return name in self.FIELDS


def multi_match(query, fields, **more):
    return {"multi_match": {"query": query, "fields": fields, "operator": "and", "lenient": True, **more}}


def test_id_rules_apply_in_order_each_one_that_fits():
    builder = FieldsBuilder(BiothingWebSettings(ANNOTATION_DEFAULT_SCOPES=["_id", "symbol"], ANNOTATION_ID_REGEX_LIST=[
        (r"(?P<scope>hgnc):(?P<term>[0-9]+)", ["HGNC"]),  # scopes given: the group only names the part
        (r"rs[0-9]+", ["dbsnp.rsid"]),
        (r"(?P<scope>[a-z.]+):(?P<term>.+)", []),  # the field named in the id, when it is one
        (r"[a-z]+:[0-9]+", ["other"]),
        (r"ENSG[0-9]+", ["ensembl.gene"]),
    ]))
    match = builder.build_id_match
    assert match("hgnc:1771", options()) == multi_match("1771", ["HGNC"])
    assert match("rs58991260", options()) == multi_match("rs58991260", ["dbsnp.rsid"])
    assert match("entrezgene:1017", options()) == multi_match("1017", ["entrezgene"])
    assert match("nosuch:1017", options()) == multi_match("nosuch:1017", ["other"])  # the next rule that fits
    assert match("ENSG00000123374", options()) == multi_match("ENSG00000123374", ["ensembl.gene"])
    assert match("CDK2", options(analyzer="whitespace")) == multi_match("CDK2", ["_id", "symbol"],
                                                                        analyzer="whitespace")


def test_field_colon_value_without_rules():
    builder = FieldsBuilder(BiothingWebSettings(ANNOTATION_DEFAULT_SCOPES=["_id", "symbol"]))
    match = builder.build_id_match
    assert match("symbol:a:b", options()) == multi_match("a:b", ["symbol"])  # the first colon splits
    assert match("symbol", options()) == multi_match("symbol", ["_id", "symbol"])  # a field name alone is a term
    assert match("symbol:", options()) == multi_match("symbol:", ["_id", "symbol"])
    assert match("nosuch:1017", options()) == multi_match("nosuch:1017", ["_id", "symbol"])


def test_scopes_and_terms_refused_with_their_reason(builder):
    for scopes, shown in ((["_script"], "'_script'"), (["x{" + "y" * 150], repr("x{" + "y" * 98))):
        with pytest.raises(BadRequest) as error:
            builder.build(["cdk2"], options(scopes=scopes))
        assert str(error.value) == f"Invalid field name {shown} in 'scopes'." and error.value.body == {"keyword": "scopes"}
    assert builder.build(["cdk2"], options(scopes=["alias", "name", "symbol", "_id"]))[0]["query"] == \
        multi_match("cdk2", ["alias", "name", "symbol", "_id"])
    for terms in (["cdk2", {"a": 1}], [None]):
        with pytest.raises(BadRequest) as error:
            builder.build(terms, options())
        kind = type(terms[-1]).__name__
        assert str(error.value) == f"Query terms must be strings or numbers, got {kind}." and \
            error.value.body == {"keyword": "q"}


def test_fetch_all_and_streams_are_outside_the_answer_budget():
    builder = ESQueryBuilder(BiothingWebSettings(MAX_ANSWER_HITS=25))
    assert builder.build("cdk2", options(size=25))["size"] == 25
    with pytest.raises(BadRequest) as error:
        builder.build("cdk2", options(size=26))
    assert str(error.value) == ("The request asks for up to 26 hits (1 x size 26), the maximum is 25 "
                                "(MAX_ANSWER_HITS): ask for fewer terms or a smaller size.")
    assert error.value.body == {"keyword": "size", "max": 25, "num": 26}
    with pytest.raises(BadRequest) as error:
        builder.build(["a", "b", "c"], options(size=9))
    assert error.value.body == {"keyword": "size", "max": 25, "num": 27}
    assert builder.build("cdk2", options(size=26, fetch_all=True))
    assert len(builder.build(["a", "b", "c"], options(size=9, streaming=True))) == 3


def test_result_window_message_names_the_sum(builder):
    with pytest.raises(BadRequest) as error:
        builder.build("cdk2", options(size=11, **{"from": 9990}))
    assert str(error.value) == "from + size must be at most 10000, got 10001."
    assert builder.build("cdk2", options(size=10, **{"from": 9990}))["from"] == 9990


def test_source_and_sort_forms():
    build_source, build_sort = ESQueryBuilder.build_source, ESQueryBuilder.build_sort
    assert build_source(["*", "-go"]) == {"includes": [], "excludes": ["go"]}
    assert build_source(["all", "-go"]) == {"includes": [], "excludes": ["go"]}
    assert build_source(["*"]) is None and build_source(["symbol", "all"]) is None
    assert build_sort(["X", "+Xenopus", "-Xref"]) == [
        {"X": {"order": "asc"}}, {"Xenopus": {"order": "asc"}}, {"Xref": {"order": "desc"}}]


def test_facets_default_to_ten_buckets(builder):
    assert builder.build_aggs(["type_of_gene"], None)["type_of_gene"] == {"terms": {"field": "type_of_gene", "size": 10}}


# ---------------------------------------------------------------- query-string and template checks

def test_query_string_errors_show_200_characters_and_say_max_only_for_depth(builder):
    text = "(" + "a" * 300
    with pytest.raises(BadRequest) as error:
        builder.build(text, options())
    assert str(error.value).startswith(f"Failed to parse query [{text[:200]}]: ")
    assert error.value.body == {"keyword": "q"}
    with pytest.raises(BadRequest) as error:
        builder.build("(" * 40 + "a" + ")" * 40, options())
    assert error.value.body == {"keyword": "q", "max": 30}


def with_field_types(types, **settings):
    web_settings = BiothingWebSettings(**settings)
    web_settings.metadata.field_types = lambda: types  # the mapping's types, as the metadata cache holds them
    return ESQueryBuilder(web_settings)


def test_ranges_over_the_default_fields_are_text_ranges_when_a_text_field_may_be_among_them():
    for types, refused in (({"symbol": "keyword", "taxid": "integer"}, False), ({"name": "text"}, True),
                           ({}, True)):  # no mapping known: it may be
        builder = with_field_types(types, ALLOW_EXPENSIVE_QUERIES=False)
        for text in ("[a TO b]", "*:[a TO b]"):
            if refused:
                with pytest.raises(BadRequest) as error:
                    builder.build(text, options())
                named = "*" if text.startswith("*") else "default fields"
                assert str(error.value) == ("Ranges over text fields are expensive queries, disabled on this API "
                                            f"(ALLOW_EXPENSIVE_QUERIES): [{named}].")
            else:
                assert builder.build(text, options())["query"]["query_string"]["query"] == text


@pytest.fixture
def templates(tmp_path):
    def make(name, query=None, query_filter=None, **settings):
        (tmp_path / name).mkdir()
        if query is not None:
            (tmp_path / name / "query.txt").write_text(query)
        if query_filter is not None:
            (tmp_path / name / "filter.txt").write_text(query_filter)
        return ESQueryBuilder(BiothingWebSettings(USERQUERY_DIR=str(tmp_path), **settings))
    return make


def test_template_checks_reach_every_clause_and_name_q(templates):
    builder = templates("nested", '{"bool": {"must": [{"match_all": {}}, {"query_string": {"query": "{{q}}"}}]}}')
    with pytest.raises(BadRequest) as error:
        builder.build("*ase", options(userquery="nested"))
    assert str(error.value) == "Leading wildcards are not allowed in queries (ALLOW_EXPENSIVE_QUERIES)."
    assert error.value.body == {"keyword": "q"}
    with pytest.raises(BadRequest) as error:
        builder.build("(cdk2", options(userquery="nested"))
    assert error.value.body == {"keyword": "q"}
    after_a_term = templates("term", '{"bool": {"must": [{"query_string": {"query": "{{q}}"}}, '
                                     '{"term": {"taxid": 9606}}]}}')
    with pytest.raises(BadRequest):  # a value that is no clause (9606) does not end the walk
        after_a_term.build("*ase", options(userquery="term"))
    simple = templates("simple", '{"simple_query_string": {"query": "{{q}}"}}')
    with pytest.raises(BadRequest):
        simple.build("*ase", options(userquery="simple"))
    regexp = templates("regexp", '{"regexp": {"symbol": "{{q}}"}}', ALLOW_EXPENSIVE_QUERIES=False)
    with pytest.raises(BadRequest) as error:
        regexp.build("cdk.*", options(userquery="regexp"))
    assert error.value.body == {"keyword": "q"}
    # the text of a multi_match is no query string: its characters are plain text
    plain = templates("plain", '{"multi_match": {"query": "{{q}}", "fields": ["symbol"]}}')
    assert plain.build("*ase (", options(userquery="plain"))["query"] == {
        "multi_match": {"query": "*ase (", "fields": ["symbol"]}}


def test_template_q_fills_the_filter_too_and_none_is_empty(templates):
    builder = templates("both", '{"match": {"name": "{{q}}"}}', '{"term": {"symbol": "{{q}}"}}',
                        MAX_QUERY_LENGTH=10)
    assert builder.build("cdk2", options(userquery="both"))["query"] == {"bool": {
        "must": [{"match": {"name": "cdk2"}}], "filter": [{"term": {"symbol": "cdk2"}}]}}
    assert builder.build(None, options(userquery="both"))["query"]["bool"]["must"] == [{"match": {"name": ""}}]
    with pytest.raises(BadRequest) as error:
        builder.build("a" * 11, options(userquery="both"))
    assert error.value.body == {"keyword": "q", "max": 10, "num": 11}
    assert builder.build("a" * 10, options(userquery="both"))
