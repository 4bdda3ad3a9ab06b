"""The loader against a cluster that fails under it (through ``tests.faultproxy``, in front
of noida-db and osmem-server): every failure is one line, an abort removes only the new
index, a failure after the swap leaves the new index live; and the embedded target's own
failures and labels."""

import json
import re
import types
import urllib.error
import urllib.request

import pytest
import tornado.httpclient

from biothings.web.load import LoadError
from tests.faultproxy import FaultProxy
from tests.servers import wait_for
from tests.tools.test_load import (MAPPING, NDJSON, TOTAL, _aliases, _get, bad_file, cluster,  # noqa: F401
                                   run_load, unique, write_config)


@pytest.fixture
def proxied(cluster, tmp_path):  # noqa: F811 - the fixture of test_load
    """``(proxy, cluster URL, alias)``: a config in ``tmp_path`` loading through a fault proxy."""
    proxy = FaultProxy(cluster).start()
    alias = unique("faults")
    write_config(str(tmp_path), ES_HOST=proxy.url, ES_INDICES={"gene": alias})
    try:
        yield proxy, cluster, alias
    finally:
        proxy.stop()
        for name in _indices(cluster, alias):
            _delete(cluster, name)


def _indices(url, prefix):
    return sorted(i["index"] for i in _get(f"{url}/_cat/indices?format=json") if i["index"].startswith(prefix))


def _delete(url, name):
    try:
        urllib.request.urlopen(urllib.request.Request(f"{url}/{name}", method="DELETE"), timeout=5).read()
    except urllib.error.HTTPError:
        pass


def _created(proxy, alias):
    """The concrete index the load created (its ``PUT``)."""
    names = [path.strip("/") for method, path, _auth in proxy.seen
             if method == "PUT" and re.fullmatch(rf"/{alias}_\d+", path)]
    assert len(names) == 1, proxy.seen
    return names[0]


def test_a_delete_that_fails_at_abort_is_a_warning_after_the_reason(proxied, tmp_path):
    proxy, url, alias = proxied
    proxy.set("status", status=500, where=lambda request: request.method == "DELETE")
    result = run_load(tmp_path, bad_file(tmp_path), "--mapping", MAPPING, "--on-error", "abort")
    assert result.returncode == 1
    concrete = _created(proxy, alias)
    lines = result.stderr.strip().splitlines()
    assert re.fullmatch(rf"warning: could not delete the new index {concrete}: "
                        r"(ApiError|TransportError): .*injected fault.*", lines[-3])
    assert lines[-2].startswith(f"error: {tmp_path}/bad.ndjson: line 5: ")
    assert lines[-1] == "aborted: nothing was replaced"
    assert "could not delete" not in result.stdout
    assert _indices(url, alias) == [concrete]  # the delete really failed: the index is left, reported


def test_an_index_gone_before_the_abort_deletes_it_is_no_warning(proxied, tmp_path):
    """Someone deleted the new index first: the abort's delete finds nothing, and says nothing."""
    proxy, url, alias = proxied

    async def delete_first(request):
        if request.method == "DELETE":
            await tornado.httpclient.AsyncHTTPClient().fetch(url + request.path, method="DELETE", raise_error=False)

    proxy.before_forward = delete_first
    result = run_load(tmp_path, bad_file(tmp_path), "--mapping", MAPPING, "--on-error", "abort")
    assert result.returncode == 1
    assert ("DELETE", f"/{_created(proxy, alias)}") in [(method, path) for method, path, _ in proxy.seen]
    assert "could not delete" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "aborted: nothing was replaced"
    assert _indices(url, alias) == []


def test_a_previous_index_that_cannot_be_deleted_leaves_the_new_one_live(proxied, tmp_path):
    proxy, url, alias = proxied
    first = run_load(tmp_path, NDJSON, "--mapping", MAPPING)
    assert first.returncode == 0, first.stderr
    previous = json.loads(first.stdout)["concrete_index"]
    proxy.set("status", status=500, where=lambda request: request.method == "DELETE")
    result = run_load(tmp_path, NDJSON, "--mapping", MAPPING)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["previous"] == [previous] and summary["total"] == TOTAL
    assert re.search(rf"^warning: could not delete the previous index {previous}: "
                     r"(ApiError|TransportError): .*injected fault",
                     result.stderr, re.M), result.stderr
    assert _aliases(url, alias) == [summary["concrete_index"]]
    assert _get(f"{url}/{alias}/_count")["count"] == TOTAL
    assert _indices(url, alias) == sorted([previous, summary["concrete_index"]])


def test_es_args_credentials_reach_every_request_of_the_load(proxied, tmp_path):
    proxy, url, alias = proxied
    write_config(str(tmp_path), ES_HOST=proxy.url, ES_INDICES={"gene": alias},
                 ES_ARGS={"basic_auth": ("loader", "secret")})
    result = run_load(tmp_path, NDJSON, "--mapping", MAPPING)
    assert result.returncode == 0, result.stderr
    methods = {method for method, _path, _auth in proxy.seen}
    assert {"GET", "PUT", "POST"} <= methods
    assert [(m, p) for m, p, auth in proxy.seen if auth != "Basic bG9hZGVyOnNlY3JldA=="] == []


def _slow_create(proxy, seconds):
    proxy.set("slow", delay=seconds, where=lambda request: request.method == "PUT")


def _no_leftover(proxy, url, alias):
    """The slow create lands after the client gave up (as on a cluster): the abort could not
    know; the index is removed here once it exists."""
    concrete = _created(proxy, alias)
    wait_for(lambda: _indices(url, alias) == [concrete], seconds=10)
    _delete(url, concrete)


def test_a_request_past_the_timeout_aborts_with_one_line(proxied, tmp_path):
    proxy, url, alias = proxied
    _slow_create(proxy, 1.5)
    result = run_load(tmp_path, NDJSON, "--mapping", MAPPING, "--timeout", "0.5")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert re.fullmatch(r"error: the cluster failed: \w*Timeout\w*: .*", lines[-2], re.I), result.stderr
    assert lines[-1] == "aborted: nothing was replaced"
    assert "Traceback" not in result.stderr
    _no_leftover(proxy, url, alias)


def test_the_timeout_option_wins_over_es_args(proxied, tmp_path, request):
    proxy, url, alias = proxied
    argument = "timeout" if request.node.callspec.params["cluster"] == "opensearch" else "request_timeout"
    write_config(str(tmp_path), ES_HOST=proxy.url, ES_INDICES={"gene": alias}, ES_ARGS={argument: 0.5})
    _slow_create(proxy, 1.5)
    result = run_load(tmp_path, NDJSON, "--mapping", MAPPING)
    assert result.returncode == 1 and "the cluster failed" in result.stderr  # ES_ARGS's timeout is the client's
    _no_leftover(proxy, url, alias)
    proxy.seen.clear()
    result = run_load(tmp_path, NDJSON, "--mapping", MAPPING, "--timeout", "5")
    assert result.returncode == 0, result.stderr
    assert _get(f"{url}/{alias}/_count")["count"] == TOTAL


def test_the_default_timeout_outlasts_a_slow_request(proxied, tmp_path):
    """``ES_REQUEST_TIMEOUT`` is a search's budget; a load waits at least 60 s per request."""
    proxy, url, alias = proxied
    write_config(str(tmp_path), ES_HOST=proxy.url, ES_INDICES={"gene": alias}, ES_REQUEST_TIMEOUT=1)
    _slow_create(proxy, 1.5)
    result = run_load(tmp_path, NDJSON, "--mapping", MAPPING)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("setting, fails", [(0.5, True), (3, False)])
def test_the_default_timeout_is_the_larger_of_the_setting_and_the_floor(proxied, monkeypatch, setting, fails):
    """The default reaches the client: with the floor lowered to 1 s (60 in use), a request
    of 2 s fails under the floor and passes under an ES_REQUEST_TIMEOUT above it."""
    from biothings.web import load as loader
    proxy, url, alias = proxied
    monkeypatch.setattr(loader, "CLUSTER_TIMEOUT_FLOOR", 1)
    config = types.SimpleNamespace(ES_HOST=proxy.url, ES_INDICES={"gene": alias}, ES_REQUEST_TIMEOUT=setting)
    _slow_create(proxy, 2)
    if fails:
        with pytest.raises(LoadError, match=r"^the cluster failed: ConnectionTimeout: "):
            loader.load(config, NDJSON, mapping=MAPPING, progress=False)
        _no_leftover(proxy, url, alias)
    else:
        assert loader.load(config, NDJSON, mapping=MAPPING, progress=False)["total"] == TOTAL


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_a_timeout_that_is_no_positive_number_is_refused(tmp_path, value):
    write_config(str(tmp_path), ES_HOST="", EMBEDDED_DATA_DIR=str(tmp_path / "data"))
    result = run_load(tmp_path, NDJSON, f"--timeout={value}")
    assert result.returncode == 2 and "--timeout" in result.stderr
    assert not (tmp_path / "data").exists()


def test_the_smallest_timeout_is_accepted(tmp_path):
    write_config(str(tmp_path), ES_HOST="", EMBEDDED_DATA_DIR=str(tmp_path / "data"))
    result = run_load(tmp_path, NDJSON, "--mapping", MAPPING, "--timeout=0.001")
    assert result.returncode == 0, result.stderr  # the embedded engine has no request to time out


# ---------------------------------------------------------------------- embedded target

def test_a_data_dir_that_cannot_be_made_is_one_line(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    data_dir = tmp_path / "file" / "data"
    write_config(str(tmp_path), ES_HOST="", EMBEDDED_DATA_DIR=str(data_dir))
    result = run_load(tmp_path, NDJSON, "--mapping", MAPPING)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"error: [Errno 20] Not a directory: '{data_dir}'"


def test_json_array_items_are_labelled_once(tmp_path):
    write_config(str(tmp_path), ES_HOST="", EMBEDDED_DATA_DIR=str(tmp_path / "data"))
    path = tmp_path / "array.json"
    path.write_text(json.dumps([{"_id": "1", "symbol": "A"}, {"symbol": "no id"}, 7, {"_id": "4", "symbol": "D"}]))
    result = run_load(tmp_path, str(path), "--mapping", MAPPING, "--allow-shrink")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert [re.sub(r": [^:]*$", "", line) for line in warnings[:2]] == [
        f"warning: {path}: item 2", f"warning: {path}: item 3"], warnings
    assert all(line.count("item ") == 1 for line in warnings[:2]), warnings


def test_an_alias_swap_whose_answer_is_lost_still_succeeds(proxied, tmp_path):
    """The cluster moved the alias but the answer came after the timeout: the new index is
    live, so the load succeeds and deletes the previous one (an abort would have deleted the
    live index, leaving the alias on nothing)."""
    proxy, url, alias = proxied
    first = run_load(tmp_path, NDJSON, "--mapping", MAPPING)
    assert first.returncode == 0, first.stderr
    previous = json.loads(first.stdout)["concrete_index"]
    proxy.set("late", delay=3, where=lambda request: request.method == "POST" and request.path == "/_aliases")
    result = run_load(tmp_path, NDJSON, "--mapping", MAPPING, "--timeout", "1.5")
    assert result.returncode == 0, result.stderr
    concrete = json.loads(result.stdout)["concrete_index"]
    assert ("POST", "/_aliases") in [(method, path) for method, path, _ in proxy.seen]
    assert _aliases(url, alias) == [concrete] and _indices(url, alias) == [concrete] != [previous]
    assert _get(f"{url}/{alias}/_count")["count"] == TOTAL


@pytest.mark.parametrize("read_back", ["answers", "fails"])
def test_an_alias_move_the_cluster_refuses_aborts_and_keeps_the_previous_index(proxied, tmp_path, read_back):
    """The swap refused (and, in the second case, where the alias points cannot be read
    either): the load fails, the alias stays on the previous index, which is kept."""
    proxy, url, alias = proxied
    first = run_load(tmp_path, NDJSON, "--mapping", MAPPING)
    assert first.returncode == 0, first.stderr
    previous = json.loads(first.stdout)["concrete_index"]

    def refused(request):
        if request.method == "POST" and request.path == "/_aliases":
            return True
        return read_back == "fails" and request.method == "HEAD" and bool(
            re.fullmatch(rf"/{alias}_\d+/_alias/{alias}", request.path))

    proxy.set("status", status=500, where=refused)
    result = run_load(tmp_path, NDJSON, "--mapping", MAPPING)
    assert result.returncode == 1
    error = "ApiError" if request_family(url) == "elasticsearch" else "TransportError"
    assert result.stderr.strip().splitlines()[-2:] == [
        f"error: the cluster failed: {error}: {error}(500, 'unavailable_shards_exception', 'injected fault')",
        "aborted: nothing was replaced"]
    assert _aliases(url, alias) == [previous] and _indices(url, alias) == [previous]
    assert _get(f"{url}/{alias}/_count")["count"] == TOTAL


def request_family(url):
    return _get(url + "/")["version"].get("distribution", "elasticsearch")


def test_a_plain_index_of_the_alias_name_is_kept_when_the_swap_is_refused(proxied, tmp_path):
    """A plain index where the alias is to be goes in the same step as the alias comes
    (``remove_index``): a refused step leaves it serving, documents and all."""
    proxy, url, alias = proxied
    for path, body in ((f"/{alias}", None), (f"/{alias}/_doc/1?refresh=true", b'{"symbol": "OLD"}')):
        request = urllib.request.Request(url + path, data=body, method="PUT",
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=5).read()
    proxy.set("status", status=500, where=lambda request: request.method == "POST" and request.path == "/_aliases")
    result = run_load(tmp_path, NDJSON, "--mapping", MAPPING)
    assert result.returncode == 1 and "the cluster failed" in result.stderr, result.stderr
    assert _aliases(url, alias) == [] and _indices(url, alias) == [alias]
    assert _get(f"{url}/{alias}/_doc/1")["_source"] == {"symbol": "OLD"}
    proxy.set("pass")
    result = run_load(tmp_path, NDJSON, "--mapping", MAPPING)  # the same load, the swap let through
    assert result.returncode == 0, result.stderr
    assert _aliases(url, alias) == [json.loads(result.stdout)["concrete_index"]]
    assert _get(f"{url}/{alias}/_count")["count"] == TOTAL
