"""The loader never swaps in a build that lost the data, infers mappings as Elasticsearch's
dynamic mapping does, and survives a crash at any point (kill -9): the live index stays
intact and the next load succeeds. Embedded and cluster targets (noida-db, osmem-server)."""

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import cluster_url
from tests.tools.test_load import (LINES, MAPPING, META, NDJSON, ROOT, TOTAL, _aliases, _get,  # noqa: F401
                             engine_count, run_load, unique, workdir, write_config)


def write_lines(path, lines):
    path.write_bytes(b"".join(line.rstrip(b"\n") + b"\n" for line in lines))
    return str(path)


def live_count(target, where):
    if target == "embedded":
        return engine_count(str(where / "data"))[0]
    url, alias = where
    return _get(f"{url}/{alias}/_count")["count"]


@pytest.fixture(params=["embedded", "elasticsearch", "opensearch"])
def target(request, tmp_path):
    """``(kind, cwd, where)``: a config in ``cwd`` loading into the embedded engine or a cluster."""
    if request.param == "embedded":
        write_config(str(tmp_path), ES_HOST="", EMBEDDED_DATA_DIR=str(tmp_path / "data"))
        return "embedded", tmp_path, tmp_path
    url = cluster_url(request.param, request)
    alias = unique("safe")
    write_config(str(tmp_path), ES_HOST=url, ES_INDICES={"gene": alias})
    return "cluster", tmp_path, (url, alias)


# ---------------------------------------------------------------------- shrink guard

def test_a_build_that_lost_the_data_is_refused(target):
    kind, cwd, where = target
    assert run_load(cwd, NDJSON, "--mapping", MAPPING).returncode == 0
    no_ids = write_lines(cwd / "no_ids.ndjson", [line.replace(b'"_id"', b'"id"') for line in LINES[:50]])
    for empty in (no_ids, write_lines(cwd / "empty.json", [b"[]"])):
        result = run_load(cwd, empty, "--mapping", MAPPING)
        assert result.returncode == 1, result.stderr
        assert "has no document" in result.stderr and "--allow-shrink" in result.stderr
        assert "aborted: nothing was replaced" in result.stderr
        assert live_count(kind, where) == TOTAL
    half = len(LINES) // 2  # 982 of 1965: under 50% of the live index
    result = run_load(cwd, write_lines(cwd / "half.ndjson", LINES[:half]), "--mapping", MAPPING)
    assert result.returncode == 1 and f"has {half} documents, the live index {TOTAL}" in result.stderr
    assert "LOAD_SHRINK_LIMIT" in result.stderr and live_count(kind, where) == TOTAL
    enough = half + 1  # 983: at the limit (983 >= 1965 * 0.5) is accepted
    assert run_load(cwd, write_lines(cwd / "enough.ndjson", LINES[:enough]), "--mapping", MAPPING).returncode == 0
    assert live_count(kind, where) == enough
    result = run_load(cwd, write_lines(cwd / "ten.ndjson", LINES[:10]), "--mapping", MAPPING, "--allow-shrink")
    assert result.returncode == 0, result.stderr
    assert live_count(kind, where) == 10


def test_the_shrink_limit_is_a_setting(tmp_path):
    write_config(str(tmp_path), ES_HOST="", EMBEDDED_DATA_DIR=str(tmp_path / "data"), LOAD_SHRINK_LIMIT=0.9)
    assert run_load(tmp_path, NDJSON, "--mapping", MAPPING).returncode == 0
    at_limit = -(-TOTAL * 9 // 10)  # the smallest count >= 90% of the live index
    result = run_load(tmp_path, write_lines(tmp_path / "a.ndjson", LINES[:at_limit - 1]), "--mapping", MAPPING)
    assert result.returncode == 1 and "fewer than 90%" in result.stderr
    assert run_load(tmp_path, write_lines(tmp_path / "b.ndjson", LINES[:at_limit]), "--mapping", MAPPING).returncode == 0


# ---------------------------------------------------------------------- dynamic mapping

def test_inferred_mapping_keeps_the_first_type_and_reports_conflicts_by_line(workdir):
    docs = [{"_id": "1", "n": 1, "flag": True, "o": {"a": "x"}},
            {"_id": "2", "n": "7"},            # coerced into the long, as ES does
            {"_id": "3", "n": "not a number"},  # refused: line 3
            {"_id": "4", "n": 2.9},             # coerced (truncated, as ES does)
            {"_id": "5", "o": "flat"},          # a value where the mapping has an object: line 5
            {"_id": "6", "flag": "maybe"},      # not a boolean: line 6
            {"_id": "7", "n": [3, 4]}]
    path = write_lines(workdir / "mixed.ndjson", [json.dumps(doc).encode() for doc in docs])
    result = run_load(workdir, path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["total"] == 4 and sorted(summary["error_lines"]) == [3, 5, 6]
    assert "line 3: failed to parse field [n] of type [long]" in result.stderr
    assert "line 5: object mapping for [o]" in result.stderr
    count, mapping = engine_count(str(workdir / "data"))
    assert mapping["properties"]["n"] == {"type": "long"}  # never switched to text
    assert mapping["properties"]["o"] == {"properties": {"a": {"type": "text", "fields": {
        "keyword": {"type": "keyword", "ignore_above": 256}}}}}
    aborted = run_load(workdir, path, "--on-error", "abort")
    assert aborted.returncode == 1 and "line 3:" in aborted.stderr


def test_an_object_where_the_mapping_has_a_value_is_refused(workdir):
    docs = [{"_id": "1", "symbol": "A"}, {"_id": "2", "symbol": {"nested": "B"}}]
    path = write_lines(workdir / "shape.ndjson", [json.dumps(doc).encode() for doc in docs])
    result = run_load(workdir, path, "--mapping", MAPPING, "--allow-shrink")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["error_lines"] == [2]
    assert "line 2: failed to parse field [symbol] of type [text]: cannot take an object" in result.stderr


# ---------------------------------------------------------------------- crashes

# A point of the load where the loader kills itself (SIGKILL: nothing of it runs after):
# the name of a function the loader calls, and the call count at which it dies.
CRASH_POINTS = {
    "embedded": [("biothings.web.engines.embedded.store:IndexBuilder.__init__", 1, "after"),
                 ("biothings.web.engines.embedded.store:IndexBuilder.add", 700, "before"),
                 ("biothings.web.engines.embedded.store:swap_current", 1, "before"),
                 ("biothings.web.engines.embedded.store:swap_current", 1, "after")],
    "cluster": [("biothings.web.load:_ElasticsearchTarget.begin", 1, "after"),
                ("biothings.web.load:_ElasticsearchTarget.add", 2, "before"),
                ("biothings.web.load:_ElasticsearchTarget.finish", 1, "before"),
                ("biothings.web.load:_ElasticsearchTarget.update_aliases", 1, "after")],
}

_CRASHING_LOADER = """
import functools, importlib, os, signal, sys
module_name, _, qualname = sys.argv[1].partition(":")
count, when = int(sys.argv[2]), sys.argv[3]
module = importlib.import_module(module_name)
owner, _, name = qualname.rpartition(".")
holders = [getattr(module, owner) if owner else module]
subclass = getattr(module, "_ClassicClientTarget", None)  # Elasticsearch 7 and OpenSearch
if owner == "_ElasticsearchTarget" and name in vars(subclass):  # its own method: patched too
    holders.append(subclass)
calls = [0]

def crashing(original):
    @functools.wraps(original)
    def call(*args, **kwargs):
        calls[0] += 1
        if calls[0] == count and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(*args, **kwargs)
        if calls[0] == count and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    return call

for holder in holders:
    setattr(holder, name, crashing(getattr(holder, name)))
from biothings.web.load import main
sys.exit(main(sys.argv[4:]))
"""


def crashing_load(cwd, point, *args):
    function, count, when = point
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", _CRASHING_LOADER, function, str(count), when, "--conf=config",
                           "--quiet", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_a_crash_at_any_point_leaves_the_live_index_and_the_next_load_works(target):
    kind, cwd, where = target
    assert run_load(cwd, NDJSON, "--mapping", MAPPING, "--meta", META).returncode == 0
    smaller = write_lines(cwd / "smaller.ndjson", LINES[:1500])
    for point in CRASH_POINTS[kind]:
        before = live_count(kind, where)
        result = crashing_load(cwd, point, smaller, "--mapping", MAPPING)
        assert result.returncode == -signal.SIGKILL, (point, result.stderr)
        swapped = point[0].endswith(("swap_current", "update_aliases")) and point[2] == "after"
        assert live_count(kind, where) == (1500 if swapped else before), point
        # the next load succeeds and is what is served
        result = run_load(cwd, NDJSON, "--mapping", MAPPING, "--meta", META)
        assert result.returncode == 0, (point, result.stderr)
        assert live_count(kind, where) == TOTAL
    if kind == "cluster":
        url, alias = where
        assert len(_aliases(url, alias)) == 1
