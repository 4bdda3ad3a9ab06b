"""BioThings parity: the reference's request semantics (its HTTP-level tests, on our demo data)."""

import logging

import pytest

from tests import data
from tests.apps import custom_handlers

# 1017 (CDK2): go.BP is a list of many objects, genomic_pos one object
GO_BP_IDS = [item["id"] for item in data.BY_ID["1017"]["go"]["BP"]]


def test_allow_null_always_list_dotfield_over_a_list_of_objects_answers(api):
    """The request that looped forever: one shared [] per parent, appended to itself."""
    response = api.get("/v1/query", params={"q": "symbol:CDK2", "dotfield": "", "allow_null": "go.BP.__test__",
                                             "always_list": "go.BP.__test__"})
    assert response.status_code == 200
    hit = response.json()["hits"][0]
    assert hit["go.BP.__test__"] == []
    assert hit["go.BP.id"] == GO_BP_IDS


def test_allow_null_dotfield_over_a_list_of_objects_is_an_empty_list(api):
    hit = api.get("/v1/query", params={"q": "symbol:CDK2", "dotfield": "1",
                                        "allow_null": "go.BP.__test__"}).json()["hits"][0]
    assert hit["go.BP.__test__"] == []  # the nulls of every item are dropped when flattened
    hit = api.get("/v1/query", params={"q": "symbol:CDK2", "dotfield": "1",
                                        "allow_null": "genomic_pos.__test__"}).json()["hits"][0]
    assert hit["genomic_pos.__test__"] is None  # one object: one null, kept
    assert hit["genomic_pos.chr"] == "12"


def test_allow_null_and_always_list_without_dotfield(api):
    hit = api.get("/v1/gene/1017", params={"allow_null": "go.BP.__test__",
                                           "always_list": "go.BP.__test__"}).json()
    assert [item["__test__"] for item in hit["go"]["BP"]] == [[]] * len(GO_BP_IDS)
    hit = api.get("/v1/gene/1017", params={"allow_null": "go.BP.__test__"}).json()
    assert [item["__test__"] for item in hit["go"]["BP"]] == [None] * len(GO_BP_IDS)


def test_always_list_with_dotfield_wraps_a_single_value(api):
    hit = api.get("/v1/gene/1017", params={"dotfield": "1", "always_list": "symbol,genomic_pos.chr"}).json()
    assert hit["symbol"] == ["CDK2"] and hit["genomic_pos.chr"] == ["12"]
    assert hit["taxid"] == 9606


KEGG_ID = "hsa04110"
WITH_KEGG = sorted(data.ids_where(lambda doc: KEGG_ID in data.values(doc, "pathway.kegg.id")))
WITH_PATHWAY = data.ids_where(lambda doc: data.values(doc, "pathway.kegg"))


def test_jmespath_exclude_empty_drops_hits_whose_result_is_empty(api):
    params = {"q": "_exists_:pathway.kegg", "fields": "pathway", "size": 1000,
              "jmespath": f"pathway.kegg|[?id=='{KEGG_ID}']"}
    every = api.get("/v1/query", params=params).json()
    assert {hit["_id"] for hit in every["hits"]} == WITH_PATHWAY  # without the option: all kept
    assert any(hit["pathway"]["kegg"] == [] for hit in every["hits"])
    kept = api.get("/v1/query", params={**params, "jmespath_exclude_empty": "1"}).json()
    assert sorted(hit["_id"] for hit in kept["hits"]) == WITH_KEGG
    assert all(hit["pathway"]["kegg"] == [{"id": KEGG_ID}] for hit in kept["hits"])
    assert kept["total"] == every["total"] == len(WITH_PATHWAY)  # total counts the matches, as BioThings


def test_jmespath_exclude_empty_inside_a_list_removes_items(api):
    params = {"q": "symbol:CDK2", "fields": "go.BP", "jmespath": "go.BP.id|starts_with(@, 'GO:000008') && @"}
    every = api.get("/v1/query", params=params).json()["hits"][0]["go"]["BP"]
    assert len(every) == len(GO_BP_IDS) and {item["id"] for item in every} - set(GO_BP_IDS) == {False}
    kept = api.get("/v1/query", params={**params, "jmespath_exclude_empty": "true"}).json()["hits"][0]["go"]["BP"]
    assert [item["id"] for item in kept] == [i for i in GO_BP_IDS if i.startswith("GO:000008")]
    none_left = api.get("/v1/query", params={**params, "jmespath": "go.BP.id|starts_with(@, 'GO:999') && @",
                                              "jmespath_exclude_empty": "1"}).json()
    assert none_left["hits"] == [] and none_left["total"] == 1


def test_jmespath_exclude_empty_in_a_batch_turns_a_term_into_a_miss(api):
    body = {"q": ["1017", "1018"], "scopes": "entrezgene", "fields": "symbol",
            "jmespath": "symbol|starts_with(@, 'CDK2') && @", "jmespath_exclude_empty": True}
    out = api.post("/v1/query", json=body).json()
    assert out[0]["symbol"] == "CDK2" and out[0]["query"] == "1017"
    assert out[1] == {"query": "1018", "notfound": True}


def test_jmespath_results_are_trees(api):
    """A result holding the document itself, or repeating its parts, is copied out as a tree."""
    hit = api.get("/v1/gene/1017", params={"fields": "symbol", "jmespath": "|{a: @, b: @}"}).json()
    assert hit == {"a": {"_id": "1017", "_version": 1, "symbol": "CDK2"},
                   "b": {"_id": "1017", "_version": 1, "symbol": "CDK2"}}
    doubling = "symbol|" + "|".join(["{a: @, b: @}"] * 30)  # 2**30 leaves if written out
    response = api.get("/v1/gene/1017", params={"jmespath": doubling})
    assert response.status_code == 400 and response.json()["keyword"] == "jmespath"
    assert "too large" in response.json()["error"]
    root_scalar = api.get("/v1/gene/1017", params={"jmespath": "|symbol"})
    assert root_scalar.status_code == 400 and "must give an object" in root_scalar.json()["error"]


@pytest.mark.parametrize("length, status", [(2000, 200), (2001, 400)])
def test_jmespath_length_limit(api, length, status):
    expression = "symbol|" + "@" + " " * (length - len("symbol|@"))
    response = api.get("/v1/gene/1017", params={"jmespath": expression})
    assert response.status_code == status, response.text
    if status == 400:
        assert response.json()["max"] == 2000 and response.json()["num"] == 2001


def test_scopes_accept_wildcard_patterns(api):
    out = api.post("/v1/query", json={"q": ["ENSG00000123374"], "scopes": ["ensembl.*"], "fields": "symbol"}).json()
    assert [hit["_id"] for hit in out] == ["1017"]
    out = api.post("/v1/query", json={"q": ["CDK2"], "scopes": "*", "fields": "symbol"}).json()
    assert "1017" in {hit.get("_id") for hit in out}
    for bad in ("{}", "a b", "_script", "a,{"):
        response = api.post("/v1/query", json={"q": ["CDK2"], "scopes": [bad]})
        assert response.status_code == 400 and response.json()["keyword"] == "scopes", bad


def test_annotation_rawquery(api):
    """BioThings shows a multi_match over _id; ours is the ids query it runs as (docs/contract.md)."""
    assert api.get("/v1/gene/1017", params={"rawquery": 1}).json() == {
        "query": {"ids": {"values": ["1017"]}}, "version": True, "size": 1000, "track_total_hits": True}
    assert api.get("/v1/gene/symbol:CDK2", params={"rawquery": 1}).json()["query"] == {
        "multi_match": {"query": "CDK2", "fields": ["symbol"], "operator": "and", "lenient": True}}


def test_status_check_document(api, serve):
    client = serve(api.backend, STATUS_CHECK={"id": "1017"})
    assert client.get("/status").json() == {"success": True, "status": client.get("/status").json()["status"]}
    document = client.get("/status", params={"dev": 1}).json()["document"]
    assert document["id"] == "1017" and document["found"] is True
    missing = serve(api.backend, STATUS_CHECK={"id": "no-such-id"})
    response = missing.get("/status", params={"dev": 1})
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.json()["document"] == {"id": "no-such-id", "index": document["index"], "found": False}
    assert "no-such-id" in response.json()["error"]
    assert missing.request("HEAD", "/status").status_code == 503
    wrong_index = serve(api.backend, STATUS_CHECK={"id": "1017", "index": "no_such_index"})
    response = wrong_index.get("/status")
    assert response.status_code == 503 and "no_such_index" in response.json()["error"]


def custom_app(serve, backend, **settings):
    return serve(backend, APP_LIST=custom_handlers.APP_LIST, COUNT_KWARGS=custom_handlers.COUNT_KWARGS,
                 **settings)


def test_custom_handlers_cache_control(api, serve):
    client = custom_app(serve, api.backend)
    hello = client.get("/hello")
    assert hello.json() == {"hello": "world", "type": None}
    assert hello.headers["Content-Type"].startswith("application/json")
    assert hello.headers["Cache-Control"] == "max-age=100, public"  # class attribute
    assert client.get("/hello/route").headers["Cache-Control"] == "max-age=999, public"  # route argument
    count = client.get("/v1/count")
    assert count.json() == {"count": len(data.DOCS)}
    assert count.headers["Cache-Control"] == "max-age=604800, public"  # the API's default
    assert "count: 1965" in client.get("/v1/count", params={"format": "yaml"}).text
    bad = client.get("/v1/count", params={"format": "xml"})
    assert bad.status_code == 400 and "Cache-Control" not in bad.headers
    assert client.get("/v1/gene/1017").json()["symbol"] == "CDK2"  # the default routes still serve
    quiet = custom_app(serve, api.backend, CACHE_MAX_AGE=0)
    assert "Cache-Control" not in quiet.get("/v1/count").headers
    assert quiet.get("/hello").headers["Cache-Control"] == "max-age=100, public"


def test_a_transform_that_never_ends_is_cut_and_the_worker_goes_on(api, serve, caplog):
    client = serve(api.backend, ES_RESULT_TRANSFORM="tests.apps.looping.LoopingTransform", TRANSFORM_TIMEOUT=0.5)
    with caplog.at_level(logging.ERROR, logger="biothings.web.handlers"):
        response = client.get("/v1/query", params={"q": "loop forever"})
    assert response.status_code == 503
    body = response.json()
    assert body["success"] is False and "0.5 s" in body["error"]
    request_id = response.headers["X-Request-Id"]
    assert any(request_id in record.getMessage() and record.levelno == logging.ERROR for record in caplog.records)
    ok = client.get("/v1/query", params={"q": "symbol:CDK2"})  # the same worker serves the next one
    assert ok.status_code == 200 and ok.json()["hits"][0]["_id"] == "1017"


def test_status_is_503_when_a_configured_index_does_not_exist(api, serve):
    client = serve(api.backend, ES_INDICES={"gene": "no_such_index_xyz"})
    response = client.get("/status")
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert "'no_such_index_xyz' (type gene)" in response.json()["error"]
    assert "indices" not in response.json()
    dev = client.get("/status", params={"dev": 1}).json()
    assert dev["indices"] == {"missing": {"gene": "no_such_index_xyz"}}
    assert client.get("/v1/gene/1017").status_code == 404  # what every data route answers
    assert api.get("/status").status_code == 200
