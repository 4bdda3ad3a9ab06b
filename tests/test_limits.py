"""Limits: every one configurable, every refusal the contract's JSON naming the limit."""

import socket

import pytest

from tests import data


def error_of(response, status):
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == status and body["success"] is False and body["error"]
    return body


def test_body_too_large_is_json_413(serve):
    client = serve("embedded", MAX_BODY_SIZE=1000)
    body = error_of(client.post("/v1/query", data={"q": "x" * 2000, "scopes": "symbol"}), 413)
    assert body["max"] == 1000 and body["num"] > 1000
    assert "1000" in body["error"]
    # under the limit: served as usual
    assert client.post("/v1/query", json={"q": ["CDK2"], "scopes": ["symbol"]}).status_code == 200


def test_default_body_limit_is_json_413(api):
    body = error_of(api.post("/v1/query", data=b"q=" + b"x" * (10 * 1024 * 1024 + 10),
                             headers={"Content-Type": "application/x-www-form-urlencoded"}), 413)
    assert body["max"] == 10 * 1024 * 1024


def test_chunked_body_too_large_is_json_413(serve):
    client = serve("embedded", MAX_BODY_SIZE=1000)

    def chunks():
        for _ in range(10):
            yield b"x" * 500
    response = client.post("/v1/query", data=chunks(), headers={"Content-Type": "text/plain"})
    assert error_of(response, 413)["max"] == 1000


def test_oversized_body_keeps_server_healthy(serve):
    client = serve("embedded", MAX_BODY_SIZE=100)
    for _ in range(5):
        assert client.post("/v1/gene", data={"ids": "1017," * 100}).status_code == 413
    assert client.get("/v1/gene/1017").status_code == 200


def test_url_too_long_is_json_414(serve):
    client = serve("embedded", MAX_URL_LENGTH=500)
    body = error_of(client.get("/v1/query", params={"q": "cdk2 " * 200}), 414)
    assert body["max"] == 500
    assert client.get("/v1/query", params={"q": "cdk2"}).status_code == 200


def test_query_string_length(serve):
    client = serve("embedded", MAX_QUERY_LENGTH=20)
    body = error_of(client.get("/v1/query", params={"q": "a" * 21}), 400)
    assert body["keyword"] == "q" and body["max"] == 20 and body["num"] == 21
    assert client.get("/v1/query", params={"q": "a" * 20}).status_code == 200
    body = error_of(client.get("/v1/query", params={"q": "cdk2", "filter": "b" * 21}), 400)
    assert body["keyword"] == "filter"


@pytest.mark.parametrize("path, body", [
    ("/v1/query", {"q": [str(i) for i in range(1001)], "scopes": ["_id"]}),
    ("/v1/gene", {"ids": [str(i) for i in range(1001)]}),
])
def test_batch_size_limit(api, path, body):
    response = api.post(path, json=body)
    error = error_of(response, 400)
    assert error["max"] == 1000 and error["num"] == 1001
    assert "1000" in error["error"]
    smaller = {key: value[:10] if isinstance(value, list) and key != "scopes" else value for key, value in body.items()}
    assert api.post(path, json=smaller).status_code == 200


def test_batch_size_is_configurable(serve):
    from biothings.web.settings import default
    kwargs = {"POST": {**default.ANNOTATION_KWARGS["POST"], "id": {**default.ANNOTATION_KWARGS["POST"]["id"], "max": 3}},
              "GET": default.ANNOTATION_KWARGS["GET"]}
    client = serve("embedded", ANNOTATION_KWARGS=kwargs)
    assert error_of(client.post("/v1/gene", json={"ids": ["1", "2", "3", "4"]}), 400)["max"] == 3
    assert client.post("/v1/gene", json={"ids": ["1017", "2", "3"]}).status_code == 200


def test_result_window(serve):
    client = serve("embedded", MAX_RESULT_WINDOW=100)
    body = error_of(client.get("/v1/query", params={"q": "__all__", "from": 95, "size": 10}), 400)
    assert body["keyword"] == "from" and body["max"] == 100 and body["num"] == 105
    assert client.get("/v1/query", params={"q": "__all__", "from": 90, "size": 10}).status_code == 200


def test_facet_count_and_size(api):
    body = error_of(api.get("/v1/query", params={"q": "__all__", "facet_size": 1001, "facets": "taxid"}), 400)
    assert body["keyword"] == "facet_size" and body["max"] == 1000
    facets = ",".join(f"f{i}" for i in range(1001))
    body = error_of(api.get("/v1/query", params={"q": "__all__", "facets": facets}), 400)
    assert body["keyword"] == "facets" and body["max"] == 1000


def test_facet_bucket_budget(serve):
    client = serve("embedded", MAX_FACET_BUCKETS=100)
    # 2 facets x 60 buckets = 120 > 100
    body = error_of(client.get("/v1/query", params={"q": "__all__", "facets": "taxid,type_of_gene",
                                                   "facet_size": 60}), 400)
    assert body["keyword"] == "facets" and body["max"] == 100 and body["num"] == 120
    # nesting multiplies: 10 + 10 * 10 = 110
    body = error_of(client.get("/v1/query", params={"q": "__all__", "facets": "type_of_gene(taxid)",
                                                   "facet_size": 10}), 400)
    assert body["num"] == 110
    assert client.get("/v1/query", params={"q": "__all__", "facets": "type_of_gene",
                                           "facet_size": 50}).status_code == 200


def test_nested_facet_depth(serve):
    client = serve("embedded", MAX_AGGS_DEPTH=2)
    body = error_of(client.get("/v1/query", params={"q": "__all__", "facets": "a(b(c))"}), 400)
    assert body["max"] == 2 and body["num"] == 3
    assert client.get("/v1/query", params={"q": "__all__", "facets": "type_of_gene(taxid)", "size": 0}).status_code == 200
    off = serve("embedded", ALLOW_NESTED_AGGS=False)
    error_of(off.get("/v1/query", params={"q": "__all__", "facets": "type_of_gene(taxid)"}), 400)


@pytest.mark.parametrize("q", ["*dk2", "symbol:*dk2", "name:(cyclin AND *ase)", "?dk2", "a && *ase", "a || *ase",
                               "kinase AND !*ase"])
def test_leading_wildcards_off_by_default(api, q):
    body = error_of(api.get("/v1/query", params={"q": q}), 400)
    assert body["keyword"] == "q" and "wildcard" in body["error"].lower()


def test_leading_wildcards_configurable(serve, api):
    client = serve(api.backend, ALLOW_LEADING_WILDCARD=True)
    response = client.get("/v1/query", params={"q": "symbol:*DK2", "fields": "symbol"})
    assert response.status_code == 200
    assert "1017" in {hit["_id"] for hit in response.json()["hits"]}
    # trailing wildcards are always allowed
    assert api.get("/v1/query", params={"q": "symbol:CDK*"}).status_code == 200
    assert api.get("/v1/query", params={"q": "symbol:\\*dk2"}).status_code == 200


def test_malformed_http_is_refused_quietly(api):
    """Malformed HTTP (bad header bytes) never reaches a handler: the server answers 400 and closes."""
    host, port = api.url.replace("http://", "").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"GET /v1/gene/1017 HTTP/1.1\r\nHost: x\r\nX-Bad: \x00\x01\r\n\r\n")
        answer = sock.recv(1000)
    assert answer.startswith(b"HTTP/1.1 400")
    assert api.get("/v1/gene/1017").json()["symbol"] == data.BY_ID["1017"]["symbol"]


def test_an_integer_past_64_bits_is_a_json_400(api):
    """The error names the number as text: JSON answers carry 64-bit integers at most."""
    body = error_of(api.get("/v1/query", params={"q": "cdk2", "size": "9" * 25}), 400)
    assert body["keyword"] == "size" and body["max"] == 1000 and body["num"] == "9" * 25
    body = error_of(api.get("/v1/query", params={"q": "cdk2", "from": "-" + "9" * 25}), 400)
    assert body["keyword"] == "from" and body["num"] == "-" + "9" * 25
