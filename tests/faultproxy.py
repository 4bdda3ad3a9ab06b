"""A fault-injecting HTTP proxy for tests: put it between the API and Elasticsearch.

``FaultProxy(upstream).start()`` serves on a loopback port from a background
thread and forwards every request to ``upstream``, unless a fault is switched on:

- ``proxy.mode = "pass"``: forward (the default);
- ``"down"``: close each connection without answering (engine unreachable);
- ``"slow"``: wait ``proxy.delay`` seconds, then forward (timeouts, hangs);
- ``"status"``: answer ``proxy.status`` (429, 503, ...) with an Elasticsearch error body;
- ``"msearch_fail"``: forward, but replace the ``proxy.fail_index``-th answer of
  each ``_msearch`` with a failure of status ``proxy.status`` (one bad sub-query);
- ``"timed_out"``: forward, but mark each search answer ``"timed_out": true`` (the
  partial results Elasticsearch gives when a search's ``timeout`` passes).

- ``"late"``: forward, then wait ``proxy.delay`` seconds before answering (the request
  lands, its answer comes after the client gave up).

``proxy.where``, when set, limits the fault to the requests it returns true for (others pass):
``proxy.set("status", status=500, where=lambda request: request.method == "DELETE")``.
``proxy.before_forward``, when set, is awaited with each request before the proxy acts on
it (to change the cluster under the client, as another client would).

``proxy.requests`` counts what reached the proxy, per path; ``proxy.bodies`` keeps the
last request body per path; ``proxy.seen`` lists ``(method, path, Authorization)`` of
every request; ``proxy.abandoned`` counts requests whose client closed the connection
before the answer.
"""

import asyncio
import collections

import orjson
import tornado.httpclient
import tornado.web

from tests.servers import LoopbackServer

_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


class _ProxyHandler(tornado.web.RequestHandler):
    SUPPORTED_METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD")

    def initialize(self, proxy):
        self.proxy = proxy

    async def _any(self):
        proxy = self.proxy
        proxy.requests[self.request.path] += 1
        proxy.bodies[self.request.path] = self.request.body
        proxy.seen.append((self.request.method, self.request.path, self.request.headers.get("Authorization")))
        if proxy.before_forward is not None:
            await proxy.before_forward(self.request)
        mode = proxy.mode
        if proxy.where is not None and not proxy.where(self.request):
            mode = "pass"
        if mode == "down":
            self.request.connection.stream.close()
            return
        if mode == "slow":
            await asyncio.sleep(proxy.delay)
        if mode == "status":
            kind = "es_rejected_execution_exception" if proxy.status == 429 else "unavailable_shards_exception"
            self.set_status(proxy.status)
            self.set_header("Content-Type", "application/json")
            self.finish(orjson.dumps({"error": {"type": kind, "reason": "injected fault",
                                                "root_cause": [{"type": kind, "reason": "injected fault"}]},
                                      "status": proxy.status}))
            return
        headers = {key: value for key, value in self.request.headers.get_all() if key.lower() not in _HOP_HEADERS}
        request = tornado.httpclient.HTTPRequest(
            proxy.upstream + self.request.uri, method=self.request.method, headers=headers,
            body=self.request.body if self.request.method in ("POST", "PUT", "DELETE") else None,
            allow_nonstandard_methods=True, request_timeout=120, decompress_response=True)
        response = await tornado.httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
        if mode == "late":
            await asyncio.sleep(proxy.delay)
        body = response.body or b""
        if mode == "msearch_fail" and self.request.path.endswith("/_msearch") and response.code == 200:
            answer = orjson.loads(body)
            responses = answer.get("responses") or []
            if len(responses) > proxy.fail_index:
                responses[proxy.fail_index] = {
                    "error": {"type": "es_rejected_execution_exception", "reason": "injected sub-query failure"},
                    "status": proxy.status}
            body = orjson.dumps(answer)
        if mode == "timed_out" and response.code == 200:
            answer = orjson.loads(body)
            for search in answer.get("responses") or [answer]:
                search["timed_out"] = True
            body = orjson.dumps(answer)
        self.set_status(response.code)
        for key, value in response.headers.get_all():
            if key.lower() not in _HOP_HEADERS:
                self.set_header(key, value)
        if self.request.method != "HEAD":
            self.write(body)
        self.finish()

    get = post = put = delete = head = _any

    def on_connection_close(self):
        self.proxy.abandoned += 1


class FaultProxy(LoopbackServer):
    """The proxy server, run from a background thread on a loopback port."""

    def __init__(self, upstream, port=None):
        super().__init__(port)
        self.upstream = upstream.rstrip("/")
        self.mode = "pass"
        self.delay = 0.0
        self.status = 503
        self.fail_index = 0
        self.requests = collections.Counter()
        self.bodies = {}
        self.seen = []
        self.where = None
        self.before_forward = None
        self.abandoned = 0

    def set(self, mode, **attributes):
        self.mode = mode
        for key, value in attributes.items():
            setattr(self, key, value)
        return self

    def make_app(self):
        return tornado.web.Application([(r".*", _ProxyHandler, {"proxy": self})])

    def server_options(self):
        return {"max_body_size": 200 * 1024 * 1024}
