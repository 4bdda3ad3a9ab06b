"""A lean HTTP/1.1 node for ``AsyncElasticsearch`` (plain ``http://`` hosts).

``elastic_transport`` lets a client choose its node class: the HTTP layer under
``AsyncTransport``. Its default, the aiohttp node, costs about 190 us of CPU
per search against 77 us with this one (``benchmarks/bench_es_node.py``):
session, request and response objects, cookie and redirect machinery. This
node speaks just what the transport needs, on asyncio protocols: keep-alive
connections in a LIFO pool (at most ``connections_per_node`` open, further
requests wait for one), answers parsed by ``httptools`` (Content-Length and
chunked bodies), gzip (``http_compress``), a timeout per request that covers
the wait for a connection too. A request target or header with CR or LF is
refused (``ValueError``): it could split the request.

Errors are the transport's own: ``ConnectionError`` (refused, reset, closed
mid-answer) and ``ConnectionTimeout``, so retries, dead-node marking and our
error mapping work unchanged. A request that fails on a *reused* connection
before any byte of the answer arrived (the server closed an idle keep-alive
connection) is sent once more on a fresh connection; bytes a server sends on
an idle connection, or its close, never become the answer of a later request.

TLS hosts keep the default node (see ``ElasticsearchEngine``).
"""

import asyncio
import collections
import gzip
import logging
from typing import NamedTuple

import httptools

from elastic_transport import ApiResponseMeta, BaseAsyncNode, ConnectionError, ConnectionTimeout, HttpHeaders
from elastic_transport.client_utils import DEFAULT

_node_logger = logging.getLogger("elastic_transport.node")


class NodeResponse(NamedTuple):
    """What a node answers the transport (``meta`` and the raw ``body``)."""

    meta: ApiResponseMeta
    body: bytes


class _Response:
    __slots__ = ("status", "headers", "body", "keep_alive")

    def __init__(self, status, headers, body, keep_alive):
        self.status = status
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time; answers parsed by
    ``httptools`` (llhttp, the parser of Node.js and uvicorn)."""

    def __init__(self):
        self.transport = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter = None
        self.head_request = False
        self.received = False
        self.closed = False
        self.used = False
        self._in_message = False  # an answer is being parsed, not yet handed to its request
        self._headers = {}
        self._body = []
        self._until_close = False

    # ------------------------------------------------------ asyncio protocol
    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        self.closed = True
        if self._until_close and self._in_message and exc is None:  # an answer without length ends here
            self._complete(keep_alive=False)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError(
                f"Connection closed by the server{': ' + str(exc) if exc else ''}",
                errors=(exc,) if exc else ()))

    def data_received(self, data):
        if self.waiter is None or self.waiter.done():  # nothing asked: a broken server, never reused
            self.close()
            return
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:  # malformed answer
            self._fail(ConnectionError(f"Invalid HTTP answer: {exc}", errors=(exc,)))
            self.close()

    # ------------------------------------------------------ parser callbacks
    def on_message_begin(self):
        if self.waiter is None or self.waiter.done():  # an answer nothing asked for: never reused
            self.close()
        self._in_message = True
        self._headers = {}
        self._body = []
        self._until_close = False

    def on_header(self, name, value):
        name = name.decode("latin-1").lower()
        value = value.decode("latin-1")
        headers = self._headers
        headers[name] = f"{headers[name]}, {value}" if name in headers else value

    def on_headers_complete(self):
        status = self.parser.get_status_code()
        if self.head_request and status >= 200:
            # no body follows, whatever Content-Length says; the parser cannot
            # be told so, hence this connection is not reused
            self._complete(keep_alive=False)
        elif ("content-length" not in self._headers and "transfer-encoding" not in self._headers
              and status >= 200 and status not in (204, 304)):
            self._until_close = True  # the body ends with the connection

    def on_body(self, body):
        self._body.append(body)

    def on_message_complete(self):
        if self.parser.get_status_code() >= 200:  # not an interim 1xx answer
            self._complete(keep_alive=self.parser.should_keep_alive())

    # ------------------------------------------------------ request
    def send(self, data, head_request, loop):
        self.waiter = loop.create_future()
        self.head_request = head_request
        self.received = False
        self.transport.write(data)
        return self.waiter

    def close(self):
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _complete(self, keep_alive):
        self._in_message = False
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
            waiter.set_result(_Response(self.parser.get_status_code(), self._headers, body, keep_alive))

    def _fail(self, exc):
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)


class LeanHttpNode(BaseAsyncNode):
    """``node_class`` for ``AsyncElasticsearch``: HTTP/1.1 on asyncio, keep-alive pool."""

    _CLIENT_META_HTTP_CLIENT = ("bt", "1")
    # set once in __init__: the base class works it out at each read, and the transport
    # reads it twice a request (its log line is formatted even when not logged)
    base_url = None

    def __init__(self, config):
        super().__init__(config)
        self.base_url = BaseAsyncNode.base_url.fget(self)
        if config.scheme != "http":
            raise ValueError("LeanHttpNode serves plain http:// hosts; use the default node for TLS")
        self._limit = max(1, config.connections_per_node or 10)
        self._idle = []
        self._open = 0
        self._queue = collections.deque()
        self._loop = None
        host = self.host if ":" not in self.host else f"[{self.host}]"
        self._host_header = f"{host}:{self.port}" if self.port is not None else host
        self._default_headers = {name.lower(): value for name, value in self.headers.items()
                                 if name.lower() != "host"}

    # ---------------------------------------------------------------- pool
    async def _acquire(self, deadline):
        """A connection: an idle one, a new one, or the next one released (by ``deadline``, loop time)."""
        loop = self._loop
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
            self._open -= 1
        if self._open >= self._limit:
            waiter = loop.create_future()
            self._queue.append(waiter)
            timer = loop.call_at(deadline, _expire, waiter) if deadline is not None else None
            try:
                conn = await waiter
            except BaseException:  # timed out or cancelled while waiting: pass on what it was given
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    handed = waiter.result()
                    if handed is not None:
                        self._release(handed, True)
                    else:
                        self._wake()
                raise
            finally:
                if timer is not None:
                    timer.cancel()
            if conn is not None:
                return conn
        self._open += 1
        try:
            timeout = None if deadline is None else max(deadline - loop.time(), 0)
            _, conn = await asyncio.wait_for(loop.create_connection(_Connection, self.host, self.port), timeout)
        except BaseException:
            self._open -= 1
            self._wake()
            raise
        return conn

    def _release(self, conn, reusable):
        if reusable and not conn.closed:
            conn.waiter = None
            conn.used = True
            while self._queue:
                waiter = self._queue.popleft()
                if not waiter.done():
                    waiter.set_result(conn)
                    return
            self._idle.append(conn)
            return
        conn.close()
        self._open -= 1
        self._wake()

    def _wake(self):
        # a connection slot freed: the first waiter opens a new connection
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    # ---------------------------------------------------------------- request
    def _request_bytes(self, method, target, body, headers):
        merged = self._default_headers
        if headers:
            merged = merged.copy()
            for name, value in headers.items():
                merged[name.lower()] = value  # the request's headers win over the node's
        lines = [f"{method} {self.path_prefix}{target} HTTP/1.1\r\n", f"host: {self._host_header}\r\n"]
        lines.extend(f"{name}: {value}\r\n" for name, value in merged.items())
        if body is not None:
            lines.append(f"content-length: {len(body)}\r\n")
        lines.append("\r\n")
        head = "".join(lines)
        if head.count("\n") != len(lines) or head.count("\r") != len(lines):
            raise ValueError(f"CR or LF in the target or a header of {method} {target!r}: refused")
        data = head.encode("latin-1")
        return data + body if body else data

    async def perform_request(self, method, target, body=None, headers=None, request_timeout=DEFAULT):
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        loop = self._loop
        timeout = self.config.request_timeout if request_timeout is DEFAULT else request_timeout
        if body and self._http_compress:
            body = gzip.compress(body)
            headers = HttpHeaders(headers or {})
            headers["content-encoding"] = "gzip"
        elif not body:
            body = None
        data = self._request_bytes(method, target, body, headers)
        start = loop.time()
        deadline = start + timeout if timeout else None  # for the wait for a connection too
        try:
            for attempt in (0, 1):
                conn = await self._acquire(deadline)
                reused = conn.used
                timer = None
                try:
                    waiter = conn.send(data, method == "HEAD", loop)
                    if deadline is not None:
                        timer = loop.call_at(deadline, _expire, waiter)
                    response = await waiter
                except ConnectionError:
                    self._release(conn, False)
                    if attempt == 0 and reused and not conn.received:
                        continue  # a stale keep-alive connection: once more on a fresh one
                    raise
                except BaseException:
                    self._release(conn, False)
                    raise
                finally:
                    if timer is not None:
                        timer.cancel()
                self._release(conn, response.keep_alive)
                break
        except asyncio.TimeoutError as exc:
            err = ConnectionTimeout("Connection timed out during request", errors=(exc,))
            self._log(method, target, headers, body, exception=err)
            raise err from None
        except ConnectionError as err:
            self._log(method, target, headers, body, exception=err)
            raise
        except OSError as exc:
            err = ConnectionError(str(exc), errors=(exc,))
            self._log(method, target, headers, body, exception=err)
            raise err from None
        raw = response.body
        if raw and "gzip" in response.headers.get("content-encoding", ""):
            raw = gzip.decompress(raw)
        meta = ApiResponseMeta(node=self.config, duration=loop.time() - start, http_version="1.1",
                               status=response.status, headers=HttpHeaders(response.headers))
        self._log(method, target, headers, body, meta=meta, response=raw)
        return NodeResponse(meta, raw)

    def _log(self, method, target, headers, body, **kwargs):
        if _node_logger.isEnabledFor(logging.DEBUG):
            self._log_request(method=method, target=target, headers=headers, body=body, **kwargs)

    async def close(self):
        for conn in self._idle:
            conn.close()
        self._idle.clear()
        self._open = 0
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectionError("Client closed"))


def _expire(waiter):
    if not waiter.done():
        waiter.set_exception(asyncio.TimeoutError())
