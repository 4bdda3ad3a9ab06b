"""``python -m biothings.web.load``: the embedded target and the cluster targets
(Elasticsearch on noida-db, OpenSearch on osmem-server, or a real cluster)."""

import asyncio
import gzip
import json
import os
import re
import subprocess
import sys
import types
import urllib.error
import urllib.request
import uuid

import orjson
import pytest

from biothings.web.engines.embedded import EmbeddedEngine, current_version
from biothings.web.load import LoadError, load
from tests.conftest import cluster_url
from tests import data

ROOT = data.ROOT
DEMO = os.path.join(ROOT, "biothings", "web", "demo")
NDJSON = os.path.join(DEMO, "genes.ndjson")
MAPPING = os.path.join(DEMO, "genes.mapping.json")
META = os.path.join(DEMO, "genes.meta.json")
LINES = open(NDJSON, "rb").read().splitlines()
TOTAL = len(LINES)


def run_load(cwd, *args, conf="config"):
    """``python -m biothings.web.load`` in ``cwd``; in this process when
    ``BIOTHINGS_TEST_LOAD_IN_PROCESS`` is set (scripts/mutate.py: mutmut sees the calls of
    the tests' own process only)."""
    if os.environ.get("BIOTHINGS_TEST_LOAD_IN_PROCESS"):
        return load_in_process(cwd, [f"--conf={conf}", *args])
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "biothings.web.load", f"--conf={conf}", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def load_in_process(cwd, argv):
    """The loader's command line run in this process, as ``subprocess.run`` reports it."""
    import contextlib
    import io
    from biothings.web import load as loader
    stdout, stderr = io.StringIO(), io.StringIO()
    before, path, modules = os.getcwd(), list(sys.path), dict(sys.modules)
    conf = next(arg.split("=", 1)[1] for arg in argv if arg.startswith("--conf="))
    sys.modules.pop(conf, None)  # another test's config module of that name: this one is in cwd
    cwd = os.path.abspath(str(cwd))
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = loader.main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(before)
        sys.path[:] = path
        for name, module in list(sys.modules.items()):  # the config modules read from cwd
            if (getattr(module, "__file__", None) or "").startswith(cwd + os.sep):
                del sys.modules[name]
        if conf in modules:
            sys.modules[conf] = modules[conf]
    return subprocess.CompletedProcess(argv, code, stdout.getvalue(), stderr.getvalue())


def write_config(directory, name="config", **values):
    values.setdefault("ES_INDICES", {"gene": "genes"})
    with open(os.path.join(directory, name + ".py"), "w") as handle:
        for key, value in values.items():
            handle.write(f"{key} = {value!r}\n")


def engine_count(data_dir, index="genes"):
    async def main():
        engine = EmbeddedEngine(data_dir)
        try:
            count = await engine.count(index)
            mapping = await engine.get_mapping(index)
            return count, mapping[index]["mappings"]
        finally:
            await engine.close()
    return asyncio.run(main())


@pytest.fixture
def workdir(tmp_path):
    write_config(str(tmp_path), ES_HOST="", EMBEDDED_DATA_DIR=str(tmp_path / "data"))
    return tmp_path


def bad_file(tmp_path):
    """The demo file with a broken line 5, no _id on line 9, a bad integer on line 12."""
    lines = list(LINES)
    lines[4] = b'{"_id": "broken", '
    doc = orjson.loads(lines[8])
    del doc["_id"]
    lines[8] = orjson.dumps(doc)
    doc = orjson.loads(lines[11])
    doc["taxid"] = "not a number"
    lines[11] = orjson.dumps(doc)
    path = tmp_path / "bad.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return str(path)


# ---------------------------------------------------------------------- embedded target

def test_cli_loads_embedded_index_with_meta(workdir):
    result = run_load(workdir, NDJSON, "--mapping", MAPPING, "--meta", META)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["total"] == TOTAL and summary["errors"] == 0 and summary["backend"] == "embedded"
    count, mappings = engine_count(str(workdir / "data"))
    assert count == TOTAL
    meta = mappings["_meta"]
    assert meta["stats"]["total"] == TOTAL and meta["biothing_type"] == "gene"
    assert meta["src"]["entrez"]["license_url_short"] == "https://w3id.org/biothings/licenses/ncbi"
    assert meta["build_version"] == "20221101"  # from --meta
    assert "docs/s" in result.stderr
    data = str(workdir / "data")
    assert summary["version"] == current_version(data, "genes") and summary["data_dir"] == data
    assert summary["replaced_ids"] == 0


def test_malformed_lines_are_reported_and_skipped(workdir):
    result = run_load(workdir, bad_file(workdir), "--mapping", MAPPING)
    assert result.returncode == 0, result.stderr
    for line in (5, 9, 12):
        assert f"line {line}:" in result.stderr
    assert "line 5: line 5" not in result.stderr  # the reader's own position is not said twice
    assert "3 document(s) skipped" in result.stderr and "warning" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["errors"] == 3 and summary["error_lines"] == [5, 9, 12]
    count, mappings = engine_count(str(workdir / "data"))
    assert count == TOTAL - 3 == mappings["_meta"]["stats"]["total"]
    assert len(mappings["_meta"]["build_version"]) == 8  # default: a date stamp
    assert mappings["_meta"]["build_date"]


def test_abort_leaves_the_old_index(workdir):
    assert run_load(workdir, NDJSON, "--mapping", MAPPING).returncode == 0
    data = str(workdir / "data")
    before = current_version(data, "genes")
    result = run_load(workdir, bad_file(workdir), "--mapping", MAPPING, "--on-error", "abort")
    assert result.returncode == 1
    assert "line 5:" in result.stderr and "nothing was replaced" in result.stderr
    assert current_version(data, "genes") == before
    assert os.listdir(os.path.join(data, "genes", "versions")) == [before]
    assert engine_count(data)[0] == TOTAL


def test_gz_json_array_and_inferred_mapping(workdir):
    docs = [orjson.loads(line) for line in LINES[:300]]
    array = workdir / "docs.json.gz"
    with gzip.open(array, "wb") as handle:
        handle.write(orjson.dumps(docs))
    result = run_load(workdir, str(array), "--index", "inferred", "--batch-size", "64")
    assert result.returncode == 0, result.stderr
    assert "inferred a mapping" in result.stderr
    count, mappings = engine_count(str(workdir / "data"), "inferred")
    assert count == 300
    props = mappings["properties"]
    assert props["symbol"]["type"] == "text" and props["symbol"]["fields"]["keyword"]["type"] == "keyword"
    assert props["taxid"]["type"] == "long"
    assert props["genomic_pos"]["properties"]["start"]["type"] == "long"

    async def query():
        engine = EmbeddedEngine(str(workdir / "data"))
        try:
            by_text = await engine.search("inferred", {"query": {"query_string": {"query": "symbol:a1bg"}}})
            by_keyword = await engine.search("inferred", {"query": {"term": {"symbol.keyword": "A1BG"}}})
            return by_text["hits"]["total"]["value"], by_keyword["hits"]["total"]["value"]
        finally:
            await engine.close()
    assert asyncio.run(query()) == (1, 1)

    gz = workdir / "docs.ndjson.gz"
    with gzip.open(gz, "wb") as handle:
        handle.write(b"\n".join(LINES[:50]) + b"\n")
    result = run_load(workdir, str(gz), "--index", "gz", "--mapping", MAPPING, "--quiet")
    assert result.returncode == 0, result.stderr
    assert engine_count(str(workdir / "data"), "gz")[0] == 50


def test_load_function_with_a_module(tmp_path):
    config = types.SimpleNamespace(ES_HOST="", ES_INDICES={"gene": "genes"},
                                   EMBEDDED_DATA_DIR=str(tmp_path / "data"))
    summary = load(config, NDJSON, mapping=MAPPING, meta=META, progress=False)
    assert summary["total"] == TOTAL
    with pytest.raises(LoadError):
        load(config, str(tmp_path / "missing.ndjson"), mapping=MAPPING, progress=False)
    broken = tmp_path / "broken.ndjson"
    broken.write_bytes(LINES[0] + b"\n[1, 2]\n")
    with pytest.raises(LoadError, match="line 2"):
        load(config, str(broken), mapping=MAPPING, on_error="abort", progress=False)
    assert engine_count(str(tmp_path / "data"))[0] == TOTAL


def test_ensure_index_race(tmp_path):
    """Two processes starting at once: one builds, the other waits and finds it built."""
    code = ("import sys; from biothings.web.engines.embedded import ensure_index; "
            f"print(ensure_index(sys.argv[1], 'genes', {NDJSON!r}, {MAPPING!r}, {META!r}))")
    env = dict(os.environ, PYTHONPATH=ROOT)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], env=env,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outputs == ["False", "True"]
    assert len(os.listdir(tmp_path / "genes" / "versions")) == 1
    assert engine_count(str(tmp_path))[0] == TOTAL


# ---------------------------------------------------------------------- bulk NDJSON

def bulk_lines(lines):
    """Documents as a ``_bulk`` file has them: an action line naming the ``_id``, then the source."""
    out = []
    for line in lines:
        doc = orjson.loads(line)
        out.append(orjson.dumps({"index": {"_index": "old_build", "_id": doc.pop("_id")}}))
        out.append(orjson.dumps(doc))
    return out


def test_bulk_ndjson_documents(tmp_path):
    lines = [
        b'{"index": {"_id": "z"', b'{"symbol": "Z"}',                            # 1-2: a broken action line
        b'{"index": {"_index": "x", "_id": "a"}}', b'{"symbol": "A"}',            # 3-4: index
        b'{"create": {"_id": "b"}}', b'{"_id": "not-b", "symbol": "B"}',           # 5-6: the action's _id wins
        b'', b'{"index": {}}', b'{"_id": "c", "symbol": "C"}',                     # 8-9: the document's _id
        b'{"delete": {"_id": "a"}}',                                               # 10: no document line
        b'{"update": {"_id": "a"}}', b'{"doc": {"symbol": "A2"}}',                 # 11-12: not a document
        b'{"index": {"_id": "d"}}',                                                # 13: its document is missing
        b'{"index": {"_id": "e"}}', b'{"symbol": "E", ',                           # 14-15: broken JSON
        b'{"symbol": "F"}',                                                        # 16: no action line
        b'{"index": {}}', b'{"symbol": "G"}',                                      # 17-18: no _id at all
        b'{"index": {"_id": "h"}}', b'{"symbol": "H"}',                            # 19-20
        b'{"index": {"_id": "i"}}',                                                # 21: the file ends
    ]
    path = tmp_path / "bulk.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    from biothings.web.load import read_documents
    read = list(read_documents(str(path)))
    docs = [(number, doc) for number, doc, error in read if error is None]
    assert docs == [(4, {"symbol": "A", "_id": "a"}), (6, {"_id": "b", "symbol": "B"}),
                    (9, {"_id": "c", "symbol": "C"}), (20, {"symbol": "H", "_id": "h"})]
    errors = {number: error for number, _doc, error in read if error is not None}
    assert sorted(errors) == [1, 2, 10, 12, 13, 15, 16, 18, 21]
    assert "invalid JSON" in errors[1] and "invalid JSON" in errors[15]
    assert "expected a bulk action line" in errors[2] and "expected a bulk action line" in errors[16]
    assert "'delete' is not a document" in errors[10] and "'update' is not a document" in errors[12]
    assert "without its document line" in errors[13] and "without its document line" in errors[21]
    assert "no _id" in errors[18]
    assert all(error.startswith(f"line {number}:") for number, error in errors.items())


def test_cli_loads_a_gzipped_bulk_file(workdir):
    path = workdir / "genes.bulk.ndjson.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(b"\n".join(bulk_lines(LINES)) + b"\n")
    result = run_load(workdir, str(path), "--mapping", MAPPING, "--meta", META)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["errors"] == 0
    assert engine_count(str(workdir / "data"))[0] == TOTAL


# ---------------------------------------------------------------------- cluster targets (noida-db, osmem-server)

def _get(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture(params=["elasticsearch", "opensearch"])
def cluster(request):
    """The URL of each cluster family of the suite: noida-db and osmem-server (or a real cluster)."""
    return cluster_url(request.param, request)


def unique(name):
    return f"{name}_{uuid.uuid4().hex[:6]}"


def _aliases(url, name):
    try:
        return sorted(_get(f"{url}/_alias/{name}"))
    except urllib.error.HTTPError:
        return []


def test_cluster_load_alias_swap(cluster, tmp_path):
    alias = unique("esgenes")
    bystander = unique("bystander")  # another index of the cluster: the load leaves it alone
    urllib.request.urlopen(urllib.request.Request(f"{cluster}/{bystander}", method="PUT"), timeout=5).read()
    write_config(str(tmp_path), name="esconf", ES_HOST=cluster, ES_INDICES={"gene": alias})
    result = run_load(tmp_path, NDJSON, "--mapping", MAPPING, "--meta", META, conf="esconf")
    assert result.returncode == 0, result.stderr
    assert "_meta" not in _get(f"{cluster}/{bystander}/_mapping")[bystander]["mappings"]
    summary = json.loads(result.stdout)
    first = summary["concrete_index"]
    assert first.startswith(alias + "_") and _aliases(cluster, alias) == [first]
    assert summary["backend"] == _get(cluster + "/")["version"].get("distribution", "elasticsearch")
    assert _get(f"{cluster}/{alias}/_count")["count"] == TOTAL
    mapping = _get(f"{cluster}/{alias}/_mapping")[first]["mappings"]
    assert mapping["_meta"]["stats"]["total"] == TOTAL and mapping["_meta"]["src"]["entrez"]["version"]
    assert mapping["properties"]["taxid"]["type"] == "integer"
    hit = _get(f"{cluster}/{alias}/_doc/1017")
    assert hit["_source"]["symbol"] == "CDK2" and "_id" not in hit["_source"]

    # a second load swaps the alias and deletes the old concrete index
    result = run_load(tmp_path, bad_file(tmp_path), "--mapping", MAPPING, conf="esconf")
    assert result.returncode == 0, result.stderr
    assert "line 12:" in result.stderr and "line 5:" in result.stderr
    refused, = [line for line in result.stderr.splitlines() if "line 12:" in line]
    # the cluster's own type and reason (document_ or mapper_parsing_exception by version)
    assert re.search(r"line 12: rejected by the cluster: \w+_parsing_exception: .*failed to parse field \[taxid\] "
                     r"of type \[integer\] in document with id '429'", refused), refused
    second = json.loads(result.stdout)["concrete_index"]
    assert _aliases(cluster, alias) == [second]
    assert _get(f"{cluster}/{alias}/_count")["count"] == TOTAL - 3
    with pytest.raises(urllib.error.HTTPError):
        _get(f"{cluster}/{first}/_count")

    # abort: the alias still points at the previous index, the new one is gone
    result = run_load(tmp_path, bad_file(tmp_path), "--mapping", MAPPING, "--on-error", "abort", conf="esconf")
    assert result.returncode == 1
    assert _aliases(cluster, alias) == [second]
    indices = _get(f"{cluster}/_cat/indices?format=json")
    assert sorted(i["index"] for i in indices if i["index"].startswith(alias)) == [second]


def test_cluster_load_replaces_a_plain_index(cluster, tmp_path):
    name = unique("plain")
    request = urllib.request.Request(f"{cluster}/{name}", method="PUT")
    urllib.request.urlopen(request, timeout=5).read()
    write_config(str(tmp_path), name="esconf", ES_HOST=cluster, ES_INDICES={"gene": name})
    result = run_load(tmp_path, NDJSON, "--mapping", MAPPING, conf="esconf")
    assert result.returncode == 0, result.stderr
    concrete = json.loads(result.stdout)["concrete_index"]
    assert _aliases(cluster, name) == [concrete]
    assert _get(f"{cluster}/{name}/_count")["count"] == TOTAL


def index_dump(mapping):
    """A mapping file as ``GET /<index>`` answers it: the mapping, and index settings with
    analysis (a lowercase normalizer on ``symbol``) beside settings a cluster only reports."""
    mapping = json.loads(json.dumps(mapping))
    mapping["properties"]["symbol"] = {"type": "keyword", "normalizer": "keyword_lowercase_normalizer"}
    return {"mygene_20240101": {"mappings": mapping, "settings": {"index": {
        "analysis": {"normalizer": {"keyword_lowercase_normalizer": {"type": "custom", "filter": ["lowercase"]}}},
        "number_of_shards": "1", "uuid": "P2c1XyQuSp6ucvpDq0Wi0A", "creation_date": "1704067200000",
        "provided_name": "mygene_20240101", "version": {"created": "8512000"}}}}}


def test_cluster_load_applies_index_settings_from_a_bulk_file(cluster, serve, tmp_path):
    """The mapping file's analysis settings reach the new index (a cluster refuses a field
    naming an undefined normalizer), from a ``_bulk`` data file; the API then finds
    ``symbol:cdk2`` through the lowercase normalizer."""
    alias = unique("analyzed")
    mapping_file = tmp_path / "genes.index.json"
    mapping_file.write_text(json.dumps(index_dump(orjson.loads(open(MAPPING, "rb").read()))))
    bulk = tmp_path / "genes.bulk.ndjson"
    bulk.write_bytes(b"\n".join(bulk_lines(LINES)) + b"\n")
    write_config(str(tmp_path), name="esconf", ES_HOST=cluster, ES_INDICES={"gene": alias})
    result = run_load(tmp_path, str(bulk), "--mapping", str(mapping_file), conf="esconf")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["total"] == TOTAL and summary["errors"] == 0
    settings = _get(f"{cluster}/{alias}/_settings")[summary["concrete_index"]]["settings"]["index"]
    assert settings["analysis"]["normalizer"]["keyword_lowercase_normalizer"]["filter"] == ["lowercase"]
    assert settings["provided_name"] == summary["concrete_index"]
    backend = "opensearch" if summary["backend"] == "opensearch" else "elasticsearch"
    api = serve(backend, ES_HOST=cluster, ES_INDICES={"gene": alias})
    hits = api.get("/v1/query", params={"q": "symbol:cdk2", "fields": "symbol"}).json()["hits"]
    assert [(hit["_id"], hit["symbol"]) for hit in hits] == [("1017", "CDK2")]


def test_embedded_load_applies_index_settings_from_the_mapping_file(workdir, serve):
    """The same mapping file on the embedded engine: its lowercase normalizer is honoured."""
    mapping_file = workdir / "genes.index.json"
    mapping_file.write_text(json.dumps(index_dump(orjson.loads(open(MAPPING, "rb").read()))))
    result = run_load(workdir, NDJSON, "--mapping", str(mapping_file))
    assert result.returncode == 0, result.stderr
    api = serve("embedded", EMBEDDED_DATA_DIR=str(workdir / "data"))
    hits = api.get("/v1/query", params={"q": "symbol:cdk2", "fields": "symbol"}).json()["hits"]
    assert [(hit["_id"], hit["symbol"]) for hit in hits] == [("1017", "CDK2")]
    unknown = workdir / "unknown.index.json"
    dump = index_dump(orjson.loads(open(MAPPING, "rb").read()))
    next(iter(dump.values()))["settings"]["index"]["analysis"]["normalizer"]["keyword_lowercase_normalizer"][
        "filter"] = ["uppercase"]
    unknown.write_text(json.dumps(dump))
    refused = run_load(workdir, NDJSON, "--mapping", str(unknown))
    assert refused.returncode == 1 and "uppercase" in refused.stderr


# ---------------------------------------------------------------------- a cluster that is not there, or not one

def test_no_cluster_at_es_host_is_one_line_naming_why(tmp_path):
    from tests.servers import free_port
    port = free_port()
    write_config(str(tmp_path), name="gone", ES_HOST=f"http://127.0.0.1:{port}")
    result = run_load(tmp_path, NDJSON, "--mapping", MAPPING, conf="gone")
    assert result.returncode == 1
    first, second = result.stderr.strip().splitlines()[-2:]
    assert first.startswith(f"error: http://127.0.0.1:{port}") and "refused" in first.lower(), first
    assert first.endswith(": no cluster answers at ES_HOST (leave ES_HOST empty to load into the embedded engine)")
    assert second == "aborted: nothing was replaced"


@pytest.fixture
def web_page():
    """A web server that is not Elasticsearch: a page for every ``GET``; yields its URL and
    the ``Authorization`` header of each request it got."""
    import http.server
    import threading
    seen = []

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the standard library's name
            seen.append(self.headers.get("Authorization"))
            body = b"<html>a web page</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()


def test_a_host_that_is_no_cluster_is_named(tmp_path, web_page):
    """A web server that is not Elasticsearch at ES_HOST: what it answered, not a traceback."""
    url, seen = web_page
    write_config(str(tmp_path), name="page", ES_HOST=url)
    result = run_load(tmp_path, NDJSON, "--mapping", MAPPING, conf="page")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-2:] == [
        f"error: {url}: GET / did not answer JSON: not Elasticsearch or OpenSearch", "aborted: nothing was replaced"]
    assert seen == [None]


def test_es_args_credentials_reach_the_cluster(tmp_path, web_page):
    """The loader asks ``GET /`` with ``ES_ARGS``'s credentials, as the server does."""
    url, seen = web_page
    write_config(str(tmp_path), name="creds", ES_HOST=url, ES_ARGS={"basic_auth": ("user", "secret")})
    result = run_load(tmp_path, NDJSON, "--mapping", MAPPING, conf="creds")
    assert result.returncode == 1 and "did not answer JSON" in result.stderr
    assert seen == ["Basic dXNlcjpzZWNyZXQ="]


@pytest.mark.parametrize("form", ["get-index answer", "get-index answer without mappings", "one bare field"])
def test_mapping_files_in_each_form(workdir, form):
    properties = {"symbol": {"type": "keyword"}}
    mapping = {"get-index answer": {"genes_20240101": {"mappings": {"properties": properties}}},
               "get-index answer without mappings": {"genes_20240101": {"properties": properties}},
               "one bare field": properties}[form]
    path = workdir / "mapping.json"
    path.write_text(json.dumps(mapping))
    result = run_load(workdir, NDJSON, "--mapping", str(path))
    assert result.returncode == 0, result.stderr
    assert engine_count(str(workdir / "data"))[1]["properties"] == properties


def test_replaced_ids_are_counted(workdir):
    path = workdir / "twice.ndjson"
    path.write_bytes(LINES[0] + b"\n" + LINES[1] + b"\n" + LINES[0] + b"\n")
    result = run_load(workdir, str(path), "--mapping", MAPPING)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["replaced_ids"] == 1 and summary["total"] == 2
