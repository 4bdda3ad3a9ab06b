"""``python index.py``: first start builds the demo index, then serves it."""

import os
import signal
import subprocess
import sys

import requests

from tests.servers import free_port, wait_http
from tests import data

ROOT = data.ROOT


def start(tmp_path, *args, **env):
    port = free_port()
    environment = {**os.environ, "EMBEDDED_DATA_DIR": str(tmp_path / "data"), **env}
    process = subprocess.Popen(
        [sys.executable, "index.py", f"--port={port}", "--address=127.0.0.1", *args],
        cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}"


def stop(process):
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(20)
    finally:
        if process.poll() is None:
            process.kill()


def test_first_start_builds_demo_index_and_serves(tmp_path):
    assert not (tmp_path / "data").exists()
    process, url = start(tmp_path, "--processes=1")
    try:
        wait_http(url + "/status", timeout=60)
        assert requests.get(url + "/v1/gene/1017", timeout=10).json()["symbol"] == "CDK2"
        assert requests.get(url + "/v1/metadata", timeout=10).json()["stats"]["total"] == 1965
    finally:
        assert stop(process) == 0
    assert (tmp_path / "data" / "genes").exists()
    # second start: the index is on disk already and is served as it is
    process, url = start(tmp_path, "--processes=2")
    try:
        wait_http(url + "/status", timeout=60)
        for _ in range(10):  # several workers share the port
            assert requests.get(url + "/v1/query", params={"q": "symbol:CDK2"}, timeout=10).json()["total"] == 1
    finally:
        assert stop(process) == 0
    output = process.stdout.read().decode()
    assert output.count("serving on") == 2, output


def test_conf_and_dir_options(tmp_path):
    (tmp_path / "myapi.py").write_text(
        "from config import *\nAPI_NAME = 'Renamed API'\nAPI_VERSION = 'v3'\n")
    process, url = start(tmp_path, "--processes=1", f"--dir={tmp_path}", "--conf=myapi",
                         PYTHONPATH=ROOT)
    try:
        wait_http(url + "/status", timeout=60)
        assert requests.get(url + "/v3/gene/1017", timeout=10).status_code == 200
        assert "Renamed API" in requests.get(url + "/", timeout=10).text
    finally:
        assert stop(process) == 0


def children_of(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as handle:
        return [int(child) for child in handle.read().split()]


def test_dead_worker_is_replaced(tmp_path):
    import time
    process, url = start(tmp_path, "--processes=2")
    try:
        wait_http(url + "/status", timeout=60)
        deadline = time.monotonic() + 20
        while len(children_of(process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        first = children_of(process.pid)
        assert len(first) == 2
        os.kill(first[0], signal.SIGKILL)
        while time.monotonic() < deadline:
            now = children_of(process.pid)
            if len(now) == 2 and first[0] not in now:
                break
            time.sleep(0.1)
        now = children_of(process.pid)
        assert len(now) == 2 and first[0] not in now
        wait_http(url + "/status", timeout=30)
        for _ in range(10):
            assert requests.get(url + "/v1/gene/1017", timeout=10).status_code == 200
    finally:
        assert stop(process) == 0
    assert not [pid for pid in now if os.path.exists(f"/proc/{pid}")]  # workers gone too


def test_event_loop_option(tmp_path):
    """uvloop when installed (a dependency on Linux), asyncio on request; both serve."""
    try:
        import uvloop  # noqa: F401
        expected = "uvloop"
    except ImportError:
        expected = "asyncio"
    for flag, loop in (("--loop=auto", expected), ("--loop=asyncio", "asyncio")):
        process, url = start(tmp_path, "--processes=1", flag)
        try:
            wait_http(url + "/status", timeout=60)
            assert requests.get(url + "/v1/gene/1017", timeout=10).json()["symbol"] == "CDK2"
        finally:
            assert stop(process) == 0
        output = process.stdout.read().decode()
        assert f"{loop} event loop" in output, output


def test_gc_threshold_option(tmp_path):
    """Young collections every 10,000 allocations by default (see tune_gc); settable; 0 keeps Python's."""
    import gc
    for flag, expected in (("", 10000), ("--gc_threshold=2500", 2500), ("--gc_threshold=0", gc.get_threshold()[0])):
        process, url = start(tmp_path, "--processes=1", *([flag] if flag else []))
        try:
            wait_http(url + "/status", timeout=60)
            assert requests.get(url + "/v1/gene/1017", timeout=10).status_code == 200
        finally:
            assert stop(process) == 0
        output = process.stdout.read().decode()
        assert f"gc threshold {expected})" in output, output


def test_workers_listen_on_their_own_reuseport_sockets(tmp_path):
    """Several workers: one listening socket each (SO_REUSEPORT), so the kernel spreads connections."""
    import shutil
    import socket

    import pytest
    if not hasattr(socket, "SO_REUSEPORT") or not shutil.which("ss"):
        pytest.skip("needs SO_REUSEPORT and ss")
    process, url = start(tmp_path, "--processes=2")
    try:
        wait_http(url + "/status", timeout=60)
        port = url.rsplit(":", 1)[1]
        listing = subprocess.run(["ss", "-Htlnp", f"sport = :{port}"], capture_output=True, text=True).stdout
        pids = {part.split(",")[0] for part in listing.split("pid=")[1:]}
        assert len(listing.strip().splitlines()) == 2 and len(pids) == 2, listing
        assert str(process.pid) not in pids  # the supervisor does not listen
    finally:
        assert stop(process) == 0


def test_readme_journey_five_line_config(tmp_path, es_url):
    """The README's path for a new API: a 5-line config, the loader, index.py, on
    each engine (embedded: ES_HOST empty; Elasticsearch: ES_HOST set)."""
    import json
    import uuid

    docs = [{"_id": f"rs{n}", "chrom": str(n % 3 + 1), "gene": {"symbol": f"GENE{n}"}, "score": n}
            for n in range(1, 31)]
    (tmp_path / "variants.ndjson").write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    for host in ("", es_url):
        index = f"myvariants_{uuid.uuid4().hex[:6]}"
        (tmp_path / "config.py").write_text(
            f"ES_HOST = {host!r}\n"
            f"ES_INDICES = {{'variant': {index!r}}}\n"
            "API_NAME = 'My Variant API'\n")
        env = {**os.environ, "PYTHONPATH": ROOT, "EMBEDDED_DATA_DIR": str(tmp_path / "data")}
        loaded = subprocess.run([sys.executable, "-m", "biothings.web.load", "--conf=config", "--quiet",
                                 "variants.ndjson"], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert loaded.returncode == 0, loaded.stderr
        process, url = start(tmp_path, "--processes=1", f"--dir={tmp_path}", "--conf=config",
                             PYTHONPATH=ROOT)
        try:
            wait_http(url + "/status", timeout=60)
            assert requests.get(url + "/v1/variant/rs7", timeout=10).json()["gene"]["symbol"] == "GENE7"
            hits = requests.get(url + "/v1/query", params={"q": "chrom:2", "fields": "score"}, timeout=10).json()
            assert hits["total"] == 10 and all(hit["score"] % 3 == 1 for hit in hits["hits"])
            batch = requests.post(url + "/v1/query", data={"q": "GENE3,GENE4", "scopes": "gene.symbol"},
                                  timeout=10).json()
            assert [hit["_id"] for hit in batch] == ["rs3", "rs4"]
            assert requests.get(url + "/v1/metadata", timeout=10).json()["stats"]["total"] == 30
            assert "My Variant API" in requests.get(url + "/", timeout=10).text
        finally:
            assert stop(process) == 0


def run_index(tmp_path, *args):
    """``python index.py ARGS`` started in ``tmp_path`` for a start-up error: exits at once."""
    return subprocess.run([sys.executable, os.path.join(ROOT, "index.py"), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": ROOT})


def test_command_line_mistakes_are_one_line_no_traceback(tmp_path):
    result = run_index(tmp_path, "--prot=1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("usage: index.py")
    assert result.stderr.splitlines()[-1] == "index.py: error: unrecognized arguments: --prot=1"
    result = run_index(tmp_path, "--port=eighty")
    assert result.returncode == 2 and "argument --port: invalid int value: 'eighty'" in result.stderr
    result = run_index(tmp_path, "--conf=nonexistent")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: config module 'nonexistent' not found: no {tmp_path / 'nonexistent.py'}, and not importable "
        f"from the Python path (give --conf a module name or a .py file)"]
    result = run_index(tmp_path, "--conf=/no/such/conf.py")
    assert result.returncode == 1 and result.stderr.splitlines() == ["error: config file /no/such/conf.py not found"]


def test_config_mistakes_are_one_line_unless_debug(tmp_path):
    (tmp_path / "typo.py").write_text('ES_QUERY_BUILDR = "x"\n')
    result = run_index(tmp_path, "--conf=typo")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: typo.py: unknown setting ES_QUERY_BUILDR (did you mean ES_QUERY_BUILDER?); a setting of the "
        "app's own must be listed in APP_SETTINGS"]
    debug = run_index(tmp_path, "--conf=typo", "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "SettingsError" in debug.stderr


def test_help_shows_our_options_with_an_example(tmp_path):
    result = run_index(tmp_path, "--help")
    assert result.returncode == 0
    text = result.stdout
    for flag in ("--port", "--address", "--processes", "--loop", "--debug", "--autoreload", "--conf", "--dir",
                 "--shutdown_timeout", "--gc_threshold", "--http"):
        assert flag in text, flag
    assert "example: python index.py --conf=config --port=8000" in text
    assert "--logging" not in text and "log_file_prefix" not in text  # tornado's options are not ours


def test_the_loader_names_an_unreachable_host_and_the_way_out(tmp_path):
    port = free_port()  # nothing listens there
    (tmp_path / "remote.py").write_text(f'ES_HOST = "127.0.0.1:{port}"\nES_INDICES = {{"gene": "genes"}}\n')
    result = subprocess.run([sys.executable, "-m", "biothings.web.load", "--conf=remote",
                             os.path.join(ROOT, "biothings", "web", "demo", "genes.ndjson")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"error: http://127.0.0.1:{port}: GET / failed")
    assert "leave ES_HOST empty to load into the embedded engine" in first
