"""The HTTP/1.1 server (biothings.web.httpserver) on raw sockets: what clients put on the wire.

The contract suites already run over it (every ``api`` fixture is served by it);
these tests cover the connection itself: keep-alive, pipelining, HTTP/1.0,
HEAD, chunked bodies, ``Expect: 100-continue``, malformed and oversized heads,
upgrades, forwarded addresses, slow readers and idle connections.
"""

import asyncio
import gc
import json
import socket
import time

import orjson
import pytest
import tornado.web

from biothings.web.httpserver import HTTPServer
from tests import data
from tests.conftest import make_settings
from tests.servers import APIServer, LoopbackServer


@pytest.fixture(scope="module")
def app_server(request):
    server = APIServer(make_settings("embedded", request)).start()
    yield server
    server.stop()


class Wire:
    """A raw client connection that reads HTTP/1.1 answers one at a time."""

    def __init__(self, url, timeout=10):
        host, port = url.replace("http://", "").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buffer = bytearray()

    def send(self, data):
        self.sock.sendall(data)
        return self

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        self.buffer += chunk

    def _line(self):
        while b"\r\n" not in self.buffer:
            self._fill()
        end = self.buffer.index(b"\r\n")
        line = bytes(self.buffer[:end])
        del self.buffer[:end + 2]
        return line

    def _take(self, size):
        while len(self.buffer) < size:
            self._fill()
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def answer(self, head_only=False):
        """(status, headers with lower-case names, body) of the next answer."""
        status = int(self._line().split()[1])
        headers = {}
        while line := self._line():
            name, value = line.decode("latin1").split(":", 1)
            headers[name.strip().lower()] = value.strip()
        if head_only or status in (100, 204, 304):
            return status, headers, b""
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int(self._line(), 16):
                body += self._take(size)
                self._take(2)
            self._take(2)
            return status, headers, body
        return status, headers, self._take(int(headers.get("content-length", 0)))

    def closed(self, wait=5):
        """True once the server closed the connection (nothing more to read)."""
        self.sock.settimeout(wait)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


def get(path, *headers, version="HTTP/1.1", method="GET"):
    lines = [f"{method} {path} {version}", "Host: localhost", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def post(path, body, *headers):
    lines = [f"POST {path} HTTP/1.1", "Host: localhost", "Content-Type: application/x-www-form-urlencoded",
             f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_keep_alive_answers_many_requests_on_one_connection(app_server):
    wire = Wire(app_server.url)
    for gene_id in ("1017", "1018", "1017"):
        status, headers, body = wire.send(get(f"/v1/gene/{gene_id}")).answer()
        assert status == 200 and "connection" not in headers
        assert orjson.loads(body)["symbol"] == data.BY_ID[gene_id]["symbol"]
    wire.close()


def test_pipelined_requests_are_answered_in_order(app_server):
    """Sent in one write, the slow facet query first: answers come back in request order."""
    heavy = "/v1/query?q=__all__&facets=type_of_gene,taxid&facet_size=100&size=1000&fields=symbol"
    wire = Wire(app_server.url).send(get(heavy) + get("/v1/gene/1018")
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


def test_http10_closes_unless_keep_alive_is_asked(app_server):
    wire = Wire(app_server.url).send(get("/v1/gene/1017", version="HTTP/1.0"))
    status, headers, body = wire.answer()
    assert status == 200 and orjson.loads(body)["_id"] == "1017"
    assert wire.closed()
    wire = Wire(app_server.url)
    for _ in range(2):
        status, headers, _ = wire.send(get("/v1/gene/1017", "Connection: keep-alive", version="HTTP/1.0")).answer()
        assert status == 200 and headers["connection"] == "Keep-Alive"
    wire.close()


def test_connection_close_is_honoured(app_server):
    wire = Wire(app_server.url).send(get("/v1/gene/1017", "Connection: close") + get("/v1/gene/1018"))
    status, headers, _ = wire.answer()
    assert status == 200 and headers["connection"] == "close"
    assert wire.closed()  # the request after it is not answered


def test_chunked_request_body(app_server):
    body = b"q=1017,1018,1019&scopes=_id&fields=symbol"
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:20], body[20:]))
    wire = Wire(app_server.url).send(
        b"POST /v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
    status, _, answer = wire.answer()
    assert status == 200
    assert [hit["_id"] for hit in orjson.loads(answer)] == ["1017", "1018", "1019"]
    wire.close()


def test_expect_100_continue(app_server):
    body = b"q=1017&scopes=_id"
    wire = Wire(app_server.url).send(post("/v1/query", b"", "Expect: 100-continue").replace(
        b"Content-Length: 0", b"Content-Length: %d" % len(body)))
    status, _, _ = wire.answer()
    assert status == 100
    status, _, answer = wire.send(body).answer()
    assert status == 200 and orjson.loads(answer)[0]["_id"] == "1017"
    wire.close()


def test_malformed_request_gets_a_json_400_and_the_connection_closes(app_server):
    wire = Wire(app_server.url).send(b"GET /v1/gene/1017 HTTP/1.1\r\nHost: x\r\nX-Bad: \x00\x01\r\n\r\n")
    status, headers, body = wire.answer()
    assert status == 400 and headers["connection"] == "close"
    assert orjson.loads(body)["success"] is False
    assert wire.closed()


def test_raw_utf8_in_the_url_means_the_same_as_percent_encoded(app_server):
    """curl sends ``?q=café`` as raw bytes: llhttp alone would refuse them, tornado took them."""
    wire = Wire(app_server.url)
    request = get("/v1/query?q=cdk2%20OR%20café&fields=symbol")
    assert b"caf\xc3\xa9" in request  # raw UTF-8 on the wire
    raw = wire.send(request).answer()
    encoded = wire.send(get("/v1/query?q=cdk2%20OR%20caf%C3%A9&fields=symbol")).answer()
    assert raw[0] == encoded[0] == 200
    raw, encoded = orjson.loads(raw[2]), orjson.loads(encoded[2])
    assert raw["hits"] == encoded["hits"] and raw["total"] >= 1
    wire.close()


def test_garbage_after_a_good_request_is_refused_after_its_answer(app_server):
    wire = Wire(app_server.url).send(get("/v1/gene/1017") + b"\x16\x03\x01 not http\r\n\r\n")
    status, _, body = wire.answer()
    assert status == 200 and orjson.loads(body)["_id"] == "1017"
    status, headers, body = wire.answer()
    assert status == 400 and headers["connection"] == "close"
    assert "Malformed HTTP request" in orjson.loads(body)["error"]
    assert wire.closed()


def test_oversized_request_head_gets_a_json_431(app_server):
    wire = Wire(app_server.url).send(get("/v1/gene/1017", "X-Big: " + "a" * 70_000))
    status, headers, body = wire.answer()
    assert status == 431 and headers["connection"] == "close"
    assert "maximum is 65536 bytes" in orjson.loads(body)["error"]
    assert wire.closed()


def test_upgrade_request_is_answered_then_closed(app_server):
    wire = Wire(app_server.url).send(get("/v1/gene/1017", "Connection: Upgrade", "Upgrade: websocket"))
    status, _, body = wire.answer()
    assert status == 200 and orjson.loads(body)["_id"] == "1017"
    assert wire.closed()


def test_client_leaving_mid_body_is_not_counted_in_flight(app_server):
    wire = Wire(app_server.url).send(post("/v1/query", b"q=1017").replace(b"Content-Length: 6",
                                                                         b"Content-Length: 100"))
    time.sleep(0.2)
    assert app_server.app.inflight == 1
    wire.close()
    deadline = time.time() + 5
    while app_server.app.inflight and time.time() < deadline:
        time.sleep(0.05)
    assert app_server.app.inflight == 0
    assert Wire(app_server.url).send(get("/v1/gene/1017")).answer()[0] == 200


# ---------------------------------------------------------------- the server alone, on a tiny app


class EchoAddress(tornado.web.RequestHandler):
    def get(self):
        self.write({"remote_ip": self.request.remote_ip, "protocol": self.request.protocol})


class BigAnswer(tornado.web.RequestHandler):
    longest_wait = 0.0

    async def get(self):
        for _ in range(256):
            self.write(b"x" * 65536)
            start = time.monotonic()
            await self.flush()  # waits while the client is not reading
            BigAnswer.longest_wait = max(BigAnswer.longest_wait, time.monotonic() - start)


class TinyServer(LoopbackServer):
    def __init__(self, **options):
        super().__init__()
        self.options = options

    def make_app(self):
        return tornado.web.Application([("/address", EchoAddress), ("/big", BigAnswer)])

    async def listen(self, app):
        server = HTTPServer(app, **self.options)
        await server.listen(self.port, "127.0.0.1")
        return server


@pytest.fixture
def tiny():
    servers = []

    def start(**options):
        server = TinyServer(**options).start()
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.stop()


def test_forwarded_address_and_scheme(tiny):
    server = tiny(xheaders=True, trusted_downstream=["10.0.0.2"])
    wire = Wire(server.url)

    def address(*headers):
        return json.loads(wire.send(get("/address", *headers)).answer()[2])

    assert address() == {"remote_ip": "127.0.0.1", "protocol": "http"}
    assert address("X-Forwarded-For: 1.2.3.4, 10.0.0.1") == {"remote_ip": "10.0.0.1", "protocol": "http"}
    assert address("X-Forwarded-For: 1.2.3.4, 10.0.0.2")["remote_ip"] == "1.2.3.4"  # trusted hop skipped
    assert address("X-Forwarded-For: 1.2.3.4", "X-Real-Ip: 5.6.7.8")["remote_ip"] == "5.6.7.8"
    assert address("X-Forwarded-For: not-an-ip")["remote_ip"] == "127.0.0.1"
    assert address("X-Forwarded-Proto: https") == {"remote_ip": "127.0.0.1", "protocol": "https"}
    assert address("X-Forwarded-Proto: ftp")["protocol"] == "http"
    assert address() == {"remote_ip": "127.0.0.1", "protocol": "http"}  # nothing leaks to the next request
    wire.close()
    plain = Wire(tiny().url)  # xheaders off: the headers are not trusted
    assert json.loads(plain.send(get("/address", "X-Real-Ip: 5.6.7.8")).answer()[2])["remote_ip"] == "127.0.0.1"
    plain.close()


def test_slow_reader_gets_the_whole_answer(tiny):
    """Past the transport's buffer the handler's flush() waits for the client, then goes on."""
    wire = Wire(tiny().url)
    wire.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    wire.send(get("/big"))
    time.sleep(0.5)  # the server fills the socket buffers and waits
    status, headers, body = wire.answer()
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert body == b"x" * 65536 * 256
    assert BigAnswer.longest_wait > 0.3  # flush() waited for the reader
    wire.close()


def test_idle_connections_are_closed(tiny):
    wire = Wire(tiny(idle_timeout=0.3).url)
    assert wire.send(get("/address")).answer()[0] == 200
    start = time.monotonic()
    assert wire.closed(wait=5)
    assert time.monotonic() - start < 3


def test_body_over_the_server_limit_is_refused(tiny):
    wire = Wire(tiny(max_body_size=10).url).send(post("/address", b"x" * 20))
    status, _, body = wire.answer()
    assert status == 400 and "Content-Length too long" in orjson.loads(body)["error"]
    assert wire.closed()


def test_close_all_connections_closes_idle_keep_alive_connections():
    async def scenario():
        app = tornado.web.Application([("/address", EchoAddress)])
        server = HTTPServer(app)
        await server.listen(0, "127.0.0.1")
        port = server._servers[0].sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(get("/address"))
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        assert len(server.connections) == 1
        server.stop()
        await asyncio.wait_for(server.close_all_connections(), 5)
        await reader.read()  # the server closed it: end of stream
        assert not server.connections
        writer.close()
    asyncio.run(scenario())


def test_answered_requests_are_freed_without_the_cycle_collector(request):
    """Nothing of an answered request is left in a reference cycle (the GC would have to find it)."""
    from biothings.web.httpserver import Exchange
    app = make_settings("embedded", request).get_app()

    async def scenario():
        server = HTTPServer(app)
        await server.listen(0, "127.0.0.1")
        port = server._servers[0].sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        gc.collect()
        gc.disable()
        try:
            for _ in range(50):
                writer.write(get("/v1/spec"))
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
            await asyncio.sleep(0.05)
            alive = sum(1 for obj in gc.get_objects() if isinstance(obj, Exchange))
        finally:
            gc.enable()
        writer.close()
        server.stop()
        await server.close_all_connections()
        return alive
    assert asyncio.run(scenario()) == 0


class TornadoServedAPI(APIServer):
    """The same application under tornado's own ``HTTPServer``, as an app embedding it would."""

    listen = LoopbackServer.listen

    def server_options(self):
        return {"xheaders": True, "max_body_size": self.web_settings.MAX_BODY_SIZE}


def test_the_application_still_runs_under_tornados_server(request):
    server = TornadoServedAPI(make_settings("embedded", request, MAX_BODY_SIZE=1000)).start()
    try:
        wire = Wire(server.url)
        status, _, body = wire.send(get("/v1/gene/1017")).answer()
        assert status == 200 and orjson.loads(body)["symbol"] == data.BY_ID["1017"]["symbol"]
        status, _, body = wire.send(post("/v1/query", b"q=" + b"1" * 2000)).answer()
        assert status == 413 and orjson.loads(body)["max"] == 1000
        wire.close()
        status, _, body = Wire(server.url).send(post("/v1/query", b"q=1017,1018&scopes=_id")).answer()
        assert status == 200 and len(orjson.loads(body)) == 2
        deadline = time.time() + 5  # tornado writes the answer just before the request counts as done
        while server.app.inflight and time.time() < deadline:
            time.sleep(0.02)
        assert server.app.inflight == 0
    finally:
        server.stop()
