"""Graceful shutdown of ``python index.py``: SIGTERM stops accepting new
connections, lets in-flight requests finish, closes engine clients, exits 0."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from tests.faultproxy import FaultProxy
from tests.servers import free_port, wait_http
from tests import data

ROOT = data.ROOT


@pytest.fixture
def slow_engine(es_url):
    proxy = FaultProxy(es_url).start()
    yield proxy
    proxy.stop()


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.parametrize("processes", [1, 2])
def test_sigterm_finishes_in_flight_requests(tmp_path, slow_engine, es_index, processes):
    port = free_port()
    env = {**os.environ, "ES_HOST": slow_engine.url, "ES_INDICES": json.dumps({"gene": es_index}),
           "ES_REQUEST_TIMEOUT": "30", "EMBEDDED_DATA_DIR": str(tmp_path / "data")}
    process = subprocess.Popen(
        [sys.executable, "index.py", f"--port={port}", "--address=127.0.0.1", f"--processes={processes}",
         "--shutdown_timeout=15"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/status", timeout=60)
        for _ in range(processes * 3):
            assert requests.get(url + "/v1/gene/1017", timeout=10).status_code == 200
        slow_engine.set("slow", delay=2.5)
        searches = slow_engine.requests["/" + es_index + "/_search"]
        results = []
        in_flight = threading.Thread(target=lambda: results.append(
            requests.get(url + "/v1/query", params={"q": "cdk2", "fields": "symbol"}, timeout=30)))
        in_flight.start()
        deadline = time.monotonic() + 10
        while slow_engine.requests["/" + es_index + "/_search"] == searches and time.monotonic() < deadline:
            time.sleep(0.02)
        assert slow_engine.requests["/" + es_index + "/_search"] > searches  # the request is at the engine
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert process.poll() is None  # still finishing the request
        assert refused(port)  # but no longer accepting
        in_flight.join(30)
        assert results and results[0].status_code == 200
        assert results[0].json()["hits"][0]["symbol"] == "CDK2"
        assert process.wait(20) == 0
        assert time.monotonic() - started < 10
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = process.stdout.read().decode()
    assert output.count("shutting down") == processes, output
    assert output.count("closed the elasticsearch engine client") == processes, output
