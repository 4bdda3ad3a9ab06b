"""Version negotiation: the cluster's ``GET /`` picks the client once, at start-up.

Each supported version is a loopback stub (tests/cluster_stub.py) that enforces
its own media type rules, so the wrong client fails there as it would on the
real cluster; the stub records the headers each client sends.
"""

import os
import subprocess
import sys

import elasticsearch
import orjson
import pytest

from biothings.web.settings import BiothingWebSettings
from tests.cluster_stub import ClusterStub, self_signed_certificate
from tests.servers import free_port
from tests import data

ROOT = data.ROOT
CLIENT_MAJOR = int(elasticsearch.__versionstr__.split(".")[0])  # 9 in a plain install, 8 with [es8]


@pytest.fixture
def stub():
    """Start cluster stubs: ``stub("elasticsearch", "8.15.3")``; stopped afterwards."""
    started = []

    def start(distribution, version, **options):
        server = ClusterStub(distribution, version, **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def stub_settings(url, **values):
    return BiothingWebSettings("config", ES_HOST=url, ES_INDICES={"gene": "stub_genes"}, **values)


def media_types(headers):
    return [headers.get(name, "") for name in ("Accept", "Content-Type")]


SUPPORTED = [
    ("elasticsearch", "7.17.25", "Elasticsearch7Engine"),
    ("elasticsearch", "8.15.3", "ElasticsearchEngine"),
    ("elasticsearch", "9.1.5", "ElasticsearchEngine"),
    ("opensearch", "1.3.20", "OpenSearchEngine"),
    ("opensearch", "2.19.1", "OpenSearchEngine"),
    ("opensearch", "3.1.0", "OpenSearchEngine"),
]


@pytest.mark.parametrize("distribution, version, engine", SUPPORTED,
                         ids=[f"{'os' if d == 'opensearch' else 'es'}{v}" for d, v, _e in SUPPORTED])
def test_each_version_is_served_by_its_client(stub, serve, distribution, version, engine):
    cluster = stub(distribution, version)
    settings = stub_settings(cluster.url)
    if version.startswith("8.") and CLIENT_MAJOR == 9:
        # the 9.x client sends compatible-with=9, which Elasticsearch 8 refuses
        from biothings.web.engines.clusters import ClusterError
        with pytest.raises(ClusterError, match=r'needs the elasticsearch client 8.x \(9\.[0-9.]+ is installed\): '
                                               r'pip install "biothings\[es8\]"'):
            serve(config=settings)
        return
    api = serve(config=settings)
    assert type(settings.engine).__name__ == engine
    gene = api.get("/v1/gene/1017")
    assert gene.status_code == 200 and gene.json()["symbol"] == "CDK2", gene.text
    answer = api.get("/v1/query", params={"q": "cdk2"}).json()
    assert answer["total"] == 1 and answer["hits"][0]["_id"] == "1017"
    batch = api.post("/v1/query", json={"q": ["cdk2", "1017"], "scopes": ["symbol", "_id"]}).json()
    assert [hit["_id"] for hit in batch] == ["1017", "1017"]
    assert api.get("/v1/metadata").json()["build_version"] == f"{distribution}-{version}"

    # compatibility media types from the Elasticsearch 8/9 client only
    searches = cluster.searches()
    assert {path.rpartition("/")[2] for path, _headers in searches} == {"_search", "_msearch"}
    for _path, headers in searches:
        accept, content_type = media_types(headers)
        if engine == "ElasticsearchEngine":
            assert accept == f"application/vnd.elasticsearch+json; compatible-with={CLIENT_MAJOR}"
            assert content_type in (f"application/vnd.elasticsearch+json; compatible-with={CLIENT_MAJOR}",
                                    f"application/vnd.elasticsearch+x-ndjson; compatible-with={CLIENT_MAJOR}")
        else:
            assert accept == "application/json"
            assert content_type in ("application/json", "application/x-ndjson")

    # the choice is made once: requests do not read GET / again
    roots = sum(1 for method, path, _headers in cluster.requests if path == "/")
    for _ in range(5):
        assert api.get("/v1/gene/1017").status_code == 200
    assert sum(1 for method, path, _headers in cluster.requests if path == "/") == roots


def start_server(tmp_path, url, hide=None, **values):
    """``index.py``'s start-up against ``url`` in a subprocess; ``hide``: a client
    module made unimportable (as when its extra is not installed)."""
    config = {"ES_HOST": url, "ES_INDICES": {"gene": "stub_genes"}, **values}
    (tmp_path / "stubconf.py").write_text("".join(f"{key} = {value!r}\n" for key, value in config.items()))
    code = "import sys\n"
    if hide:
        code += f"sys.modules[{hide!r}] = None\n"
    code += "from biothings.web.index_base import main\nmain()\n"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", code, "--conf=stubconf", f"--port={free_port()}",
                           "--processes=1", f"--dir={tmp_path}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def assert_one_line_error(result, expected):
    assert result.returncode == 1, result.stderr
    assert result.stderr.splitlines() == [expected]


@pytest.mark.parametrize("distribution, version, name", [
    ("elasticsearch", "6.8.23", "Elasticsearch 6.8.23"),
    ("elasticsearch", "10.0.0", "Elasticsearch 10.0.0"),
    ("opensearch", "4.0.0", "OpenSearch 4.0.0"),
], ids=["es6", "es10", "os4"])
def test_unsupported_version_stops_the_start(stub, tmp_path, distribution, version, name):
    cluster = stub(distribution, version)
    assert_one_line_error(start_server(tmp_path, cluster.url),
                          f"error: {name} at {cluster.url}: not supported "
                          "(Elasticsearch 7, 8 and 9 and OpenSearch 1, 2 and 3 are)")


@pytest.mark.parametrize("distribution, version, module, message", [
    ("elasticsearch", "7.17.25", "elasticsearch7",
     'Elasticsearch 7.17.25 at {url}: needs the elasticsearch7 client: pip install "biothings[es7]"'),
    ("opensearch", "2.19.1", "opensearchpy",
     'OpenSearch 2.19.1 at {url}: needs the opensearch-py client: pip install "biothings[opensearch]"'),
], ids=["es7", "os2"])
def test_missing_client_extra_stops_the_start(stub, tmp_path, distribution, version, module, message):
    cluster = stub(distribution, version)
    assert_one_line_error(start_server(tmp_path, cluster.url, hide=module), "error: " + message.format(url=cluster.url))


def test_credentials_of_es_args_reach_get_root(stub, serve, tmp_path):
    cluster = stub("opensearch", "2.19.1", password="s3cret")
    settings = stub_settings(cluster.url, ES_ARGS={"http_auth": ["elastic", "s3cret"]})
    api = serve(config=settings)
    assert api.get("/v1/gene/1017").json()["symbol"] == "CDK2"
    method, path, headers = cluster.requests[0]
    assert (method, path) == ("GET", "/") and headers["Authorization"].startswith("Basic ")
    # a near miss: the wrong password is one line at start-up, not a traceback
    assert_one_line_error(start_server(tmp_path, cluster.url, ES_ARGS={"basic_auth": ["elastic", "s3cre"]}),
                          f"error: {cluster.url}: GET / answered 401 Unauthorized (check ES_HOST and ES_ARGS)")


@pytest.mark.parametrize("distribution, version", [
    ("opensearch", "2.19.1"), ("elasticsearch", "7.17.25"), ("elasticsearch", "8.15.3")], ids=["os2", "es7", "es8"])
@pytest.mark.parametrize("name", ["basic_auth", "http_auth"])
def test_credentials_of_es_args_reach_every_request_of_each_client(stub, serve, distribution, version, name):
    """``basic_auth`` (8.x's name) works with the 7.x-style clients too, which would drop it
    without a word and send the searches with no credentials."""
    cluster = stub(distribution, version, password="s3cret")
    api = serve(config=stub_settings(cluster.url, ES_ARGS={name: ["elastic", "s3cret"]}))
    assert api.get("/v1/gene/1017").json()["symbol"] == "CDK2"
    assert api.get("/v1/query", params={"q": "cdk2"}).json()["hits"][0]["symbol"] == "CDK2"
    assert len(cluster.requests) >= 3
    assert [path for _method, path, headers in cluster.requests
            if headers.get("Authorization") != "Basic ZWxhc3RpYzpzM2NyZXQ="] == []


@pytest.mark.parametrize("direct", [True, False], ids=["transport", "client"])
def test_searches_send_the_request_the_client_would(stub, direct):
    """Searches go to the client's transport (``ClientShortcut``), past the client's own
    layer: the cluster gets the same request as through ``client.perform_request``
    (credentials, ``headers`` and ``opaque_id`` of ``ES_ARGS``, the compatible media types,
    the client's meta header, the body); so does the way through the client (tracing on)."""
    import asyncio

    from biothings.web.engines.elasticsearch import ClientShortcut, ElasticsearchEngine

    cluster = stub("elasticsearch", "8.15.3", password="s3cret")
    body = {"query": {"match": {"symbol": "cdk2"}}, "size": 3}

    async def both_ways():
        engine = ElasticsearchEngine(cluster.url, basic_auth=("elastic", "s3cret"), headers={"X-Team": "genes"},
                                     opaque_id="op-7")
        assert engine._shortcut.direct  # the client has what the shortcut reads
        engine._shortcut = ClientShortcut(engine.client, direct=direct)
        client = engine.client
        transport = client.transport
        perform_request = transport.perform_request

        async def recorded(method, target, **kwargs):  # what reaches the transport, passed on
            kwargs.pop("otel_span", None)  # the client's span (none on the shortcut)
            given.append((method, target, kwargs))
            return await perform_request(method, target, **kwargs)
        transport.perform_request = recorded
        try:
            by_client = await client.perform_request("POST", "/stub_genes/_search", body=body, headers={
                "accept": "application/json", "content-type": "application/json"})
            by_engine = await engine.search("stub_genes", body)
            assert by_engine == by_client.body
            ndjson = b'{}\n' + orjson.dumps(body) + b'\n'
            by_client = await client.perform_request("POST", "/stub_genes/_msearch", body=ndjson, headers={
                "accept": "application/json", "content-type": "application/x-ndjson"})
            assert await engine.msearch("stub_genes", [body]) == by_client.body["responses"]
        finally:
            await engine.close()

    given = []
    asyncio.run(both_ways())
    # every argument the client gives its transport, the shortcut gives too (settings of
    # a newer client included: a new one fails here rather than being dropped)
    assert given[0] == given[1] and given[2] == given[3], given
    (search_path, by_client), (path, by_engine), (msearch_path, msearch_by_client), (path_2, msearch_by_engine) = \
        cluster.searches()
    assert (search_path, msearch_path) == (path, path_2) == ("/stub_genes/_search", "/stub_genes/_msearch")
    assert by_engine == by_client
    assert msearch_by_engine == msearch_by_client
    assert by_engine["Authorization"] == "Basic ZWxhc3RpYzpzM2NyZXQ="
    assert (by_engine["X-Team"], by_engine["X-Opaque-Id"]) == ("genes", "op-7")
    assert by_engine["Accept"] == "application/vnd.elasticsearch+json; compatible-with=8"
    assert msearch_by_engine["Content-Type"] == "application/vnd.elasticsearch+x-ndjson; compatible-with=8"
    assert by_engine["X-Elastic-Client-Meta"].startswith("es=")


def test_the_shortcut_steps_aside_for_a_client_it_does_not_know():
    """A client without one of the attributes the shortcut reads (another version), one that
    traces its requests or one for a serverless project is called as usual; one from before
    tracing (no ``_otel``) is not."""
    from biothings.web.engines.elasticsearch import ClientShortcut

    client = elasticsearch.AsyncElasticsearch("http://127.0.0.1:9200")
    assert ClientShortcut(client).direct
    for name in ("_headers", "_request_timeout", "_max_retries", "_retry_on_timeout", "_retry_on_status",
                 "_client_meta"):
        value = client.__dict__.pop(name)
        assert not ClientShortcut(client).direct, name
        client.__dict__[name] = value
    assert ClientShortcut(client).direct
    otel = client.__dict__.pop("_otel")
    assert ClientShortcut(client).direct
    client._otel = otel
    otel.enabled = True
    assert not ClientShortcut(client).direct
    del otel.enabled  # a tracer of another shape: traced, to be safe
    assert not ClientShortcut(client).direct
    otel.enabled = False
    assert ClientShortcut(client).direct
    client._is_serverless = True  # 9.x clients: an API version header instead of the media types
    assert not ClientShortcut(client).direct
    # the client is given the plain media types, as its own methods give them: it adds its
    # headers and turns them into what its cluster takes (compatible ones, or none for serverless)
    assert ClientShortcut(client).headers == {
        "json": {"accept": "application/json", "content-type": "application/json"},
        "x-ndjson": {"accept": "application/json", "content-type": "application/x-ndjson"}}


def test_the_shortcut_passes_the_back_off_settings_of_clients_that_have_them():
    """9.x clients give their transport ``retry_backoff_base`` and ``retry_backoff_cap`` at
    every request (8.x ones have neither): the shortcut passes them when the client has them."""
    from biothings.web.engines.elasticsearch import ClientShortcut

    client = elasticsearch.AsyncElasticsearch("http://127.0.0.1:9200", max_retries=4)
    settings = ClientShortcut(client).settings
    assert settings["max_retries"] == 4
    assert "retry_backoff_base" not in settings and "retry_backoff_cap" not in settings
    client._retry_backoff_base, client._retry_backoff_cap = 0.5, 8.0
    shortcut = ClientShortcut(client)
    assert (shortcut.settings["retry_backoff_base"], shortcut.settings["retry_backoff_cap"]) == (0.5, 8.0)
    assert shortcut.direct


def test_credentials_in_es_host_reach_get_root_and_stay_out_of_messages(stub, serve, tmp_path):
    cluster = stub("elasticsearch", "8.15.3", password="s3cret")
    with_password = cluster.url.replace("http://", "http://elastic:s3cret@")
    api = serve(config=stub_settings(with_password))
    assert api.get("/v1/gene/1017").json()["symbol"] == "CDK2"
    result = start_server(tmp_path, cluster.url.replace("http://", "http://elastic:s3cre@"))
    assert_one_line_error(result, f"error: {cluster.url}: GET / answered 401 Unauthorized (check ES_HOST and ES_ARGS)")
    result = start_server(tmp_path, "http://elastic:s3cret@127.0.0.1:92OO")
    assert_one_line_error(result, "error: 127.0.0.1:92OO: not an http(s) URL with a host and a port number (ES_HOST)")


def test_tls_settings_of_es_args_reach_get_root(stub, serve, tmp_path):
    certificate = self_signed_certificate(tmp_path)
    cluster = stub("elasticsearch", "8.15.3", certificate=certificate)
    settings = stub_settings(cluster.url, ES_ARGS={"ca_certs": certificate[0]})
    api = serve(config=settings)
    assert api.get("/v1/gene/1017").json()["symbol"] == "CDK2"
    assert [path for _method, path, _headers in cluster.requests][:1] == ["/"]
    # without the certificate's CA: one line at start-up, not a cluster chosen for later
    result = start_server(tmp_path, cluster.url)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"error: {cluster.url}: TLS: [SSL: CERTIFICATE_VERIFY_FAILED]")
    assert result.stderr.rstrip().endswith("(check ca_certs, verify_certs in ES_ARGS)")


def test_an_answer_without_version_stops_the_start(tmp_path):
    """A host that answers JSON but is not a cluster (here: the API itself)."""
    from tests.servers import APIServer
    server = APIServer(BiothingWebSettings("config", ES_HOST="", EMBEDDED_DATA_FILES={},
                                           EMBEDDED_DATA_DIR=str(tmp_path / "data"))).start()
    try:
        result = start_server(tmp_path, server.url)
    finally:
        server.stop()
    assert_one_line_error(result, f"error: {server.url}: GET / did not answer JSON: not Elasticsearch or OpenSearch")


def test_a_cluster_that_answers_later_is_chosen_then(serve, caplog):
    """Down at start-up: 503 with Retry-After, then the client its GET / calls for."""
    port = free_port()
    settings = stub_settings(f"http://127.0.0.1:{port}", ES_REQUEST_TIMEOUT=2)
    api = serve(config=settings)
    down = api.get("/v1/gene/1017")
    assert down.status_code == 503 and down.headers["Retry-After"].isdigit()
    cluster = ClusterStub("opensearch", "2.19.1", port=port).start()
    try:
        assert api.get("/v1/gene/1017").json()["symbol"] == "CDK2"
        assert type(settings.engine.engine).__name__ == "OpenSearchEngine"
    finally:
        cluster.stop()


def test_an_unsupported_cluster_that_answers_later_is_503(serve, caplog):
    port = free_port()
    api = serve(config=stub_settings(f"http://127.0.0.1:{port}", ES_REQUEST_TIMEOUT=2))
    cluster = ClusterStub("elasticsearch", "6.8.23", port=port).start()
    try:
        answer = api.get("/v1/gene/1017")
        assert answer.status_code == 503 and answer.json()["success"] is False
        assert "Elasticsearch 6.8.23" not in answer.text
        assert any("Elasticsearch 6.8.23" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)
    finally:
        cluster.stop()
