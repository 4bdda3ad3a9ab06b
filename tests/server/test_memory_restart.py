"""A worker that keeps memory after large answers starts again in place (MEMORY_RESTART_BYTES).

Python's allocator keeps a 1 MiB arena while one object in it lives, so after a burst
of large answers a worker stays at several times its start-up size even once its
heaps are trimmed. ``python index.py`` then executes itself again in the same process:
the process id and the listening sockets stay, so the supervisor sees no exit and
connections arriving meanwhile wait in the backlog instead of being refused.
"""

import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest
import requests

from tests import data
from tests.servers import free_port, memory_mib, wait_http

BIG_QUERY = "/v1/query?q=__all__&size=1000"


class Server:
    """``python index.py`` with its log collected line by line."""

    def __init__(self, embedded_dir, processes, **settings):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "ES_HOST": "", "EMBEDDED_DATA_DIR": embedded_dir, "EMBEDDED_DATA_FILES": "{}",
               "ES_INDICES": json.dumps({"gene": "genes"}), **{k: str(v) for k, v in settings.items()}}
        self.process = subprocess.Popen(
            [sys.executable, "index.py", f"--port={self.port}", "--address=127.0.0.1",
             f"--processes={processes}", "--shutdown_timeout=5"],
            cwd=data.ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()
        wait_http(self.url + "/status", timeout=60)

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line)

    def logged(self, pattern):
        return [match for line in list(self.lines) for match in [re.search(pattern, line)] if match]

    def wait_logged(self, pattern, times=1, timeout=30):
        """The matches of ``pattern`` once it is logged ``times`` times (fewer: after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while len(self.logged(pattern)) < times and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.logged(pattern)

    def workers(self, count, timeout=30):
        """The process ids of the ``count`` workers, once each says it is serving."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = {int(match.group(1)) for match in self.logged(r"serving on .*\(pid (\d+)")}
            if len(pids) >= count:
                return pids
            time.sleep(0.05)
        raise AssertionError("".join(self.lines[-20:]))

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Prober(threading.Thread):
    """Asks for one gene over a new connection again and again; keeps every outcome."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url = url + "/v1/gene/1017"
        self.outcomes = []
        self.running = True

    def run(self):
        while self.running:
            try:
                response = requests.get(self.url, timeout=30)
                self.outcomes.append((response.status_code, response.json().get("_id")))
            except (requests.RequestException, ValueError) as exc:
                self.outcomes.append((type(exc).__name__, str(exc)[:200]))
            time.sleep(0.01)


@pytest.mark.parametrize("processes", [1, 2])
def test_a_worker_grown_past_the_budget_starts_again_in_place(embedded_dir, processes):
    server = Server(embedded_dir, processes, MEMORY_TRIM_BYTES=100_000, MEMORY_RESTART_BYTES=1024 * 1024)
    prober = Prober(server.url)
    try:
        workers = server.workers(processes)
        before = {pid: memory_mib(pid, "RssAnon") for pid in workers}
        prober.start()
        session = requests.Session()
        for _ in range(4 * processes):  # 0.7 MB answers: past MEMORY_TRIM_BYTES on every worker
            assert len(session.get(server.url + BIG_QUERY, timeout=60).json()["hits"]) == 1000
        session.close()
        restarted = server.wait_logged(r"starting again in place \(pid (\d+)\)")
        assert restarted, "".join(server.lines[-20:])
        pid = int(restarted[0].group(1))
        assert pid in workers  # the same process ...
        assert len(server.wait_logged(rf"serving on .*\(pid {pid},", times=2)) == 2  # ... started again
        time.sleep(0.5)
        prober.running = False
        prober.join(60)
        # a new start-up's memory, not the grown one
        after = memory_mib(pid, "RssAnon")
        assert after < before[pid] + 16, (before, after)  # within 16 MiB of the first start
        assert server.logged(r"more memory than at start-up after trimming \(MEMORY_RESTART_BYTES 1 MiB\)")
        assert not server.logged(r"exited with status")  # the supervisor saw no worker exit
        assert server.process.poll() is None
        # every probe answered, none refused or reset while the process started again
        assert prober.outcomes and set(prober.outcomes) == {(200, "1017")}, set(prober.outcomes)
        assert requests.get(server.url + "/v1/gene/1017", timeout=30).json()["_id"] == "1017"
    finally:
        prober.running = False
        server.stop()
    assert server.process.returncode == 0
    assert server.logged(r"shutting down")


def test_no_restart_when_the_budget_is_off(embedded_dir):
    server = Server(embedded_dir, 1, MEMORY_TRIM_BYTES=100_000, MEMORY_RESTART_BYTES=0)
    try:
        session = requests.Session()
        for _ in range(4):
            assert len(session.get(server.url + BIG_QUERY, timeout=60).json()["hits"]) == 1000
        session.close()
        time.sleep(3)  # the trim runs a second after the server goes idle
        assert not server.logged(r"starting again")
        assert len(server.logged(r"serving on")) == 1
    finally:
        server.stop()
    assert server.process.returncode == 0
