"""Streaming export (``/export``) and streamed batches on every backend: the same hits as
every cursor page and as fetch_all, in NDJSON, TSV, CSV or a JSON array, chunked, bounded in
memory, stopped when the client goes, limited in number per process."""

import csv
import io
import json
import os
import re
import socket
import subprocess
import sys
import time

import orjson
import pytest
import requests

from biothings.web import records
from tests import data
from tests.conftest import BACKENDS, cluster_index, cluster_url, make_settings
from tests.faultproxy import FaultProxy
from tests.servers import APIServer, free_port, wait_for, wait_http

ROOT = data.ROOT
ALL_IDS = {doc["_id"] for doc in data.DOCS}
COPIES = 10  # the large embedded index: the sample ten times over (19,650 documents)


def ndjson(response):
    return [orjson.loads(line) for line in response.content.splitlines() if line]


def without_score(doc):
    return {key: value for key, value in doc.items() if key != "_score"}


# ---------------------------------------------------------------- the same hits, every way

def test_export_equals_every_cursor_page_and_fetch_all(api):
    params = {"q": "__all__", "fields": "symbol,taxid"}
    exported = ndjson(api.get("/v1/export", params=params))
    assert len(exported) == len(data.DOCS) and {doc["_id"] for doc in exported} == ALL_IDS

    pages = [api.get("/v1/query", params={**params, "size": 1000, "cursor": 1}).json()]
    while "next" in pages[-1]:
        pages.append(api.get("/v1/query", params={"after": pages[-1]["next"]}).json())
    paged = [hit for page in pages for hit in page["hits"]]

    scrolled = []
    page = api.get("/v1/query", params={**params, "fetch_all": 1}).json()
    while page.get("hits"):
        scrolled += page["hits"]
        page = api.get("/v1/query", params={"scroll_id": page["_scroll_id"]}).json()

    by_id = {doc["_id"]: without_score(doc) for doc in exported}
    assert len(by_id) == len(exported)
    for name, hits in (("cursor pages", paged), ("fetch_all", scrolled)):
        assert len(hits) == len(exported), name
        assert {hit["_id"]: without_score(hit) for hit in hits} == by_id, name


def test_export_follows_the_sort_and_the_document_options(api):
    params = {"q": "type_of_gene:ncRNA", "sort": "-entrezgene", "fields": "entrezgene,genomic_pos.chr",
              "dotfield": 1}
    exported = ndjson(api.get("/v1/export", params=params))
    expected = sorted((doc for doc in data.DOCS if doc.get("type_of_gene") == "ncRNA"),
                      key=lambda doc: -doc["entrezgene"])
    assert [doc["_id"] for doc in exported] == [doc["_id"] for doc in expected]
    placed = [doc for doc in exported if "genomic_pos" in data.BY_ID[doc["_id"]]]
    assert placed and all("genomic_pos.chr" in doc and "genomic_pos" not in doc for doc in placed)


# ---------------------------------------------------------------- formats

CDK = "symbol:CDK2 OR symbol:CDK4 OR symbol:BRCA1"


def test_tsv_and_csv_columns_are_the_fields(api):
    columns = ["symbol", "alias", "genomic_pos.chr", "taxid", "go.MF.id", "nothing_here"]
    for fmt in ("tsv", "csv"):
        response = api.get("/v1/export", params={"q": CDK, "format": fmt, "fields": ",".join(columns),
                                                 "sort": "entrezgene"})
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("text/tab-separated-values" if fmt == "tsv"
                                                          else "text/csv")
        if fmt == "tsv":
            rows = [line.split("\t") for line in response.text.split("\n") if line]
        else:
            assert "\r\n" in response.text
            rows = list(csv.reader(io.StringIO(response.text)))
        assert rows[0] == columns
        ids = sorted(("1017", "1019", "672"), key=lambda i: data.BY_ID[i]["entrezgene"])
        for row, doc_id in zip(rows[1:], ids):
            doc = data.BY_ID[doc_id]
            expected = [records.LIST_SEPARATOR.join(str(value) for value in data.values(doc, column))
                        for column in columns]
            assert row == expected, (fmt, doc_id)
        assert len(rows) == 4


def test_tsv_and_csv_default_columns_are_id_and_the_mapping(api):
    response = api.get("/v1/export", params={"q": "symbol:CDK2", "format": "csv"})
    header, row = list(csv.reader(io.StringIO(response.text)))
    assert header == ["_id"] + sorted(records.value_fields(data.MAPPING)) and row[0] == "1017" and row[header.index("symbol")] == "CDK2"
    assert row[header.index("genomic_pos.start")] == str(data.BY_ID["1017"]["genomic_pos"]["start"])


def test_cells_of_odd_values():
    """TSV escapes what would break its rows; CSV quotes; objects are JSON; lists joined."""
    docs = [{"_id": "a", "text": "tab\there\nnew line\\ and \r", "n": [1, 2.5, None], "b": True,
             "o": {"k": [1, {"x": None}]}, "list": [{"v": "x"}, {"v": "y"}, {"w": 1}]}]
    columns = ["_id", "text", "n", "b", "o", "list.v", "missing"]
    tsv = records.TSVRecords(columns)
    assert tsv.page(docs) == b"a\ttab\\there\\nnew line\\\\ and \\r\t1|2.5\ttrue\t{\"k\":[1,{\"x\":null}]}\tx|y\t\n"
    csv_rows = list(csv.reader(io.StringIO((records.CSVRecords(columns).page(docs)).decode())))
    assert csv_rows == [["a", "tab\there\nnew line\\ and \r", "1|2.5", "true", '{"k":[1,{"x":null}]}', "x|y", ""]]
    flat = records.TSVRecords(["a.b"]).page([{"a.b": ["p", "q"]}])  # dotfield documents
    assert flat == b"p|q\n"


def test_json_array_and_ndjson(api):
    array = api.get("/v1/export", params={"q": CDK, "format": "json", "fields": "symbol"})
    assert array.headers["Content-Type"].startswith("application/json")
    assert sorted(doc["symbol"] for doc in array.json()) == ["BRCA1", "CDK2", "CDK4"]
    empty = api.get("/v1/export", params={"q": "symbol:no_such_gene", "format": "json"})
    assert empty.status_code == 200 and empty.json() == []
    lines = api.get("/v1/export", params={"q": CDK, "fields": "symbol"})
    assert lines.headers["Content-Type"] == "application/x-ndjson"
    assert lines.content.endswith(b"\n") and len(lines.content.splitlines()) == 3
    assert api.get("/v1/export", params={"q": "symbol:no_such_gene"}).content == b""


# ---------------------------------------------------------------- HTTP

def test_export_is_chunked_cacheable_and_headed(api):
    response = api.get("/v1/export", params={"q": CDK}, headers={"Accept-Encoding": "identity"})
    assert response.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in response.headers
    assert response.headers["Vary"] == "Accept-Encoding" and "Content-Encoding" not in response.headers
    etag = response.headers["Etag"]
    assert response.headers["Cache-Control"].startswith("max-age=")
    again = api.get("/v1/export", params={"q": CDK}, headers={"Accept-Encoding": "identity", "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    head = api.request("HEAD", "/v1/export", params={"q": CDK}, headers={"Accept-Encoding": "identity"})
    assert head.status_code == 200 and head.content == b""
    assert "Content-Length" not in head.headers and "Transfer-Encoding" not in head.headers
    for name in ("Content-Type", "Etag", "Vary", "Cache-Control"):
        assert head.headers[name] == response.headers[name], name
    gzipped = api.get("/v1/export", params={"q": CDK}, headers={"Accept-Encoding": "gzip"})
    assert gzipped.headers["Content-Encoding"] == "gzip" and gzipped.headers["Etag"] == etag[:-1] + '-gzip"'
    assert gzipped.content == response.content
    head = api.request("HEAD", "/v1/export", params={"q": CDK}, headers={"Accept-Encoding": "gzip"})
    assert head.headers["Content-Encoding"] == "gzip" and head.headers["Etag"] == gzipped.headers["Etag"]


def test_errors_before_the_first_byte_are_json(api):
    for params, keyword in (({"q": "symbol:(cdk2"}, "q"), ({"q": "__any__"}, "q"), ({}, "q"),
                            ({"q": "cdk2", "format": "yaml"}, "format"), ({"q": "cdk2", "sort": "_script"}, "sort")):
        response = api.get("/v1/export", params=params)
        assert response.status_code == 400 and response.headers["Content-Type"].startswith("application/json")
        body = response.json()
        assert body["success"] is False and body.get("keyword", keyword) == keyword, (params, body)


def test_streams_are_exempt_from_the_answer_budgets(serve, api):
    client = serve(api.backend, MAX_ANSWER_HITS=50, MAX_ANSWER_BYTES=20000, EXPORT_PAGE_SIZE=500)
    assert client.get("/v1/query", params={"q": "__all__", "size": 51}).status_code == 400
    exported = ndjson(client.get("/v1/export", params={"q": "__all__"}))
    assert {doc["_id"] for doc in exported} == ALL_IDS
    terms = "\n".join(doc["symbol"] for doc in data.DOCS[:100])
    assert client.post("/v1/query", data={"q": terms.replace("\n", ","), "scopes": "symbol"}).status_code == 400
    lines = client.post("/v1/query", params={"scopes": "symbol", "size": 1}, data=terms,
                        headers={"Content-Type": "text/plain"})
    assert lines.status_code == 200 and len(lines.content.splitlines()) == 100


# ---------------------------------------------------------------- streamed batches

def test_a_streamed_batch_answers_one_line_per_term_in_order(api):
    terms = ["CDK2", "no_such_symbol", "BRCA1", "CDK2"]
    plain = api.post("/v1/query", params={"scopes": "symbol", "fields": "name"}, data="\n".join(terms) + "\n\n",
                     headers={"Content-Type": "text/plain; charset=utf-8"})
    assert plain.status_code == 200 and plain.headers["Content-Type"] == "application/x-ndjson"
    lines = ndjson(plain)
    assert [line["query"] for line in lines] == terms
    assert lines[1] == {"query": "no_such_symbol", "notfound": True}
    assert lines[0]["total"] == 1 and lines[0]["hits"][0]["_id"] == "1017" and lines[0]["hits"][0]["name"]
    # the JSON batch holds the same entries
    batch = api.post("/v1/query", json={"q": terms, "scopes": "symbol", "fields": "name"}).json()
    entries = [{**hit, "query": line["query"]} for line in lines for hit in line.get("hits", [line])]
    assert [without_score(entry) for entry in entries] == [without_score(entry) for entry in batch]

    body = '["CDK2", "9606"]\n1017\n{"q": 1}\nnot json\n["a", "b", "c"]\n"BRCA1"\n'
    lines = ndjson(api.post("/v1/query", params={"scopes": "symbol,taxid"}, data=body,
                            headers={"Content-Type": "application/x-ndjson"}))
    assert [line["query"] for line in lines] == [["CDK2", "9606"], 1017, '{"q": 1}', "not json", ["a", "b", "c"],
                                                 "BRCA1"]
    assert lines[0]["hits"][0]["_id"] == "1017"
    assert "error" in lines[2] and lines[3]["error"] == "Invalid JSON line." and "3 parts" in lines[4]["error"]
    assert "error" not in lines[5]


def test_streamed_batch_limit_at_n_and_n_plus_one(serve, api):
    client = serve(api.backend, MAX_BATCH_STREAM_TERMS=50)
    terms = [doc["symbol"] for doc in data.DOCS[:51]]
    at = client.post("/v1/query", params={"scopes": "symbol", "size": 1}, data="\n".join(terms[:50]),
                     headers={"Content-Type": "text/plain"})
    assert at.status_code == 200 and len(ndjson(at)) == 50
    past = client.post("/v1/query", params={"scopes": "symbol"}, data="\n".join(terms),
                       headers={"Content-Type": "text/plain"})
    assert past.status_code == 400
    body = past.json()
    assert body["max"] == 50 and body["num"] == 51 and "MAX_BATCH_STREAM_TERMS" in body["error"]


def test_streamed_batch_parameters(api):
    post = api.post
    text = {"Content-Type": "text/plain"}
    assert post("/v1/query", params={"q": "cdk2"}, data="CDK2", headers=text).json()["keyword"] == "q"
    assert post("/v1/query", params={"format": "yaml"}, data="CDK2", headers=text).json()["keyword"] == "format"
    assert post("/v1/query", params={"filter": "symbol:("}, data="CDK2", headers=text).status_code == 400
    assert post("/v1/query", data="\n \n", headers=text).json()["missing"] == "q"
    # a JSON body and a form sent as text keep their meaning (see test_batch.py)
    assert post("/v1/query", data=b'{"q": ["CDK2"], "scopes": "symbol"}', headers=text).json()[0]["_id"] == "1017"
    assert post("/v1/query", data=b"q=CDK2&scopes=symbol", headers=text).status_code == 400


# ---------------------------------------------------------------- long streams

@pytest.fixture(scope="session")
def big_embedded(tmp_path_factory):
    """An embedded index of the sample ten times over (other ids), built once."""
    from biothings.web.engines.embedded import ensure_index
    directory = tmp_path_factory.mktemp("big")
    path = directory / "genes.ndjson"
    with open(path, "wb") as handle:
        for copy in range(COPIES):
            for doc in data.DOCS:
                handle.write(orjson.dumps(dict(doc, _id=f"{doc['_id']}-{copy}" if copy else doc["_id"])) + b"\n")
    ensure_index(str(directory), "genes", str(path), data.MAPPING_PATH, data.META_PATH)
    return str(directory)


class LongStreams:
    """A server whose exports take long: the large embedded index (a client that does not read
    holds its stream), or a cluster behind a proxy that answers each search slowly."""

    def __init__(self, backend, request, **settings):
        self.backend = backend
        self.proxy = None
        if backend == "embedded":
            values = dict(EMBEDDED_DATA_DIR=request.getfixturevalue("big_embedded"), EXPORT_PAGE_SIZE=500)
        else:
            self.proxy = FaultProxy(cluster_url(backend, request)).start()
            values = dict(ES_HOST=self.proxy.url, ES_INDICES={"gene": cluster_index(backend, request)},
                          EXPORT_PAGE_SIZE=100)
        self.server = APIServer(make_settings(backend, request, **{**values, **settings})).start()
        self.url = self.server.url
        self.app = self.server.app
        if self.proxy is not None:
            self.proxy.set("slow", delay=0.3)

    def open(self, path="/v1/export", params=None):
        """A stream read up to its first line, then left unread."""
        response = requests.get(self.url + path, params=params or {"q": "__all__"}, stream=True, timeout=60,
                                headers={"Accept-Encoding": "identity"})
        assert response.status_code == 200, response.text
        response.lines = response.iter_lines()  # kept: an iterator dropped closes the connection
        assert orjson.loads(next(response.lines))["_id"]
        return response

    def engine_work(self):
        """Engine work in flight: the embedded lanes' jobs, or searches the proxy is holding."""
        if self.backend == "embedded":
            engine = self.server.web_settings.engine
            return engine.searches.running + engine.searches.queued
        return sum(count for path, count in self.proxy.requests.items() if path.endswith("_search"))

    def stop(self):
        self.server.stop()
        if self.proxy is not None:
            self.proxy.stop()


@pytest.fixture
def long_streams(request):
    made = []

    def start(backend, **settings):
        made.append(LongStreams(backend, request, **settings))
        return made[-1]

    yield start
    for streams in made:
        streams.stop()


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_streams_at_n_and_n_plus_one(long_streams, backend):
    server = long_streams(backend, MAX_CONCURRENT_STREAMS=2)
    first, second = server.open(), server.open()
    assert server.app.streams == 2
    refused = requests.get(server.url + "/v1/export", params={"q": "__all__"}, timeout=30)
    assert refused.status_code == 429 and refused.headers["Retry-After"].isdigit()
    body = refused.json()
    assert body["code"] == 429 and body["max"] == 2 and "MAX_CONCURRENT_STREAMS" in body["error"]
    batch = requests.post(server.url + "/v1/query", data="CDK2", headers={"Content-Type": "text/plain"}, timeout=30)
    assert batch.status_code == 429  # streamed batches share the limit
    assert requests.get(server.url + "/v1/query", params={"q": "cdk2"}, timeout=30).status_code == 200
    first.close()
    assert wait_for(lambda: server.app.streams == 1), "the closed stream kept its slot"
    third = server.open()
    assert server.app.streams == 2
    second.close()
    third.close()
    assert wait_for(lambda: server.app.streams == 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_disconnect_mid_stream_frees_the_worker(long_streams, backend):
    server = long_streams(backend)
    response = server.open()
    assert server.app.inflight == 1 and server.app.streams == 1
    response.close()  # the client goes mid-stream
    assert wait_for(lambda: server.app.inflight == 0 and server.app.streams == 0), \
        (server.app.inflight, server.app.streams)
    if backend == "embedded":
        assert wait_for(lambda: server.engine_work() == 0), "the engine still works for the client that left"
    else:
        searches = server.engine_work()
        time.sleep(1.0)  # several slow pages' worth: no page is fetched any more
        assert server.engine_work() == searches
        closing = "/_search/point_in_time" if backend == "opensearch" else "/_pit"
        assert wait_for(lambda: server.proxy.requests[closing] >= 1), "the point in time was not closed"
    assert requests.get(server.url + "/v1/query", params={"q": "cdk2"}, timeout=30).status_code == 200


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_first_bytes_come_before_the_last_page(long_streams, backend):
    server = long_streams(backend)
    response = server.open()
    metrics = requests.get(server.url + "/metrics", timeout=30).text
    fetched = re.search(r'biothings_engine_duration_seconds_count\{engine="\w+",operation="search_page"\} (\S+)',
                        metrics)
    docs = len(data.DOCS) * (COPIES if backend == "embedded" else 1)
    pages = docs / (500 if backend == "embedded" else 100)
    assert fetched and float(fetched.group(1)) < pages, (fetched and fetched.group(1), pages)
    assert 1 + sum(1 for line in response.lines if line) == docs


def test_an_engine_failure_mid_stream_truncates_it(request, long_streams):
    server = long_streams("elasticsearch")
    response = server.open()
    server.proxy.set("status", status=500)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for _ in response.lines:
            pass
    assert wait_for(lambda: server.app.streams == 0 and server.app.inflight == 0)


def test_a_stream_past_its_time_is_cut(long_streams):
    server = long_streams("elasticsearch", STREAM_TIMEOUT=1)
    response = server.open()
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for _ in response.lines:
            pass
    assert time.monotonic() - started < 10  # cut at about 1 s: the whole export takes 20 slow pages
    assert wait_for(lambda: server.app.streams == 0 and server.app.inflight == 0)


# ---------------------------------------------------------------- memory

def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def test_memory_stays_bounded_during_a_large_export(big_embedded, tmp_path):
    """A subprocess server exports ~14 MB of NDJSON (what a buffered answer would hold many
    times over as Python objects) to a client that pauses: its RSS grows by a bounded amount."""
    port = free_port()
    env = {**os.environ, "ES_HOST": "", "EMBEDDED_DATA_DIR": big_embedded, "EMBEDDED_DATA_FILES": "{}",
           "ES_INDICES": json.dumps({"gene": "genes"}), "EXPORT_PAGE_SIZE": "1000"}
    process = subprocess.Popen([sys.executable, "index.py", f"--port={port}", "--address=127.0.0.1"],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/status", timeout=60)
        warm = requests.get(url + "/v1/export", params={"q": "symbol:CDK2"}, timeout=60)
        assert warm.status_code == 200
        baseline = rss_kib(process.pid)
        peak, size = baseline, 0
        with requests.get(url + "/v1/export", params={"q": "__all__"}, stream=True, timeout=120,
                          headers={"Accept-Encoding": "identity"}) as response:
            for number, chunk in enumerate(response.iter_content(256 * 1024)):
                size += len(chunk)
                peak = max(peak, rss_kib(process.pid))
                if number == 3:  # a client that stops reading for a while
                    for _ in range(10):
                        time.sleep(0.1)
                        peak = max(peak, rss_kib(process.pid))
        assert size > 12 * 1024 * 1024
        assert peak - baseline < 64 * 1024, f"RSS grew by {(peak - baseline) // 1024} MB exporting {size >> 20} MB"
    finally:
        process.terminate()
        process.wait(30)


def test_a_batch_of_a_hundred_thousand_terms_at_the_limit(big_embedded, tmp_path):
    """The default MAX_BATCH_STREAM_TERMS: 100,000 terms stream; 100,001 are refused."""
    port = free_port()
    env = {**os.environ, "ES_HOST": "", "EMBEDDED_DATA_DIR": big_embedded, "EMBEDDED_DATA_FILES": "{}",
           "ES_INDICES": json.dumps({"gene": "genes"})}
    process = subprocess.Popen([sys.executable, "index.py", f"--port={port}", "--address=127.0.0.1"],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    symbols = [doc["symbol"] for doc in data.DOCS]
    terms = [symbols[n // 50 % len(symbols)] if n % 50 == 0 else f"no-such-{n}" for n in range(100_000)]
    try:
        wait_http(url + "/status", timeout=60)
        response = requests.post(url + "/v1/query", params={"scopes": "symbol", "fields": "symbol", "size": 1},
                                 data="\n".join(terms).encode(), timeout=600,
                                 headers={"Content-Type": "text/plain", "Accept-Encoding": "identity"})
        assert response.status_code == 200
        lines = ndjson(response)
        assert [line["query"] for line in lines] == terms
        assert all(("hits" in line) == (n % 50 == 0) for n, line in enumerate(lines))
        refused = requests.post(url + "/v1/query", params={"scopes": "symbol"}, timeout=60,
                                data="\n".join(terms + ["one more"]).encode(), headers={"Content-Type": "text/plain"})
        assert refused.status_code == 400 and refused.json()["num"] == 100_001
    finally:
        process.terminate()
        process.wait(30)


def test_a_stream_of_a_closed_socket_is_dropped(long_streams):
    """A client that closes right after its request: no stream is left running."""
    server = long_streams("embedded")
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /v1/export?q=__all__ HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.recv(100)
    assert wait_for(lambda: server.app.streams == 0 and server.app.inflight == 0)
