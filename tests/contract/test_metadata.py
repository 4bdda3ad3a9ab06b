"""/metadata, /metadata/fields, /status, /spec and the front page."""

from tests import data


def test_metadata(api):
    response = api.get("/v1/metadata")
    assert response.status_code == 200
    meta = response.json()
    assert meta["biothing_type"] == "gene"
    assert meta["build_version"] == data.META["build_version"]
    assert meta["build_date"] == data.META["build_date"]
    assert set(meta["src"]) == set(data.META["src"])
    assert meta["stats"]["total"] == len(data.DOCS)
    assert api.get("/v1/gene/metadata").json() == meta
    assert api.get("/metadata").json() == meta


def test_metadata_dev(api):
    meta = api.get("/v1/metadata", params={"dev": 1}).json()
    assert meta["software"]["biothings"]
    assert meta["_indices"]
    # cached metadata is never mutated by a request
    assert "software" not in api.get("/v1/metadata").json()


def test_fields(api):
    fields = api.get("/v1/metadata/fields").json()
    assert fields["symbol"] == {"type": "text", "index": True, "searched_by_default": True}
    assert fields["genomic_pos.start"]["type"] == "integer"
    assert fields["type_of_gene"]["type"] == "keyword"
    searched = api.get("/v1/metadata/fields", params={"search": "go.B"}).json()
    assert searched and all("go.B" in key for key in searched)
    prefixed = api.get("/v1/gene/metadata/fields", params={"prefix": "genomic_pos"}).json()
    assert set(prefixed) == {"genomic_pos", "genomic_pos.chr", "genomic_pos.start", "genomic_pos.end",
                             "genomic_pos.strand"}


def test_status(api):
    response = api.get("/status")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True and body["status"] in ("green", "yellow")
    assert "health" in api.get("/status", params={"dev": 1}).json()
    assert api.request("HEAD", "/status").status_code == 200


def test_spec(api):
    spec = api.get("/v1/spec").json()
    assert spec["openapi"].startswith("3.1")
    names = {p["name"] for p in spec["paths"]["/v1/query"]["get"]["parameters"]}
    assert {"q", "fields", "size", "from", "facets", "species"} <= names
    assert "/v1/gene/{id}" in spec["paths"]


def test_front_page(api):
    response = api.get("/")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Demo Gene API" in response.text and "/v1/query" in response.text


def test_metadata_is_cached_and_refreshed_in_background(serve, es_url):
    """A new build's ``_meta`` is not read per request, but shows up after the
    refresh interval, with no restart."""
    import time
    import uuid

    from tests.conftest import load_es_index

    index = f"bt_test_refresh_{uuid.uuid4().hex[:8]}"
    docs = data.DOCS[:5]
    cluster_index = load_es_index(es_url, index, docs=docs, meta=dict(data.META, build_version="build-1"))
    try:
        cached = serve("elasticsearch", ES_INDICES={"gene": index}, METADATA_REFRESH_INTERVAL=0)
        api = serve("elasticsearch", ES_INDICES={"gene": index}, METADATA_REFRESH_INTERVAL=1)
        assert api.get("/v1/metadata").json()["build_version"] == "build-1"
        assert cached.get("/v1/metadata").json()["build_version"] == "build-1"
        cluster_index.put_meta(dict(data.META, build_version="build-2"))
        # requests are served from the cache: without a refresh, the change is never seen
        for _ in range(3):
            assert cached.get("/v1/metadata").json()["build_version"] == "build-1"
        deadline = time.monotonic() + 10
        while api.get("/v1/metadata").json()["build_version"] != "build-2":
            assert time.monotonic() < deadline, "metadata never refreshed"
            time.sleep(0.2)
        assert api.get("/v1/metadata").json()["stats"]["total"] == len(docs)
    finally:
        cluster_index.delete()
