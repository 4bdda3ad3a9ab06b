"""The embedded index store (biothings.web.engines.embedded.store): building on first start,
its metadata, an abandoned build, a build that never completed, malformed input."""

import datetime
import json
import os
import threading

import pytest

from biothings.web.engines.embedded import store
from biothings.web.engines.embedded.store import (COMPLETE_FILE, IndexBuilder, current_version, ensure_index,
                                                  index_exists, version_path)

DOCS = [{"_id": "1", "symbol": "CDK2", "taxid": 9606}, {"_id": "2", "symbol": "TP53", "taxid": 9606}]
MAPPING = {"properties": {"symbol": {"type": "keyword"}, "taxid": {"type": "integer"}}}


def write(path, obj, lines=False):
    with open(path, "w") as handle:
        if lines:
            handle.write("".join(json.dumps(item) + "\n" for item in obj))
        else:
            json.dump(obj, handle)
    return str(path)


def built(data_dir, name="genes"):
    """The mapping and metadata the build wrote into the current version."""
    with open(os.path.join(version_path(data_dir, name, current_version(data_dir, name)), store.MAPPING_FILE)) as f:
        return json.load(f)


def test_ensure_index_builds_with_the_mapping_and_meta_given(tmp_path):
    documents = write(tmp_path / "docs.ndjson", DOCS, lines=True)
    mapping = write(tmp_path / "mapping.json", MAPPING)
    meta = write(tmp_path / "meta.json", {"build_version": "20240101", "src": {"ncbi": {"version": "1"}}})
    data = str(tmp_path / "data")
    assert ensure_index(data, "genes", documents, mapping, meta) is True
    written = built(data)
    assert written["properties"] == MAPPING["properties"]  # as given, not inferred (symbol: keyword)
    assert written["_meta"]["build_version"] == "20240101" and written["_meta"]["src"] == {"ncbi": {"version": "1"}}
    assert ensure_index(data, "genes", documents, mapping, meta) is False  # there already


def test_ensure_index_takes_the_meta_of_the_mapping_when_none_is_given(tmp_path):
    documents = write(tmp_path / "docs.ndjson", DOCS, lines=True)
    mapping = write(tmp_path / "mapping.json", {**MAPPING, "_meta": {"build_version": "7", "src": {"a": {}}}})
    data = str(tmp_path / "data")
    ensure_index(data, "genes", documents, mapping)
    assert built(data)["_meta"]["build_version"] == "7" and built(data)["_meta"]["src"] == {"a": {}}
    # a meta file wins over the mapping's _meta
    meta = write(tmp_path / "meta.json", {"build_version": "8"})
    ensure_index(str(tmp_path / "other"), "genes", documents, mapping, meta)
    other = built(str(tmp_path / "other"))["_meta"]
    assert other["build_version"] == "8" and "src" not in other


def test_ensure_index_dates_a_build_without_meta_and_infers_the_mapping(tmp_path):
    documents = write(tmp_path / "docs.ndjson", DOCS, lines=True)
    data = str(tmp_path / "data")
    ensure_index(data, "genes", documents)
    written = built(data)
    assert written["_meta"]["build_version"] == datetime.date.today().strftime("%Y%m%d")
    assert datetime.datetime.fromisoformat(written["_meta"]["build_date"]).tzinfo is not None
    assert written["properties"]["taxid"]["type"] == "long"  # inferred: ES's dynamic mapping
    assert written["properties"]["symbol"]["type"] == "text"


def test_ensure_index_builds_once_when_called_at_once(tmp_path):
    """Two starts at the same moment: one builds under the lock, the other finds it built."""
    documents = write(tmp_path / "docs.ndjson", DOCS, lines=True)
    data = str(tmp_path / "data")
    results = []
    start = threading.Barrier(2)

    def call():
        start.wait()
        results.append(ensure_index(data, "genes", documents))
    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, True]
    assert len(os.listdir(os.path.join(data, "genes", store.VERSIONS))) == 1


def test_a_malformed_document_file_names_the_line(tmp_path):
    documents = tmp_path / "docs.ndjson"
    documents.write_text(json.dumps(DOCS[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match="line 2"):
        list(store.iter_documents(str(documents)))


def test_a_version_without_its_complete_marker_is_no_index(tmp_path):
    """A build that stopped before its last file: the index does not exist, and is built again."""
    documents = write(tmp_path / "docs.ndjson", DOCS, lines=True)
    data = str(tmp_path / "data")
    ensure_index(data, "genes", documents)
    assert index_exists(data, "genes")
    os.remove(os.path.join(version_path(data, "genes", current_version(data, "genes")), COMPLETE_FILE))
    assert not index_exists(data, "genes")
    assert ensure_index(data, "genes", documents) is True


def test_an_aborted_build_leaves_the_current_index_and_no_files(tmp_path):
    data = str(tmp_path / "data")
    first = IndexBuilder(data, "genes", MAPPING)
    first.add(DOCS[0])
    version = first.commit()
    builder = IndexBuilder(data, "genes", MAPPING)
    builder.add(DOCS[1])
    assert os.path.isdir(builder.path)
    builder.abort()
    assert not os.path.exists(builder.path)
    assert builder.writer is None and builder.index is None and builder.done is True
    builder.abort()  # a second abort does nothing
    assert current_version(data, "genes") == version and index_exists(data, "genes")
    assert os.listdir(os.path.join(data, "genes", store.VERSIONS)) == [version]
    committed = IndexBuilder(data, "genes", MAPPING)
    committed.commit()
    committed.abort()  # after a commit: nothing to throw away
    assert os.path.isdir(committed.path) and current_version(data, "genes") == committed.version


def test_inferred_mapping_follows_dynamic_mapping():
    """Elasticsearch's dynamic mapping: the first type seen at a path wins, lists map their
    items, the top-level ``_id`` is not mapped (a nested one is), empty objects and dotted
    keys make objects."""
    text = {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}
    docs = [{"_id": "1", "score": 1.5, "count": 3, "ok": True, "tags": ["a", "b"], "empty": {},
             "first": 1, "ref": {"_id": "x"}, "go.BP": "dotted", "none": None, "nothing": []},
            {"_id": "2", "first": {"b": 2}, "count": 4.5, "obj": [{"x": 1}, {"y": "z"}]}]
    assert store.infer_mapping(docs) == {"properties": {
        "score": {"type": "double"}, "count": {"type": "long"}, "ok": {"type": "boolean"}, "tags": text,
        "empty": {"properties": {}}, "first": {"type": "long"},  # then an object there: still long
        "ref": {"properties": {"_id": text}}, "go": {"properties": {"BP": text}},
        "obj": {"properties": {"x": {"type": "long"}, "y": text}}}}


def test_build_index_counts_skips_replacements_and_stats(tmp_path):
    data = str(tmp_path / "data")
    docs = [*DOCS, {"_id": "1", "symbol": "CDK2", "taxid": 10090}, {"_id": "3", "taxid": "not a number"},
            {"symbol": "no id"}]
    summary = store.build_index(data, "genes", docs, MAPPING, {"src": {"x": {}}, "stats": {"genes": 2}},
                                on_error="skip")
    assert summary["total"] == 2 and summary["errors"] == 2 and summary["replaced"] == 1
    assert summary["version"] == current_version(data, "genes")
    meta = built(data)["_meta"]
    assert meta["stats"] == {"genes": 2, "total": 2} and meta["src"] == {"x": {}}
    assert store.live_count(data, "genes") == 2
    with pytest.raises(ValueError):  # abort: the first bad document stops the build, nothing replaced
        store.build_index(data, "genes", docs, MAPPING)
    assert current_version(data, "genes") == summary["version"]
    assert os.listdir(os.path.join(data, "genes", store.VERSIONS)) == [summary["version"]]


def test_live_count_reads_the_complete_marker(tmp_path):
    data = str(tmp_path / "data")
    assert store.live_count(data, "genes") is None  # no index
    store.build_index(data, "genes", DOCS, MAPPING)
    marker = os.path.join(version_path(data, "genes", current_version(data, "genes")), COMPLETE_FILE)
    assert store.live_count(data, "genes") == 2
    for text, count in ((b"", 0), (b" 7\n", 7), (b"seven", None)):
        with open(marker, "wb") as handle:
            handle.write(text)
        assert store.live_count(data, "genes") == count
    os.remove(marker)
    assert store.live_count(data, "genes") is None


@pytest.mark.parametrize("name", ["", "a/b", ".hidden", "a,b"])
def test_index_names_elasticsearch_refuses_are_refused(tmp_path, name):
    with pytest.raises(ValueError, match="invalid index name"):
        IndexBuilder(str(tmp_path), name, MAPPING)


def test_a_builder_takes_settings_beside_the_mappings(tmp_path):
    """``{"settings": ..., "mappings": {...}}`` as an index dump has it; the meta of the mappings."""
    data = str(tmp_path / "data")
    mapping = {"settings": {"analysis": {"normalizer": {"low": {"type": "custom", "filter": ["lowercase"]}}}},
               "mappings": {"properties": {"symbol": {"type": "keyword", "normalizer": "low"}},
                            "_meta": {"build_version": "9"}}}
    builder = IndexBuilder(data, "genes", mapping)
    builder.add(DOCS[0])
    builder.commit()
    written = built(data)
    assert written["properties"] == {"symbol": {"type": "keyword", "normalizer": "low"}}
    assert written["_meta"]["build_version"] == "9"
    from biothings.web.engines.embedded import EmbeddedEngine
    import asyncio
    engine = EmbeddedEngine(data)
    try:
        hits = engine.search_sync("genes", {"query": {"term": {"symbol": "cdk2"}}})["hits"]["hits"]
        assert [hit["_id"] for hit in hits] == ["1"]  # normalized by the settings' normalizer
    finally:
        asyncio.run(engine.close())


@pytest.mark.parametrize("mapping, meta", [
    ({"mappings": MAPPING, "_meta": {"build_version": "beside"}}, "beside"),  # beside the mappings
    ({"mappings": {**MAPPING, "_meta": {"build_version": "in"}}, "_meta": {"build_version": "beside"}}, "in"),
    ({**MAPPING["properties"], "_meta": {"build_version": "bare"}, "settings": {}}, "bare"),  # fields alone
])
def test_the_meta_and_fields_of_each_mapping_form(tmp_path, mapping, meta):
    data = str(tmp_path / "data")
    builder = IndexBuilder(data, "genes", mapping)
    builder.add(DOCS[0])
    builder.commit()
    written = built(data)
    assert written == {"properties": MAPPING["properties"], "_meta": {"build_version": meta}}


@pytest.mark.parametrize("doc, message", [
    ([1], "a document must be a JSON object, not list"), ("x", "a document must be a JSON object, not str"),
    ({"symbol": "A"}, "document has no valid _id"), ({"_id": ""}, "document has no valid _id"),
    ({"_id": None}, "document has no valid _id"), ({"_id": True}, "document has no valid _id"),
    ({"_id": ["1"]}, "document has no valid _id"), ({"_id": {"a": 1}}, "document has no valid _id"),
])
def test_documents_refused_say_why(tmp_path, doc, message):
    builder = IndexBuilder(str(tmp_path), "genes", MAPPING)
    try:
        with pytest.raises(ValueError) as refused:
            builder.add(doc)
        assert str(refused.value) == message
        builder.add({"_id": 0, "symbol": "Z"})  # near miss: 0 is an id
        assert builder.count == 1
    finally:
        builder.abort()


def test_the_two_newest_versions_stay(tmp_path):
    """The current one and the one before it (scrolls opened on it still read it); older ones go."""
    data = str(tmp_path / "data")
    versions = []
    for number in range(3):
        builder = IndexBuilder(data, "genes", MAPPING)
        builder.add({"_id": str(number)})
        versions.append(builder.commit())
    assert sorted(os.listdir(os.path.join(data, "genes", store.VERSIONS))) == versions[1:]
    assert current_version(data, "genes") == versions[2]


def test_aborting_a_build_whose_files_are_gone_raises_nothing(tmp_path):
    """abort runs while another error is on its way up: it must not replace that error."""
    import shutil
    builder = IndexBuilder(str(tmp_path), "genes", MAPPING)
    shutil.rmtree(builder.path)
    builder.abort()
    assert not os.path.exists(builder.path)


def test_the_demo_build_skips_documents_its_mapping_cannot_take(tmp_path):
    documents = write(tmp_path / "docs.ndjson", [*DOCS, {"_id": "3", "taxid": "not a number"}], lines=True)
    mapping = write(tmp_path / "mapping.json", MAPPING)
    data = str(tmp_path / "data")
    assert ensure_index(data, "genes", documents, mapping) is True
    assert store.live_count(data, "genes") == 2


def test_each_replacement_is_counted(tmp_path):
    builder = IndexBuilder(str(tmp_path), "genes", MAPPING)
    for doc in (DOCS[0], DOCS[0], DOCS[1], DOCS[0]):
        builder.add(doc)
    assert (builder.count, builder.replaced) == (2, 2)
    builder.abort()


def test_cleanup_keeps_the_current_version_and_builds_in_progress(tmp_path):
    """A rolled-back current version (older than the newest kept) stays; a partial build (no
    COMPLETE marker) stays while fresh, another process may be writing it, and goes after a day."""
    data = str(tmp_path)
    versions = []
    for number in range(4):
        builder = IndexBuilder(data, "genes", MAPPING)
        builder.add({"_id": str(number)})
        versions.append(builder.commit())
    root = os.path.join(data, "genes", store.VERSIONS)
    assert sorted(os.listdir(root)) == versions[2:]
    fresh = IndexBuilder(data, "genes", MAPPING)
    stale = IndexBuilder(data, "genes", MAPPING)
    day_ago = datetime.datetime.now().timestamp() - store.STALE_BUILD_SECONDS - 60
    os.utime(stale.path, (day_ago, day_ago))
    store.swap_current(data, "genes", versions[2])  # back to the older one
    store.cleanup_versions(data, "genes", keep=1)
    assert sorted(os.listdir(root)) == sorted([versions[2], versions[3], fresh.version])
    assert current_version(data, "genes") == versions[2]
    fresh.abort()
