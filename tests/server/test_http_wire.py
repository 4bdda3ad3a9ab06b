"""HTTP/1.1 conformance on raw sockets, against both servers ``HTTP_SERVER`` can pick.

Every test runs on ``biothings`` (biothings.web.httpserver) and on ``tornado``
(tornado's own HTTPServer, the fallback); where they answer differently the
test says so, and docs/limits.md lists each difference.
"""

import logging
import socket
import time

import orjson
import pytest

from tests import data
from tests.conftest import make_settings
from tests.servers import APIServer
from tests.wire import Wire, access_line, get, post

SERVERS = ["biothings", "tornado"]
TIMEOUTS = {"HTTP_HEADER_TIMEOUT": 1.0, "HTTP_BODY_TIMEOUT": 1.0, "HTTP_IDLE_TIMEOUT": 2.0,
            "HTTP_WRITE_TIMEOUT": 1.0}


@pytest.fixture(scope="module", params=SERVERS)
def server(request):
    server = APIServer(make_settings("embedded", request, HTTP_SERVER=request.param, **TIMEOUTS)).start()
    server.kind = request.param
    yield server
    server.stop()


def wait_idle(server, timeout=5):
    """Wait until no request is in flight (tornado counts one done just after its answer is written)."""
    deadline = time.monotonic() + timeout
    while server.app.inflight and time.monotonic() < deadline:
        time.sleep(0.02)
    return server.app.inflight


def test_keep_alive_answers_many_requests_on_one_connection(server):
    wire = Wire(server.url)
    for gene_id in ("1017", "1018", "1017"):
        status, headers, body = wire.send(get(f"/v1/gene/{gene_id}")).answer()
        assert status == 200 and "connection" not in headers
        assert orjson.loads(body)["symbol"] == data.BY_ID[gene_id]["symbol"]
    wire.close()


def test_pipelined_requests_are_answered_in_order(server):
    """Sent in one write, the slow facet query first: answers come back in request order."""
    heavy = "/v1/query?q=__all__&facets=type_of_gene,taxid&facet_size=100&size=1000&fields=symbol"
    wire = Wire(server.url).send(get(heavy) + get("/v1/gene/1018")
                                 + post("/v1/query", b"q=1017,1018&scopes=_id&fields=symbol")
                                 + get("/status", method="HEAD") + get("/v1/gene/1017"))
    status, _, body = wire.answer()
    assert status == 200 and "facets" in orjson.loads(body)
    status, _, body = wire.answer()
    assert orjson.loads(body)["_id"] == "1018"
    status, _, body = wire.answer()
    assert [hit["query"] for hit in orjson.loads(body)] == ["1017", "1018"]
    status, headers, _ = wire.answer(head_only=True)
    assert status == 200 and int(headers["content-length"]) > 0
    status, _, body = wire.answer()  # the HEAD answer had no body: this is the next answer
    assert orjson.loads(body)["_id"] == "1017"
    wire.close()


def test_many_small_pipelined_requests_are_all_answered(server):
    """Only the head being parsed counts against the head size limit, not the requests before it."""
    count = 3000
    wire = Wire(server.url, timeout=30).send(get("/v1/gene/1017", method="HEAD") * count)
    for _ in range(count):
        assert wire.answer(head_only=True)[0] == 200
    wire.close()


def test_a_head_split_after_a_large_body_is_not_too_large(server):
    body = b"q=1017&scopes=_id&fields=symbol&x=" + b"a" * 100_000
    head = get("/v1/gene/1018")
    wire = Wire(server.url).send(post("/v1/query", body) + head[:10])
    time.sleep(0.1)
    wire.send(head[10:])
    status, _, answer = wire.answer()
    assert status == 200 and orjson.loads(answer)[0]["_id"] == "1017"
    status, _, answer = wire.answer()
    assert status == 200 and orjson.loads(answer)["_id"] == "1018"
    wire.close()


def test_http10_closes_unless_keep_alive_is_asked(server):
    wire = Wire(server.url).send(get("/v1/gene/1017", version="HTTP/1.0"))
    status, headers, body = wire.answer()
    assert status == 200 and orjson.loads(body)["_id"] == "1017"
    assert wire.closed()
    wire = Wire(server.url)
    for _ in range(2):
        status, headers, _ = wire.send(get("/v1/gene/1017", "Connection: keep-alive", version="HTTP/1.0")).answer()
        assert status == 200 and headers["connection"] == "Keep-Alive"
    wire.close()


@pytest.mark.parametrize("connection", ["close", "TE, close", "close, TE"])
def test_connection_close_is_honoured(server, connection):
    wire = Wire(server.url).send(get("/v1/gene/1017", f"Connection: {connection}") + get("/v1/gene/1018"))
    status, headers, _ = wire.answer()
    assert status == 200
    if server.kind == "tornado" and connection != "close":
        # tornado reads the header as one token: it keeps the connection and answers the next request
        assert wire.answer()[0] == 200
        return
    assert headers["connection"] == "close"
    assert wire.closed()  # the request after it is not answered


def test_later_http1_minor_versions_are_served_as_http11(server):
    wire = Wire(server.url)
    status, _, body = wire.send(get("/v1/gene/1017", version="HTTP/1.2")).answer()
    assert status == 200 and orjson.loads(body)["_id"] == "1017"
    if server.kind == "tornado":  # answered as HTTP/1.0 without keep-alive: closed
        assert wire.closed()
        return
    status, _, body = wire.send(get("/v1/gene/1018", version="HTTP/1.2")).answer()  # kept alive, as 1.1
    assert status == 200 and orjson.loads(body)["_id"] == "1018"
    wire.close()


def test_chunked_request_body(server):
    body = b"q=1017,1018,1019&scopes=_id&fields=symbol"
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:20], body[20:]))
    wire = Wire(server.url).send(
        b"POST /v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
    status, _, answer = wire.answer()
    assert status == 200
    assert [hit["_id"] for hit in orjson.loads(answer)] == ["1017", "1018", "1019"]
    wire.close()


def test_expect_100_continue(server):
    body = b"q=1017&scopes=_id"
    wire = Wire(server.url).send(post("/v1/query", b"", "Expect: 100-continue").replace(
        b"Content-Length: 0", b"Content-Length: %d" % len(body)))
    status, _, _ = wire.answer()
    assert status == 100
    status, _, answer = wire.send(body).answer()
    assert status == 200 and orjson.loads(answer)[0]["_id"] == "1017"
    wire.close()


@pytest.mark.parametrize("split", [None, 12, 14, 19, 21])
def test_raw_utf8_in_the_url_means_the_same_as_percent_encoded(server, split):
    """curl sends ``?q=café`` as raw bytes: the same answer however TCP splits them (in é, after it, ...)."""
    wire = Wire(server.url)
    request = get("/v1/query?q=café%20OR%20cdk2&fields=symbol&size=3")
    assert b"caf\xc3\xa9" in request  # raw UTF-8 on the wire
    if split is None:
        wire.send(request)
    else:
        wire.send(request[:split])
        time.sleep(0.05)
        wire.send(request[split:])
    raw = wire.answer()
    encoded = wire.send(get("/v1/query?q=caf%C3%A9%20OR%20cdk2&fields=symbol&size=3")).answer()
    assert raw[0] == encoded[0] == 200
    raw, encoded = orjson.loads(raw[2]), orjson.loads(encoded[2])
    assert raw["hits"] == encoded["hits"] and raw["total"] == encoded["total"] >= 1
    wire.close()


def test_upgrade_request_is_served_as_http11_with_its_body(server):
    """``curl --http2 -d q=cdk2``, Java's HttpClient: an h2c upgrade offer with a body, not taken."""
    body = b"q=1017,1018&scopes=_id&fields=symbol"
    wire = Wire(server.url).send(post("/v1/query", body, "Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c",
                                      "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA"))
    status, headers, answer = wire.answer()
    assert status == 200 and [hit["_id"] for hit in orjson.loads(answer)] == ["1017", "1018"]
    assert "upgrade" not in headers
    chunked = (b"POST /v1/query HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: h2c\r\n"
               b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"6\r\nq=1017\r\n0\r\n\r\n")
    status, _, answer = wire.send(chunked).answer()
    assert status == 200 and orjson.loads(answer)[0]["_id"] == "1017"
    status, _, answer = wire.send(get("/v1/gene/1018", "Connection: Upgrade", "Upgrade: websocket")).answer()
    assert status == 200 and orjson.loads(answer)["_id"] == "1018"
    status, _, answer = wire.send(get("/v1/gene/1017")).answer()  # the connection goes on
    assert status == 200 and orjson.loads(answer)["_id"] == "1017"
    wire.close()


def test_client_leaving_mid_body_is_not_counted_in_flight(server):
    wire = Wire(server.url).send(post("/v1/query", b"q=1017").replace(b"Content-Length: 6", b"Content-Length: 100"))
    time.sleep(0.2)
    assert server.app.inflight == 1
    wire.close()
    assert wait_idle(server) == 0
    assert Wire(server.url).send(get("/v1/gene/1017")).answer()[0] == 200


# ---------------------------------------------------------------- malformed requests

BIG = "a" * 70_000
# (id, request, our status, tornado's status: None when it closes without an answer)
MALFORMED = [
    ("no-host", b"GET /v1/gene/1017 HTTP/1.1\r\n\r\n", 400, 400),
    ("two-hosts", b"GET /v1/gene/1017 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, 400),
    ("invalid-host", b"GET /v1/gene/1017 HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, 400),
    ("http-0.9", b"GET /v1/gene/1017\r\n\r\n", 400, 400),
    ("http-2.0", b"GET /v1/gene/1017 HTTP/2.0\r\nHost: x\r\n\r\n", 505, 400),
    ("h2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, 400),
    ("lowercase-method", b"get /v1/gene/1017 HTTP/1.1\r\nHost: x\r\n\r\n", 501, 501),
    ("unknown-method", b"FOO /v1/gene/1017 HTTP/1.1\r\nHost: x\r\n\r\n", 501, 501),
    ("webdav-method", b"PROPFIND /v1/gene/1017 HTTP/1.1\r\nHost: x\r\n\r\n", 501, 501),
    ("connect", b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n\x16\x03\x01", 501, 501),
    ("gzip-chunked", b"POST /v1/query HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                     b"1\r\na\r\n0\r\n\r\n", 501, 400),
    ("gzip-coding", b"POST /v1/query HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nab", 400, 400),
    ("cl-and-te", b"POST /v1/query HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"0\r\n\r\n", 400, 400),
    ("two-lengths", b"POST /v1/query HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
     400, 400),
    ("bad-chunk-size", b"POST /v1/query HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, 400),
    ("obs-fold", b"GET /v1/gene/1017 HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400, 400),
    ("nul-in-header", b"GET /v1/gene/1017 HTTP/1.1\r\nHost: x\r\nX-Bad: \x00\x01\r\n\r\n", 400, 400),
    ("space-before-colon", b"GET /v1/gene/1017 HTTP/1.1\r\nHost : x\r\n\r\n", 400, 400),
    ("bare-lf", b"GET /v1/gene/1017 HTTP/1.1\nHost: x\n\n", 400, 200),
    ("tls-hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n", 400, 400),
    ("head-too-large", f"GET /v1/gene/1017 HTTP/1.1\r\nHost: x\r\nX-Big: {BIG}\r\n\r\n".encode(), 431, None),
    ("many-query-fields", b"GET /v1/gene/1017?" + b"a&" * 1100 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 400, 400),
]


@pytest.mark.parametrize("name, request_bytes, ours, tornados", MALFORMED, ids=[case[0] for case in MALFORMED])
def test_malformed_request_gets_an_error_and_a_close_logged_at_info(server, caplog, name, request_bytes, ours,
                                                                   tornados):
    caplog.set_level(logging.INFO)
    expected = ours if server.kind == "biothings" else tornados
    wire = Wire(server.url).send(request_bytes)
    if expected is None:
        assert wire.closed()
    else:
        status, headers, body = wire.answer()
        assert status == expected
        if expected >= 400 and (server.kind == "biothings" or body):
            error = orjson.loads(body)
            assert error["code"] == expected and error["success"] is False and error["error"]
        if expected >= 400 and (server.kind == "biothings" or expected == 501):
            assert headers["connection"] == "close"
            assert wire.closed()
    wire.close()
    assert wait_idle(server) == 0  # nothing of the request is left in flight
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert Wire(server.url).send(get("/v1/gene/1017")).answer()[0] == 200


def test_garbage_after_a_good_request_is_refused_after_its_answer(server):
    wire = Wire(server.url).send(get("/v1/gene/1017") + b"\x16\x03\x01 not http\r\n\r\n")
    status, _, body = wire.answer()
    assert status == 200 and orjson.loads(body)["_id"] == "1017"
    status, headers, body = wire.answer()
    assert status == 400
    if server.kind == "biothings":  # tornado's 400 has no body
        assert headers["connection"] == "close" and "Malformed HTTP request" in orjson.loads(body)["error"]
    assert wire.closed()


def test_method_not_allowed_names_the_allowed_ones(server):
    wire = Wire(server.url)
    status, headers, body = wire.send(get("/v1/gene/1017", method="PUT")).answer()
    assert status == 405 and orjson.loads(body)["code"] == 405
    assert set(headers["allow"].split(", ")) == {"GET", "HEAD", "POST", "OPTIONS"}
    status, headers, _ = wire.send(get("/v1/spec", method="DELETE")).answer()
    assert status == 405 and set(headers["allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    wire.close()


# ---------------------------------------------------------------- timeouts


def trickle(sockets, data, interval, deadline):
    """Send ``data`` one byte per ``interval`` on every socket, until each is closed or ``deadline``
    seconds passed; returns ({socket: seconds until closed}, {socket: bytes received})."""
    start = time.monotonic()
    closed = {}
    received = {sock: b"" for sock in sockets}
    for sock in sockets:
        sock.setblocking(False)
    position = 0
    while len(closed) < len(sockets) and time.monotonic() - start < deadline:
        for sock in sockets:
            if sock in closed:
                continue
            try:
                chunk = sock.recv(65536)
                received[sock] += chunk
                if chunk == b"":
                    closed[sock] = time.monotonic() - start
                    continue
            except BlockingIOError:
                pass
            except ConnectionResetError:
                closed[sock] = time.monotonic() - start
                continue
            if position < len(data):
                try:
                    sock.send(data[position:position + 1])
                except OSError:
                    closed[sock] = time.monotonic() - start
        position += 1
        time.sleep(interval)
    return closed, received


def connect(server, count):
    host, port = server.url.replace("http://", "").split(":")
    return [socket.create_connection((host, int(port)), timeout=5) for _ in range(count)]


def test_slowloris_heads_are_cut_by_the_header_timeout(server):
    """50 connections trickle a head a byte every 0.1 s (it would take 20 s): each is closed within
    the header timeout (1 s here) plus a sweep, while other clients are served."""
    sockets = connect(server, 50)
    head = b"GET /v1/gene/1017 HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 150 + b"\r\n\r\n"
    closed, received = trickle(sockets, head, 0.1, deadline=15)
    assert len(closed) == len(sockets)
    assert max(closed.values()) < 8  # far less than the 20 s the heads would take
    for answer in received.values():
        if server.kind == "biothings":  # tornado closes without a word
            assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n") and b'"code":408' in answer
    assert Wire(server.url).send(get("/v1/gene/1017")).answer()[0] == 200
    for sock in sockets:
        sock.close()


def test_slow_or_absent_body_is_cut_by_the_body_timeout(server):
    wire = Wire(server.url).send(post("/v1/query", b"q=1017").replace(b"Content-Length: 6", b"Content-Length: 60"))
    if server.kind == "biothings":
        status, headers, body = wire.answer()
        assert status == 408 and "body" in orjson.loads(body)["error"]
    assert wire.closed(wait=10)
    assert wait_idle(server) == 0


def test_silent_and_idle_connections_are_closed(server):
    silent = Wire(server.url)  # connects, never sends: the header timeout
    idle = Wire(server.url)
    assert idle.send(get("/v1/gene/1017")).answer()[0] == 200  # then nothing: the idle timeout
    assert silent.closed(wait=10)
    assert idle.closed(wait=10)


# ---------------------------------------------------------------- HEAD

GET_ROUTES = ["/", "/v1/docs", "/v1/spec", "/v1/spec?format=yaml", "/status", "/v1/metadata",
              "/v1/metadata/fields", "/v1/gene/metadata", "/v1/query?q=cdk2&fields=symbol", "/v1/gene/query?q=cdk2",
              "/v1/gene/1017", "/v1/gene/1017?format=yaml", "/v1/gene/nothere", "/v1/query?q=",
              "/_static/biothings.css", "/metrics", "/nowhere"]


@pytest.mark.parametrize("path", GET_ROUTES)
def test_head_answers_the_gets_status_and_headers_without_a_body(server, path):
    wire = Wire(server.url)
    status, headers, body = wire.send(get(path)).answer()
    # the HEAD, then a GET on the same connection: the HEAD answer must have had no body
    wire.send(get(path, method="HEAD") + get("/v1/gene/1018"))
    head_status, head_headers, _ = wire.answer(head_only=True)
    assert head_status == status
    took = b'"took":' in body  # milliseconds of this search: 1 to 3 digits, each time anew
    for name in ("content-length", "content-type", "etag", "cache-control", "allow"):
        if name == "content-length" and path == "/metrics":  # the counters grew since the GET
            continue
        if name == "content-length" and took:
            assert abs(int(head_headers[name]) - int(headers[name])) <= 2, (head_headers[name], headers[name])
            continue
        assert head_headers.get(name) == headers.get(name), name
    assert int(head_headers["content-length"]) > 0 and int(headers["content-length"]) == len(body)
    assert orjson.loads(wire.answer()[2])["_id"] == "1018"
    if "etag" in headers:
        status, _, _ = wire.send(get(path, f"If-None-Match: {headers['etag']}", method="HEAD")).answer()
        assert status == 304
    wire.close()


def test_head_on_a_post_only_route_is_not_allowed(server):
    status, headers, _ = Wire(server.url).send(get("/v1/gene", method="HEAD")).answer(head_only=True)
    assert status == 405


# ---------------------------------------------------------------- forwarded headers


def test_forwarded_headers_of_a_trusted_proxy(server, caplog):
    """Loopback is trusted by default (a proxy on the same machine): its headers say who the client is."""
    wire = Wire(server.url)
    wire.send(get("/nothing-1", "X-Real-Ip: 5.6.7.8")).answer()
    assert "(5.6.7.8)" in access_line(caplog, "/nothing-1")
    wire.send(get("/nothing-2", "X-Forwarded-For: 1.2.3.4, 127.0.0.1")).answer()
    assert "(1.2.3.4)" in access_line(caplog, "/nothing-2")  # the trusted hop is skipped
    # the OpenAPI document names no host or scheme, whoever forwards: it is cached in public
    spec = orjson.loads(wire.send(get("/v1/spec", "X-Forwarded-Proto: https")).answer()[2])
    assert spec["servers"] == [{"url": "/"}]
    wire.close()
