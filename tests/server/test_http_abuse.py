"""Hostile clients against ``python index.py`` (a separate process: its memory is measured).

A client that pipelines big answers and never reads them must not grow the
server's memory, and requests refused as malformed must not be waited for at
shutdown. Both HTTP servers are run; the write timeout is ours alone.
"""

import json
import os
import signal
import subprocess
import sys
import time

import orjson
import pytest

from tests.servers import free_port, memory_mib, wait_http
from tests.wire import Wire, get
from tests import data

ROOT = data.ROOT
BIG_QUERY = "/v1/query?q=__all__&size=1000"  # about 0.7 MB of JSON


@pytest.fixture(params=["biothings", "tornado"])
def index_py(request, embedded_dir):
    """``python index.py`` serving the embedded demo index, with a 2 s write timeout (a fresh
    process per test: the next test must not see the work left by the last one)."""
    port = free_port()
    env = {**os.environ, "ES_HOST": "", "EMBEDDED_DATA_DIR": embedded_dir, "EMBEDDED_DATA_FILES": "{}",
           "ES_INDICES": json.dumps({"gene": "genes"}), "HTTP_WRITE_TIMEOUT": "2"}
    process = subprocess.Popen(
        [sys.executable, "index.py", f"--port={port}", "--address=127.0.0.1", "--processes=1",
         f"--http={request.param}", "--shutdown_timeout=5"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    process.url = f"http://127.0.0.1:{port}"
    process.kind = request.param
    try:
        wait_http(process.url + "/status", timeout=60)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_pipelining_without_reading_keeps_memory_bounded(index_py):
    """200 pipelined ~0.7 MB answers, one small packet, a client that never reads: before
    back-pressure the server buffered them all (+200 MB); now it stops at the first ones."""
    warm = Wire(index_py.url, timeout=30)
    for _ in range(3):
        assert len(orjson.loads(warm.send(get(BIG_QUERY)).answer()[2])["hits"]) == 1000
    warm.close()
    before = memory_mib(index_py.pid)
    wire = Wire(index_py.url, receive_buffer=4096).send(get(BIG_QUERY) * 200)
    peak = before
    for _ in range(15):  # 1.5 s, less than the write timeout
        time.sleep(0.1)
        peak = max(peak, memory_mib(index_py.pid))
    assert peak - before < 50, f"RSS {before:.0f} -> {peak:.0f} MiB"
    if index_py.kind == "biothings":  # past the write timeout the connection is dropped
        time.sleep(2.5)
        answers = 0
        try:
            while True:
                wire.answer()
                answers += 1
        except (EOFError, ConnectionResetError):
            pass
        assert answers < 200
    wire.close()
    assert Wire(index_py.url).send(get("/v1/gene/1017")).answer()[0] == 200


def test_refused_requests_are_not_waited_for_at_shutdown(index_py):
    """tornado's HTTPInputError (no Host) once left the request counted in flight for good."""
    for request in (b"GET /v1/gene/1017 HTTP/1.1\r\n\r\n", b"GET /v1/gene/1017 HTTP/1.1\r\nHost: a/b\r\n\r\n"):
        wire = Wire(index_py.url).send(request)
        assert wire.answer()[0] == 400
        wire.close()
    index_py.send_signal(signal.SIGTERM)
    assert index_py.wait(20) == 0
    output = index_py.stdout.read().decode()
    assert "shutting down" in output
    assert "did not finish" not in output, output
    assert "Traceback" not in output and "ERROR" not in output, output
