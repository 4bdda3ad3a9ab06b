"""Aggregations on the embedded engine (biothings.web.engines.embedded.aggs), over a small
index whose answers are written out by hand: terms on every field kind (keyword, integer,
double, boolean, an integer not indexed) with sub-aggregations, ordering, size and the
other-count, the metrics, ``missing``, the bucket budget, and Elasticsearch's refusals."""

import asyncio

import pytest

from biothings.web.engines.embedded import EmbeddedEngine, build_index
from biothings.web.engines.embedded.aggs import BucketBudget
from biothings.web.engines.errors import QueryError

DOCS = [
    {"_id": "1", "kw": "a", "n": 1, "x": 1.5, "flag": True, "raw": 10, "txt": "hello"},
    {"_id": "2", "kw": "b", "n": 2, "x": 2.5, "flag": False, "raw": 20},
    {"_id": "3", "kw": "a", "n": 2, "x": 2.5, "flag": True, "raw": 10},
    {"_id": "4", "kw": ["a", "c"], "n": 3, "flag": True, "rawflag": True},
    {"_id": "5", "obj": {"k": "v"}, "rawflag": False},
]
MAPPING = {"properties": {"kw": {"type": "keyword"}, "n": {"type": "integer"}, "x": {"type": "double"},
                          "flag": {"type": "boolean"}, "raw": {"type": "integer", "index": False},
                          "txt": {"type": "text"}, "rawflag": {"type": "boolean", "index": False},
                          "obj": {"properties": {"k": {"type": "keyword"}}}, "where": {"type": "geo_point"}}}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("aggs"))
    build_index(directory, "t", DOCS, MAPPING)
    return directory


@pytest.fixture(scope="module")
def twelve(tmp_path_factory):
    """Twelve distinct values: more than a terms aggregation's default size."""
    directory = str(tmp_path_factory.mktemp("aggs12"))
    build_index(directory, "t", [{"_id": str(n), "kw": f"v{n:02d}"} for n in range(12)],
                {"properties": {"kw": {"type": "keyword"}}})
    return directory


@pytest.fixture
def aggs(small):
    engines = []

    def run(spec, query=None, max_buckets=None, directory=small):
        engine = EmbeddedEngine(directory, **({"max_buckets": max_buckets} if max_buckets is not None else {}))
        engines.append(engine)
        body = {"size": 0, "aggs": spec, "query": query or {"match_all": {}}}
        return engine.search_sync("t", body)["aggregations"]
    yield run
    for engine in engines:
        asyncio.run(engine.close())


def buckets(result, *extra):
    return [(b["key"], b["doc_count"], *(b[name] for name in extra)) for b in result["buckets"]]


def test_terms_by_count_then_key_with_size_and_other_count(aggs):
    out = aggs({"all": {"terms": {"field": "kw"}}, "two": {"terms": {"field": "kw", "size": 2}},
                "one": {"terms": {"field": "kw", "size": 1}}})
    assert buckets(out["all"]) == [("a", 3), ("b", 1), ("c", 1)] and out["all"]["sum_other_doc_count"] == 0
    assert buckets(out["two"]) == [("a", 3), ("b", 1)] and out["two"]["sum_other_doc_count"] == 1
    assert buckets(out["one"]) == [("a", 3)] and out["one"]["sum_other_doc_count"] == 2
    assert out["all"]["doc_count_error_upper_bound"] == 0


def test_terms_ordered_by_key_and_by_minimum_count(aggs):
    out = aggs({"desc": {"terms": {"field": "kw", "order": {"_key": "desc"}}},
                "asc": {"terms": {"field": "kw", "order": {"_key": "asc"}, "size": 2}},
                "common": {"terms": {"field": "kw", "min_doc_count": 2}},
                "ints": {"terms": {"field": "n", "order": {"_key": "DESC"}}}})
    assert buckets(out["desc"]) == [("c", 1), ("b", 1), ("a", 3)]
    assert buckets(out["asc"]) == [("a", 3), ("b", 1)]
    assert buckets(out["common"]) == [("a", 3)]
    assert buckets(out["ints"]) == [(3, 1), (2, 2), (1, 1)]


def test_terms_keys_and_sub_aggregations_on_each_field_kind(aggs):
    sub = {"aggs": {"kw": {"terms": {"field": "kw"}}}}
    out = aggs({"n": {"terms": {"field": "n"}, **sub}, "x": {"terms": {"field": "x"}, **sub},
                "flag": {"terms": {"field": "flag"}, **sub}, "raw": {"terms": {"field": "raw"}, **sub}})
    n = {b["key"]: (b["doc_count"], buckets(b["kw"])) for b in out["n"]["buckets"]}
    assert n == {2: (2, [("a", 1), ("b", 1)]), 1: (1, [("a", 1)]), 3: (1, [("a", 1), ("c", 1)])}
    assert all(type(b["key"]) is int for b in out["n"]["buckets"])  # integers, not 2.0
    assert [b["key"] for b in out["n"]["buckets"]] == [2, 1, 3]
    x = {b["key"]: (b["doc_count"], buckets(b["kw"])) for b in out["x"]["buckets"]}
    assert x == {2.5: (2, [("a", 1), ("b", 1)]), 1.5: (1, [("a", 1)])}
    assert buckets(out["flag"], "key_as_string") == [(1, 3, "true"), (0, 1, "false")]
    assert [buckets(b["kw"]) for b in out["flag"]["buckets"]] == [[("a", 3), ("c", 1)], [("b", 1)]]
    raw = {b["key"]: (b["doc_count"], buckets(b["kw"])) for b in out["raw"]["buckets"]}
    assert raw == {10: (2, [("a", 2)]), 20: (1, [("b", 1)])}  # not indexed: found by range on its column


def test_sub_aggregations_stay_within_the_query(aggs):
    out = aggs({"n": {"terms": {"field": "n"}, "aggs": {"kw": {"terms": {"field": "kw"}}}}},
               query={"terms": {"kw": ["b", "c"]}})
    assert {b["key"]: buckets(b["kw"]) for b in out["n"]["buckets"]} == {
        2: [("b", 1)], 3: [("a", 1), ("c", 1)]}


def test_metrics(aggs):
    out = aggs({"stats": {"stats": {"field": "n"}}, "min": {"min": {"field": "n"}}, "max": {"max": {"field": "x"}},
                "avg": {"avg": {"field": "n"}}, "sum": {"sum": {"field": "x"}},
                "count": {"value_count": {"field": "n"}}, "distinct": {"cardinality": {"field": "n"}}})
    assert out["stats"] == {"count": 4, "min": 1.0, "max": 3.0, "avg": 2.0, "sum": 8.0}
    assert out["min"] == {"value": 1.0} and out["max"] == {"value": 2.5} and out["avg"] == {"value": 2.0}
    assert out["sum"] == {"value": 6.5}
    assert out["count"] == {"value": 4} and type(out["count"]["value"]) is int
    assert out["distinct"] == {"value": 3} and type(out["distinct"]["value"]) is int


def test_metrics_over_nothing(aggs):
    spec = {"stats": {"stats": {"field": "n"}}, "min": {"min": {"field": "n"}}, "sum": {"sum": {"field": "n"}},
            "count": {"value_count": {"field": "n"}}, "distinct": {"cardinality": {"field": "n"}},
            "terms": {"terms": {"field": "kw"}}}
    for out in (aggs(spec, query={"term": {"kw": "zzz"}}),
                aggs({name: {kind: {"field": "unmapped"} for kind in body} for name, body in spec.items()})):
        assert out["stats"] == {"count": 0, "min": None, "max": None, "avg": None, "sum": 0.0}
        assert out["min"] == {"value": None} and out["sum"] == {"value": 0.0}
        assert out["count"] == {"value": 0} and out["distinct"] == {"value": 0}
        assert out["terms"] == {"doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": []}


def test_missing(aggs):
    out = aggs({"kw": {"missing": {"field": "kw"}}, "x": {"missing": {"field": "x"}},
                "unmapped": {"missing": {"field": "nope"}}, "within": {"terms": {"field": "flag"}, "aggs": {
                    "no_x": {"missing": {"field": "x"}}}}})
    assert out["kw"] == {"doc_count": 1} and out["x"] == {"doc_count": 2} and out["unmapped"] == {"doc_count": 5}
    assert [b["no_x"]["doc_count"] for b in out["within"]["buckets"]] == [1, 0]  # flag true: doc 4; false: none
    assert aggs({"x": {"missing": {"field": "x"}}}, query={"term": {"kw": "a"}}) == {"x": {"doc_count": 1}}


def test_bucket_budget_at_the_limit_and_past_it(aggs):
    spec = {"n": {"terms": {"field": "n"}, "aggs": {"kw": {"terms": {"field": "kw"}}}}}  # 3 + 5 buckets kept
    assert len(aggs(spec, max_buckets=8)["n"]["buckets"]) == 3
    with pytest.raises(QueryError, match=r"less than or equal to: \[7\] but this number of buckets was exceeded: "
                                         r"\[8\].*search.max_buckets"):
        aggs(spec, max_buckets=7)
    budget = BucketBudget(2)
    budget.add(2)
    with pytest.raises(QueryError):
        budget.add(1)
    assert BucketBudget(0).add(10**6) is None  # 0: no limit


@pytest.mark.parametrize("spec, message", [
    ({"t": {"terms": {"field": "txt"}}}, "Text fields are not optimised"),
    ({"t": {"terms": {"field": "_id"}}}, "Fielddata access on the _id field is disallowed"),
    ({"t": {"terms": {"field": "kw"}, "max": {"field": "n"}}}, r"Expected exactly one aggregation type in \[t\]"),
    ({"t": {"histogram": {"field": "n"}}}, r"Unknown aggregation type \[histogram\]"),
    ({"t": {"terms": {}}}, r"Required \[field\] in aggregation \[t\]"),
    ({"t": {"max": {"field": "n"}, "aggs": {"u": {"terms": {"field": "kw"}}}}},
     r"Aggregator \[t\] of type \[max\] cannot accept sub-aggregations"),
    ({"t": "terms"}, r"aggregation \[t\] must be an object"),
    ({"t": {"terms": {"field": "n"}, "aggs": ["x"]}}, r"\[aggs\] must be an object"),
])
def test_refused_as_elasticsearch_refuses(aggs, spec, message):
    with pytest.raises(QueryError, match=message):
        aggs(spec)


def test_refusals_say_what_elasticsearch_says():
    from biothings.web.engines.embedded.aggs import AggPlan
    with pytest.raises(QueryError) as refused:
        AggPlan(["terms"], None)
    assert str(refused.value) == "[aggs] must be an object"
    with pytest.raises(QueryError) as refused:
        AggPlan({"t": {"terms": {"field": "_id"}}}, None)
    assert str(refused.value) == ("Fielddata access on the _id field is disallowed, you can re-enable it by updating "
                                  "the dynamic cluster setting: indices.id_field_data.enabled")


def test_sub_aggregations_under_their_long_name(aggs):
    out = aggs({"flag": {"terms": {"field": "flag"}, "aggregations": {"kw": {"terms": {"field": "kw"}}}}})
    assert [buckets(b["kw"]) for b in out["flag"]["buckets"]] == [[("a", 3), ("c", 1)], [("b", 1)]]


def test_the_default_size_is_ten_buckets_and_the_rest_is_counted(aggs, twelve):
    out = aggs({"t": {"terms": {"field": "kw"}}, "all": {"terms": {"field": "kw", "size": 12}}}, directory=twelve)
    assert buckets(out["t"]) == [(f"v{n:02d}", 1) for n in range(10)] and out["t"]["sum_other_doc_count"] == 2
    assert len(out["all"]["buckets"]) == 12 and out["all"]["sum_other_doc_count"] == 0


@pytest.mark.parametrize("kind", ["terms", "max", "cardinality"])
def test_a_field_kept_in_the_source_only_is_refused_as_elasticsearch_refuses_it(aggs, kind):
    with pytest.raises(QueryError) as refused:
        aggs({"t": {kind: {"field": "where"}}})
    assert str(refused.value) == f"Field [where] of type [geo_point] is not supported for aggregation [{kind}]"


def test_terms_on_an_object_or_unmapped_field_beside_real_ones(aggs):
    """An object is no field to aggregate on (Elasticsearch: no buckets); the aggregations after it still run."""
    out = aggs({"obj": {"terms": {"field": "obj"}}, "unmapped": {"terms": {"field": "nope"}},
                "kw": {"terms": {"field": "kw"}}, "inner": {"terms": {"field": "obj.k"}}})
    assert out["obj"]["buckets"] == [] and out["unmapped"]["buckets"] == []
    assert buckets(out["kw"]) == [("a", 3), ("b", 1), ("c", 1)]
    assert buckets(out["inner"]) == [("v", 1)]


def test_a_boolean_not_indexed_with_sub_aggregations(aggs):
    out = aggs({"rawflag": {"terms": {"field": "rawflag"}, "aggs": {"has_obj": {"missing": {"field": "obj"}}}}})
    assert buckets(out["rawflag"], "key_as_string") == [(0, 1, "false"), (1, 1, "true")]
    assert [type(b["key"]) for b in out["rawflag"]["buckets"]] == [int, int]
    assert [b["has_obj"]["doc_count"] for b in out["rawflag"]["buckets"]] == [0, 1]


def test_missing_without_a_field_counts_every_document(aggs):
    """Elasticsearch resolves a values source without field as unmapped: every document lacks it."""
    assert aggs({"m": {"missing": {}}}) == {"m": {"doc_count": 5}}
    assert aggs({"m": {"missing": {}}}, query={"term": {"kw": "a"}}) == {"m": {"doc_count": 3}}


def test_meta_beside_the_type_is_allowed(aggs):
    out = aggs({"t": {"terms": {"field": "kw", "size": 1}, "meta": {"why": "test"}}})
    assert buckets(out["t"]) == [("a", 3)]
