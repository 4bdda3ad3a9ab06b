"""The HTTP/1.1 server (biothings.web.httpserver) alone, on a tiny app: slow readers, idle
connections, limits, shutdown, memory.

What clients put on the wire, against both servers: tests/server/test_http_wire.py; hostile
clients against ``python index.py``: tests/server/test_http_abuse.py.
"""

import asyncio
import gc
import socket
import time

import orjson
import pytest
import tornado.web

from biothings.web.httpserver import HTTPServer
from tests.conftest import make_settings
from tests.servers import LoopbackServer
from tests.wire import Wire, get, post


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


class MegaAnswer(tornado.web.RequestHandler):
    """One megabyte, written at once (as the API's handlers write their answers)."""
    calls = 0

    def get(self):
        MegaAnswer.calls += 1
        self.finish(b"x" * 1024 * 1024)


class TinyServer(LoopbackServer):
    def __init__(self, **options):
        super().__init__()
        self.options = options
        self.http = None

    def make_app(self):
        return tornado.web.Application([("/address", EchoAddress), ("/big", BigAnswer), ("/mega", MegaAnswer)])

    async def listen(self, app):
        self.http = HTTPServer(app, **self.options)
        await self.http.listen(self.port, "127.0.0.1")
        return self.http

    def connections(self, timeout=10):
        """The server's open connections, once they are down to none or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        while self.http.connections and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(self.http.connections)


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


def test_pipelined_requests_wait_while_the_client_does_not_read(tiny):
    """Back-pressure: answers are not produced faster than the client reads them, and a client that
    never reads is dropped after the write timeout, its buffer freed."""
    server = tiny(write_timeout=0.5)
    MegaAnswer.calls = 0
    wire = Wire(server.url, receive_buffer=4096).send(get("/mega") * 20)
    time.sleep(0.3)
    assert MegaAnswer.calls < 8  # once the kernel's buffers are full, the rest wait
    assert server.connections() == 0  # aborted: the megabytes it held are freed
    received = 0
    try:
        while chunk := wire.sock.recv(65536):
            received += len(chunk)
    except ConnectionResetError:
        pass
    assert received < 3 * 1024 * 1024


def test_closing_connection_whose_client_never_reads_is_dropped(tiny):
    """An HTTP/1.0 answer is written, then the connection closes once sent: never, if the client
    does not read; the write timeout frees it."""
    server = tiny(write_timeout=0.5)
    wire = Wire(server.url, receive_buffer=4096).send(get("/mega", version="HTTP/1.0"))
    assert server.connections() == 0
    wire.close()


def test_idle_connections_are_closed(tiny):
    wire = Wire(tiny(idle_timeout=0.3).url)
    assert wire.send(get("/address")).answer()[0] == 200
    start = time.monotonic()
    assert wire.closed(wait=5)
    assert time.monotonic() - start < 3


def test_head_size_limit_at_n_and_n_plus_1(tiny):
    """The url and headers count (name, value and 4 bytes each): a head of exactly the limit passes."""
    server = tiny(max_header_size=1000)
    status, _, _ = Wire(server.url).send(get("/address", "X-Pad: " + "a" * 966)).answer()
    assert status == 200
    status, headers, body = Wire(server.url).send(get("/address", "X-Pad: " + "a" * 967)).answer()
    assert status == 431 and orjson.loads(body)["error"] == "Request head too large: the maximum is 1000 bytes."


def test_trickled_head_over_the_limit_is_refused_before_it_ends(tiny):
    """A header never finished (the parser reports none) still counts, read after read."""
    server = tiny(max_header_size=1000)
    wire = Wire(server.url).send(b"GET /address HTTP/1.1\r\nHost: x\r\nX-Pad: ")
    for _ in range(30):  # 3,000 bytes, never a line end
        time.sleep(0.01)
        try:
            wire.send(b"a" * 100)
        except OSError:  # refused and closed: the rest is not read
            break
    status, _, body = wire.answer()
    assert status == 431
    assert wire.closed()


def test_an_application_failing_to_take_a_request_answers_500(caplog):
    """A bug (here: routing raises) is logged as an ERROR and answered 500; the connection closes."""
    class Failing(tornado.web.Application):
        def find_handler(self, request, **kwargs):
            raise RuntimeError("routing is broken")

    class FailingServer(TinyServer):
        def make_app(self):
            return Failing([("/address", EchoAddress)])

    server = FailingServer().start()
    try:
        wire = Wire(server.url).send(get("/address"))
        status, headers, body = wire.answer()
        assert status == 500 and orjson.loads(body) == {"code": 500, "success": False,
                                                        "error": "Internal server error."}
        assert headers["connection"] == "close" and wire.closed()
        assert any(record.levelname == "ERROR" and record.exc_info for record in caplog.records)
    finally:
        server.stop()


def test_body_over_the_server_limit_is_refused(tiny):
    server = tiny(max_body_size=10)
    wire = Wire(server.url).send(post("/address", b"x" * 11))
    status, _, body = wire.answer()
    assert status == 413 and orjson.loads(body)["error"] == "Request body too large: the maximum is 10 bytes."
    assert wire.closed()
    chunked = b"POST /address HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nxxxxxx\r\n"
    wire = Wire(server.url).send(chunked + b"5\r\nxxxxx\r\n0\r\n\r\n")
    status, _, body = wire.answer()
    assert status == 413 and orjson.loads(body)["error"] == "Request body too large: the maximum is 10 bytes."
    assert wire.closed()
    assert Wire(server.url).send(post("/address", b"x" * 10)).answer()[0] == 405  # (EchoAddress has no post)


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


def test_closed_connections_are_freed_without_the_cycle_collector(request):
    """A closed connection leaves nothing in a reference cycle: its parser called the protocol
    back (parser -> protocol -> parser), and each closed connection, with what it held,
    waited for a full collection, which an idle server does not run."""
    from biothings.web.httpserver import HTTP1Protocol
    app = make_settings("embedded", request).get_app()

    async def scenario():
        server = HTTPServer(app)
        await server.listen(0, "127.0.0.1")
        port = server._servers[0].sockets[0].getsockname()[1]
        gc.collect()
        gc.disable()
        try:
            for _ in range(20):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(get("/v1/gene/1017"))
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200")
                writer.close()
                await writer.wait_closed()
            for _ in range(100):  # the server sees the closes
                if not server.connections:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.05)
            alive = sum(1 for obj in gc.get_objects() if isinstance(obj, HTTP1Protocol))
        finally:
            gc.enable()
        server.stop()
        await server.close_all_connections()
        return alive
    assert asyncio.run(scenario()) == 0


def test_the_server_is_chosen_by_setting(request):
    from biothings.web.httpserver import TornadoHTTPServer
    from biothings.web.index_base import make_server
    settings = make_settings("embedded", request, HTTP_HEADER_TIMEOUT=5.0, HTTP_IDLE_TIMEOUT=7.0)
    app = settings.get_app()
    ours = make_server(app, settings)
    assert type(ours) is HTTPServer and (ours.header_timeout, ours.idle_timeout) == (5.0, 7.0)
    assert ours.sweep_interval == 1.0  # a quarter of the shortest timeout, at most a second
    tornados = make_server(app, settings, "tornado")
    assert isinstance(tornados, TornadoHTTPServer)
    assert tornados.conn_params.header_timeout == 5.0  # the shorter of the idle and header timeouts
    with pytest.raises(SystemExit, match="expected biothings or tornado"):
        make_server(app, settings, "h2o")
