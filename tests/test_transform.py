"""ESResultTransform on Elasticsearch-shaped answers (no engine needed)."""

import pytest

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


def test_transform_mapping(transform):
    mapping = {"properties": {"a": {"properties": {"b": {"type": "keyword", "index": False}}},
                              "s": {"type": "text", "fields": {"raw": {"type": "keyword"}}}}}
    fields = transform.transform_mapping(mapping)
    assert fields == {"a": {"type": "object"},
                      "a.b": {"type": "keyword", "index": False, "searched_by_default": False},
                      "s": {"type": "text", "index": True, "searched_by_default": True},
                      "s.raw": {"type": "keyword", "index": True, "searched_by_default": True}}
    assert set(transform.transform_mapping(mapping, prefix="s")) == {"s", "s.raw"}
    assert set(transform.transform_mapping(mapping, search="raw")) == {"s.raw"}


def test_end_of_scroll(transform):
    from biothings.web.pipeline import EndOfScroll
    with pytest.raises(EndOfScroll):
        transform.transform(response(), Options(scroll_id="x"))
