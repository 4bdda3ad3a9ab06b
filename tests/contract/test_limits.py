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
        assert error_of(client.post("/v1/gene", data={"ids": "1017," * 100}), 413)["max"] == 100
    assert client.get("/v1/gene/1017").json()["_id"] == "1017"


def test_leading_wildcards_off_by_default(serve):
    """Refused by the builder before any engine sees them: one backend is enough."""
    client = serve("embedded")
    for q in ("*dk2", "*cdk", "symbol:*dk2", "symbol:?DK2", "name:(cyclin AND *ase)", "?dk2", "a && *ase",
              "a || *ase", "kinase AND !*ase"):
        body = error_of(client.get("/v1/query", params={"q": q}), 400)
        assert body == {"code": 400, "success": False, "keyword": "q",
                        "error": "Leading wildcards are not allowed in queries (ALLOW_EXPENSIVE_QUERIES)."}, q


def test_leading_wildcards_configurable(serve, api):
    client = serve(api.backend, ALLOW_LEADING_WILDCARD=True)
    response = client.get("/v1/query", params={"q": "symbol:*DK2", "fields": "symbol"})
    assert response.status_code == 200
    assert "1017" in {hit["_id"] for hit in response.json()["hits"]}
    # trailing wildcards are always allowed
    assert "1017" in {hit["_id"] for hit in api.get("/v1/query", params={"q": "symbol:CDK*", "size": 100}).json()["hits"]}


@pytest.mark.noida_gap("noida-db reads an escaped star as a wildcard")
def test_an_escaped_leading_star_is_no_wildcard(api):
    """``\\*dk2`` is the term ``*dk2``: allowed, and the standard analyzer keeps ``dk2`` of it (no gene)."""
    escaped = api.get("/v1/query", params={"q": "symbol:\\*dk2"})
    assert escaped.status_code == 200 and escaped.json()["hits"] == []


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


def raw_exchange(client, request):
    """Send raw bytes, read the whole answer (the server closes): (status line, headers, body)."""
    host, port = client.url.replace("http://", "").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    return lines[0], headers, body


@pytest.mark.parametrize("request_bytes, status, reason", [
    (b"POST /v1/gene HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n" + b" " * 101, 413, "Payload Too Large"),
    (b"GET /v1/query?q=" + b"a" * 200 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "URI Too Long"),
    (b"PROPFIND /v1/gene/1017 HTTP/1.1\r\nHost: x\r\n\r\n", 501, "Not Implemented"),
])
def test_refusals_before_the_handler_are_whole_json_answers(serve, caplog, request_bytes, status, reason):
    client = serve("embedded", MAX_BODY_SIZE=100, MAX_URL_LENGTH=100, ACCESS_CONTROL_ALLOW_ORIGIN="https://x.org")
    status_line, headers, body = raw_exchange(client, request_bytes)
    assert status_line == f"HTTP/1.1 {status} {reason}"
    # the refused request never reaches a handler (which would answer a second time)
    assert not [record for record in caplog.records if record.levelname in ("ERROR", "CRITICAL")]
    assert headers["content-type"] == "application/json; charset=UTF-8"
    assert headers["content-length"] == str(len(body)) and body.startswith(b'{"code":%d' % status)
    assert headers["connection"] == "close" and headers["x-content-type-options"] == "nosniff"
    assert headers["access-control-allow-origin"] == "https://x.org"  # browsers can read the refusal
    assert client.get("/v1/gene/1017").json()["_id"] == "1017"


def test_a_client_gone_mid_body_is_no_longer_in_flight(request):
    """The request counts from its head until its connection closes (shutdown waits for in-flight ones)."""
    import time
    from tests.conftest import make_settings
    from tests.servers import APIServer
    server = APIServer(make_settings("embedded", request)).start()
    try:
        host, port = server.url.replace("http://", "").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"POST /v1/gene HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"ids\": [")
            deadline = time.monotonic() + 10
            while server.app.inflight != 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert server.app.inflight == 1
        deadline = time.monotonic() + 10
        while server.app.inflight != 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.app.inflight == 0
    finally:
        server.stop()
