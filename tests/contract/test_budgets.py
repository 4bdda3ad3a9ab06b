"""Request budgets: hits, bytes and time per request, on every engine.

Work past its deadline, or for a client that has gone, is abandoned; cheap id
lookups never queue behind expensive searches. No assertion here is about time:
a deliberately endless search only ends when its budget ends it, and the tests
wait (bounded) for the engine's own counters to show that.
"""

import asyncio
import gc
import socket
import time
import weakref

import orjson
import pytest
import requests

from biothings.web.engines.embedded import EmbeddedEngine
from biothings.web.engines.errors import QueryError, SearchCancelled, SearchTimeout
from tests import data
from tests.conftest import make_settings
from tests.faultproxy import FaultProxy
from tests.contract.test_limits import error_of
from tests.server.test_observability import labels, scrape


def wait_until(condition, timeout=15.0):
    """Poll ``condition`` until true; False if it never was within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


class SpinningEngine(EmbeddedEngine):
    """The embedded engine with one deliberately endless search: ``q=spin`` loops in
    Python (as a sort over many documents does between two tantivy calls) until its
    budget stops it."""

    def search_sync(self, index, body, scroll=None):
        if b'"spin"' in orjson.dumps(body.get("query")):
            while True:
                time.sleep(0.001)
        return super().search_sync(index, body, scroll)


@pytest.fixture
def spinning(request, serve):
    """``spinning(**settings)``: (client, engine) of the demo API on a SpinningEngine."""
    def start(threads=None, **overrides):
        settings = make_settings("embedded", request, **overrides)
        engine = settings._engine = SpinningEngine(settings.EMBEDDED_DATA_DIR, max_workers=threads)
        return serve(config=settings), engine
    return start


def send_and_hold(client, path):
    """A raw connection that sends ``GET path`` and does not read the answer."""
    host, port = client.url.replace("http://", "").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    return sock


# ---------------------------------------------------------------- time budget, embedded engine

def test_a_search_past_its_deadline_is_a_503_and_stops(spinning):
    client, engine = spinning(SEARCH_TIMEOUT=0.5)
    response = client.get("/v1/query", params={"q": "spin"})
    body = error_of(response, 503)
    assert "SEARCH_TIMEOUT" in body["error"] and int(response.headers["Retry-After"]) >= 1
    assert wait_until(lambda: engine.searches.running == 0)  # the thread is free again
    assert client.get("/v1/query", params={"q": "cdk2"}).json()["total"] >= 1


def test_a_search_whose_client_went_away_stops(spinning):
    client, engine = spinning(SEARCH_TIMEOUT=300)
    sock = send_and_hold(client, "/v1/query?q=spin")
    assert wait_until(lambda: engine.searches.running == 1)
    sock.close()
    assert wait_until(lambda: engine.searches.running == 0)
    assert wait_until(lambda: scrape(client).get(
        ("biothings_http_requests_total", labels(route="/v1/query/?", method="GET", status="499"))) == 1)
    assert scrape(client)[("biothings_http_requests_in_flight", ())] == 1  # the scrape alone


def test_cheap_lookups_never_wait_behind_expensive_searches(spinning):
    client, engine = spinning(SEARCH_TIMEOUT=300, threads=1)
    held = [send_and_hold(client, "/v1/query?q=spin") for _ in range(3)]
    try:
        assert wait_until(lambda: engine.searches.running == 1 and engine.searches.queued == 2)
        doc = client.get("/v1/gene/1017")
        assert doc.status_code == 200 and doc.json()["symbol"] == data.BY_ID["1017"]["symbol"]
        batch = client.post("/v1/gene", json={"ids": ["1017", "672"]}).json()
        assert [hit["_id"] for hit in batch] == ["1017", "672"]
        assert engine.searches.running == 1 and engine.searches.queued == 2  # still stuck behind the first
    finally:
        for sock in held:
            sock.close()
    assert wait_until(lambda: engine.searches.running == 0 and engine.searches.queued == 0)


def test_the_engine_honours_a_body_timeout_and_a_cancellation(embedded_dir):
    engine = SpinningEngine(embedded_dir, max_workers=1)

    async def scenario():
        with pytest.raises(SearchTimeout):
            await engine.search("genes", {"query": {"query_string": {"query": "spin"}}, "timeout": "200ms"})
        with pytest.raises(SearchTimeout):  # queued past its deadline: never runs
            await engine.search("genes", {"query": {"match_all": {}}, "timeout": "1nanos"})
        spin = asyncio.ensure_future(engine.search("genes", {"query": {"query_string": {"query": "spin"}}}))
        while not engine.searches.running:
            await asyncio.sleep(0.01)
        spin.cancel()
        while engine.searches.running:
            await asyncio.sleep(0.01)
        found = await engine.search("genes", {"query": {"ids": {"values": ["1017"]}}, "timeout": "10s"})
        assert found["hits"]["hits"][0]["_id"] == "1017"

    asyncio.run(scenario())
    asyncio.run(engine.close())


def test_a_cancelled_job_stops_at_its_next_checkpoint(embedded_dir):
    """The search steps check the job between tantivy calls: a cancelled job reads no document."""
    from biothings.web.engines.embedded import lanes
    engine = EmbeddedEngine(embedded_dir)
    job = lanes.Job()
    lanes._local.job = job
    try:
        job.cancel()
        with pytest.raises(SearchCancelled):
            engine.search_sync("genes", {"query": {"match_all": {}}, "size": 100})
    finally:
        lanes._local.job = None


# ---------------------------------------------------------------- time budget, Elasticsearch

@pytest.fixture
def proxy(es_url):
    server = FaultProxy(es_url).start()
    yield server
    server.stop()


def test_elasticsearch_searches_carry_the_timeout(serve, proxy, es_index):
    client = serve("elasticsearch", ES_HOST=proxy.url, ES_INDICES={"gene": es_index}, SEARCH_TIMEOUT=7)
    assert client.get("/v1/query", params={"q": "cdk2"}).status_code == 200
    assert orjson.loads(proxy.bodies[f"/{es_index}/_search"])["timeout"] == "7000ms"
    assert client.post("/v1/query", json={"q": ["CDK2", "TP53"], "scopes": ["symbol"]}).status_code == 200
    lines = [orjson.loads(line) for line in proxy.bodies[f"/{es_index}/_msearch"].splitlines() if line.strip()]
    assert [line.get("timeout") for line in lines[1::2]] == ["7000ms", "7000ms"]


def test_elasticsearch_partial_results_are_a_503(serve, proxy, es_index):
    client = serve("elasticsearch", ES_HOST=proxy.url, ES_INDICES={"gene": es_index}, SEARCH_TIMEOUT=7)
    proxy.set("timed_out")
    for response in (client.get("/v1/query", params={"q": "cdk2"}),
                     client.post("/v1/query", json={"q": ["CDK2"], "scopes": ["symbol"]})):
        assert "SEARCH_TIMEOUT" in error_of(response, 503)["error"]


def test_elasticsearch_search_past_the_deadline_is_abandoned(serve, proxy, es_index):
    client = serve("elasticsearch", ES_HOST=proxy.url, ES_INDICES={"gene": es_index}, SEARCH_TIMEOUT=0.5,
                   ES_REQUEST_TIMEOUT=300, METADATA_REFRESH_INTERVAL=0)
    assert client.get("/v1/gene/1017").status_code == 200  # metadata loaded
    proxy.set("slow", delay=300)
    body = error_of(client.get("/v1/query", params={"q": "cdk2"}), 503)
    assert "SEARCH_TIMEOUT" in body["error"]
    assert wait_until(lambda: proxy.abandoned == 1)  # the connection to Elasticsearch was closed


def test_elasticsearch_search_is_cancelled_when_the_client_goes(serve, proxy, es_index):
    client = serve("elasticsearch", ES_HOST=proxy.url, ES_INDICES={"gene": es_index}, SEARCH_TIMEOUT=300,
                   ES_REQUEST_TIMEOUT=300, METADATA_REFRESH_INTERVAL=0)
    assert client.get("/v1/gene/1017").status_code == 200
    proxy.set("slow", delay=300)
    searches = proxy.requests[f"/{es_index}/_search"]
    sock = send_and_hold(client, "/v1/query?q=cdk2")
    assert wait_until(lambda: proxy.requests[f"/{es_index}/_search"] > searches)
    sock.close()
    assert wait_until(lambda: proxy.abandoned == 1)


# ---------------------------------------------------------------- answer budget: hits

def test_hits_per_request_at_the_limit_and_past_it(serve, api):
    client = serve(api.backend, MAX_ANSWER_HITS=20)
    terms = [doc["symbol"] for doc in data.DOCS[:21]]
    at_limit = client.post("/v1/query", json={"q": terms[:20], "scopes": ["symbol"], "size": 1})
    assert at_limit.status_code == 200 and len(at_limit.json()) >= 20
    body = error_of(client.post("/v1/query", json={"q": terms, "scopes": ["symbol"], "size": 1}), 400)
    assert body["keyword"] == "size" and body["max"] == 20 and body["num"] == 21
    assert "MAX_ANSWER_HITS" in body["error"]
    body = error_of(client.post("/v1/query", json={"q": terms[:2], "scopes": ["symbol"], "size": 11}), 400)
    assert body["num"] == 22
    assert len(client.get("/v1/query", params={"q": "__all__", "size": 20}).json()["hits"]) == 20
    assert error_of(client.get("/v1/query", params={"q": "__all__", "size": 21}), 400)["num"] == 21


def test_default_hits_budget_is_ten_thousand(api):
    terms = [doc["symbol"] for doc in data.DOCS[:1000]]
    body = error_of(api.post("/v1/query", json={"q": terms, "scopes": ["symbol"], "size": 11}), 400)
    assert body["max"] == 10000 and body["num"] == 11000


def test_annotation_batches_count_the_hits_they_answer(serve, api):
    """Ids give no size: an id matching several documents is counted in the answer."""
    client = serve(api.backend, MAX_ANSWER_HITS=3)
    assert len(client.post("/v1/gene", json={"ids": ["1017", "672", "7157"]}).json()) == 3
    body = error_of(client.post("/v1/gene", json={"ids": ["1017", "672", "7157", "1018"]}), 400)
    assert body["max"] == 3 and body["num"] == 4


# ---------------------------------------------------------------- answer budget: bytes

def assert_byte_budget(serve, backend, method, path, body=None, fmt="json"):
    """A budget of exactly the answer's size passes it; one byte less refuses it, naming the limit."""
    def ask(client):
        return client.request(method, path, params={"format": fmt}, json=body)
    size = len(ask(serve(backend)).content)
    exact = ask(serve(backend, MAX_ANSWER_BYTES=size))
    assert exact.status_code == 200 and len(exact.content) == size
    refused = error_of(ask(serve(backend, MAX_ANSWER_BYTES=size - 1)), 400)
    assert refused["max"] == size - 1 and refused["num"] > size - 1 and "MAX_ANSWER_BYTES" in refused["error"]


# answers without "took": the same bytes each time
BATCH_64 = {"ids": [doc["_id"] for doc in data.DOCS[:64]], "fields": "symbol,name"}  # written entry by entry


@pytest.mark.parametrize("fmt", ["json", "yaml", "msgpack", "html"])
@pytest.mark.parametrize("method, path, body", [("POST", "/v1/gene", BATCH_64), ("GET", "/v1/gene/1017", None)])
def test_answer_bytes_at_the_limit_and_past_it(serve, fmt, method, path, body):
    assert_byte_budget(serve, "embedded", method, path, body, fmt)


def test_answer_bytes_on_every_engine(serve, api):
    one_search_64_hits = {"q": ["protein-coding"], "scopes": ["type_of_gene"], "size": 64, "fields": "symbol"}
    assert_byte_budget(serve, api.backend, "POST", "/v1/query", one_search_64_hits)


def test_a_batch_past_the_byte_budget_stops_early(serve):
    client = serve("embedded", MAX_ANSWER_BYTES=20000)
    ids = [doc["_id"] for doc in data.DOCS[:1000]]
    body = error_of(client.post("/v1/gene", json={"ids": ids}), 400)
    assert 20000 < body["num"] < 40000  # stopped once past the budget, not after writing 1,000 documents


def test_piecewise_json_is_the_same_bytes(serve):
    from biothings.web import formats
    api = serve("embedded")
    answer = api.post("/v1/gene", json={"ids": [doc["_id"] for doc in data.DOCS[:200]]}).json()
    search = api.get("/v1/query", params={"q": "__all__", "size": 100, "facets": "type_of_gene"}).json()
    for value in (answer, search, {"b": answer, "a": [1] * 100, "c": {"k": 1}}):
        for sort_keys in (False, True):
            whole = formats.to_json(value, sort_keys)
            assert formats.to_json(value, sort_keys, max_bytes=len(whole)) == whole


def test_yaml_keeps_its_text_with_the_c_emitter(api):
    import yaml
    text = api.get("/v1/query", params={"q": "__all__", "size": 50, "format": "yaml"}).text
    answer = api.get("/v1/query", params={"q": "__all__", "size": 50}).json()
    answer["took"] = yaml.safe_load(text)["took"]
    assert text == yaml.safe_dump(answer, sort_keys=True, allow_unicode=True)  # PyYAML's pure-Python emitter


# ---------------------------------------------------------------- aggregations

GO = "go.BP.id(go.MF.id(go.CC.id))"


def brute_force_terms(docs, field, size):
    counts = {}
    for doc in docs:
        for value in set(data.values(doc, field)):
            counts[value] = counts.get(value, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ranked[:size], sum(count for _value, count in ranked[size:])


def test_nested_facets_keep_only_the_buckets_asked_for(serve):
    """Three GO levels, 20 buckets each: built breadth first (a few thousand buckets) where
    the whole tree at once has a quarter of a million; counts and ties exact."""
    client = serve("embedded")
    facets = client.get("/v1/query", params={"q": "__all__", "facets": GO, "facet_size": 20, "size": 0}).json()
    top = facets["facets"]["go.BP.id"]
    expected, other = brute_force_terms(data.DOCS, "go.BP.id", 20)
    assert [(t["term"], t["count"]) for t in top["terms"]] == expected and top["other"] == other
    first = top["terms"][0]
    inside = [doc for doc in data.DOCS if first["term"] in data.values(doc, "go.BP.id")]
    expected, other = brute_force_terms(inside, "go.MF.id", 20)
    assert [(t["term"], t["count"]) for t in first["go.MF.id"]["terms"]] == expected
    second = first["go.MF.id"]["terms"][0]
    deepest = [doc for doc in inside if second["term"] in data.values(doc, "go.MF.id")]
    expected, _other = brute_force_terms(deepest, "go.CC.id", 20)
    assert [(t["term"], t["count"]) for t in second["go.CC.id"]["terms"]] == expected
    missing = sum(1 for doc in deepest if not data.values(doc, "go.CC.id"))
    assert second["go.CC.id"]["missing"] == missing


def count_buckets(aggs):
    total = 0
    for value in aggs.values():
        for bucket in value.get("buckets", []) if isinstance(value, dict) else []:
            total += 1 + count_buckets({k: v for k, v in bucket.items() if isinstance(v, dict)})
    return total


def test_buckets_are_counted_while_collecting(embedded_dir):
    body = {"size": 0, "aggs": {"t": {"terms": {"field": "type_of_gene", "size": 4},
                                      "aggs": {"c": {"terms": {"field": "chromosome", "size": 3}}}}}}
    answer = EmbeddedEngine(embedded_dir).search_sync("genes", body)
    built = count_buckets(answer["aggregations"])
    assert built > 4
    assert EmbeddedEngine(embedded_dir, max_buckets=built).search_sync("genes", body) == {**answer, "took": ANY}
    with pytest.raises(QueryError, match=r"too many buckets.*\[%d\]" % (built - 1)):
        EmbeddedEngine(embedded_dir, max_buckets=built - 1).search_sync("genes", body)


class _Any:
    def __eq__(self, other):
        return True


ANY = _Any()


def test_lane_counters_settle(embedded_dir):
    """Jobs cancelled while queued leave the counters as they found them."""
    engine = SpinningEngine(embedded_dir, max_workers=1)

    async def scenario():
        spin = asyncio.ensure_future(engine.search("genes", {"query": {"query_string": {"query": "spin"}}}))
        queued = [asyncio.ensure_future(engine.search("genes", {"query": {"match_all": {}}})) for _ in range(3)]
        while engine.searches.queued != 3:
            await asyncio.sleep(0.01)
        for task in queued + [spin]:
            task.cancel()
        while engine.searches.running or engine.searches.queued:
            await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert (engine.searches.running, engine.searches.queued) == (0, 0)
    asyncio.run(engine.close())


# ---------------------------------------------------------------- memory

class Ballast:
    """What a search holds while it runs (its list of matches): weakly referenced by the test."""


class BallastEngine(SpinningEngine):
    def __init__(self, data_dir, **kwargs):
        super().__init__(data_dir, **kwargs)
        self.ballast = []

    def search_sync(self, index, body, scroll=None):
        ballast = Ballast()
        self.ballast.append(weakref.ref(ballast))
        return super().search_sync(index, body, scroll)


def test_failed_requests_leave_nothing_to_the_garbage_collector(request, serve):
    """An abandoned search's data goes when the search stops, a failed request's when it is
    answered: nothing waits in a reference cycle for a full collection (on a busy server
    that is many seconds of hits kept for nothing)."""
    settings = make_settings("embedded", request, SEARCH_TIMEOUT=0.3)
    engine = settings._engine = BallastEngine(settings.EMBEDDED_DATA_DIR)
    client = serve(config=settings)
    client.get("/v1/gene/1017")
    gc.collect()
    gc.disable()
    try:
        assert error_of(client.get("/v1/query", params={"q": "spin"}), 503)
        assert error_of(client.get("/v1/query", params={"q": "cdk2", "size": 1001}), 400)
        assert error_of(client.post("/v1/query", json={"q": ["a"] * 11, "scopes": ["symbol"], "size": 1000}), 400)
        assert wait_until(lambda: engine.searches.running == 0)
        assert engine.ballast and all(ref() is None for ref in engine.ballast)
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        kept = [type(thing).__name__ for thing in gc.garbage if "Handler" in type(thing).__name__
                or type(thing).__name__ in ("frame", "Options", "Ballast")]
        assert kept == []
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def test_memory_is_given_back_after_large_answers(request):
    from tests.servers import APIServer
    server = APIServer(make_settings("embedded", request, MEMORY_TRIM_BYTES=100000)).start()
    try:
        session = requests.Session()
        session.get(server.url + "/v1/query", params={"q": "__all__", "size": 10})
        assert server.app.memory.trims == 0  # a small answer
        session.get(server.url + "/v1/query", params={"q": "__all__", "size": 500})
        assert wait_until(lambda: server.app.memory.trims == 1)  # once the server is idle
    finally:
        server.stop()


# ---------------------------------------------------------------- sorting

SORT_FIELDS = ["pubmed_count", "type_of_gene", "taxid", "chromosome", "map_location", "MIM", "go.BP.id",
               "genomic_pos.start", "entrezgene", "_id", "_score"]


def test_sorts_on_several_keys_read_only_the_matches_that_can_make_the_page(embedded_dir):
    """The engine narrows the matches by the first key (its best ``from + size``, then every
    match holding one of their values); the page is the one sorting every match gives."""
    import random
    engine = EmbeddedEngine(embedded_dir)
    rng = random.Random(23)
    queries = [{"match_all": {}}, {"query_string": {"query": "kinase OR receptor"}}]
    for case in range(20):
        keys = rng.sample(SORT_FIELDS, rng.randint(2, 4))
        sort = [{name: {"order": rng.choice(["asc", "desc"])}} for name in keys]
        query = queries[case % 2]
        everything = engine.search_sync("genes", {"query": query, "sort": sort, "size": 2000})
        ranked = [(hit["_id"], hit["sort"]) for hit in everything["hits"]["hits"]]
        assert len(ranked) == everything["hits"]["total"]["value"] < 2000  # all of them: nothing narrowed
        for start, size in ((0, 10), (7, 50), (300, 25)):
            page = engine.search_sync("genes", {"query": query, "sort": sort, "from": start, "size": size})
            assert [(hit["_id"], hit["sort"]) for hit in page["hits"]["hits"]] == ranked[start:start + size], sort
            assert page["hits"]["total"] == everything["hits"]["total"]


# ---------------------------------------------------------------- heavy work off the event loop

def test_large_answers_are_shaped_off_the_event_loop(serve):
    """Transform of 64 hits or more, and YAML/HTML/msgpack serialization, run in a shaping
    thread: the event loop goes on serving while they run."""
    import threading

    from biothings.web.handlers import QueryHandler
    from biothings.web.pipeline import ESResultTransform
    from biothings.web.settings.default import APP_LIST
    threads = []

    class RecordingTransform(ESResultTransform):
        def transform(self, res, options):
            threads.append(("transform", threading.current_thread().name))
            return super().transform(res, options)

    class RecordingHandler(QueryHandler):
        def serialize(self, data, title=None):
            threads.append(("serialize", threading.current_thread().name))
            return super().serialize(data, title)

    client = serve("embedded", ES_RESULT_TRANSFORM=RecordingTransform,
                   APP_LIST=[(r"/{pre}/{ver}/query/?", RecordingHandler)] + APP_LIST)
    for params, expected in (({"q": "__all__", "size": 63}, ("loop", "loop")),
                             ({"q": "__all__", "size": 64}, ("shaping", "shaping")),
                             ({"q": "cdk2", "format": "yaml"}, ("loop", "shaping")),
                             ({"q": "cdk2", "format": "msgpack"}, ("loop", "shaping"))):
        threads.clear()
        assert client.get("/v1/query", params=params).status_code == 200
        where = tuple("shaping" if name.startswith("answer-shaping") else "loop" for _step, name in threads)
        assert [step for step, _name in threads] == ["transform", "serialize"] and where == expected, params
