#!/usr/bin/env python3
"""Where the latency tail comes from: the server's own slow moments, or the machine's.

    python benchmarks/tail_windows.py [--case query_post] [--duration 20s] [--window 0.1]

Runs one case of ``$BENCH_DIR/run_bench.sh`` (default the 20-id batch) against our
server on one core, started as ``bench_vs_biothings.py`` starts it, with the JSON access log on
(``ACCESS_LOG_LEVEL=INFO``: one line per request, about a tenth of the CPU of a fast
request, so throughput here is a little lower than in the benchmark). Then it cuts
the run into windows of ``--window`` seconds by finishing time and reports:

- throughput per window (slowest, median, fastest): how steady the machine was;
- the spread of server-side latency *inside* a window (p90 and max over median): a
  server that serves its connections unfairly shows a wide spread here;
- how many of the requests at or above the run's p99 finished in the slowest
  quarter of the windows.

At a fixed number of connections, latency is connections / throughput (Little's
law), so if the p99 requests sit in the slow windows and the spread inside a
window is narrow, the tail is the machine slowing down, not requests left behind.
"""

import argparse
import datetime
import json
import os
import shutil
import statistics
import sys
import time

from bench_vs_biothings import CASES, HERE, default_bench_dir, log, run_matrix, start_server, start_stub


def percentile(sorted_values, fraction):
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


def read_access_log(path, since, until):
    """(finish time in s, duration in s) of each request logged between since and until."""
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if "duration_ms" not in record:
                continue
            end = datetime.datetime.fromisoformat(record["time"]).timestamp()
            if since <= end <= until:
                rows.append((end, record["duration_ms"] / 1000.0))
    return rows


def analyse(rows, window, connections, start=None):
    """The report lines for (finish time, duration) rows; windows count from ``start``
    (default: the first finish)."""
    durations = sorted(d for _, d in rows)
    p50, p99 = percentile(durations, 0.5), percentile(durations, 0.99)
    if start is None:
        start = min(end for end, _ in rows)
    windows = {}
    for end, duration in rows:
        windows.setdefault(int((end - start) / window), []).append(duration)
    if len(windows) > 1:  # the last window is cut short by the end of the run
        windows.pop(max(windows))
    stats = []
    for values in windows.values():
        values.sort()
        median = percentile(values, 0.5)
        stats.append({"rps": len(values) / window, "median": median,
                      "p90_ratio": percentile(values, 0.9) / median, "max_ratio": values[-1] / median,
                      "tail": sum(1 for v in values if v >= p99)})
    stats.sort(key=lambda s: s["rps"])
    rps = [s["rps"] for s in stats]
    slow_quarter = stats[:max(1, len(stats) // 4)]
    tail_total = sum(s["tail"] for s in stats)
    tail_slow = sum(s["tail"] for s in slow_quarter)
    return [
        f"requests {len(rows)}, windows of {window * 1000:.0f} ms: {len(stats)}",
        f"server-side latency: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms (p99/p50 {p99 / p50:.2f})",
        f"throughput per window (req/s): slowest {rps[0]:.0f}, median {statistics.median(rps):.0f}, "
        f"fastest {rps[-1]:.0f} (fastest/slowest {rps[-1] / rps[0]:.1f})",
        f"{connections} connections / slowest-quarter median throughput = "
        f"{connections / statistics.median(s['rps'] for s in slow_quarter) * 1000:.1f} ms; "
        f"/ median throughput = {connections / statistics.median(rps) * 1000:.1f} ms",
        f"spread inside a window (medians over windows): p90/median "
        f"{statistics.median(s['p90_ratio'] for s in stats):.2f}, max/median "
        f"{statistics.median(s['max_ratio'] for s in stats):.2f}",
        f"requests at or above p99: {tail_total}, of which {tail_slow} "
        f"({100 * tail_slow / max(1, tail_total):.0f}%) in the slowest quarter of the windows",
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", default="query_post", choices=CASES)
    ap.add_argument("--duration", default="20s")
    ap.add_argument("--window", type=float, default=0.1, help="window length in seconds")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--server-cpu", default="0")
    ap.add_argument("--aux-cpu", default="1", help="CPU list for the ES stub and wrk")
    ap.add_argument("--bench-dir", default=default_bench_dir())
    ap.add_argument("--python", default=sys.executable, help="interpreter for our server")
    ap.add_argument("--out", default=None, help="logs dir [benchmarks/results/tail-<timestamp>]")
    args = ap.parse_args()
    if not args.bench_dir:
        ap.error("--bench-dir: no run_bench.sh found (set BENCH_DIR)")
    if not shutil.which("wrk"):
        ap.error("wrk not found (apt-get install -y wrk)")
    out = os.path.abspath(args.out or os.path.join(
        HERE, "results", "tail-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S")))
    os.makedirs(out, exist_ok=True)
    # run_matrix's settings: no waiting for quiet, the warm-up is a run of its own (below)
    args.warmup, args.quiet_wait, args.quiet_max_pct = "0", 0, 15

    procs = []
    try:
        stub, env = start_stub(args, out, procs, {"ACCESS_LOG_LEVEL": "INFO", "ACCESS_LOG_FORMAT": "json"})
        server, url = start_server(args, "ours", 1, args.server_cpu, env, out, procs)
        log(f"warm-up, then {args.duration} of {args.case} at {args.conns} connections")
        warmup = argparse.Namespace(**{**vars(args), "duration": "3s"})
        run_matrix(warmup, url, server.pid, stub.pid, os.path.join(out, "warmup"), [args.case], "warm-up")
        since = time.time()
        row = run_matrix(args, url, server.pid, stub.pid, os.path.join(out, "run"), [args.case],
                         "measured")[args.case]
        until = time.time()
    finally:
        for p in reversed(procs):
            p.stop()

    rows = read_access_log(os.path.join(out, "ours.log"), since, until)
    if len(rows) < 100:
        sys.exit(f"only {len(rows)} requests in the access log ({out}/ours.log)")
    print(f"{args.case}, {args.conns} connections, {args.duration}, one process on CPU {args.server_cpu}")
    print(f"wrk: {row['rps']:.0f} req/s, p50 {row['p50_us'] / 1000:.1f} ms, p99 {row['p99_us'] / 1000:.1f} ms")
    for line in analyse(rows, args.window, args.conns, since):
        print(line)


if __name__ == "__main__":
    main()
