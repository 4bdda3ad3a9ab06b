"""Fixtures: one contract suite, run on every available backend.

- ``embedded``: the tantivy engine, always.
- ``elasticsearch``: the Elasticsearch engine over loopback HTTP, against
  noida-db (an Elasticsearch 8 imitation from PyPI) started here.
- ``opensearch``: the OpenSearch engine (opensearch-py) over loopback HTTP, against
  osmem-server (an OpenSearch 3 imitation from PyPI) started here.

``BIOTHINGS_TEST_ES_HOST`` (e.g. http://localhost:9200) names a real cluster: its
``GET /`` says which backend it is, and it replaces that backend's imitation.
Cases an imitation answers wrongly are marked ``noida_gap`` / ``osmem_gap``:
strict expected failures on that imitation only, so a real cluster must pass them.
``BIOTHINGS_TEST_BACKENDS`` (e.g. ``embedded``) runs the contract on fewer backends
(mutation testing does: one engine is enough to kill a mutant of the web layer).
"""

import os
import uuid

import orjson
import pytest
import requests

from tests import data
from tests.servers import APIServer, NoidaElasticsearch, OsmemOpenSearch

REAL_ES = os.environ.get("BIOTHINGS_TEST_ES_HOST", "")
BACKENDS = [name for name in ("embedded", "elasticsearch", "opensearch")
            if name in os.environ.get("BIOTHINGS_TEST_BACKENDS", "embedded,elasticsearch,opensearch").split(",")]


def backend_of_cluster(url):
    """``elasticsearch`` or ``opensearch``: the backend id of the cluster at ``url``."""
    from biothings.web.engines.clusters import read_cluster
    cluster = read_cluster([url], timeout=30)
    if cluster is None:
        raise RuntimeError(f"BIOTHINGS_TEST_ES_HOST={url} does not answer GET /")
    return "opensearch" if cluster.distribution == "opensearch" else "elasticsearch"


REAL_BACKEND = backend_of_cluster(REAL_ES) if REAL_ES else None
# the imitations serving a backend in this run (a real cluster replaces its family's)
NOIDA = REAL_BACKEND != "elasticsearch"
OSMEM = REAL_BACKEND != "opensearch"
GAP_MARKERS = {"noida_gap": ("elasticsearch", NOIDA, "noida-db"), "osmem_gap": ("opensearch", OSMEM, "osmem-server")}


def pytest_collection_modifyitems(config, items):
    """``noida_gap``/``osmem_gap`` cases: strict xfail on that imitation only."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None:
            continue
        for marker_name, (backend, imitated, imitation) in GAP_MARKERS.items():
            marker = item.get_closest_marker(marker_name)
            if marker and imitated and callspec.params.get("api") == backend:
                reason = marker.args[0] if marker.args else f"{imitation} differs from the real engine"
                item.add_marker(pytest.mark.xfail(strict=True, reason=f"{imitation} gap: {reason}"))


def _backend_of(nodeid):
    """The backend a contract case ran on, from its id (``test_x[embedded]``)."""
    params = nodeid.rpartition("[")[2].rstrip("]")
    return next((name for name in BACKENDS if name in params.split("-")), None)


def pytest_terminal_summary(terminalreporter):
    """Per-backend outcome counts: the log shows the contract ran on every backend."""
    counts = {}
    for outcome in ("passed", "failed", "xfailed", "xpassed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", "call") not in ("call", "setup"):
                continue
            if outcome == "skipped" and report.when != "setup":
                continue
            backend = _backend_of(report.nodeid)
            if backend:
                counts.setdefault(backend, {}).setdefault(outcome, 0)
                counts[backend][outcome] += 1
    if not counts:
        return
    terminalreporter.section("contract cases per backend")
    targets = {"elasticsearch": "noida-db on loopback" if NOIDA else REAL_ES,
               "opensearch": "osmem-server on loopback" if OSMEM else REAL_ES}
    for backend in BACKENDS:
        outcomes = ", ".join(f"{n} {o}" for o, n in sorted(counts.get(backend, {}).items()))
        where = f" ({targets[backend]})" if backend in targets else ""
        terminalreporter.write_line(f"{backend}{where}: {outcomes or 'none'}")


@pytest.fixture(scope="session")
def es_url(tmp_path_factory):
    """URL of the Elasticsearch the suite uses (a real cluster, or noida-db)."""
    if not NOIDA:
        yield REAL_ES
        return
    if os.environ.get("BIOTHINGS_TEST_NOIDA_URL"):  # one already running (scripts/mutate.py)
        yield os.environ["BIOTHINGS_TEST_NOIDA_URL"]
        return
    server = NoidaElasticsearch(str(tmp_path_factory.mktemp("es"))).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def os_url(tmp_path_factory):
    """URL of the OpenSearch the suite uses (a real cluster, or osmem-server)."""
    if not OSMEM:
        yield REAL_ES
        return
    if os.environ.get("BIOTHINGS_TEST_OSMEM_URL"):  # one already running (scripts/mutate.py)
        yield os.environ["BIOTHINGS_TEST_OSMEM_URL"]
        return
    server = OsmemOpenSearch(str(tmp_path_factory.mktemp("os"))).start()
    yield server.url
    server.stop()


class ClusterIndex:
    """A test index on a cluster, over its REST API (the same calls on every family)."""

    def __init__(self, url, name):
        self.url = url
        self.name = name
        self.session = requests.Session()

    def call(self, method, path, body=None, ndjson=False):
        headers = {"content-type": "application/x-ndjson" if ndjson else "application/json"}
        payload = body if ndjson or body is None else orjson.dumps(body)
        response = self.session.request(method, f"{self.url}/{path}", data=payload, headers=headers, timeout=60)
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text[:500]}"
        return response.json()

    def put_meta(self, meta):
        self.call("PUT", f"{self.name}/_mapping", {"_meta": meta})

    def delete(self):
        self.session.delete(f"{self.url}/{self.name}", timeout=60)
        self.session.close()


def load_es_index(url, name, docs=None, mapping=None, meta=None):
    """Create ``name`` on the cluster at ``url`` with mapping and ``_meta``, bulk-load the documents."""
    index = ClusterIndex(url, name)
    mappings = dict(mapping or data.MAPPING)
    mappings["_meta"] = meta if meta is not None else data.META
    index.call("PUT", name, {"mappings": mappings})
    docs = list(docs if docs is not None else data.DOCS)
    for start in range(0, len(docs), 500):
        lines = []
        for doc in docs[start:start + 500]:
            lines.append(orjson.dumps({"index": {"_index": name, "_id": doc["_id"]}}))
            lines.append(orjson.dumps({k: v for k, v in doc.items() if k != "_id"}))
        answer = index.call("POST", "_bulk", b"\n".join(lines) + b"\n", ndjson=True)
        assert not answer.get("errors"), answer
    index.call("POST", f"{name}/_refresh")
    return index


@pytest.fixture(scope="session")
def es_index(es_url):
    index = load_es_index(es_url, f"bt_test_genes_{uuid.uuid4().hex[:8]}")
    yield index.name
    index.delete()


@pytest.fixture(scope="session")
def os_index(os_url):
    index = load_es_index(os_url, f"bt_test_genes_{uuid.uuid4().hex[:8]}")
    yield index.name
    index.delete()


def cluster_url(backend, request):
    """The URL of the cluster behind a cluster backend (``elasticsearch``/``opensearch``)."""
    return request.getfixturevalue("os_url" if backend == "opensearch" else "es_url")


def cluster_index(backend, request):
    """The name of the demo index on the cluster behind a cluster backend."""
    return request.getfixturevalue("os_index" if backend == "opensearch" else "es_index")


@pytest.fixture(scope="session")
def embedded_dir(tmp_path_factory):
    from biothings.web.engines.embedded import ensure_index
    directory = str(tmp_path_factory.mktemp("embedded"))
    ensure_index(directory, "genes", data.DOCUMENTS_PATH, data.MAPPING_PATH, data.META_PATH)
    return directory


def make_settings(backend, request, **overrides):
    """Settings of the demo config pointed at ``backend``."""
    from biothings.web.settings import BiothingWebSettings
    if backend == "embedded":
        directory = request.getfixturevalue("embedded_dir")
        values = dict(ES_HOST="", EMBEDDED_DATA_DIR=directory, EMBEDDED_DATA_FILES={},
                      ES_INDICES={"gene": "genes"})
    else:
        values = dict(ES_HOST=cluster_url(backend, request), ES_INDICES={"gene": cluster_index(backend, request)})
    values.update(overrides)
    return BiothingWebSettings("config", **values)


def fresh_index_settings(backend, request, tmp_path, prefix, **overrides):
    """Settings of the demo config on an index of the test's own, not loaded yet
    (``<prefix>_<random>``): in a new data directory (embedded) or on the loopback cluster."""
    from biothings.web.settings import BiothingWebSettings
    if backend == "embedded":
        where = {"ES_HOST": "", "EMBEDDED_DATA_DIR": str(tmp_path / "data")}
    else:
        where = {"ES_HOST": cluster_url(backend, request)}
    return BiothingWebSettings("config", ES_INDICES={"gene": f"{prefix}_{uuid.uuid4().hex[:8]}"},
                               EMBEDDED_DATA_FILES={}, **where, **overrides)


class Client:
    """A tiny HTTP client bound to a server URL; answers ``requests`` responses."""

    def __init__(self, url, backend):
        self.url = url
        self.backend = backend
        self.session = requests.Session()

    def get(self, path, params=None, **kwargs):
        return self.session.get(self.url + path, params=params, timeout=30, **kwargs)

    def post(self, path, **kwargs):
        return self.session.post(self.url + path, timeout=30, **kwargs)

    def request(self, method, path, **kwargs):
        return self.session.request(method, self.url + path, timeout=30, **kwargs)


@pytest.fixture(scope="session", params=BACKENDS)
def api(request):
    """The demo gene API served over HTTP on each backend."""
    settings = make_settings(request.param, request)
    server = APIServer(settings).start()
    yield Client(server.url, request.param)
    server.stop()


@pytest.fixture
def serve(request):
    """Start an extra API with custom settings: ``serve(backend, **settings)``."""
    servers = []

    def start(backend="embedded", config="config", **overrides):
        settings = make_settings(backend, request, **overrides) if config == "config" else config
        server = APIServer(settings).start()
        servers.append(server)
        return Client(server.url, backend)

    yield start
    for server in servers:
        server.stop()
