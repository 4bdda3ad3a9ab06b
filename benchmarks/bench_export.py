"""Benchmark of whole result sets: export throughput and memory, and the bytes compression saves.

    python benchmarks/bench_export.py [--copies 20] [--docs 77000] [--keep DIR]

1. Export throughput (documents per second) and the server's peak RSS while exporting every
   hit (``GET /v1/export?q=__all__``, NDJSON, identity and gzip/zstd) from:
   - the 1,965 sample genes ``--copies`` times over (other ids), on the embedded engine;
   - ``--docs`` gene-like documents generated from the sample (``bench_embedded.generate``).
   Each server is ``python index.py`` in a subprocess; its RSS is read from
   ``/proc/<pid>/status`` (``VmRSS`` after a warm-up export, and its highest value, read
   every 10 ms, during the exports).
2. Bytes of a ``size=1000`` answer (``/v1/query?q=__all__&size=1000``) per content coding.

Prints markdown tables (docs/benchmarks.md, "Whole result sets"). Use small numbers while
developing (``--copies 2 --docs 5000``); the figures in the docs come from a quiet machine.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import orjson
import requests

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_embedded import generate  # noqa: E402

from biothings.web.load import load  # noqa: E402
from tests.servers import free_port, wait_http  # noqa: E402

DEMO = os.path.join(ROOT, "biothings", "web", "demo")


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def copies_of_sample(path, copies):
    with open(os.path.join(DEMO, "genes.ndjson"), "rb") as handle:
        sample = [orjson.loads(line) for line in handle if line.strip()]
    with open(path, "wb") as out:
        for copy in range(copies):
            for doc in sample:
                out.write(orjson.dumps(dict(doc, _id=f"{doc['_id']}-{copy}" if copy else doc["_id"])) + b"\n")
    return len(sample) * copies


def build(work, name, source):
    config = type("config", (), {"ES_HOST": "", "ES_INDICES": {"gene": "genes"},
                                 "EMBEDDED_DATA_DIR": os.path.join(work, name)})
    load(config, source, mapping=os.path.join(DEMO, "genes.mapping.json"),
         meta=os.path.join(DEMO, "genes.meta.json"), progress=False)
    return os.path.join(work, name)


class Server:
    """``python index.py`` on an embedded data directory."""

    def __init__(self, data_dir, **settings):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "ES_HOST": "", "EMBEDDED_DATA_DIR": data_dir, "EMBEDDED_DATA_FILES": "{}",
               "ES_INDICES": json.dumps({"gene": "genes"}), "ACCESS_LOG_LEVEL": "ERROR",
               **{key: str(value) for key, value in settings.items()}}
        self.process = subprocess.Popen([sys.executable, "index.py", f"--port={self.port}", "--address=127.0.0.1"],
                                        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_http(self.url + "/status", timeout=120)

    def stop(self):
        self.process.terminate()
        self.process.wait(30)


class RSSSampler(threading.Thread):
    """The highest ``VmRSS`` of a process while it runs (read every 10 ms)."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = status_kib(pid, "VmRSS")
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(0.01):
            self.peak = max(self.peak, status_kib(self.pid, "VmRSS"))

    def stop(self):
        self.done.set()
        self.join()
        return self.peak


def export(server, coding):
    """(documents, bytes on the wire, seconds, peak RSS KiB) of one export of every hit."""
    sampler = RSSSampler(server.process.pid)
    sampler.start()
    started = time.perf_counter()
    size = lines = 0
    with requests.get(server.url + "/v1/export", params={"q": "__all__"}, stream=True, timeout=3600,
                      headers={"Accept-Encoding": coding}) as response:
        response.raise_for_status()
        for chunk in response.raw.stream(256 * 1024, decode_content=False):
            size += len(chunk)
        seconds = time.perf_counter() - started
    peak = sampler.stop()
    if coding == "identity":  # count the documents once, from an identity export
        with requests.get(server.url + "/v1/export", params={"q": "__all__"}, stream=True, timeout=3600,
                          headers={"Accept-Encoding": "identity"}) as response:
            lines = sum(1 for line in response.iter_lines() if line)
    return lines, size, seconds, peak


def bench_exports(name, data_dir, runs):
    rows = []
    server = Server(data_dir)
    try:
        requests.get(server.url + "/v1/export", params={"q": "symbol:CDK2"}, timeout=60)  # warm
        # documents in the index (a generated id may repeat one of the sample's: the last one wins)
        expected = requests.get(server.url + "/v1/query", params={"q": "__all__", "size": 0}, timeout=60).json()["total"]
        baseline = status_kib(server.process.pid, "VmRSS")
        for coding in ("identity", "gzip", "zstd"):
            best, peak = None, 0
            for _ in range(runs):
                docs, size, seconds, highest = export(server, coding)
                best = seconds if best is None else min(best, seconds)
                peak = max(peak, highest)
                if coding == "identity":
                    assert docs == expected, (docs, expected)
            rows.append((name, coding, expected, size, best, baseline, peak))
    finally:
        server.stop()
    return rows


def bench_compression(data_dir):
    server = Server(data_dir)
    try:
        rows = []
        for coding in ("identity", "gzip", "zstd"):
            response = requests.get(server.url + "/v1/query", params={"q": "__all__", "size": 1000}, stream=True,
                                    headers={"Accept-Encoding": coding}, timeout=60)
            body = response.raw.read(decode_content=False)
            rows.append((coding, len(body), response.headers.get("Content-Encoding", "identity")))
        return rows
    finally:
        server.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=20, help="the sample this many times over")
    parser.add_argument("--docs", type=int, default=77_000, help="generated gene-like documents")
    parser.add_argument("--runs", type=int, default=3, help="exports per coding (the best is kept)")
    parser.add_argument("--keep", help="work directory to keep (default: a temp dir)")
    args = parser.parse_args()
    work = args.keep or tempfile.mkdtemp(prefix="bench_export_")
    os.makedirs(work, exist_ok=True)

    copies = os.path.join(work, "copies.ndjson")
    copies_of_sample(copies, args.copies)
    generated = os.path.join(work, "generated.ndjson")
    generate(generated, args.docs)
    sets = [(f"sample x {args.copies}", build(work, "copies", copies)),
            (f"generated from the sample ({args.docs:,} lines)", build(work, "generated", generated))]

    print("| index | coding | docs | bytes sent | seconds | docs/s | RSS before (MiB) | peak RSS during (MiB) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, data_dir in sets:
        for index, coding, docs, size, seconds, baseline, peak in bench_exports(name, data_dir, args.runs):
            print(f"| {index} | {coding} | {docs:,} | {size:,} | {seconds:.2f} | {docs / seconds:,.0f} | "
                  f"{baseline / 1024:.1f} | {peak / 1024:.1f} |")
    print()
    print("| `size=1000` answer | bytes | saved |")
    print("|---|---:|---:|")
    rows = bench_compression(sets[0][1])
    identity = rows[0][1]
    for coding, size, answered in rows:
        print(f"| {answered} | {size:,} | {100 * (1 - size / identity):.1f}% |")


if __name__ == "__main__":
    main()
