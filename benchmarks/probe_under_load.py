"""The cheap probe's latency while expensive requests run, and the memory they leave.

    python benchmarks/probe_under_load.py [--copies 40] [--seconds 10] [--concurrency 1]
        [--cases batch,yaml,sort,facets,refused] [--server-arg=--switch_interval=0.005]

Builds once (in ``--data-dir``) an embedded index of the demo genes copied ``--copies``
times under new ids (40 copies: 78,600 documents, the size of the 77k human genes),
starts ``python index.py --processes=1`` on it, and for each case keeps
``--concurrency`` expensive requests running for ``--seconds`` while one client sends
the probe, ``GET /v1/gene/1017``, in a closed loop. Reports per case the probe's
p50/p99/max, the expensive requests' statuses and times, and the server's resident
memory: before, at its peak, and after the case plus an idle pause (``--idle``: what
``MEMORY_TRIM_BYTES`` gives back). The target (docs/benchmarks.md): probe p99 under
50 ms while one expensive request runs.
"""

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path.insert(0, ROOT)

from tests.servers import free_port, wait_http  # noqa: E402

DEMO = os.path.join(ROOT, "biothings", "web", "demo")
SORT_KEYS = ("-pubmed_count,ensembl.gene,-taxid,type_of_gene,map_location,chromosome,"
             "-genomic_pos.start,genomic_pos.end,genomic_pos.chr,MIM")
CASES = {
    # name: (method, path, JSON body or None)
    "batch": ("POST", "/v1/query", {"q": ["protein-coding"] * 10, "scopes": ["type_of_gene"], "size": 1000,
                                    "fields": "all"}),  # 10,000 hits: the MAX_ANSWER_HITS budget
    "yaml": ("GET", "/v1/query?q=__all__&size=1000&format=yaml", None),
    "sort": ("GET", f"/v1/query?q=__all__&size=1000&sort={SORT_KEYS}", None),
    "facets": ("GET", "/v1/query?q=__all__&size=0&facet_size=20&facets=go.BP.id(go.MF.id(go.CC.id))", None),
    "refused": ("POST", "/v1/query", {"q": ["protein-coding"] * 1000, "scopes": ["type_of_gene"],
                                      "size": 1000}),  # 1,000,000 hits asked: a 400 before searching
}


def build_index(data_dir, copies, source):
    """The demo genes ``copies`` times (new ids) as the embedded index ``genes``, built once."""
    from biothings.web.engines.embedded import ensure_index
    marker = os.path.join(data_dir, f".copies-{copies}")
    if os.path.exists(marker):
        return
    documents = os.path.join(data_dir, "genes.ndjson")
    with open(source, "rb") as handle:
        lines = [json.loads(line) for line in handle if line.strip()]
    with open(documents, "w") as out:
        for copy in range(copies):
            for doc in lines:
                out.write(json.dumps(dict(doc, _id=doc["_id"] if not copy else f"{doc['_id']}_{copy}")) + "\n")
    ensure_index(data_dir, "genes", documents, os.path.join(DEMO, "genes.mapping.json"),
                 os.path.join(DEMO, "genes.meta.json"))
    os.remove(documents)
    open(marker, "w").close()


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def call(port, method, path, body=None, timeout=120):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def run_case(port, pid, name, seconds, concurrency, idle):
    method, path, body = CASES.get(name, (None, None, None))
    stop = threading.Event()
    statuses, durations = {}, []

    def expensive():
        while not stop.is_set():
            started = time.perf_counter()
            status = call(port, method, path, body)
            durations.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1

    before = rss_mib(pid)
    workers = [threading.Thread(target=expensive) for _ in range(concurrency if method else 0)]
    for worker in workers:
        worker.start()
    time.sleep(0.5)  # the expensive requests are in flight
    probe = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    latencies, peak = [], before
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        probe.request("GET", "/v1/gene/1017")
        probe.getresponse().read()
        latencies.append(time.perf_counter() - started)
        if len(latencies) % 20 == 0:
            peak = max(peak, rss_mib(pid))
    probe.close()
    stop.set()
    for worker in workers:
        worker.join()
    time.sleep(idle)
    latencies.sort()
    return {
        "case": name, "probes": len(latencies),
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "max_ms": 1000 * latencies[-1],
        "expensive": ", ".join(f"{count}x {status}" for status, count in sorted(statuses.items())) or "-",
        "expensive_s": statistics.median(durations) if durations else None,
        "rss_before": before, "rss_peak": max(peak, rss_mib(pid)), "rss_after": rss_mib(pid),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=40)
    parser.add_argument("--source", default=os.path.join(DEMO, "genes.ndjson"))
    parser.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "biothings-probe-bench"))
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--idle", type=float, default=3, help="seconds idle after each case, before RSS is read")
    parser.add_argument("--cases", default="none," + ",".join(CASES))
    parser.add_argument("--server-arg", action="append", default=[], help="extra argument of index.py")
    args = parser.parse_args()

    os.makedirs(args.data_dir, exist_ok=True)
    build_index(args.data_dir, args.copies, args.source)
    port = free_port()
    env = dict(os.environ, EMBEDDED_DATA_DIR=args.data_dir, EMBEDDED_DATA_FILES="{}", ACCESS_LOG_LEVEL="ERROR")
    server = subprocess.Popen([sys.executable, os.path.join(ROOT, "index.py"), f"--port={port}",
                               "--address=127.0.0.1", "--processes=1", *args.server_arg],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/gene/1017")
        rows = [run_case(port, server.pid, name, args.seconds, args.concurrency, args.idle)
                for name in args.cases.split(",") if name]
    finally:
        server.terminate()
        server.wait(30)
    print(f"Probe GET /v1/gene/1017 while {args.concurrency} expensive request(s) run, {args.seconds:g} s a case, "
          f"one server process, {args.copies} copies of the demo genes.\n")
    print("| case | probes | probe p50 / p99 / max (ms) | expensive answers | expensive median (s) "
          "| RSS before / peak / after (MiB) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        took = f"{row['expensive_s']:.2f}" if row["expensive_s"] is not None else "-"
        print(f"| {row['case']} | {row['probes']} | {row['p50_ms']:.1f} / {row['p99_ms']:.1f} / {row['max_ms']:.1f} "
              f"| {row['expensive']} | {took} | {row['rss_before']:.0f} / {row['rss_peak']:.0f} / "
              f"{row['rss_after']:.0f} |")


if __name__ == "__main__":
    main()
