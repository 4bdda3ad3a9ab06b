"""ESResultTransform on Elasticsearch-shaped answers (no engine needed)."""

import pytest

from biothings.web import watchdog
from biothings.web.options import Options
from biothings.web.pipeline import ESResultTransform
from biothings.web.settings import BiothingWebSettings


@pytest.fixture(scope="module")
def transform():
    return ESResultTransform(BiothingWebSettings())


def hit(_id, source, score=1.0):
    return {"_id": _id, "_score": score, "_source": source}


def response(*hits, total=None):
    return {"took": 1, "hits": {"total": {"value": len(hits) if total is None else total},
                                "max_score": 1.0, "hits": list(hits)}}


def test_dotfield_keeps_falsy_values(transform):
    doc = transform.transform_hit(hit("1", {"a": {"zero": 0, "no": False, "empty": "", "none": None},
                                            "l": [{"x": 1}, {"x": 0}]}), Options(dotfield=True))
    assert doc == {"_id": "1", "_score": 1.0, "a.zero": 0, "a.no": False, "a.empty": "", "a.none": None,
                   "l.x": [1, 0]}


def test_allow_null_always_list_dotfield_on_a_list_of_objects(transform):
    """The reproduction of the request that looped forever (a two-item accession.translation)."""
    source = {"accession": {"translation": [{"rna": "NM_1", "protein": "NP_1"}, {"rna": "NM_2", "protein": "NP_2"}]}}
    field = "accession.translation.__test__"
    with watchdog.limit(5):
        doc = transform.transform_hit(hit("1017", source), Options(dotfield=True, allow_null=[field],
                                                                   always_list=[field]))
    assert doc == {"_id": "1017", "_score": 1.0, "accession.translation.rna": ["NM_1", "NM_2"],
                   "accession.translation.protein": ["NP_1", "NP_2"], field: []}


def test_traverse(transform):
    nodes = list(ESResultTransform.traverse({"a": {"b": [1, 2]}, "c": 3}))
    assert ("a", {"b": [1, 2]}) in nodes and ("a.b", [1, 2]) in nodes and ("a.b", 1) in nodes
    leaves = list(ESResultTransform.traverse({"a": {"b": [1, 2]}, "c": 3}, leaf_node=True))
    assert leaves == [("a.b", 1), ("a.b", 2), ("c", 3)]


def test_batch_with_one_failing_term(transform):
    responses = [response(hit("1", {"s": "A"})), {"error": {"type": "x", "reason": "too many clauses"},
                                                  "status": 400}, response()]
    out = transform.transform(responses, Options(templates=[{"query": "a"}, {"query": "b"}, {"query": "c"}]))
    assert out == [{"query": "a", "_id": "1", "_score": 1.0, "s": "A"},
                   {"query": "b", "error": "too many clauses"},
                   {"query": "c", "notfound": True}]


def test_custom_templates(transform):
    out = transform.transform([response(hit("1", {})), response()], Options(
        templates=[{"q": 1}, {"q": 2}], template_hit={"found": True}, template_miss={"found": False}))
    assert out == [{"q": 1, "found": True, "_id": "1", "_score": 1.0}, {"q": 2, "found": False}]


def test_option_helpers_are_static():
    doc = {"a": [{"b": 1}, {"c": 2}]}
    ESResultTransform.option_allow_null(doc, ["a.b", "x"])
    assert doc == {"a": [{"b": 1}, {"c": 2, "b": None}], "x": None}
    ESResultTransform.option_always_list(doc, ["a.b"])
    assert doc == {"a": [{"b": [1]}, {"c": 2, "b": []}], "x": None}


def test_field_list():
    from biothings.web.metadata import field_list
    mapping = {"properties": {"a": {"properties": {"b": {"type": "keyword", "index": False}}},
                              "s": {"type": "text", "fields": {"raw": {"type": "keyword"}}}}}
    fields = field_list(mapping)
    assert fields == {"a": {"type": "object"},
                      "a.b": {"type": "keyword", "index": False, "searched_by_default": False},
                      "s": {"type": "text", "index": True, "searched_by_default": True},
                      "s.raw": {"type": "keyword", "index": True, "searched_by_default": True}}
    assert set(field_list(mapping, prefix="s")) == {"s", "s.raw"}
    assert set(field_list(mapping, search="raw")) == {"s.raw"}


def test_end_of_scroll(transform):
    from biothings.web.pipeline import EndOfScroll
    with pytest.raises(EndOfScroll):
        transform.transform(response(), Options(scroll_id="x"))


# ---------------------------------------------------------------- property: every answer is a finite tree

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from biothings.web import formats  # noqa: E402
from biothings.web.pipeline import BadRequest  # noqa: E402

_KEYS = st.sampled_from(["a", "b", "c", "__test__"])
_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.sampled_from(["", "x", "y"]))
_VALUES = st.recursive(_LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(_KEYS, inner, max_size=3)),
                       max_leaves=25)
_PATHS = st.lists(_KEYS, min_size=1, max_size=3).map(".".join)
_EXPRESSIONS = st.sampled_from(["@", "[0]", "{a: @, b: @}", "[?@]", "length(@)", "[*].a", "a", "{x: @}|[x, x]"])
_JMESPATH = st.tuples(st.one_of(st.just(""), _PATHS), _EXPRESSIONS).map("|".join)
_OPTIONS = st.fixed_dictionaries({}, optional={
    "dotfield": st.booleans(),
    "allow_null": st.lists(_PATHS, max_size=3),
    "always_list": st.lists(_PATHS, max_size=3),
    "jmespath": _JMESPATH,
    "jmespath_exclude_empty": st.booleans(),
    "_sorted": st.booleans(),
    "format": st.sampled_from(["json", "yaml", "msgpack", "html"]),
})


def assert_tree(value, seen):
    """No list or dict appears twice (nor inside itself)."""
    if isinstance(value, (dict, list)):
        assert id(value) not in seen, "a container appears twice in the answer"
        seen.add(id(value))
        for child in value.values() if isinstance(value, dict) else value:
            assert_tree(child, seen)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=st.dictionaries(_KEYS, _VALUES, max_size=4), hits=st.integers(1, 3), options=_OPTIONS)
def test_every_answer_is_a_finite_tree(transform, source, hits, options):
    """Random documents x random document options: the transform ends (well inside a
    second: a loop is interrupted by the watchdog and fails the test), and the answer,
    in every format, is a tree."""
    import copy
    response = {"hits": {"total": {"value": hits}, "max_score": 1.0,
                         "hits": [hit(str(n), copy.deepcopy(source)) for n in range(hits)]}}
    opts = Options(options)
    try:
        with watchdog.limit(5):
            result = transform.transform(response, opts)
            body, _ = formats.serialize(result, opts.format or "json", opts.get("_sorted", True))
    except BadRequest as exc:  # a jmespath the documents cannot take: a 400, with a reason
        assert exc.reason and exc.body.get("keyword") == "jmespath"
        return
    assert_tree(result, set())
    assert body


# ---------------------------------------------------------------- what mutation testing asked for

@pytest.mark.parametrize("expression, kind", [("|symbol", "a string"), ("|alias", "a list"), ("|`true`", "a boolean"),
                                              ("|`1.5`", "a number"), ("|nosuch", "null")])
def test_jmespath_on_the_whole_document_must_give_an_object(transform, expression, kind):
    from biothings.web.pipeline.errors import BadRequest
    with pytest.raises(BadRequest) as error:
        transform.transform_hit(hit("1", {"symbol": "A", "alias": ["B"]}), Options(jmespath=expression))
    assert str(error.value) == (f"jmespath on the whole document ('|expression') must give an object, "
                                f"not {kind}.")
    doc = transform.transform_hit(hit("1", {"symbol": "A"}), Options(jmespath="|{s: symbol}"))
    assert doc == {"s": "A"}


@pytest.mark.parametrize("error, reason", [({"type": "x", "reason": "bad clause"}, "bad clause"),
                                           ({"type": "x"}, "Query failed."), ("shard failure", "shard failure"),
                                           ("", "Query failed."), ({"reason": ""}, "Query failed.")])
def test_a_failing_batch_term_says_why(transform, error, reason):
    out = transform.transform([{"error": error, "status": 400}], Options(templates=[{"query": "a"}]))
    assert out == [{"query": "a", "error": reason}]


def test_batch_totals_of_every_shape(transform):
    """``hits.total`` as Elasticsearch 7+ writes it (an object), as older ones did (a number), or absent."""
    shapes = [{"hits": {"total": {"value": 3}, "hits": [hit("1", {})]}},
              {"hits": {"total": 5, "hits": [hit("2", {})]}},
              {"hits": {"hits": [hit("3", {})]}},
              {"hits": {"total": {"relation": "eq"}, "hits": []}}]
    out = transform.transform(shapes, Options(templates=[{"query": q} for q in "abcd"], with_total=True, size=1))
    assert out["max_total"] == 5
    assert out["msg"] == "2 query terms return > 1 hits, using from=1 to retrieve the remaining hits"
    assert [entry["query"] for entry in out["hits"]] == ["a", "b", "c", "d"] and out["hits"][3]["notfound"]
    nothing = transform.transform([{"hits": {"total": {"value": 0}, "hits": []}}],
                                  Options(templates=[{"query": "a"}], with_total=True, size=1))
    assert nothing == {"max_total": 0, "hits": [{"query": "a", "notfound": True}]}


def test_allow_null_makes_each_level_and_one_list_per_parent():
    allow_null = ESResultTransform.option_allow_null
    doc = {"a": None, "l": [{}, {"x": 1}, "not an object"]}
    allow_null(doc, ["a.b", "l.x", "n.m.o"])
    assert doc == {"a": {"b": None}, "l": [{"x": None}, {"x": 1}, "not an object"], "n": {"m": {"o": None}}}
    listed = {"l": [{}, {}]}
    allow_null(listed, ["l.x", "top"], always_list=["l.x", "top"])
    assert listed == {"l": [{"x": []}, {"x": []}], "top": []}
    assert listed["l"][0]["x"] is not listed["l"][1]["x"]  # never one list shared by two parents


def test_facets_from_elasticsearch_shaped_aggregations(transform):
    aggs = {
        "flag__missing": {"doc_count": 2},  # first: skipped, the others still read
        "flag": {"buckets": [{"key": 1, "key_as_string": "true", "doc_count": 5},
                             {"key": False, "doc_count": 3}]},  # a bool key without key_as_string
        "kind": {"buckets": [{"key": "ncRNA", "doc_count": 4}], "sum_other_doc_count": 7},
        "stats": {"count": 3, "min": 1},  # not a terms aggregation
        "filtered": {"doc_count": 9},
        "odd": [1, 2],
    }
    facets = transform.transform_aggs(aggs, 12)
    assert facets == {
        "flag": {"_type": "terms", "terms": [{"term": "true", "count": 5}, {"term": "false", "count": 3}],
                 "other": 0, "missing": 2, "total": 12},
        "kind": {"_type": "terms", "terms": [{"term": "ncRNA", "count": 4}], "other": 7, "missing": 0, "total": 12},
    }


# ---------------------------------------------------------------- no garbage left for the collector

def leaves_no_cycle(call):
    """True when ``call()`` leaves nothing for the cyclic garbage collector: its objects are
    freed at once. An idle server runs no collection, so a cycle holding an answer (all its
    pieces) keeps that memory until the next full collection."""
    import gc
    gc.collect()
    gc.disable()
    try:
        call()
        return gc.collect() == 0
    finally:
        gc.enable()


def test_piecewise_json_leaves_no_cycle():
    hits = [{"_id": str(number), "symbol": f"G{number}", "go": {"BP": [{"id": number}]}}
            for number in range(formats.PIECEWISE_ENTRIES)]
    assert formats.to_json(hits, max_bytes=10 ** 9) == formats.to_json(hits)  # the piecewise path
    assert leaves_no_cycle(lambda: formats.to_json(hits, max_bytes=10 ** 9))
    assert leaves_no_cycle(lambda: formats.to_json({"max_total": 1, "hits": hits}, max_bytes=10 ** 9))


def test_detached_copies_leave_no_cycle_and_keep_the_order():
    from biothings.web.pipeline.transform import detach
    shared = {"z": 1, "a": [1, {"b": None}], "m": {}}
    value = {"x": shared, "y": [shared, shared], "w": []}
    copy = detach(value, 100)
    assert copy == value and list(copy) == ["x", "y", "w"] and list(copy["x"]) == ["z", "a", "m"]
    assert copy["x"] is not copy["y"][0] and copy["y"][0] is not copy["y"][1]
    assert detach(7, 1) == 7 and detach([], 1) == []
    assert leaves_no_cycle(lambda: detach(value, 100))
    nodes = 1 + 7 + 1 + 2 * 7 + 1  # value, x (7 nodes: shared and its six values), y and two more, w
    assert detach(value, nodes) == value
    with pytest.raises(BadRequest):
        detach(value, nodes - 1)


def test_a_jmespath_without_its_bar_or_failing_on_a_document_is_a_400(transform):
    from biothings.web.pipeline.errors import BadRequest
    with pytest.raises(BadRequest) as error:
        transform.transform_hit(hit("1", {"symbol": "A"}), Options(jmespath="symbol"))
    assert str(error.value) == "jmespath must look like 'parent.path|expression'." and \
        error.value.body == {"keyword": "jmespath"}
    with pytest.raises(BadRequest) as error:  # abs() of a list: a type error while searching
        transform.transform_hit(hit("1", {"alias": ["B"]}), Options(jmespath="alias|abs(@)"))
    assert str(error.value).startswith("jmespath expression failed: ") and "abs()" in str(error.value)
    assert error.value.body == {"keyword": "jmespath"}


# ---------------------------------------------------------------- the answer's members, one rule each

def test_raw_answers_the_engine_response_itself(transform):
    engine = response(hit("1", {"s": "A"}))
    assert transform.transform(engine, Options(raw=True)) is engine
    assert transform.transform([engine], Options(raw=True)) == [engine]


def test_search_answer_members(transform):
    engine = {"hits": {"total": 7, "max_score": 2.5, "hits": [hit("1", {"s": "A"}, score=2.5)]},
              "_scroll_id": "abc"}
    assert transform.transform(engine, Options()) == {
        "took": 0, "total": 7, "max_score": 2.5, "hits": [{"_id": "1", "_score": 2.5, "s": "A"}]}
    assert transform.transform({**engine, "took": 3}, Options(fetch_all=True))["_scroll_id"] == "abc"
    assert transform.transform(engine, Options(scroll_id="abc"))["_scroll_id"] == "abc"
    assert transform.transform({}, Options()) == {"took": 0, "total": 0, "max_score": None, "hits": []}
    with_aggs = {**engine, "aggregations": {"k": {"buckets": [{"key": "x", "doc_count": 1}]}}}
    assert transform.transform(with_aggs, Options())["facets"] == {
        "k": {"_type": "terms", "terms": [{"term": "x", "count": 1}], "other": 0, "missing": 0, "total": 7}}
    assert "facets" not in transform.transform({**engine, "aggregations": {}}, Options())


def test_hits_left_empty_by_jmespath_exclude_empty_are_dropped_but_counted(transform):
    engine = response(hit("1", {"go": [1]}), hit("2", {"go": []}), hit("3", {"other": 1}))
    out = transform.transform(engine, Options(jmespath="go|@", jmespath_exclude_empty=True))
    assert out["total"] == 3 and [doc["_id"] for doc in out["hits"]] == ["1"]
    batch = transform.transform([engine], Options(templates=[{"query": "q"}], jmespath="go|@",
                                                  jmespath_exclude_empty=True))
    assert batch == [{"query": "q", "_id": "1", "_score": 1.0, "go": [1]}]
    empty = response(hit("2", {"go": []}))
    assert transform.transform([empty], Options(templates=[{"query": "q"}], jmespath="go|@",
                                                jmespath_exclude_empty=True)) == [{"query": "q", "notfound": True}]


@pytest.mark.parametrize("options, expected", [
    (Options(), {"_id": "1", "_score": 0.5, "s": "A"}),
    (Options(annotation=True), {"_id": "1", "_score": 0.5, "_version": 3, "s": "A"}),
    (Options(annotation_single=True), {"_id": "1", "_version": 3, "s": "A"}),
    (Options(sort=["s"]), {"_id": "1", "_score": 0.5, "sort": ["a"], "s": "A"}),
])
def test_hit_members_by_kind_of_request(transform, options, expected):
    engine_hit = {"_id": "1", "_score": 0.5, "_version": 3, "sort": ["a"], "_source": {"s": "A"}}
    assert transform.transform_hit(engine_hit, options) == expected
    explained = transform.transform_hit({**engine_hit, "_explanation": {"value": 1}}, options)
    assert explained["_explanation"] == {"value": 1}
    assert transform.transform_hit({"_id": "2"}, Options(annotation_single=True)) == {"_id": "2"}


def test_batch_over_counts_terms_with_more_hits_than_size_not_equal(transform):
    def engine(total):
        return {"hits": {"total": {"value": total}, "hits": [hit(str(total), {})]}}
    out = transform.transform([engine(2), engine(3), engine(3)],
                              Options(templates=[{"q": n} for n in range(3)], with_total=True, size=2))
    assert out["max_total"] == 3
    assert out["msg"] == "2 query terms return > 2 hits, using from=2 to retrieve the remaining hits"
    at_size = transform.transform([engine(2)], Options(templates=[{"q": 0}], with_total=True, size=2))
    assert "msg" not in at_size
    no_templates = transform.transform([engine(1), response()], Options())
    assert no_templates == [{"_id": "1", "_score": 1.0}, {"notfound": True}]


def test_jmespath_below_a_list_and_exclude_empty_removes_only_empty_objects(transform):
    source = {"go": {"BP": [{"id": "a", "ev": ["x"]}, {"id": "b", "ev": []}, "text", {"id": "c"}]}}
    doc = transform.transform_hit(hit("1", source), Options(jmespath="go.BP.ev|[0]", jmespath_exclude_empty=True))
    assert doc["go"] == {"BP": [{"id": "a", "ev": "x"}, "text"]}
    kept = transform.transform_hit(hit("1", {"go": {"BP": [{"ev": ["x"]}, {"ev": []}]}}),
                                   Options(jmespath="go.BP.ev|[0]"))
    assert kept["go"] == {"BP": [{"ev": "x"}, {"ev": None}]}
    nothing = transform.transform_hit(hit("1", {"go": {"BP": [{"ev": []}]}}),
                                      Options(jmespath="go.BP.ev|[0]", jmespath_exclude_empty=True))
    assert nothing is None
    assert transform.transform_hit(hit("1", {"a": 1}), Options(jmespath="|`{}`", jmespath_exclude_empty=True)) is None
    assert transform.transform_hit(hit("1", {"a": 1}), Options(jmespath="|`{}`")) == {}
    no_path = transform.transform_hit(hit("1", {"a": 1}), Options(jmespath="b|@"))
    assert no_path == {"_id": "1", "_score": 1.0, "a": 1}


def test_jmespath_length_at_the_limit_and_one_past(transform):
    limit = transform.web_settings.JMESPATH_MAX_LENGTH
    at_limit = "a|" + "@" + " " * (limit - 3)
    assert transform.transform_hit(hit("1", {"a": 1}), Options(jmespath=at_limit))["a"] == 1
    with pytest.raises(BadRequest) as error:
        transform.transform_hit(hit("1", {"a": 1}), Options(jmespath=at_limit + " "))
    assert str(error.value) == f"jmespath too long: {limit + 1} characters, the maximum is {limit}."
    assert error.value.body == {"keyword": "jmespath", "max": limit, "num": limit + 1}


def test_a_jmespath_result_past_the_value_budget_says_so():
    from biothings.web.pipeline.transform import detach
    with pytest.raises(BadRequest) as error:
        detach([1, 2, 3], 3)
    assert str(error.value) == "The jmespath result is too large: more than 3 values per hit."
    assert error.value.body == {"keyword": "jmespath", "max": 3}
    assert detach([1, 2, 3], 4) == [1, 2, 3]


def test_traverse_yields_empty_containers_as_leaves():
    leaves = list(ESResultTransform.traverse({"a": {}, "b": [], "c": [{}], "d": {"e": None}}, leaf_node=True))
    assert leaves == [("a", {}), ("b", []), ("c", {}), ("d.e", None)]
    nodes = list(ESResultTransform.traverse({"a": {}, "b": [1]}))
    assert nodes == [("a", {}), ("b", [1]), ("b", 1)]


def test_dotfield_lists_a_single_value_named_in_always_list_and_drops_empty_values(transform):
    flat = ESResultTransform.option_dotfield({"a": {"b": 1}, "l": [{"x": {}}, {"x": []}, {"x": None}, {"x": 0}]},
                                             always_list=["a.b"])
    assert flat == {"a.b": [1], "l.x": [0]}
    assert ESResultTransform.option_dotfield({"a": {"b": None}}) == {"a.b": None}


def test_always_list_below_a_list_of_objects():
    doc = {"l": [{"x": 1}, {"x": [2]}, {"x": None}, {"y": 3}, "text"]}
    ESResultTransform.option_always_list(doc, ["l.x", "missing.x"])
    assert doc == {"l": [{"x": [1]}, {"x": [2]}, {"x": []}, {"y": 3}, "text"]}


def test_nested_facets_inside_their_bucket(transform):
    aggs = {"type": {"buckets": [{"key": "protein-coding", "doc_count": 5, "key_as_string": "protein-coding",
                                  "chr": {"buckets": [{"key": "1", "doc_count": 2}], "sum_other_doc_count": 3},
                                  "chr__missing": {"doc_count": 1},
                                  "note": "not an aggregation"}]}}
    assert transform.transform_aggs(aggs, 9) == {"type": {
        "_type": "terms", "other": 0, "missing": 0, "total": 9,
        "terms": [{"term": "protein-coding", "count": 5,
                   "chr": {"_type": "terms", "terms": [{"term": "1", "count": 2}], "other": 3, "missing": 1,
                           "total": 5}}]}}
    true_key = transform.transform_aggs({"b": {"buckets": [{"key": True, "doc_count": 1}]}}, 1)
    assert true_key["b"]["terms"] == [{"term": "true", "count": 1}]


def test_took_and_zero_totals_are_the_engines(transform):
    engine = {"took": 3, "hits": {"total": {"value": 0}, "hits": []},
              "aggregations": {"k": {"buckets": [], "sum_other_doc_count": 0}}}
    out = transform.transform(engine, Options())
    assert out["took"] == 3 and out["total"] == 0 and out["facets"]["k"]["total"] == 0
    for shape in ({"hits": []}, {"total": {"relation": "eq"}, "hits": []}):
        batch = transform.transform([{"hits": shape}], Options(templates=[{"query": "a"}], with_total=True, size=1))
        assert batch == {"max_total": 0, "hits": [{"query": "a", "notfound": True}]}


def test_jmespath_through_a_list_on_the_way_to_its_parent(transform):
    source = {"l": [{"m": {"v": [1, 2]}}, {"m": {"v": [3]}}, "text"]}
    doc = transform.transform_hit(hit("1", source), Options(jmespath="l.m.v|[0]"))
    assert doc["l"] == [{"m": {"v": 1}}, {"m": {"v": 3}}, "text"]


def test_always_list_through_lists_of_lists():
    doc = {"a": [[{"b": 1}, {"b": [2]}], {"b": None}]}
    ESResultTransform.option_always_list(doc, ["a.b"])
    assert doc == {"a": [[{"b": [1]}, {"b": [2]}], {"b": []}]}


def test_a_failing_jmespath_shows_200_characters_of_its_error(transform):
    with pytest.raises(BadRequest) as error:
        transform.transform_hit(hit("1", {"alias": ["x" * 300]}), Options(jmespath="alias|abs(@)"))
    prefix = "jmespath expression failed: "
    assert str(error.value).startswith(prefix) and len(str(error.value)) == len(prefix) + 200
