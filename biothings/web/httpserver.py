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
over as they arrive, whatever ``data_received`` returns.)

What it does, as tornado's server does: keep-alive (HTTP/1.1 by default,
HTTP/1.0 on request), pipelined requests answered in order, chunked request
bodies, ``Expect: 100-continue``, chunked responses when no ``Content-Length``
is set, no body for ``HEAD``/204/304, ``X-Real-Ip``/``X-Forwarded-For``/
``X-Forwarded-Proto`` when ``xheaders`` is on, a body size limit (400 and
close past it), idle keep-alive connections closed after ``idle_timeout``.
Differences: a request head over ``max_header_size`` gets a JSON ``431``
before the connection closes (tornado closes without a word), and the rest of
a body the application did not wait for is read and dropped before closing,
so the client reads the answer rather than a connection reset.
"""

import asyncio
import collections
import re
import socket

import httptools
import orjson
from tornado import httputil, netutil
from tornado.log import app_log, gen_log

_CRLF = re.compile(r"[\r\n]")
_NON_ASCII = re.compile(rb"[\x80-\xff]")
# answers waiting behind a pipelined request before the connection stops reading
_MAX_PIPELINED = 16
# body bytes of pipelined requests kept before the connection stops reading
_MAX_BUFFERED = 1024 * 1024


class HTTPServer:
    """Serve a tornado ``Application`` on listening sockets.

    ``await start(sockets)`` serves bound sockets (``tornado.netutil.bind_sockets``),
    ``await listen(port, address)`` binds them first; ``stop()`` stops accepting;
    ``await close_all_connections()`` closes the connections left.
    """

    def __init__(self, application, xheaders=False, max_body_size=None, max_header_size=None,
                 idle_timeout=3600.0, trusted_downstream=None):
        self.application = application
        self.xheaders = xheaders
        self.max_body_size = max_body_size or 100 * 1024 * 1024  # tornado's default
        self.max_header_size = max_header_size or 64 * 1024
        self.idle_timeout = idle_timeout
        self.trusted_downstream = set(trusted_downstream or ())
        self.connections = set()
        self._servers = []
        self._sweeper = None

    async def listen(self, port, address=None, **kwargs):
        await self.start(netutil.bind_sockets(port, address, **kwargs))

    async def start(self, sockets):
        loop = asyncio.get_running_loop()
        for sock in sockets:
            self._servers.append(await loop.create_server(lambda: HTTP1Protocol(self), sock=sock))
        if self.idle_timeout and self._sweeper is None:
            self._sweeper = loop.call_later(min(self.idle_timeout, 60.0), self._sweep_idle)

    def stop(self):
        """Stop accepting connections (the listening sockets close)."""
        for server in self._servers:
            server.close()
        self._servers = []
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    async def close_all_connections(self):
        """Close every connection, in-flight requests included; returns once all closed."""
        while self.connections:
            conn = next(iter(self.connections))
            conn.close()
            await conn.closed

    def _sweep_idle(self):
        loop = asyncio.get_running_loop()
        deadline = loop.time() - self.idle_timeout
        for conn in list(self.connections):
            if conn.last_active < deadline and not conn.answering():
                conn.close()
        self._sweeper = loop.call_later(min(self.idle_timeout, 60.0), self._sweep_idle)


class RequestContext:
    """What ``HTTPServerRequest`` reads from a connection: the client's address and scheme."""

    __slots__ = ("address", "remote_ip", "protocol")

    def __init__(self, address, remote_ip, protocol="http"):
        self.address = address
        self.remote_ip = remote_ip
        self.protocol = protocol

    def __str__(self):
        return self.remote_ip


class HTTP1Protocol(asyncio.Protocol):
    """One client connection: parses requests, answers them one at a time, in order.

    Requests pipelined behind the one being answered are parsed and kept
    (their bodies too) until their turn; reading pauses while too many wait.
    """

    def __init__(self, server):
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport = None
        self.context = None
        self.exchanges = collections.deque()  # requests read, first one being answered
        self.reading = None  # the exchange whose message is being parsed
        # size of the head being parsed: its url and headers, and the bytes read while it is incomplete
        self.head_parsed = 0
        self.head_pending = 0
        self.buffered = 0  # body bytes of requests waiting their turn
        self.error = None  # (status, reason) to answer once the requests before it are answered
        self.stopped_reading = False
        self.paused = False
        self.closing = False
        self.write_paused = False
        self.write_waiters = []
        self.last_active = 0.0
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
        self.last_active = self.loop.time()
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
        self.closing = True
        exchanges, self.exchanges = self.exchanges, collections.deque()
        for exchange in exchanges:
            exchange.connection_lost()
        self.resume_writing()
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self):
        self.write_paused = True

    def resume_writing(self):
        self.write_paused = False
        waiters, self.write_waiters = self.write_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def write_future(self):
        """What a write returns: done now, or once the transport's buffer drains."""
        if not self.write_paused:
            return self.done_future
        waiter = self.loop.create_future()
        self.write_waiters.append(waiter)
        return waiter

    def close(self):
        if not self.closing:
            self.closing = True
            self.transport.close()

    def answering(self):
        """True while the application works on an answer."""
        return bool(self.exchanges) and self.exchanges[0].dispatched and not self.exchanges[0].finished

    def update_reading(self):
        """Pause reading while too much waits its turn, or for good once reading stopped."""
        pause = (self.stopped_reading or len(self.exchanges) > _MAX_PIPELINED
                 or self.buffered > _MAX_BUFFERED)
        if pause != self.paused and not self.closing:
            self.paused = pause
            if pause:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    # ------------------------------------------------------------ input
    def data_received(self, data):
        if self.closing or self.stopped_reading:
            return
        self.last_active = self.loop.time()
        if self.reading is None and not data.isascii():
            data = quote_request_line(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.stop_reading()  # not upgraded: what was read is answered, then the connection closes
            return
        except httptools.HttpParserError as exc:
            if self.head_too_large():
                self.refuse_large_head()
            else:
                self.stop_reading(400, f"Malformed HTTP request: {exc}")
            return
        if self.reading is not None and not self.reading.head_done:
            self.head_pending += len(data)
            if self.head_too_large():
                self.refuse_large_head()

    def head_too_large(self):
        limit = self.server.max_header_size
        return self.head_parsed > limit or self.head_pending > limit

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

    def write_error(self):
        status, reason = self.error
        body = orjson.dumps({"code": status, "success": False, "error": reason})
        self.transport.write(b"HTTP/1.1 %d %s\r\nContent-Type: application/json; charset=UTF-8\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                             % (status, httputil.responses[status].encode(), len(body), body))

    # ------------------------------------------------------------ parser callbacks
    # (once reading stopped, raising ends the parse of the bytes at hand)
    def on_message_begin(self):
        if self.stopped_reading:
            raise httptools.HttpParserError("reading stopped")
        self.reading = Exchange(self)
        self.head_parsed = self.head_pending = 0
        self.exchanges.append(self.reading)
        self.update_reading()

    def on_url(self, url):
        self.head_parsed += len(url)
        if self.head_too_large():
            raise httptools.HttpParserError("request head too large")
        self.reading.url += url

    def on_header(self, name, value):
        self.head_parsed += len(name) + len(value) + 4
        if self.head_too_large():
            raise httptools.HttpParserError("request head too large")
        self.reading.headers.add(name.decode("latin1"), value.decode("latin1").strip())

    def on_headers_complete(self):
        exchange = self.reading
        parser = self.parser
        exchange.head_done = True
        exchange.start_line = httputil.RequestStartLine(parser.get_method().decode("ascii"),
                                                        exchange.url.decode("latin1"),
                                                        "HTTP/" + parser.get_http_version())
        exchange.keep_alive = can_keep_alive(exchange.start_line, exchange.headers)
        if exchange is self.exchanges[0]:
            exchange.dispatch_head()

    def on_body(self, body):
        exchange = self.reading
        if exchange is None:
            raise httptools.HttpParserError("reading stopped")
        exchange.received += len(body)
        if exchange.received > exchange.max_body_size:
            raise httptools.HttpParserError("request body larger than the limit")
        if exchange.dispatched:
            exchange.dispatch_data(body)
        else:
            exchange.body.append(body)
            self.buffered += len(body)
            self.update_reading()

    def on_message_complete(self):
        exchange = self.reading
        if exchange is None:
            raise httptools.HttpParserError("reading stopped")
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
        if self.closing:
            return
        if not done.keep_alive:
            self.close()
            return
        if self.exchanges:
            front = self.exchanges[0]
            self.buffered -= sum(len(chunk) for chunk in front.body)
            self.update_reading()
            front.replay()
        elif self.error is not None:
            self.write_error()
            self.close()


def quote_request_line(data):
    """Percent-encode raw non-ASCII bytes in the request line that starts ``data``.

    curl sends a URL typed as ``?q=café`` as raw UTF-8; tornado took it, llhttp
    refuses it ("Invalid char in url"). Encoded, it means the same to the
    application (arguments are percent-decoded as UTF-8).
    """
    end = data.find(b"\n")
    if end < 0 or data[:end].isascii():
        return data
    return _NON_ASCII.sub(lambda match: b"%%%02X" % match.group()[0], data[:end]) + data[end:]


def can_keep_alive(start_line, headers):
    """tornado's rule: HTTP/1.1 unless ``Connection: close``; HTTP/1.0 only when asked."""
    connection = headers.get("Connection")
    if connection is not None:
        connection = connection.lower()
    if start_line.version == "HTTP/1.1":
        return connection != "close"
    if "Content-Length" in headers or "chunked" in headers.get("Transfer-Encoding", "").lower() \
            or start_line.method in ("HEAD", "GET"):
        return connection == "keep-alive"
    return False


class Exchange(httputil.HTTPConnection):
    """One request and its answer: tornado's ``HTTPConnection`` for the application."""

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
        server = protocol.server
        if server.xheaders:
            self.context = forwarded_context(protocol.context, self.headers, server.trusted_downstream)
        self.delegate = server.application.start_request(protocol, self)
        try:
            self.delegate.headers_received(self.start_line, self.headers)
        except Exception:
            app_log.error("Uncaught exception", exc_info=True)
            protocol.close()
            return
        # the limit as the application left it (RequestGuard raises it to drain a refused body)
        if not self.finished and not self.read_done and self.declared_length() > self.max_body_size:
            protocol.stop_reading(400, "Content-Length too long")
            return
        if (not self.read_done and not self.finished and not protocol.closing
                and self.headers.get("Expect", "").lower() == "100-continue"):
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
        except Exception:
            app_log.error("Uncaught exception", exc_info=True)
            self.protocol.close()

    def dispatch_finish(self):
        if self.finished:
            return
        try:
            self.delegate.finish()
        except Exception:
            app_log.error("Uncaught exception", exc_info=True)
            self.protocol.close()

    def replay(self):
        """A pipelined request reaches the front: hand over what was read of it."""
        if not self.head_done:
            return  # on_headers_complete dispatches it
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
    def set_close_callback(self, callback):
        self.close_callback = callback

    def set_max_body_size(self, max_body_size):
        self.max_body_size = max_body_size

    def set_body_timeout(self, timeout):
        pass  # bodies are bounded by size; idle connections by the server's idle_timeout

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


def forwarded_context(context, headers, trusted_downstream):
    """The client's address and scheme as a trusted proxy gives them (``xheaders``)."""
    forwarded_for = headers.get("X-Forwarded-For")
    real_ip = headers.get("X-Real-Ip")
    proto = headers.get("X-Scheme") or headers.get("X-Forwarded-Proto")
    if forwarded_for is None and real_ip is None and proto is None:
        return context
    ip = context.remote_ip
    if forwarded_for is not None:
        for candidate in reversed(forwarded_for.split(",")):
            ip = candidate.strip()
            if ip not in trusted_downstream:
                break
    if real_ip is not None:
        ip = real_ip
    remote_ip = ip if netutil.is_valid_ip(ip) else context.remote_ip
    protocol = context.protocol
    if proto:
        proto = proto.split(",")[-1].strip()
        if proto in ("http", "https"):
            protocol = proto
    return RequestContext(context.address, remote_ip, protocol)
