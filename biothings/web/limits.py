"""Request limits enforced before any handler runs, and in-flight accounting.

``RequestGuard`` wraps the application's per-request delegate (see
``BiothingsApplication.start_request``). It sees the request line and headers
first, so it can answer in the contract's JSON where tornado would answer a
bare ``400`` or nothing at all:

- a request URI longer than ``MAX_URL_LENGTH``: ``414``;
- a body larger than ``MAX_BODY_SIZE`` (announced by ``Content-Length``, or
  counted while a chunked body arrives): ``413``, without buffering the body.
  The rest of the body is read and thrown away (up to ``BODY_DRAIN_LIMIT``
  bytes) so the client reads the answer instead of a connection reset;
- a method no handler can implement (``PROPFIND``, ``get``): ``501``.

It also counts requests in flight, so a shutdown can wait for them to finish
(``BiothingsApplication.drain``): a request counts from its head until its
answer is finished or its connection closes, and a request the application
could not even take (tornado's ``HTTPInputError`` for a bad ``Host``) does not
count at all.
"""

import tornado.web
from tornado import httputil

from biothings.web import formats

# Over-limit bodies beyond this many bytes are not drained: the connection closes.
BODY_DRAIN_LIMIT = 64 * 1024 * 1024

_REASONS = {413: "Payload Too Large", 414: "URI Too Long", 501: "Not Implemented"}
# methods a tornado handler can implement; any other gets 501 (405 is for a method this route lacks)
KNOWN_METHODS = frozenset(tornado.web.RequestHandler.SUPPORTED_METHODS)


def json_error_response(request_conn, status, reason, headers=None, **extra):
    """Write a contract JSON error straight on the connection and finish it."""
    body = formats.error_json(status, reason, **extra)
    response_headers = httputil.HTTPHeaders({
        "Content-Type": "application/json; charset=UTF-8",
        "Content-Length": str(len(body)),
        "Connection": "close",
        "X-Content-Type-Options": "nosniff",
        **(headers or {}),
    })
    request_conn.write_headers(httputil.ResponseStartLine("HTTP/1.1", status, _REASONS.get(status, "Error")),
                               response_headers, body)
    request_conn.finish()


class RequestGuard(httputil.HTTPMessageDelegate):
    """Check limits on the request line and body; count requests in flight."""

    def __init__(self, application, delegate, request_conn):
        self.application = application
        self.delegate = delegate
        self.request_conn = request_conn
        self.rejected = False
        self.broken = False  # the application raised taking the head: nothing of it is left to close
        self.counted = False
        self.received = 0
        self.limit = None

    # ---------------------------------------------------------- accounting
    def _start(self):
        self.counted = True
        self.application.inflight += 1
        original = self.request_conn.finish

        def finish():
            try:
                return original()
            finally:
                self._done()
        self.request_conn.finish = finish

    def _done(self):
        if self.counted:
            self.counted = False
            self.application.inflight -= 1
            del self.request_conn.finish  # the connection's own method again: no cycle left behind

    # ---------------------------------------------------------- delegate
    def headers_received(self, start_line, headers):
        settings = self.application.biothings
        cors = {}
        origin = settings.get("ACCESS_CONTROL_ALLOW_ORIGIN")
        if origin:
            cors["Access-Control-Allow-Origin"] = origin
        self.cors = cors
        if start_line.method not in KNOWN_METHODS:
            return self._reject(501, f"Request method not implemented: {start_line.method!r}.")
        max_url = settings.get("MAX_URL_LENGTH") or 0
        if max_url and len(start_line.path) > max_url:
            return self._reject(414, f"Request URI too long: {len(start_line.path)} characters, "
                                     f"the maximum is {max_url}.", max=max_url, num=len(start_line.path))
        self.limit = settings.get("MAX_BODY_SIZE") or 0
        if self.limit:
            length = headers.get("Content-Length")
            if length is not None:
                try:
                    size = max(int(part) for part in length.split(","))
                except ValueError:
                    size = None  # tornado rejects it itself
                if size is not None and size > self.limit:
                    if size <= self.limit + BODY_DRAIN_LIMIT:
                        self.request_conn.set_max_body_size(size)
                    return self._reject_body(size)
            elif headers.get("Transfer-Encoding", "").lower() == "chunked":
                # count it ourselves, so an oversized chunked body gets the JSON 413
                self.request_conn.set_max_body_size(self.limit + BODY_DRAIN_LIMIT)
        self._start()
        try:
            return self.delegate.headers_received(start_line, headers)
        except BaseException:
            self.broken = True
            self._done()
            raise

    def _reject_body(self, size):
        return self._reject(413, f"Request body too large: the maximum is {self.limit} bytes.",
                            max=self.limit, num=size)

    def _reject(self, status, reason, **extra):
        self.rejected = True
        json_error_response(self.request_conn, status, reason, headers=self.cors, **extra)

    def data_received(self, chunk):
        if self.rejected:
            return None
        self.received += len(chunk)
        if self.limit and self.received > self.limit:
            self._reject_body(self.received)
            self.delegate.on_connection_close()
            self._done()
            return None
        return self.delegate.data_received(chunk)

    def finish(self):
        if not self.rejected:
            self.delegate.finish()

    def on_connection_close(self):
        try:
            if not self.rejected and not self.broken:
                self.delegate.on_connection_close()
        finally:
            self._done()
