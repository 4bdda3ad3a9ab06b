"""``python index.py``: first start builds the demo index, then serves it."""

import os
import signal
import subprocess
import sys

import requests

from tests.servers import free_port, wait_http

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
