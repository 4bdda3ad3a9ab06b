"""The embedded engine through the HTTP API, on 77,000 genes: batches, searches, throughput.

    python benchmarks/bench_embedded_api.py [--data-dir /tmp/bench-genes77k] [--runs 40]
        [--wrk-duration 10s] [--rounds 3] [--cases ...] [--skip-throughput]

Builds once the 77,000-gene index of ``genes77k.py`` (1,965 sample genes under new
ids, fields varied), starts ``index.py --processes=1`` on it (pinned to
``--server-cpu``), and reports:

1. **Latency**, one client, one request at a time, warm (the cases' first requests
   are discarded): id batches of 10/100/1,000 (``POST /v1/gene``, full documents;
   ``POST /v1/query`` with ``scopes=_id``), term batches (``POST /v1/query`` with
   ``scopes=symbol``), one annotation, full-text, facets and range queries; p50/p99
   of the client's wall time and the server's CPU per request (``/proc``). Each
   batch draws its ids at random (seeded) from the whole index, a fifth of them
   absent from it (misses cost a lookup too).
2. **Throughput** of ``GET /v1/query?q=cdk2`` (40 hits in this index) at 32
   connections (wrk), with one process pinned to ``--server-cpu`` (wrk on
   ``--aux-cpu``) and with the default processes (one per core, unpinned), in
   interleaved rounds; medians.

Pass ``--server`` (``python index.py ...`` arguments, repeated) to run another build
of the server, e.g. ``--python /tmp/old/.venv/bin/python --root /tmp/old``.
"""

import argparse
import http.client
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import genes77k  # noqa: E402
from tests.servers import free_port, wait_http  # noqa: E402
from bench_vs_biothings import thread_cpu_seconds  # noqa: E402

SEED = 11
MISSING_SHARE = 0.2


class Cases:
    """The requests of the latency table: (name, method, path, body maker)."""

    def __init__(self, ids, symbols):
        self.rng = random.Random(SEED)
        self.ids = ids
        self.symbols = symbols

    def draw(self, pool, count, missing):
        chosen = self.rng.sample(pool, count)
        for position in range(int(count * MISSING_SHARE)):
            chosen[position * int(1 / MISSING_SHARE)] = missing(position)
        return chosen

    def id_batch(self, count):
        return self.draw(self.ids, count, lambda n: f"nope{n}")

    def symbol_batch(self, count):
        return self.draw(self.symbols, count, lambda n: f"NOSUCHGENE{n}")

    def table(self):
        """name -> (method, path maker, body maker)."""
        json_body = json.dumps
        out = {}
        for count in (10, 100, 1000):
            out[f"id batch {count:,} (POST /v1/gene)"] = (
                "POST", lambda: "/v1/gene", lambda c=count: json_body({"ids": self.id_batch(c)}))
        out["id batch 1,000 (POST /v1/query scopes=_id)"] = (
            "POST", lambda: "/v1/query", lambda: json_body({"q": self.id_batch(1000), "scopes": "_id"}))
        for count in (10, 100, 1000):
            out[f"term batch {count:,} (POST /v1/query scopes=symbol)"] = (
                "POST", lambda: "/v1/query",
                lambda c=count: json_body({"q": self.symbol_batch(c), "scopes": "symbol"}))
        out["one annotation (GET /v1/gene/<id>)"] = (
            "GET", lambda: f"/v1/gene/{self.rng.choice(self.ids)}", lambda: None)
        terms = ["kinase", "cdk2", "insulin", "receptor", "zinc finger", "tp53", "protein", "cyclin dependent"]
        out["full-text (GET /v1/query?q=<word>, 10 hits)"] = (
            "GET", lambda: "/v1/query?q=" + self.rng.choice(terms).replace(" ", "+"), lambda: None)
        out["facets type_of_gene,taxid over all (size=0)"] = (
            "GET", lambda: "/v1/query?q=__all__&facets=type_of_gene,taxid&size=0", lambda: None)
        out["facets over a full-text match"] = (
            "GET", lambda: f"/v1/query?q={self.rng.choice(terms[:4])}&facets=type_of_gene,chromosome", lambda: None)

        def range_query():
            low = self.rng.randint(0, 2900)
            return f"/v1/query?q=pubmed_count:[{low}+TO+{low + 50}]&size=10"
        out["range pubmed_count:[n TO n+50] (10 hits)"] = ("GET", range_query, lambda: None)

        def genomic_range():
            start = self.rng.randint(1, 230_000_000)
            return f"/v1/query?q=genomic_pos.start:[{start}+TO+{start + 1_000_000}]&size=10"
        out["range genomic_pos.start, 1 Mb (10 hits)"] = ("GET", genomic_range, lambda: None)
        return out


def runs_for(name, runs):
    if "1,000" in name:
        return runs
    if "100 " in name:
        return runs * 3
    return runs * 10


def measure(port, pid, name, method, path, body, runs, warmup=5):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/json"}
    requests = [(path(), body()) for _ in range(runs + warmup)]
    times, statuses, sizes = [], set(), []
    cpu_before = None
    for position, (target, payload) in enumerate(requests):
        if position == warmup:
            cpu_before = thread_cpu_seconds(pid)
        started = time.perf_counter()
        connection.request(method, target, body=payload, headers=headers if payload else {})
        response = connection.getresponse()
        data = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        statuses.add(response.status)
        if position >= warmup:
            times.append(elapsed)
            sizes.append(len(data))
    cpu = (thread_cpu_seconds(pid) - cpu_before) * 1000 / runs
    connection.close()
    times.sort()
    return {"case": name, "runs": runs, "p50_ms": statistics.median(times),
            "p99_ms": times[min(len(times) - 1, round(0.99 * (len(times) - 1)))],
            "cpu_ms": cpu, "statuses": sorted(statuses), "bytes": int(statistics.median(sizes))}


def start_server(args, processes, cpus, port):
    env = dict(os.environ, BENCH_DATA_DIR=os.path.abspath(args.data_dir), PYTHONUNBUFFERED="1")
    env.pop("ES_HOST", None)
    argv = [args.python, os.path.join(args.root, "index.py"), f"--conf={os.path.join(HERE, 'embedded_config.py')}",
            f"--port={port}", "--address=127.0.0.1", f"--processes={processes}", *args.server_arg]
    if cpus:
        argv = ["taskset", "-c", cpus] + argv
    log = open(os.path.join(args.out, f"server-{processes}-{port}.log"), "wb")
    proc = subprocess.Popen(argv, cwd=args.root, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    wait_http(f"http://127.0.0.1:{port}/v1/gene/1017", timeout=120)
    return proc


def stop_server(proc):
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wrk(args, port, pid, label):
    url = f"http://127.0.0.1:{port}/v1/query?q=cdk2"
    base = ["wrk", "-t2", "-c32", "--latency"]
    if args.aux_cpu and label == "1 process":
        base = ["taskset", "-c", args.aux_cpu] + base
    subprocess.run(base + ["-d", args.wrk_warmup, url], capture_output=True)
    cpu_before = thread_cpu_seconds(pid)
    out = subprocess.run(base + ["-d", args.wrk_duration, url], capture_output=True, text=True).stdout
    cpu = thread_cpu_seconds(pid) - cpu_before
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def latency(pct):
        match = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out)
        value, unit = float(match.group(1)), match.group(2)
        return value * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    return {"rps": rps, "p50_ms": latency(50), "p99_ms": latency(99), "cpu_ms": cpu * 1000 / total,
            "cores": cpu / float(args.wrk_duration.rstrip("s")), "errors": int(errors.group(1)) if errors else 0}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="/tmp/bench-genes77k")
    parser.add_argument("--docs", type=int, default=77_000)
    parser.add_argument("--runs", type=int, default=40, help="1,000-term batches per case (smaller: more)")
    parser.add_argument("--cases", default="", help="a regular expression: only the latency cases it finds")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds (1 process, default processes)")
    parser.add_argument("--wrk-duration", default="10s")
    parser.add_argument("--wrk-warmup", default="3s")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--aux-cpu", default="1")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--root", default=ROOT, help="checkout whose index.py runs")
    parser.add_argument("--server-arg", action="append", default=[])
    parser.add_argument("--out", default=os.path.join(HERE, "results", time.strftime("embedded-%Y%m%d-%H%M%S")))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    started = time.perf_counter()
    docs = list(genes77k.generate(args.docs))
    genes77k.build(args.data_dir, args.docs)
    print(f"index: {args.docs:,} documents in {args.data_dir} ({time.perf_counter() - started:.0f} s)",
          file=sys.stderr)
    cases = Cases([d["_id"] for d in docs], [d["symbol"] for d in docs])
    table = cases.table()
    if args.cases:
        table = {name: spec for name, spec in table.items() if re.search(args.cases, name)}

    port = free_port()
    server = start_server(args, 1, args.server_cpu, port)
    try:
        rows = [measure(port, server.pid, name, method, path, body, runs_for(name, args.runs))
                for name, (method, path, body) in table.items()]
    finally:
        stop_server(server)
    lines = [f"Latency, one client, warm: {args.docs:,} documents, `--processes=1` on CPU {args.server_cpu}",
             "", "| case | runs | status | answer bytes (median) | p50 ms | p99 ms | server CPU ms/req |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['case']} | {row['runs']} | {','.join(map(str, row['statuses']))} | {row['bytes']:,} "
                     f"| {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['cpu_ms']:.1f} |")
    print("\n".join(lines) + "\n", flush=True)

    throughput = {}
    if not args.skip_throughput and shutil.which("wrk"):
        for _round in range(args.rounds):
            for label, processes, cpus in (("1 process", 1, args.server_cpu), ("default processes", 0, None)):
                port = free_port()
                server = start_server(args, processes, cpus, port)
                try:
                    throughput.setdefault(label, []).append(wrk(args, port, server.pid, label))
                finally:
                    stop_server(server)
        lines = ["Throughput, `GET /v1/query?q=cdk2` (40 hits), wrk -t2 -c32 "
                 f"-d{args.wrk_duration}, {args.rounds} interleaved rounds, medians (min-max)", "",
                 "| server | req/s | p50 ms | p99 ms | server CPU ms/req | server cores used | errors |",
                 "|---|---:|---:|---:|---:|---:|---:|"]
        for label, results in throughput.items():
            rps = [r["rps"] for r in results]
            med = {key: statistics.median(r[key] for r in results) for key in results[0]}
            lines.append(f"| {label} | {med['rps']:.0f} ({min(rps):.0f}-{max(rps):.0f}) | {med['p50_ms']:.1f} "
                         f"| {med['p99_ms']:.1f} | {med['cpu_ms']:.3f} | {med['cores']:.2f} "
                         f"| {sum(r['errors'] for r in results)} |")
        print("\n".join(lines), flush=True)
    with open(os.path.join(args.out, "summary.json"), "w") as handle:
        json.dump({"args": vars(args), "latency": rows, "throughput": throughput}, handle, indent=1)
    print(f"\nresults -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
