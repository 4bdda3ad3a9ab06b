"""The HTTP/1.1 server under the tornado ``Application``: asyncio protocols, httptools parsing.

Why not tornado's ``HTTPServer``: it reads through ``IOStream`` (Python-level
buffers, a regular expression to find the end of each request head, a
coroutine per request and a reader/writer registration per request), about a
fifth of the CPU of a fast request here. An ``asyncio.Protocol`` gets its bytes
straight from the event loop (uvloop: from C), and ``httptools`` (llhttp, the
parser of Node.js) parses the head in C. Everything above the connection stays
tornado's: this module implements tornado's server-side connection interface
(``httputil.HTTPConnection``) and feeds the application's per-request
``HTTPMessageDelegate`` exactly as tornado's ``HTTP1Connection`` does, so the
routing, the handlers and ``RequestGuard`` run unchanged. (Not supported:
the flow control of ``@stream_request_body`` handlers: body chunks are handed
over as they arrive, whatever ``data_received`` returns.) tornado's own server
stays one setting away (``TornadoHTTPServer``, ``HTTP_SERVER = "tornado"``).

What it does, as tornado's server does: keep-alive (HTTP/1.1 by default,
HTTP/1.0 on request), pipelined requests answered in order, chunked request
bodies, ``Expect: 100-continue``, chunked responses when no ``Content-Length``
is set, no body for ``HEAD``/204/304, a body size limit (413 and close past it).

What keeps it safe on the open internet:

- back-pressure: while a client does not read its answers (the transport's
  buffer is over its high-water mark), the connection reads nothing more and
  starts no further pipelined request; after ``write_timeout`` seconds without
  draining it is aborted, its buffer freed;
- timeouts, enforced by one sweep per server (no timer per request): a request
  head must arrive within ``header_timeout`` of its first byte, a body within
  ``body_timeout`` of its head, and idle keep-alive connections close after
  ``idle_timeout``;
- every malformed request gets a JSON error and a close, logged at INFO: 400
  (bad framing, Host, HTTP/0.9), 408 (too slow), 431 (head too large), 501
  (unknown method or transfer coding), 505 (HTTP/2 and later); requests read
  before it on the connection are answered first. An exception of the
  application is logged and answered 500, and what the request took is
  released (``on_connection_close``).

Where it answers differently from tornado's server: docs/limits.md.
"""

import asyncio
import collections
import re
import socket

import httptools
import tornado.httpserver
from tornado import httputil, netutil
from tornado.log import app_log, gen_log

from biothings.web import formats
from biothings.web.limits import KNOWN_METHODS

_CRLF = re.compile(r"[\r\n]")
_NON_ASCII = re.compile(rb"[\x80-\xff]")
_REQUEST_LINE = re.compile(rb"^([!#$%&'*+.^_`|~0-9A-Za-z-]+) [^ \r\n]+ HTTP/[0-9]\.[0-9]\r?$", re.M)
# answers waiting behind a pipelined request before the connection stops reading
_MAX_PIPELINED = 16
# body bytes of pipelined requests kept before the connection stops reading
_MAX_BUFFERED = 1024 * 1024
# longest pause between two sweeps of the timeouts (shorter timeouts sweep more often)
_MAX_SWEEP_INTERVAL = 1.0


class HTTPServer:
    """Serve a tornado ``Application`` on listening sockets.

    ``await start(sockets)`` serves bound sockets (``tornado.netutil.bind_sockets``),
    ``await listen(port, address)`` binds them first; ``stop()`` stops accepting;
    ``await close_all_connections()`` closes the connections left. Timeouts are
    in seconds, ``0`` or ``None`` for none.
    """

    def __init__(self, application, max_body_size=None, max_header_size=None, header_timeout=20.0,
                 body_timeout=60.0, idle_timeout=75.0, write_timeout=30.0):
        self.application = application
        self.max_body_size = max_body_size or 100 * 1024 * 1024  # tornado's default
        self.max_header_size = max_header_size or 64 * 1024
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.idle_timeout = idle_timeout
        self.write_timeout = write_timeout
        timeouts = [timeout for timeout in (header_timeout, body_timeout, idle_timeout, write_timeout) if timeout]
        self.sweep_interval = min([_MAX_SWEEP_INTERVAL] + [timeout / 4 for timeout in timeouts])
        self.connections = set()
        self._servers = []
        self._sweeper = None

    async def listen(self, port, address=None, **kwargs):
        await self.start(netutil.bind_sockets(port, address, **kwargs))

    async def start(self, sockets):
        loop = asyncio.get_running_loop()
        for sock in sockets:
            self._servers.append(await loop.create_server(lambda: HTTP1Protocol(self), sock=sock))
        if self._sweeper is None:
            self._sweeper = loop.call_later(self.sweep_interval, self._sweep)

    def stop(self):
        """Stop accepting connections (the listening sockets close)."""
        for server in self._servers:
            server.close()
        self._servers = []

    async def close_all_connections(self):
        """Close every connection, in-flight requests included; returns once all closed."""
        while self.connections:
            conn = next(iter(self.connections))
            conn.close()
            await conn.closed
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def _sweep(self):
        """Apply the timeouts to every connection: one timer for the server, none per request."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for conn in list(self.connections):
            conn.check_timeouts(now)
        self._sweeper = loop.call_later(self.sweep_interval, self._sweep)


class TornadoHTTPServer(tornado.httpserver.HTTPServer):
    """tornado's own server, started and stopped as ``HTTPServer`` above is (``HTTP_SERVER = "tornado"``)."""

    async def start(self, sockets):
        self.add_sockets(sockets)

    async def listen(self, port, address=None, **kwargs):
        self.add_sockets(netutil.bind_sockets(port, address, **kwargs))


class RequestContext:
    """What ``HTTPServerRequest`` reads from a connection: the client's address and scheme."""

    __slots__ = ("address", "remote_ip", "protocol")

    def __init__(self, address, remote_ip, protocol="http"):
        self.address = address
        self.remote_ip = remote_ip
        self.protocol = protocol

    def __str__(self):
        return self.remote_ip


class StopParsing(Exception):
    """Raised in a parser callback once reading stopped: ends the parse of the bytes at hand."""


def new_parser(protocol):
    parser = httptools.HttpRequestParser(protocol)
    # any HTTP/x.y reaches on_headers_complete, where HTTP/1.2+ is served as 1.1 and others refused
    parser.set_dangerous_leniencies(lenient_version=True)
    return parser


class HTTP1Protocol(asyncio.Protocol):
    """One client connection: parses requests, answers them one at a time, in order.

    Requests pipelined behind the one being answered are parsed and kept
    (their bodies too) until their turn; reading pauses while too many wait,
    and while the client does not read its answers.
    """

    def __init__(self, server):
        self.server = server
        self.parser = new_parser(self)
        self.transport = None
        self.context = None
        self.exchanges = collections.deque()  # requests read, first one being answered
        self.reading = None  # the exchange whose message is being parsed
        self.resuming = None  # an Upgrade request whose body comes after a stand-in head (ignore_upgrade)
        # size of the head being parsed: its headers as reported by the parser (its url
        # counts once complete), and at most head_tail more bytes it has not reported yet
        self.head_size = 0
        self.head_tail = 0
        self.head_marked = False  # a head or header began in the bytes at hand
        self.body_fed = 0  # body bytes in the bytes at hand
        self.buffered = 0  # body bytes of requests waiting their turn
        self.error = None  # (status, reason) to answer once the requests before it are answered
        self.stopped_reading = False
        self.paused = False
        self.closing = False
        self.write_paused = False
        self.write_waiters = []
        self.starting = False  # start_front is running
        self.served = False  # a request was answered (the idle timeout applies, not the header timeout)
        # when the current state began (see check_timeouts)
        self.reading_since = self.idle_since = self.write_paused_since = self.closing_since = 0.0
        self.closed = None
        self.loop = None
        self.done_future = None

    # ------------------------------------------------------------ transport
    def connection_made(self, transport):
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        self.closed = self.loop.create_future()
        self.done_future = self.loop.create_future()
        self.done_future.set_result(None)
        self.idle_since = self.loop.time()
        address = transport.get_extra_info("peername")
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6) and address:
            remote_ip = address[0]
        else:
            remote_ip = "0.0.0.0"  # a Unix socket, as tornado says
        self.context = RequestContext(address, remote_ip)
        self.server.connections.add(self)

    def connection_lost(self, exc):
        self.server.connections.discard(self)
        self.closing = True  # data_received reads nothing more (and asyncio sends nothing more)
        exchanges, self.exchanges = self.exchanges, collections.deque()
        for exchange in exchanges:
            exchange.connection_lost()
        self.resume_writing()
        if not self.closed.done():
            self.closed.set_result(None)
        # the parser calls this protocol back (parser -> protocol -> parser): a cycle that kept
        # each closed connection, and what it held, until a full garbage collection
        self.parser = self.reading = self.resuming = None

    def pause_writing(self):
        self.write_paused = True
        self.write_paused_since = self.loop.time()
        self.update_reading()

    def resume_writing(self):
        self.write_paused = False
        waiters, self.write_waiters = self.write_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        if not self.closing:
            self.update_reading()
            if self.exchanges:
                self.start_front()

    def write_future(self):
        """What a write returns: done now, or once the transport's buffer drains."""
        if not self.write_paused:
            return self.done_future
        waiter = self.loop.create_future()
        self.write_waiters.append(waiter)
        return waiter

    def close(self):
        """Close once what is written is sent (``check_timeouts`` aborts it if the client never reads)."""
        if not self.closing:
            self.closing = True
            self.closing_since = self.loop.time()
            self.transport.close()

    def abort(self):
        """Close now, dropping what is not sent."""
        self.closing = True
        self.transport.abort()

    def update_reading(self):
        """Pause reading while too much waits its turn or the client does not read; for good once reading stopped."""
        pause = (self.stopped_reading or self.write_paused or len(self.exchanges) > _MAX_PIPELINED
                 or self.buffered > _MAX_BUFFERED)
        if pause != self.paused and not self.closing:
            self.paused = pause
            if pause:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()
                self.reading_since = self.loop.time()  # the client could not send while paused

    def check_timeouts(self, now):
        """Close the connection when its current state lasted longer than the server allows."""
        server = self.server
        if self.closing:  # what is left to send waits for a client that does not read: drop it
            if server.write_timeout and now - self.closing_since > server.write_timeout:
                self.transport.abort()
        elif self.write_paused:
            if server.write_timeout and now - self.write_paused_since > server.write_timeout:
                gen_log.info("Closing the connection of %s: answers not read for %s s", self.context,
                             server.write_timeout)
                self.abort()
        elif self.reading is not None:
            if self.paused:
                return  # the server is not reading: nothing is late
            if self.reading.head_done:
                limit, what = self.reading.body_timeout or server.body_timeout, "body"
            else:
                limit, what = server.header_timeout, "head"
            if limit and now - self.reading_since > limit:
                self.stop_reading(408, f"Request {what} not received within {limit} s.")
        elif not self.exchanges and not self.stopped_reading:
            limit = server.idle_timeout if self.served else server.header_timeout
            if limit and now - self.idle_since > limit:
                self.close()

    # ------------------------------------------------------------ input
    def data_received(self, data):
        if self.closing or self.stopped_reading:
            return
        if not data.isascii():
            reading = self.reading
            if reading is None or not (reading.head_done or reading.headers):
                # (a head split right after its request line: the first header line may be quoted too)
                data = quote_request_line(data, reading is not None)
        while data:
            self.head_marked = False
            self.body_fed = 0
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade as upgrade:
                data = self.ignore_upgrade(data[upgrade.args[0]:])  # the bytes after its head
                continue
            except httptools.HttpParserError as exc:
                if not self.stopped_reading:
                    self.refuse_malformed(exc, data)
                return
            reading = self.reading
            if reading is not None and not reading.head_done:
                self.count_partial_head(data)
            return

    def count_partial_head(self, data):
        """Bound the size of a head that ``data`` ends in the middle of (the parser reports a header
        only once the next one begins)."""
        if self.head_marked:
            # what the parser has not reported is on the last line of these bytes, after the
            # bodies of the requests before it
            tail = min(len(data) - data.rfind(b"\n") - 1, len(data) - self.body_fed)
        else:
            tail = self.head_tail + len(data)  # all of it is the head's
        self.head_tail = tail
        if self.head_size + tail > self.server.max_header_size:
            self.refuse_large_head()

    def ignore_upgrade(self, rest):
        """Serve an ``Upgrade`` request as plain HTTP/1.1 with its body (RFC 9110 section 7.8).

        llhttp stops at the head of such a request and leaves what follows to
        the new protocol: its body (``Upgrade: h2c``, sent by curl --http2 and
        Java's HttpClient) would be lost. A fresh parser reads the body behind a
        stand-in head with the same framing, then the requests after it.
        """
        exchange = self.reading
        self.parser = new_parser(self)
        if exchange is None:  # CONNECT: answered, then closed (what follows is not HTTP)
            self.stop_reading()
            return None
        headers = exchange.headers
        if "Transfer-Encoding" in headers:
            framing = b"Transfer-Encoding: chunked"  # the only coding on_headers_complete let through
        else:
            framing = b"Content-Length: %d" % exchange.declared_length()
        self.resuming = exchange
        self.parser.feed_data(b"PUT / HTTP/1.1\r\n" + framing + b"\r\n\r\n")  # no body: complete now
        return rest

    def refuse_malformed(self, exc, data):
        if isinstance(exc, httptools.HttpParserInvalidMethodError) and any(
                match.group(1).decode() not in KNOWN_METHODS for match in _REQUEST_LINE.finditer(data)):
            # a request line with a method llhttp does not know (FOO, get): not garbage
            self.stop_reading(501, "Request method not implemented.")
        elif self.parser.get_method() == b"PRI":  # the HTTP/2 connection preface
            self.stop_reading(505, "HTTP/2 is not supported: use HTTP/1.1.")
        elif self.head_size + self.head_tail > self.server.max_header_size:
            self.refuse_large_head()
        else:
            self.stop_reading(400, f"Malformed HTTP request: {exc}")

    def refuse_large_body(self, exchange):
        self.stop_reading(413, f"Request body too large: the maximum is {exchange.max_body_size} bytes.")

    def refuse_large_head(self):
        self.stop_reading(431, f"Request head too large: the maximum is {self.server.max_header_size} bytes.")

    def stop_reading(self, status=None, reason=None):
        """Read no more: answer the requests read so far, then the error if any, then close."""
        if self.stopped_reading:
            return
        if reason:
            gen_log.info("Bad HTTP request from %s: %s", self.context, reason)
        self.stopped_reading = True
        self.update_reading()
        broken, self.reading = self.reading, None
        if status is None:
            if self.exchanges:
                self.exchanges[-1].keep_alive = False
            else:
                self.close()
            return
        self.error = (status, reason)
        if broken is not None:
            if broken.dispatched:  # it is being answered: the error is its answer
                if not broken.started:
                    self.write_error()
                self.close()
                return
            self.exchanges.remove(broken)  # it never reached the application
        if not self.exchanges:
            self.write_error()
            self.close()

    def fail(self, status, reason):
        """The request being answered gets this error, then the connection closes."""
        self.stopped_reading = True
        self.update_reading()
        self.reading = None
        self.error = (status, reason)
        self.write_error()
        self.close()

    def write_error(self):
        status, reason = self.error
        body = formats.error_json(status, reason)
        self.transport.write(b"HTTP/1.1 %d %s\r\nContent-Type: application/json; charset=UTF-8\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                             % (status, httputil.responses[status].encode(), len(body), body))

    # ------------------------------------------------------------ parser callbacks
    # (once reading stopped, raising ends the parse of the bytes at hand)
    def on_message_begin(self):
        if self.stopped_reading:
            raise StopParsing
        self.reading = Exchange(self)
        self.head_size = self.head_tail = 0
        self.head_marked = True
        self.reading_since = self.loop.time()
        self.exchanges.append(self.reading)
        self.update_reading()

    def on_url(self, url):
        self.reading.url += url

    def on_header(self, name, value):
        self.head_marked = True
        self.head_size += len(name) + len(value) + 4
        if self.head_size > self.server.max_header_size:
            self.refuse_large_head()
            raise StopParsing
        self.reading.headers.add(name.decode("latin1"), value.decode("latin1").strip())

    def on_headers_complete(self):
        exchange = self.reading
        if self.resuming is not None:  # the stand-in head of ignore_upgrade
            self.exchanges.pop()
            self.reading, self.resuming = self.resuming, None
            return
        parser = self.parser
        exchange.head_done = True
        self.reading_since = self.loop.time()
        if len(exchange.url) + self.head_size > self.server.max_header_size:
            self.refuse_large_head()
            raise StopParsing
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            if version[0] == "1":
                version = "1.1"  # a later HTTP/1.x is answered as 1.1 (RFC 9110 section 2.5)
            else:
                if version[0] == "0":
                    self.stop_reading(400, "HTTP/0.9 requests are not supported: use HTTP/1.1.")
                else:
                    self.stop_reading(505, f"HTTP/{version} is not supported: use HTTP/1.1.")
                raise StopParsing
        headers = exchange.headers
        if "Transfer-Encoding" in headers:
            codings = headers["Transfer-Encoding"].replace(" ", "").lower()
            if codings != "chunked":  # RFC 9112 section 6.1, 6.3
                if codings.endswith(",chunked"):
                    self.stop_reading(501, f"Transfer-Encoding not implemented: {codings!r} (only chunked is).")
                else:
                    self.stop_reading(400, f"Malformed HTTP request: Transfer-Encoding {codings!r} does not "
                                           "end with chunked.")
                raise StopParsing
        exchange.start_line = httputil.RequestStartLine(parser.get_method().decode("ascii"),
                                                        exchange.url.decode("latin1"), "HTTP/" + version)
        exchange.keep_alive = parser.should_keep_alive()
        if exchange is self.exchanges[0] and not self.write_paused:
            exchange.dispatch_head()

    def on_body(self, body):
        exchange = self.reading
        if exchange is None:
            raise StopParsing
        self.body_fed += len(body)
        exchange.received += len(body)
        if exchange.received > exchange.max_body_size:
            self.refuse_large_body(exchange)
            raise StopParsing
        if exchange.dispatched:
            exchange.dispatch_data(body)
        else:
            exchange.body.append(body)
            self.buffered += len(body)
            self.update_reading()

    def on_message_complete(self):
        exchange = self.reading
        if exchange is None:
            raise StopParsing
        if self.parser.should_upgrade() and exchange.start_line.method != "CONNECT":
            return  # llhttp stops here, before the body: see ignore_upgrade
        self.reading = None
        exchange.read_done = True
        if exchange.dispatched:
            exchange.dispatch_finish()
        # an answer that finished before its body was read: the connection closes now
        if exchange.finished and self.exchanges and exchange is self.exchanges[0]:
            self.next_exchange()

    # ------------------------------------------------------------ request order
    def next_exchange(self):
        """The first exchange is answered and read: drop it, start the next one."""
        done = self.exchanges.popleft()
        done.delegate = None  # exchange -> delegate -> request -> exchange: freed now, not by the GC
        self.served = True
        if self.closing:
            return
        if not done.keep_alive:
            self.close()
            return
        if self.exchanges:
            self.start_front()
        elif self.error is not None:
            self.write_error()
            self.close()
        else:
            self.idle_since = self.loop.time()

    def start_front(self):
        """Hand the requests waiting their turn to the application, one after the other, while the
        client reads its answers (a loop: answers finished at once do not nest calls)."""
        if self.starting:
            return  # called back from a replay below: the loop goes on with the next one
        self.starting = True
        try:
            while self.exchanges and not self.closing and not self.write_paused:
                front = self.exchanges[0]
                if front.dispatched or not front.head_done:
                    return  # being answered; or on_headers_complete starts it
                if front.body:
                    self.buffered -= sum(len(chunk) for chunk in front.body)
                self.update_reading()
                front.replay()
        finally:
            self.starting = False


def quote_request_line(data, continued=False):
    """Percent-encode raw non-ASCII bytes of the request line that starts ``data`` (or goes on in it).

    curl sends a URL typed as ``?q=café`` as raw UTF-8; tornado took it, llhttp
    refuses it ("Invalid char in url"). Encoded, it means the same to the
    application (arguments are percent-decoded as UTF-8).
    """
    start = 0 if continued else len(data) - len(data.lstrip(b"\r\n"))  # empty lines before a request
    end = data.find(b"\n", start)
    if end < 0:
        end = len(data)
    line = data[start:end]
    if line.isascii():
        return data
    return data[:start] + _NON_ASCII.sub(lambda match: b"%%%02X" % match.group()[0], line) + data[end:]


class Exchange(httputil.HTTPConnection):
    """One request and its answer: tornado's ``HTTPConnection`` for the application."""

    body_timeout = None  # set_body_timeout: this request's own, instead of the server's

    def __init__(self, protocol):
        self.protocol = protocol
        self.url = b""
        self.headers = httputil.HTTPHeaders()
        self.start_line = None
        self.body = []
        self.head_done = False
        self.read_done = False
        self.keep_alive = True
        self.dispatched = False
        self.started = False  # the answer's head was written
        self.finished = False
        self.chunked = False
        self.remaining = None
        self.received = 0
        self.max_body_size = protocol.server.max_body_size
        self.delegate = None
        self.close_callback = None
        self.context = protocol.context

    # ------------------------------------------------------------ to the application
    def dispatch_head(self):
        self.dispatched = True
        protocol = self.protocol
        self.delegate = protocol.server.application.start_request(protocol, self)
        try:
            self.delegate.headers_received(self.start_line, self.headers)
        except Exception as exc:
            self.failed(exc)
            return
        # the limit as the application left it (RequestGuard raises it to drain a refused body)
        if not self.finished and not self.read_done and self.declared_length() > self.max_body_size:
            protocol.refuse_large_body(self)
            return
        if (not self.read_done and not self.finished and not protocol.closing and "Expect" in self.headers
                and self.headers["Expect"].lower() == "100-continue"):
            protocol.transport.write(b"HTTP/1.1 100 (Continue)\r\n\r\n")

    def declared_length(self):
        """The request's Content-Length, or 0 when absent (an invalid one llhttp has refused)."""
        length = self.headers.get("Content-Length")
        try:
            return int(length) if length is not None else 0
        except ValueError:
            return 0

    def dispatch_data(self, chunk):
        if self.finished:
            return  # the answer is out: the rest of the body is dropped
        try:
            self.delegate.data_received(chunk)
        except Exception as exc:
            self.failed(exc)

    def dispatch_finish(self):
        if self.finished:
            return
        try:
            self.delegate.finish()
        except Exception as exc:
            self.failed(exc)

    def failed(self, exc):
        """The application raised on this request: release what it took, answer, close.

        tornado raises ``HTTPInputError`` for what it finds malformed (a missing,
        repeated or invalid ``Host``, a bad query string or form body): a 400.
        Anything else is a bug: logged, a 500.
        """
        delegate, self.delegate = self.delegate, None
        self.finished = True
        if delegate is not None:
            try:
                delegate.on_connection_close()
            except Exception:
                app_log.error("Uncaught exception", exc_info=True)
        protocol = self.protocol
        if isinstance(exc, httputil.HTTPInputError):
            gen_log.info("Bad HTTP request from %s: %s", self.context, exc)
            status, reason = 400, f"Bad request: {exc}"
        else:
            app_log.error("Uncaught exception", exc_info=exc)
            status, reason = 500, "Internal server error."
        if self.started or protocol.closing:
            protocol.close()
        else:
            protocol.fail(status, reason)

    def replay(self):
        """A pipelined request reaches the front: hand over what was read of it."""
        self.dispatch_head()
        body, self.body = self.body, []
        for chunk in body:
            self.dispatch_data(chunk)
        if self.read_done:
            self.dispatch_finish()

    def connection_lost(self):
        if not self.dispatched or self.finished:
            return
        if not self.read_done:
            try:
                self.delegate.on_connection_close()
            except Exception:
                app_log.error("Uncaught exception", exc_info=True)
        elif self.close_callback is not None:
            callback, self.close_callback = self.close_callback, None
            callback()
        self.delegate = None

    # ------------------------------------------------------------ tornado's HTTPConnection
    def close(self):
        """Drop the connection now, what is not sent with it (tornado's ``HTTP1Connection.close``):
        a stream that cannot end well ends so, truncated for its client."""
        self.protocol.abort()

    def set_close_callback(self, callback):
        self.close_callback = callback

    def set_max_body_size(self, max_body_size):
        self.max_body_size = max_body_size

    def set_body_timeout(self, timeout):
        self.body_timeout = timeout

    def write_headers(self, start_line, headers, chunk=None):
        request = self.start_line
        code = start_line.code
        self.started = True
        http11 = request.version == "HTTP/1.1"
        self.chunked = (http11 and request.method != "HEAD" and code not in (204, 304)
                        and not 100 <= code < 200 and "Content-Length" not in headers)
        if http11 and not self.keep_alive:
            headers["Connection"] = "close"
        elif request.version == "HTTP/1.0" and self.keep_alive:
            headers["Connection"] = "Keep-Alive"
        if self.chunked:
            headers["Transfer-Encoding"] = "chunked"
        if request.method == "HEAD" or code == 304:
            self.remaining = 0
        elif "Content-Length" in headers:
            self.remaining = int(headers["Content-Length"])
        lines = [f"HTTP/1.1 {code} {start_line.reason}"]
        for name, value in headers.get_all():
            line = f"{name}: {value}"
            if _CRLF.search(line):
                raise ValueError(f"Illegal characters (CR or LF) in header: {line!r}")
            lines.append(line)
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin1")
        if chunk:
            data += self._frame(chunk)
        if not self.protocol.closing:
            self.protocol.transport.write(data)
        return self.protocol.write_future()

    def _frame(self, chunk):
        if self.remaining is not None:
            self.remaining -= len(chunk)
            if self.remaining < 0:
                self.protocol.close()
                raise httputil.HTTPOutputError("Tried to write more data than Content-Length")
        if self.chunked and chunk:
            return b"%x\r\n%s\r\n" % (len(chunk), chunk)
        return chunk

    def write(self, chunk):
        data = self._frame(chunk)
        if data and not self.protocol.closing:
            self.protocol.transport.write(data)
        return self.protocol.write_future()

    def finish(self):
        protocol = self.protocol
        if self.remaining and not protocol.closing:
            protocol.close()
            raise httputil.HTTPOutputError(f"Tried to write {self.remaining} bytes less than Content-Length")
        if self.chunked and not protocol.closing:
            protocol.transport.write(b"0\r\n\r\n")
        self.finished = True
        self.close_callback = None
        if not self.read_done:
            self.keep_alive = False  # read and drop the rest of the body, then close
        elif protocol.exchanges and protocol.exchanges[0] is self:
            protocol.next_exchange()
