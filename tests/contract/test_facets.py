"""Facets: terms aggregations with real missing counts, nested facets."""

import json
from collections import Counter

import pytest

from tests import data
from tests.conftest import BACKENDS, fresh_index_settings


def facets(api, q="__all__", **params):
    response = api.get("/v1/query", params={"q": q, "size": 0, **params})
    assert response.status_code == 200, response.text
    return response.json()


def expected_terms(docs, field, size=10):
    counts = Counter()
    for doc in docs:
        for value in set(data.values(doc, field)):
            counts[value] += 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
    return ranked[:size], sum(count for _, count in ranked[size:]), counts


def test_terms_facet_counts(api):
    body = facets(api, facets="type_of_gene")
    facet = body["facets"]["type_of_gene"]
    top, other, _ = expected_terms(data.DOCS, "type_of_gene")
    assert facet["_type"] == "terms"
    assert [(term["term"], term["count"]) for term in facet["terms"]] == top
    assert facet["other"] == other
    assert facet["missing"] == 0
    assert facet["total"] == len(data.DOCS)
    assert body["hits"] == []


def test_missing_is_real(api):
    body = facets(api, facets="pubmed_count", facet_size=3)
    missing = sum(1 for doc in data.DOCS if "pubmed_count" not in doc)
    assert missing > 0
    assert body["facets"]["pubmed_count"]["missing"] == missing
    assert body["facets"]["pubmed_count"]["total"] == len(data.DOCS)


def test_facets_follow_the_query(api):
    kinase = [doc for doc in data.DOCS if data.text_match(doc, "name", "kinase")]
    body = facets(api, q="name:kinase", facets="chromosome", facet_size=5)
    top, other, _ = expected_terms(kinase, "chromosome", 5)
    facet = body["facets"]["chromosome"]
    assert [term["count"] for term in facet["terms"]] == [count for _, count in top]
    assert facet["total"] == len(kinase) == body["total"]


def test_integer_facet_keys(api):
    facet = facets(api, facets="taxid")["facets"]["taxid"]
    assert facet["terms"] == [{"term": 9606, "count": len(data.DOCS)}]


def test_nested_facets(api):
    body = facets(api, facets="type_of_gene(chromosome)", facet_size=3)
    outer = body["facets"]["type_of_gene"]["terms"]
    top, _, _ = expected_terms(data.DOCS, "type_of_gene", 3)
    assert [(term["term"], term["count"]) for term in outer] == top
    for term in outer:
        members = [doc for doc in data.DOCS if doc["type_of_gene"] == term["term"]]
        inner_top, inner_other, _ = expected_terms(members, "chromosome", 3)
        inner = term["chromosome"]
        assert [entry["count"] for entry in inner["terms"]] == [count for _, count in inner_top]
        assert inner["other"] == inner_other
        assert inner["total"] == term["count"]
        assert inner["missing"] == sum(1 for doc in members if "chromosome" not in doc)


def test_several_facets_and_aggs_alias(api):
    body = facets(api, aggs="type_of_gene,chromosome")
    assert set(body["facets"]) == {"type_of_gene", "chromosome"}


@pytest.mark.noida_gap("noida-db aggregates text fields; Elasticsearch refuses (fielddata disabled)")
def test_facet_on_text_field_is_400(api):
    response = api.get("/v1/query", params={"q": "__all__", "facets": "name"})
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and "fielddata" in body["error"] and "[name]" in body["error"]


def test_bad_facet_syntax_is_400(api):
    for spec in ("type_of_gene(", "a(b))", "a(b(c(d(e))))"):
        response = api.get("/v1/query", params={"q": "__all__", "facets": spec})
        assert response.status_code == 400, spec
        assert response.json()["keyword"] == "facets"


def test_nested_facets_need_the_setting(serve):
    """Refused by the builder before any engine sees them: one backend is enough."""
    strict = serve("embedded", ALLOW_NESTED_AGGS=False)
    response = strict.get("/v1/query", params={"q": "__all__", "facets": "type_of_gene(chromosome)"})
    assert response.status_code == 400
    assert response.json() == {"code": 400, "success": False, "keyword": "facets",
                               "error": "Nested facets are not enabled on this API."}


@pytest.mark.parametrize("backend", BACKENDS)
def test_boolean_facet_terms_are_true_and_false(backend, request, serve, tmp_path):
    """Elasticsearch answers a boolean bucket as key 1 / key_as_string "true": the facet says "true"."""
    from biothings.web.load import load
    settings = fresh_index_settings(backend, request, tmp_path, "bool")
    docs = [dict(doc, is_coding=doc["type_of_gene"] == "protein-coding") for doc in data.DOCS[:50]]
    path = tmp_path / "docs.ndjson"
    path.write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    mapping = dict(data.MAPPING, properties={**data.MAPPING["properties"], "is_coding": {"type": "boolean"}})
    load(settings, str(path), mapping=mapping, meta=dict(data.META), progress=False)
    client = serve(config=settings)
    answer = client.get("/v1/query", params={"q": "__all__", "facets": "is_coding", "size": 0}).json()
    coding = sum(doc["is_coding"] for doc in docs)
    assert answer["facets"]["is_coding"]["terms"] == [{"term": "true", "count": coding},
                                                      {"term": "false", "count": len(docs) - coding}]
    assert client.get("/v1/query", params={"q": "is_coding:true", "size": 0}).json()["total"] == coding
