"""Servers the test session starts: a loopback Elasticsearch imitation and the API.

Kept out of conftest so benchmarks and scripts can start the same servers.
"""

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def memory_mib(pid, kind="VmRSS"):
    """A process's memory from ``/proc/<pid>/status`` in MiB: ``VmRSS`` (resident) or
    ``RssAnon`` (the part no file backs)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(kind + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {kind} for process {pid}")


def wait_for(check, seconds=20, interval=0.05):
    """Poll ``check()`` until it is truthy, at most ``seconds``; its last value (the event,
    not its speed, is what the tests check)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    return check()


def wait_http(url, timeout=30.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read()
        except Exception as exc:  # not up yet
            last = exc
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout}s: {last}")


def _signal_group(pgid, signum):
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def _stop_group(process, grace=10):
    """Stop a server started in its own process group, the whole group: SIGTERM, and SIGKILL
    for what is left after ``grace`` seconds (noida-db leaves children behind, parent pid 1,
    when only its first process is signalled)."""
    _signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(process.pid, signal.SIGKILL)
    process.wait()


class NoidaElasticsearch:
    """noida-db's Elasticsearch service (an ES 8 REST imitation from PyPI) on loopback."""

    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = None

    def start(self):
        beside = os.path.join(os.path.dirname(sys.executable), "noida-db")
        binary = beside if os.path.exists(beside) else shutil.which("noida-db")
        if binary is None:
            raise RuntimeError("noida-db is not installed (pip install -e .[test])")
        self.log = open(os.path.join(self.data_dir, "noida.log"), "wb")
        self.process = subprocess.Popen(
            [binary, "start", "--only", "elasticsearch", "--elasticsearch-port", str(self.port),
             "--data-dir", os.path.join(self.data_dir, "noida")],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)  # its own process group: see stop()
        try:
            wait_http(self.url + "/")
        except RuntimeError:
            self.stop()
            raise RuntimeError("noida-db did not start: " + open(self.log.name, errors="replace").read())
        return self

    def stop(self):
        if self.process is None:
            return
        _stop_group(self.process)
        self.process = None
        self.log.close()


class OsmemOpenSearch:
    """osmem-server (an in-memory OpenSearch 3 imitation from PyPI, a Go binary) on loopback."""

    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.url = None
        self.process = None

    def start(self, timeout=30.0):
        from osmem_server import resolve_binary
        self.log = open(os.path.join(self.data_dir, "osmem.log"), "wb")
        # --parent-pid: it exits with the test process even if stop() never runs
        self.process = subprocess.Popen(
            [resolve_binary(), "--addr", "127.0.0.1:0", "--no-ja", "--no-stdin-watch",
             "--parent-pid", str(os.getpid())],
            stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL, start_new_session=True)
        ready = {}

        def read_ready_line():  # its first JSON line on stdout names the URL
            for line in self.process.stdout:
                if line.startswith(b"{") and b'"url"' in line:
                    ready.update(json.loads(line))
                    return
        reader = threading.Thread(target=read_ready_line, daemon=True)
        reader.start()
        reader.join(timeout)
        if "url" not in ready:
            self.stop()
            raise RuntimeError("osmem-server did not start: " + open(self.log.name, errors="replace").read())
        self.url = ready["url"]
        wait_http(self.url + "/")
        return self

    def stop(self):
        if self.process is None:
            return
        _stop_group(self.process)
        self.process = None
        self.log.close()


class LoopbackServer:
    """A tornado application served from a background thread on a loopback port.

    Subclasses give ``make_app()``, and may set up and tear down around serving
    (``started``, ``stopped``). An error while starting is raised by ``start()``.
    """

    start_timeout = 10
    stop_timeout = 10

    def __init__(self, port=None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._ready = threading.Event()
        self._stop = None
        self._loop = None
        self._error = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def make_app(self):
        raise NotImplementedError

    def server_options(self):
        """Keyword arguments of tornado's ``HTTPServer`` (see ``listen``)."""
        return {}

    async def listen(self, app):
        """Serve ``app`` on ``self.port`` (tornado's ``HTTPServer`` unless overridden); returns the server."""
        import tornado.httpserver
        server = tornado.httpserver.HTTPServer(app, **self.server_options())
        server.listen(self.port, "127.0.0.1")
        return server

    async def started(self, app):
        """Runs once the port listens, before ``start()`` returns."""

    async def stopped(self, app):
        """Runs after the server stopped listening."""

    def _run(self):
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    async def _serve(self):
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = self.make_app()
        server = await self.listen(app)
        await self.started(app)
        self._ready.set()
        await self._stop.wait()
        server.stop()
        await self.stopped(app)

    def start(self):
        self.thread.start()
        self._ready.wait(self.start_timeout)
        if self._error is not None:
            raise self._error
        return self

    def stop(self):
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(self.stop_timeout)


class APIServer(LoopbackServer):
    """A BioThings app served from a background thread on a loopback port."""

    start_timeout = 60
    stop_timeout = 15

    def __init__(self, web_settings):
        super().__init__()
        self.web_settings = web_settings

    def make_app(self):
        return self.web_settings.get_app()

    async def listen(self, app):
        """The server ``index.py`` runs (biothings.web.httpserver), configured alike."""
        from biothings.web.index_base import make_server
        server = make_server(app, self.web_settings)
        await server.listen(self.port, "127.0.0.1")
        return server

    async def started(self, app):
        await app.startup()
        self.app = app

    async def stopped(self, app):
        await app.shutdown()
