"""Engine faults: the API answers 503 with Retry-After, and recovers by itself."""

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
