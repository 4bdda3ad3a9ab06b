"""Readers never see a swap: while the loader replaces the index again and again (the
embedded build behind ``current``, the alias on a cluster), every answer is whole and
comes from exactly one build: no 404, no empty answer, no answer mixing two builds.

Each build marks every document with its own ``build_marker``; an answer holding two
markers, or none, was read across a swap.

One exception, on clusters only: a batch (POST /v1/query, POST /v1/gene) is one
``_msearch``, whose searches each resolve the alias when they run, as Elasticsearch
does; a batch that straddles the alias move can hold both builds (docs/limits.md).
The embedded engine reads one build for a whole batch.
"""

import json
import threading
import time

import pytest

from biothings.web.load import load
from tests import data
from tests.conftest import BACKENDS, fresh_index_settings

DOCS = data.DOCS[:300]
IDS = [doc["_id"] for doc in DOCS[:20]]
SWAPS = 4


def build_file(tmp_path, marker):
    path = tmp_path / f"{marker}.ndjson"
    path.write_text("".join(json.dumps(dict(doc, build_marker=marker)) + "\n" for doc in DOCS))
    return str(path)


def markers_of(method, path, answer):
    """The build markers an answer holds; raises on an answer that is not whole."""
    if path.startswith("/v1/gene/"):
        return {answer["build_marker"]}
    hits = answer if isinstance(answer, list) else answer["hits"]
    if path == "/v1/query" and method == "GET":
        assert answer["total"] == len(DOCS) and len(hits) == len(DOCS), "a partial answer"
    else:
        assert [hit["_id"] for hit in hits] == IDS, "a partial batch"
    return {hit["build_marker"] for hit in hits}


READS = [
    ("GET", "/v1/gene/1017", {}),
    ("GET", "/v1/query", {"params": {"q": "__all__", "size": 1000, "fields": "build_marker"}}),
    ("POST", "/v1/gene", {"json": {"ids": IDS, "fields": "build_marker"}}),
    ("POST", "/v1/query", {"json": {"q": IDS, "scopes": "_id", "fields": "build_marker"}}),
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_readers_see_whole_builds_while_the_loader_swaps(backend, request, serve, tmp_path):
    settings = fresh_index_settings(backend, request, tmp_path, "swap", METADATA_CHECK_INTERVAL=0.2)
    mapping = json.loads(open(data.MAPPING_PATH).read())
    mapping["properties"]["build_marker"] = {"type": "keyword"}
    files = {marker: build_file(tmp_path, marker) for marker in ("A", "B")}
    load(settings, files["A"], mapping=mapping, meta=dict(data.META), progress=False)
    client = serve(config=settings)

    seen, problems, latest = set(), [], [None]
    done = threading.Event()

    def read(offset):
        count = offset
        while not done.is_set() and len(problems) < 5:
            method, path, kwargs = READS[count % len(READS)]
            count += 1
            response = client.request(method, path, **kwargs)
            try:
                assert response.status_code == 200, f"HTTP {response.status_code}"
                markers = markers_of(method, path, response.json())
                assert None not in markers, "a document without its build marker"
                if backend == "embedded" or method == "GET":
                    assert len(markers) == 1, f"builds mixed: {sorted(markers)}"
                seen.update(markers)
                latest[0] = markers
            except AssertionError as exc:
                problems.append(f"{method} {path}: {exc}: {response.text[:200]}")

    readers = [threading.Thread(target=read, args=(offset,)) for offset in range(3)]
    for reader in readers:
        reader.start()
    try:
        for swap in range(SWAPS):
            marker = "B" if swap % 2 == 0 else "A"
            load(settings, files[marker], mapping=mapping, meta=dict(data.META, build_version=f"{swap}"),
                 progress=False)
            # the next swap only once readers answer from this build (the embedded engine looks
            # for a new build once a second): four quick loads would otherwise all fall between looks
            deadline = time.monotonic() + 20
            while latest[0] != {marker} and time.monotonic() < deadline and not problems:
                time.sleep(0.05)
    finally:
        done.set()
        for reader in readers:
            reader.join(60)
    assert not problems, problems
    assert seen == {"A", "B"}, "the readers never saw the second build: the test proved nothing"
