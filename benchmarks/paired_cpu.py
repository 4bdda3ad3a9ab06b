#!/usr/bin/env python3
"""CPU per request of two or more servers, paired: for A/B comparisons on a machine that is not quiet.

    python benchmarks/paired_cpu.py --server old=/tmp/old --server new=. \\
        [--server old-venv=/tmp/old=/tmp/venv-old/bin/python] [--cases annotation,query] [--pairs 6]

Every server (``label=checkout[=python]``: ``index.py`` of a checkout with
``bench_config.py``, one process) runs at once on ``--server-cpu`` against one ES stub on
``--aux-cpu``, where wrk runs too. For each case, wrk loads each server in turn for
``--duration`` seconds, the order reversed every other pair (the second of a pair gains a
few percent), and the server's CPU time over the run (``/proc``, user + system) is divided
by the requests wrk counted. A change of the machine's speed hits both sides of a pair
alike, so the median of the pairs' ratios (each server against the first) holds where
requests per second move 2x between runs. CPU time is not latency: ``bench_vs_biothings.py``
on a quiet machine gives the throughput and the tails.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_vs_biothings import (CASE_REQUESTS, default_bench_dir, start_server, start_stub,  # noqa: E402
                                thread_cpu_seconds)


def parse_server(text):
    label, _, rest = text.partition("=")
    root, _, python = rest.partition("=")
    if not label or not root:
        raise SystemExit(f"--server {text!r}: expected label=checkout[=python]")
    return label, os.path.abspath(root), python or sys.executable


def wrk(args, case, url, seconds):
    """Requests wrk completed against ``url`` in ``seconds``."""
    method, _ = CASE_REQUESTS[case]
    lua_dir = os.path.join(args.bench_dir, "wrk")
    script = os.path.join(lua_dir, "post_query.lua" if method == "POST" else "get.lua")
    command = ["taskset", "-c", args.aux_cpu, "wrk", "-t1", f"-c{args.conns}", f"-d{seconds}s", "-s", script, url]
    out = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "WRK_LUA_DIR": lua_dir}).stdout
    found = re.search(r"(\d+) requests in", out)
    if not found:
        raise RuntimeError(f"wrk gave no count for {url}: {out[-300:]}")
    return int(found.group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", action="append", required=True, help="label=checkout[=python] (2 or more)")
    parser.add_argument("--cases", default="annotation,query,query_post,metadata")
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--duration", type=int, default=3, help="seconds of each wrk run")
    parser.add_argument("--conns", type=int, default=16)
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--aux-cpu", default="1")
    parser.add_argument("--bench-dir", default=default_bench_dir())
    parser.add_argument("--out", default="/tmp/paired-cpu", help="server logs")
    args = parser.parse_args()
    servers = [parse_server(text) for text in args.server]
    if len(servers) < 2:
        raise SystemExit("give two --server or more")
    os.makedirs(args.out, exist_ok=True)
    procs = []
    try:
        _stub, env = start_stub(args, args.out, procs)
        running = []
        for label, root, python in servers:
            proc, url = start_server(args, label, 1, args.server_cpu, env, args.out, procs, root=root, python=python)
            running.append((label, url, proc))
        print(f"CPU per request (ms), paired: wrk -t1 -c{args.conns} {args.duration}s per run, {args.pairs} pairs, "
              f"order reversed every other pair; ratios against {running[0][0]}, median of the pairs\n")
        labels = [label for label, _, _ in running]
        print("| case | " + " | ".join(f"{label} ms" for label in labels) + " | "
              + " | ".join(f"{label} / {labels[0]}" for label in labels[1:]) + " |")
        print("|---|" + "---:|" * (2 * len(labels) - 1))
        for case in args.cases.split(","):
            target = CASE_REQUESTS[case][1]
            for _, url, _ in running:  # warm-up
                wrk(args, case, url + target, 1)
            costs = {label: [] for label in labels}
            for pair in range(args.pairs):
                for label, url, proc in (running if pair % 2 == 0 else running[::-1]):
                    before = thread_cpu_seconds(proc.pid)
                    requests = wrk(args, case, url + target, args.duration)
                    costs[label].append((thread_cpu_seconds(proc.pid) - before) * 1000 / max(requests, 1))
            first = costs[labels[0]]
            medians = [statistics.median(costs[label]) for label in labels]
            ratios = [statistics.median(a / b for a, b in zip(costs[label], first)) for label in labels[1:]]
            print(f"| {case} | " + " | ".join(f"{m:.3f}" for m in medians) + " | "
                  + " | ".join(f"{r:.3f}" for r in ratios) + " |", flush=True)
    finally:
        for proc in reversed(procs):
            proc.stop()


if __name__ == "__main__":
    main()
