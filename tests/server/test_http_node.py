"""The lean HTTP node under ``AsyncElasticsearch`` (plain http:// hosts)."""

import ast
import asyncio
import gzip
import inspect

import orjson
import pytest
from elastic_transport import ConnectionError, ConnectionTimeout, NodeConfig

from biothings.web.engines import http_node
from biothings.web.engines.http_node import LeanHttpNode

pytestmark = pytest.mark.asyncio

HEADERS = b"X-Elastic-Product: Elasticsearch\r\ncontent-type: application/json\r\n"


class Server:
    """A scripted HTTP server: ``answer(request_line, body)`` returns raw answer bytes or None."""

    def __init__(self, answer):
        self.answer = answer
        self.connections = 0
        self.requests = []

    async def __aenter__(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    async def _serve(self, reader, writer):
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                self.requests.append((lines[0], headers, body))
                out = await self.answer(lines[0], body)
                if out is None:
                    writer.close()
                    return
                writer.write(out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionResetError):
            writer.close()


def ok(payload, extra=b""):
    data = orjson.dumps(payload)
    return b"HTTP/1.1 200 OK\r\n" + HEADERS + extra + b"content-length: %d\r\n\r\n" % len(data) + data


def node(port, **kwargs):
    return LeanHttpNode(NodeConfig("http", "127.0.0.1", port, **kwargs))


async def test_keep_alive_reuses_one_connection():
    async def answer(line, body):
        return ok({"line": line, "body": body.decode()})
    async with Server(answer) as server:
        n = node(server.port)
        for i in range(3):
            resp = await n.perform_request("POST", f"/idx/_search?i={i}", body=b'{"q": 1}',
                                           headers={"content-type": "application/json"})
            assert resp.meta.status == 200
            assert orjson.loads(resp.body) == {"line": f"POST /idx/_search?i={i} HTTP/1.1", "body": '{"q": 1}'}
            assert resp.meta.headers["X-Elastic-Product"] == "Elasticsearch"
        assert server.connections == 1
        line, headers, _ = server.requests[0]
        assert headers["host"] == f"127.0.0.1:{server.port}" and headers["content-type"] == "application/json"
        await n.close()


async def test_chunked_gzip_and_until_close_bodies():
    payload = orjson.dumps({"hits": list(range(100))})
    zipped = gzip.compress(payload)

    async def answer(line, body):
        if "chunked" in line:
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(payload[i:i + 50]), payload[i:i + 50])
                              for i in range(0, len(payload), 50))
            return b"HTTP/1.1 200 OK\r\n" + HEADERS + b"transfer-encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
        if "gzip" in line:
            return (b"HTTP/1.1 200 OK\r\n" + HEADERS + b"content-encoding: gzip\r\n"
                    b"content-length: %d\r\n\r\n" % len(zipped) + zipped)
        return None
    async with Server(answer) as server:
        n = node(server.port)
        assert (await n.perform_request("GET", "/chunked")).body == payload
        assert (await n.perform_request("GET", "/gzip")).body == payload
        assert server.connections == 1
        await n.close()

    async def until_close(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n" + HEADERS + b"\r\n" + payload[:30])
        await writer.drain()
        writer.write(payload[30:])
        writer.close()
    server = await asyncio.start_server(until_close, "127.0.0.1", 0)
    n = node(server.sockets[0].getsockname()[1])
    assert (await n.perform_request("GET", "/until-close")).body == payload
    server.close()
    await n.close()


async def test_head_answers_have_no_body():
    async def answer(line, body):
        if line.startswith("HEAD"):  # Content-Length of the body a GET would get, no body
            return b"HTTP/1.1 200 OK\r\n" + HEADERS + b"content-length: 40\r\n\r\n"
        return ok({"after": "head"})
    async with Server(answer) as server:
        n = node(server.port, request_timeout=5)
        head = await n.perform_request("HEAD", "/idx")
        assert head.meta.status == 200 and head.body == b""
        assert orjson.loads((await n.perform_request("GET", "/x")).body) == {"after": "head"}
        await n.close()


async def test_interim_100_answer_is_skipped_and_garbage_is_an_error():
    async def answer(line, body):
        if "garbage" in line:
            return b"NOT HTTP AT ALL\r\n\r\n"
        return b"HTTP/1.1 100 Continue\r\n\r\n" + ok({"final": True})
    async with Server(answer) as server:
        n = node(server.port, request_timeout=5)
        response = await n.perform_request("GET", "/a")
        assert response.meta.status == 200 and orjson.loads(response.body) == {"final": True}
        with pytest.raises(ConnectionError, match="HttpParserError"):
            await n.perform_request("GET", "/garbage")
        await n.close()


async def test_stale_keep_alive_connection_is_retried_once():
    calls = []

    async def answer(line, body):
        calls.append(line)
        # the second request finds its connection closed by the server
        return None if len(calls) == 2 else ok({"n": len(calls)})
    async with Server(answer) as server:
        n = node(server.port)
        assert orjson.loads((await n.perform_request("GET", "/a")).body) == {"n": 1}
        assert orjson.loads((await n.perform_request("GET", "/b")).body) == {"n": 3}
        assert server.connections == 2
        await n.close()


async def test_connection_close_answers_are_not_reused():
    async def answer(line, body):
        return ok({}, b"connection: close\r\n")
    async with Server(answer) as server:
        n = node(server.port)
        await n.perform_request("GET", "/a")
        await n.perform_request("GET", "/b")
        assert server.connections == 2
        await n.close()


async def test_timeout_and_refused_are_transport_errors():
    async def answer(line, body):
        await asyncio.sleep(5)
        return ok({})
    async with Server(answer) as server:
        n = node(server.port, request_timeout=0.2)
        with pytest.raises(ConnectionTimeout):
            await n.perform_request("GET", "/slow")
        await n.close()
    port = server.port
    with pytest.raises(ConnectionError):
        await node(port).perform_request("GET", "/")


async def test_connection_limit_queues_requests():
    active = []
    peak = []

    async def answer(line, body):
        active.append(1)
        peak.append(len(active))
        await asyncio.sleep(0.02)
        active.pop()
        return ok({})
    async with Server(answer) as server:
        n = node(server.port, connections_per_node=3)
        results = await asyncio.gather(*(n.perform_request("GET", f"/{i}") for i in range(12)))
        assert all(r.meta.status == 200 for r in results)
        assert server.connections == 3 and max(peak) == 3
        await n.close()


async def test_client_uses_the_lean_node_for_http_only():
    from biothings.web.engines.elasticsearch import ElasticsearchEngine
    engine = ElasticsearchEngine(["http://127.0.0.1:9"])
    assert all(type(n) is LeanHttpNode for n in engine.client.transport.node_pool.all())
    await engine.close()
    engine = ElasticsearchEngine(["https://127.0.0.1:9"], verify_certs=False, ssl_show_warn=False)
    assert not any(type(n) is LeanHttpNode for n in engine.client.transport.node_pool.all())
    await engine.close()


async def test_cancelled_waiters_pass_their_turn_on():
    async def answer(line, body):
        await asyncio.sleep(0.05)
        return ok({})
    async with Server(answer) as server:
        n = node(server.port, connections_per_node=1)
        first = asyncio.ensure_future(n.perform_request("GET", "/1"))
        await asyncio.sleep(0.01)
        waiting = [asyncio.ensure_future(n.perform_request("GET", f"/w{i}")) for i in range(3)]
        await asyncio.sleep(0.01)
        waiting[0].cancel()
        results = await asyncio.gather(first, *waiting[1:])
        assert all(r.meta.status == 200 for r in results)
        assert waiting[0].cancelled() and server.connections == 1
        # a connection slot freed (not a connection handed over) reaches the next waiter too
        n2 = node(server.port, connections_per_node=1)
        n2._loop = asyncio.get_running_loop()
        n2._open = 1  # as if a connection were out
        w1 = asyncio.ensure_future(n2._acquire(None))
        w2 = asyncio.ensure_future(n2._acquire(None))
        await asyncio.sleep(0.01)
        assert len(n2._queue) == 2
        n2._open = 0  # ...and it was closed
        n2._wake()          # the slot goes to w1...
        w1.cancel()         # ...which is cancelled before it runs: w2 must get it
        conn = await asyncio.wait_for(w2, 2)
        assert conn is not None
        conn.close()
        await n.close()


async def test_engine_search_paths_for_one_index_or_several():
    from biothings.web.engines.elasticsearch import ElasticsearchEngine

    async def answer(line, body):
        return ok({"hits": {"hits": []}, "responses": []})
    async with Server(answer) as server:
        engine = ElasticsearchEngine([f"http://127.0.0.1:{server.port}"])
        await engine.search("genes", {"query": {"match_all": {}}})
        await engine.search(["genes", "variants"], {"query": {"match_all": {}}})
        await engine.msearch(("genes", "variants"), [{"query": {"match_all": {}}}])
        assert [line for line, _, _ in server.requests] == [
            "POST /genes/_search HTTP/1.1", "POST /genes,variants/_search HTTP/1.1",
            "POST /genes,variants/_msearch HTTP/1.1"]
        await engine.close()


async def test_the_deadline_covers_the_wait_for_a_connection():
    """One connection, six requests at once, a server that never answers: each request times out
    at its own deadline (0.3 s), not one after the other (0.3, 0.6, ... 1.8 s)."""
    async def answer(line, body):
        await asyncio.sleep(10)
    async with Server(answer) as server:
        n = node(server.port, request_timeout=0.3, connections_per_node=1)
        loop = asyncio.get_running_loop()
        start = loop.time()
        results = await asyncio.gather(*(n.perform_request("GET", f"/{i}") for i in range(6)),
                                       return_exceptions=True)
        assert all(isinstance(result, ConnectionTimeout) for result in results)
        assert loop.time() - start < 1.2
        assert not n._queue or all(waiter.done() for waiter in n._queue)
        await n.close()


async def test_a_connection_closed_after_an_answer_without_length_never_answers_again():
    """A 204 has no body (no Content-Length needed): when the server then closes the connection,
    the next request on it is retried, never handed that 204."""
    calls = []

    async def answer(line, body):
        calls.append(line)
        if len(calls) == 1:
            return b"HTTP/1.1 204 No Content\r\nX-Elastic-Product: Elasticsearch\r\n\r\n"
        if len(calls) == 2:
            return None  # closes the reused connection
        return ok({"n": len(calls)})
    async with Server(answer) as server:
        n = node(server.port)
        assert (await n.perform_request("DELETE", "/a")).meta.status == 204
        response = await n.perform_request("GET", "/b")
        assert response.meta.status == 200 and orjson.loads(response.body) == {"n": 3}
        assert server.connections == 2
        await n.close()


async def test_bytes_on_an_idle_connection_close_it():
    async def answer(line, body):
        return ok({"line": line}) + ok({"unasked": True})  # one answer too many
    async with Server(answer) as server:
        n = node(server.port)
        assert orjson.loads((await n.perform_request("GET", "/a")).body) == {"line": "GET /a HTTP/1.1"}
        await asyncio.sleep(0.05)
        assert orjson.loads((await n.perform_request("GET", "/b")).body) == {"line": "GET /b HTTP/1.1"}
        assert server.connections == 2
        await n.close()


@pytest.mark.parametrize("target, headers", [
    ("/idx/_doc/1\r\nX-Injected: 1", None),
    ("/idx/_doc/1\nX-Injected: 1", None),
    ("/idx/_search", {"x-opaque-id": "a\r\nX-Injected: 1"}),
    ("/idx/_search", {"x-opaque-id": "a\rb"}),
    ("/idx/_search", {"x-a\r\nx-b": "c"}),
])
async def test_cr_or_lf_in_a_target_or_header_is_refused(target, headers):
    async def answer(line, body):
        return ok({})
    async with Server(answer) as server:
        n = node(server.port)
        with pytest.raises(ValueError, match="CR or LF"):
            await n.perform_request("GET", target, headers=headers)
        assert (await n.perform_request("GET", "/idx/_search", headers={"x-opaque-id": "a b"})).meta.status == 200
        assert len(server.requests) == 1
        await n.close()


async def test_no_private_elastic_transport_imports():
    tree = ast.parse(inspect.getsource(http_node))
    modules = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    modules += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    assert not [module for module in modules if module and module.startswith("elastic_transport._")]


@pytest.mark.parametrize("host, port, prefix", [("127.0.0.1", 9200, ""), ("::1", 9201, "/es")])
async def test_base_url_is_the_one_the_transport_works_out(host, port, prefix):
    """Worked out once (the transport reads it twice a request), as the base class would."""
    from elastic_transport._node._base import BaseNode
    lean = LeanHttpNode(NodeConfig("http", host, port, path_prefix=prefix))
    assert lean.base_url == BaseNode.base_url.fget(lean)
    assert lean.base_url == {"127.0.0.1": "http://127.0.0.1:9200", "::1": "http://[::1]:9201/es"}[host]


ERROR_ANSWERS = [  # status, body: what a cluster may answer to a search
    (400, {"error": {"root_cause": [{"type": "query_shard_exception", "reason": "Failed to parse [q]"}],
                     "type": "search_phase_execution_exception", "reason": "all shards failed"}, "status": 400}),
    (400, {"error": {"type": "parsing_exception"}, "status": 400}),  # no reason: the client's message (its type)
    (400, {"error": "plain words", "status": 400}),
    (404, {"error": {"type": "index_not_found_exception", "reason": "no such index [x]"}, "status": 404}),
    (429, {"error": {"type": "es_rejected_execution_exception", "reason": "queue full"}, "status": 429}),
    (500, {"oops": True}),
]


@pytest.mark.parametrize("status, body", ERROR_ANSWERS, ids=[f"{s}-{i}" for i, (s, _) in enumerate(ERROR_ANSWERS)])
async def test_error_answers_are_translated_alike_both_ways(status, body):
    """``ClientShortcut`` (searches to the transport) raises what the client's exception
    became after translation: the same error class and reason for each error answer."""
    from biothings.web.engines.elasticsearch import ClientShortcut, ElasticsearchEngine
    from biothings.web.engines.errors import EngineError

    async def answer(line, request_body):
        data = orjson.dumps(body)
        return (b"HTTP/1.1 %d Error\r\n" % status + HEADERS + b"content-length: %d\r\n\r\n" % len(data) + data)
    async with Server(answer) as server:
        engine = ElasticsearchEngine(f"http://127.0.0.1:{server.port}")
        errors = []
        for direct in (True, False):
            engine._shortcut = ClientShortcut(engine.client, direct=direct)
            with pytest.raises(EngineError) as raised:
                await engine.search("x", {"query": {"match_all": {}}})
            errors.append((type(raised.value).__name__, str(raised.value)))
        await engine.close()
    assert errors[0] == errors[1]
    assert errors[0] == {0: ("QueryError", "Failed to parse [q]"), 1: ("QueryError", "parsing_exception"),
                         2: ("QueryError", "plain words"), 3: ("IndexNotFound", "Index not found."),
                         4: ("EngineUnavailable", "Search engine overloaded, retry later."),
                         5: ("EngineUnavailable", "Search engine failed.")}[ERROR_ANSWERS.index((status, body))]


async def test_warning_headers_are_reported_both_ways():
    """A deprecation in a search's answer is an ``ElasticsearchWarning``, as the client reports it."""
    import elasticsearch

    from biothings.web.engines.elasticsearch import ClientShortcut, ElasticsearchEngine

    async def answer(line, request_body):
        return ok({"hits": {"total": {"value": 0, "relation": "eq"}, "hits": []}},
                  b'warning: 299 Elasticsearch-8.15.3 "[types removal] do not do that"\r\n')
    async with Server(answer) as server:
        engine = ElasticsearchEngine(f"http://127.0.0.1:{server.port}")
        for direct in (True, False):
            engine._shortcut = ClientShortcut(engine.client, direct=direct)
            with pytest.warns(elasticsearch.ElasticsearchWarning, match="types removal"):
                assert (await engine.search("x", {"size": 0}))["hits"]["hits"] == []
        await engine.close()
