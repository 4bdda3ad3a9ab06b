"""Engine faults: the API answers 503 with Retry-After, and recovers by itself."""

import elasticsearch
import pytest

from tests import data
from tests.conftest import load_es_index
from tests.servers import NoidaElasticsearch, free_port


@pytest.fixture
def dead_es_url():
    return f"http://127.0.0.1:{free_port()}"


def test_engine_down_answers_503(serve, dead_es_url):
    client = serve("elasticsearch", ES_HOST=dead_es_url, ES_INDICES={"gene": "genes"}, ES_REQUEST_TIMEOUT=2)
    for path, params in (("/v1/query", {"q": "cdk2"}), ("/v1/gene/1017", None), ("/v1/metadata", None),
                         ("/v1/metadata/fields", None)):
        response = client.get(path, params=params)
        assert response.status_code == 503, path
        body = response.json()
        assert body["code"] == 503 and body["success"] is False
        assert response.headers["Retry-After"].isdigit()
        assert "Cache-Control" not in response.headers
    batch = client.post("/v1/query", json={"q": ["cdk2"], "scopes": ["symbol"]})
    assert batch.status_code == 503
    status = client.get("/status")
    assert status.status_code == 503 and status.json()["success"] is False


@pytest.mark.skipif(not elasticsearch.__versionstr__.startswith("8."),
                    reason="noida-db is an Elasticsearch 8: the 9.x client cannot talk to it")
def test_engine_comes_back(serve, tmp_path):
    es = NoidaElasticsearch(str(tmp_path))
    client = serve("elasticsearch", ES_HOST=es.url, ES_INDICES={"gene": "genes"}, ES_REQUEST_TIMEOUT=2)
    assert client.get("/v1/gene/1017").status_code == 503
    es.start()
    try:
        load_es_index(es.url, "genes", docs=data.DOCS[:50])
        first = data.DOCS[0]
        response = client.get(f"/v1/gene/{first['_id']}")
        assert response.status_code == 200
        assert response.json()["symbol"] == first["symbol"]
        assert client.get("/v1/metadata").json()["stats"]["total"] == 50
        assert client.get("/status").status_code == 200
    finally:
        es.stop()


def test_missing_index(serve, es_url):
    client = serve("elasticsearch", ES_HOST=es_url, ES_INDICES={"gene": "no_such_index_here"})
    response = client.get("/v1/query", params={"q": "cdk2"})
    assert response.status_code == 404
    assert response.json()["success"] is False
    assert client.get("/v1/metadata").status_code == 404


# ---------------------------------------------------------------- injected faults
# A loopback proxy in front of each cluster of the suite (Elasticsearch, OpenSearch:
# each its own client) switches faults on and off.

import time  # noqa: E402

from tests.conftest import cluster_index, cluster_url  # noqa: E402
from tests.faultproxy import FaultProxy  # noqa: E402


@pytest.fixture(params=["elasticsearch", "opensearch"])
def cluster(request):
    """A cluster backend and its demo index."""
    return request.param, cluster_index(request.param, request)


@pytest.fixture
def proxy(request, cluster):
    server = FaultProxy(cluster_url(cluster[0], request)).start()
    yield server
    server.stop()


@pytest.fixture
def behind_proxy(serve, proxy, cluster):
    """An API whose engine is reached through the fault proxy."""
    backend, index = cluster
    return serve(backend, ES_HOST=proxy.url, ES_INDICES={"gene": index}, ES_REQUEST_TIMEOUT=1,
                 METADATA_REFRESH_INTERVAL=0)


def assert_unavailable(response):
    assert response.status_code == 503, (response.status_code, response.text[:300])
    body = response.json()
    assert body["code"] == 503 and body["success"] is False and body["error"]
    assert int(response.headers["Retry-After"]) > 0
    assert "Cache-Control" not in response.headers
    assert "injected" not in body["error"]  # the engine's internals stay inside
    return body


ROUTES = [("GET", "/v1/gene/1017", None), ("GET", "/v1/query?q=cdk2", None),
          ("POST", "/v1/query", {"q": ["CDK2", "BRCA1"], "scopes": ["symbol"]}),
          ("POST", "/v1/gene", {"ids": ["1017", "672"]}), ("GET", "/status", None)]


def call(client, method, path, body):
    return client.request(method, path, json=body) if body is not None else client.request(method, path)


def test_down_at_start_up_then_recovers(serve, proxy, cluster):
    proxy.set("down")
    backend, index = cluster
    client = serve(backend, ES_HOST=proxy.url, ES_INDICES={"gene": index}, ES_REQUEST_TIMEOUT=1,
                   METADATA_REFRESH_INTERVAL=0)
    for method, path, body in ROUTES + [("GET", "/v1/metadata", None)]:
        assert_unavailable(call(client, method, path, body))
    proxy.set("pass")
    for method, path, body in ROUTES + [("GET", "/v1/metadata", None)]:
        assert call(client, method, path, body).status_code == 200, path


def test_goes_down_and_comes_back(behind_proxy, proxy):
    assert behind_proxy.get("/v1/gene/1017").json()["_id"] == "1017"
    proxy.set("down")
    for method, path, body in ROUTES:
        assert_unavailable(call(behind_proxy, method, path, body))
    # metadata is served from the cache while the engine is away
    assert behind_proxy.get("/v1/metadata").status_code == 200
    proxy.set("pass")
    for method, path, body in ROUTES:
        assert call(behind_proxy, method, path, body).status_code == 200, path


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_engine_overloaded(behind_proxy, proxy, status):
    proxy.set("status", status=status)
    for method, path, body in ROUTES:
        assert_unavailable(call(behind_proxy, method, path, body))
    proxy.set("pass")
    assert behind_proxy.get("/v1/gene/1017").json()["_id"] == "1017"


def test_slow_engine_times_out_never_hangs(behind_proxy, proxy):
    proxy.set("slow", delay=5)
    for method, path, body in ROUTES:
        started = time.monotonic()
        assert_unavailable(call(behind_proxy, method, path, body))
        assert time.monotonic() - started < 4, path  # ES_REQUEST_TIMEOUT=1 (and one retry at most)
    proxy.set("pass")
    assert behind_proxy.get("/v1/gene/1017").json()["_id"] == "1017"


def test_slow_but_within_timeout_is_served(behind_proxy, proxy):
    proxy.set("slow", delay=0.3)
    assert behind_proxy.get("/v1/gene/1017").json()["_id"] == "1017"


@pytest.mark.parametrize("status", [429, 500, 503])
def test_one_failing_subquery_fails_one_term(behind_proxy, proxy, status):
    proxy.set("msearch_fail", fail_index=1, status=status)
    hits = behind_proxy.post("/v1/query", json={"q": ["CDK2", "BRCA1", "TP53"], "scopes": ["symbol"],
                                                "fields": "symbol"}).json()
    assert [hit["query"] for hit in hits] == ["CDK2", "BRCA1", "TP53"]
    assert hits[0]["_id"] == "1017" and hits[2]["symbol"] == "TP53"
    assert set(hits[1]) == {"query", "error"} and hits[1]["error"]
    ids = behind_proxy.post("/v1/gene", json={"ids": ["1017", "672"]}).json()
    assert ids[0]["_id"] == "1017" and "error" in ids[1]


def test_concurrent_requests_during_outage_all_answer(behind_proxy, proxy):
    from concurrent.futures import ThreadPoolExecutor
    proxy.set("slow", delay=5)
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: behind_proxy.get("/v1/query", params={"q": "cdk2"}).status_code,
                                range(32)))
    assert set(answers) == {503}
    assert time.monotonic() - started < 8
    proxy.set("pass")
    assert "1017" in {hit["_id"] for hit in behind_proxy.get("/v1/query", params={"q": "cdk2"}).json()["hits"]}
