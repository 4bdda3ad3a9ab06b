"""Parameters, formats, headers and errors shared by every route."""

import json

import msgpack
import pytest
import yaml

from tests import data


def test_bool_and_list_parsing(api):
    # a bare ?dotfield is true; repeated list keys merge
    doc = api.get("/v1/gene/1017?dotfield&fields=genomic_pos&fields=symbol").json()
    assert doc["genomic_pos.start"] == data.BY_ID["1017"]["genomic_pos"]["start"]
    assert doc["symbol"] == "CDK2"
    for word in ("1", "true", "yes", "y", "t"):
        assert "genomic_pos.chr" in api.get(f"/v1/gene/1017?dotfield={word}&fields=genomic_pos").json()
    assert "genomic_pos" in api.get("/v1/gene/1017?dotfield=false&fields=genomic_pos").json()


def test_dotfield_keeps_falsy_values_and_merges_lists(api):
    doc = api.get("/v1/gene/49", params={"dotfield": 1, "fields": "genomic_pos"}).json()
    expected = data.BY_ID["49"]["genomic_pos"]
    assert doc["genomic_pos.start"] == [pos["start"] for pos in expected]


def test_always_list_and_allow_null(api):
    doc = api.get("/v1/gene/1017", params={"fields": "symbol,ensembl", "always_list": "symbol,ensembl.gene",
                                           "allow_null": "nothere,ensembl.protein"}).json()
    assert doc["symbol"] == ["CDK2"]
    assert doc["ensembl"]["gene"] == [data.BY_ID["1017"]["ensembl"]["gene"]]
    assert doc["nothere"] is None
    assert doc["ensembl"]["protein"] is None
    doc = api.get("/v1/gene/1017", params={"fields": "symbol", "always_list": "nothere",
                                           "allow_null": "nothere"}).json()
    assert doc["nothere"] == []


def test_jmespath(api):
    doc = api.get("/v1/gene/1017", params={"fields": "go", "jmespath": "go|BP[?evidence=='IDA'].id"}).json()
    expected = [item["id"] for item in data.BY_ID["1017"]["go"]["BP"] if item["evidence"] == "IDA"]
    assert doc["go"] == expected
    bad = api.get("/v1/gene/1017", params={"jmespath": "go|[[["})
    assert bad.status_code == 400 and bad.json()["keyword"] == "jmespath"


def test_sorted_keys(api):
    text = api.get("/v1/gene/1017", params={"fields": "symbol,name,alias"}).text
    assert text.index('"alias"') < text.index('"name"') < text.index('"symbol"')
    unsorted = api.get("/v1/gene/1017", params={"fields": "symbol,name,alias", "_sorted": "false"})
    assert unsorted.status_code == 200
    # the engine's order (the document's own on the embedded engine), the same values
    raw = api.get("/v1/gene/1017", params={"fields": "symbol,name,alias", "raw": 1, "_sorted": "false"}).json()
    engine_order = list(raw["hits"]["hits"][0]["_source"])
    assert [key for key in unsorted.json() if key not in ("_id", "_version")] == engine_order
    if api.backend == "embedded":
        assert engine_order == ["symbol", "name", "alias"]  # as in the document
    assert unsorted.json() == json.loads(text)


@pytest.mark.parametrize("params, keyword, extra", [
    ({"q": "cdk2", "size": "abc"}, "size", {}),
    ({"q": "cdk2", "size": "1001"}, "size", {"max": 1000, "num": 1001}),
    ({"q": "cdk2", "limit": "5000"}, "size", {"alias": "limit", "max": 1000}),
    ({"q": "cdk2", "from": "20000"}, "from", {"max": 10000}),
    ({"q": "cdk2", "format": "xml"}, "format", {"allowed": ["json", "yaml", "html", "msgpack"]}),
    ({"q": "cdk2", "fetch_all": "maybe"}, "fetch_all", {}),
])
def test_bad_parameters(api, params, keyword, extra):
    response = api.get("/v1/query", params=params)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 400 and body["success"] is False and body["keyword"] == keyword
    assert body["error"]
    for key, value in extra.items():
        assert body[key] == value
    assert response.headers["Content-Type"].startswith("application/json")


def test_unknown_parameters_ignored(api):
    plain = api.get("/v1/gene/1017", params={"fields": "symbol"})
    odd = api.get("/v1/gene/1017", params={"fields": "symbol", "whatever": "x", "size": "abc", "q": "brca1"})
    assert odd.status_code == 200 and odd.json() == plain.json() == {**odd.json(), "_id": "1017", "symbol": "CDK2"}
    query = api.get("/v1/query", params={"q": "symbol:CDK2", "fields": "symbol", "whatever": "x", "ids": "672"})
    assert query.status_code == 200 and [hit["_id"] for hit in query.json()["hits"]] == ["1017"]


def test_formats(api):
    as_yaml = api.get("/v1/gene/1017", params={"format": "yaml", "fields": "symbol"})
    assert as_yaml.headers["Content-Type"].startswith("text/x-yaml")
    assert yaml.safe_load(as_yaml.text)["symbol"] == "CDK2"
    as_msgpack = api.get("/v1/gene/1017", params={"format": "msgpack", "fields": "symbol"})
    assert as_msgpack.headers["Content-Type"] == "application/x-msgpack"
    assert msgpack.unpackb(as_msgpack.content)["symbol"] == "CDK2"
    as_html = api.get("/v1/gene/1017", params={"format": "html", "fields": "symbol"})
    assert as_html.headers["Content-Type"].startswith("text/html")
    assert "CDK2" in as_html.text and "<pre>" in as_html.text


def test_html_escapes_hostile_strings(api):
    hostile = '<script>alert("x")</script>'
    response = api.get("/v1/query", params={"q": "cdk2", "format": "html", "jmespath": "x|y", "fields": hostile})
    assert "<script>alert" not in response.text
    response = api.get(f"/v1/gene/{hostile}", params={"format": "html"})
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/json")  # errors always JSON


def test_errors_are_json_even_when_format_asked(api):
    response = api.get("/v1/gene/nope", params={"format": "yaml"})
    assert response.status_code == 404
    assert response.json()["code"] == 404


def test_unknown_route_is_json_404(api):
    for path in ("/nope", "/v1/nope/1017/extra", "/v2/query"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"code": 404, "success": False, "error": "Not Found."}


def test_method_not_allowed_is_json_405(api):
    response = api.request("DELETE", "/v1/gene/1017")
    assert response.status_code == 405
    body = response.json()
    assert body["code"] == 405 and body["success"] is False
    response = api.request("PUT", "/v1/query")
    assert response.status_code == 405
    assert response.json() == {"code": 405, "success": False, "error": "Method Not Allowed"}


def test_cors_and_cache_headers(api):
    response = api.get("/v1/gene/1017")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Cache-Control"] == "max-age=604800, public"
    error = api.get("/v1/gene/nope")
    assert error.headers["Access-Control-Allow-Origin"] == "*"
    assert "Cache-Control" not in error.headers


def test_options_preflight(api):
    response = api.request("OPTIONS", "/v1/query", headers={
        "Origin": "https://example.org", "Access-Control-Request-Method": "POST"})
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


def test_cache_settings(serve, api):
    custom = serve(api.backend, CACHE_MAX_AGE=60, CACHE_MAX_AGE_BY_HANDLER={"query": 0})
    assert custom.get("/v1/gene/1017").headers["Cache-Control"] == "max-age=60, public"
    assert "Cache-Control" not in custom.get("/v1/query", params={"q": "cdk2"}).headers


def test_etag_revalidation(api):
    first = api.get("/v1/gene/1017")
    etag = first.headers["Etag"]
    again = api.get("/v1/gene/1017", headers={"If-None-Match": etag})
    assert again.status_code == 304


def test_raw_can_be_disabled(serve, api):
    locked = serve(api.backend, ALLOW_RAW=False)
    for params in ({"q": "cdk2", "raw": 1}, {"q": "cdk2", "rawquery": 1}):
        response = locked.get("/v1/query", params=params)
        assert response.status_code == 403
        assert response.json()["success"] is False
