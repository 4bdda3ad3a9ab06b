#!/usr/bin/env python3
"""Profile our server under wrk load against the ES stub, one case at a time.

    python benchmarks/profile_server.py [--case annotation] [--duration 8s] [--top 40]

Starts the ES stub (``$BENCH_DIR/es_stub.py``) and ``index.py`` under cProfile
(``--processes=1``, pinned like the side-by-side benchmark), loads it with wrk,
stops the server with SIGTERM (it exits cleanly, so the profile is written) and
prints the functions by cumulative and by own time. cProfile inflates Python
calls, so read it for shares, not absolute times. (py-spy needs ptrace access
to the server, which containers often refuse; cProfile needs nothing.)
"""

import argparse
import os
import pstats
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_vs_biothings import HERE, ROOT, Proc, default_bench_dir, free_port, wait_http  # noqa: E402

CASES = {
    "annotation": ("get.lua", "/v1/gene/1017"),
    "query": ("get.lua", "/v1/query?q=cdk2"),
    "query_fields": ("get.lua", "/v1/query?q=cdk2&fields=symbol,name&size=10"),
    "query_post": ("post_query.lua", "/v1/query"),
    "metadata": ("get.lua", "/v1/metadata"),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", default="annotation", choices=sorted(CASES))
    ap.add_argument("--duration", default="8s")
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--server-cpu", default="0")
    ap.add_argument("--aux-cpu", default="1")
    ap.add_argument("--bench-dir", default=default_bench_dir())
    ap.add_argument("--out", default=None, help="where the .prof file goes [a temp dir]")
    ap.add_argument("--root", default=ROOT, help="the checkout whose index.py runs (an older commit: before/after)")
    args = ap.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="bt-profile-")
    os.makedirs(out, exist_ok=True)
    prof = os.path.join(out, f"{args.case}.prof")
    lua, path = CASES[args.case]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ES_", "BIOTHINGS_"))}
    stub_port, port = free_port(), free_port()
    env["BENCH_ES_HOST"] = f"http://127.0.0.1:{stub_port}"
    procs = []
    try:
        stub = Proc("es_stub", [sys.executable, os.path.join(args.bench_dir, "es_stub.py"),
                                "--port", str(stub_port)], args.aux_cpu, out, env, out)
        procs.append(stub)
        wait_http(f"http://127.0.0.1:{stub_port}/", stub)
        server = Proc("ours", [sys.executable, "-m", "cProfile", "-o", prof, os.path.join(args.root, "index.py"),
                               f"--conf={os.path.join(HERE, 'bench_config.py')}", f"--port={port}",
                               "--address=127.0.0.1", "--processes=1"], args.server_cpu, args.root, env, out)
        procs.append(server)
        wait_http(f"http://127.0.0.1:{port}/v1/metadata", server)
        lua_dir = os.path.join(args.bench_dir, "wrk")
        wrk = ["wrk", "-t2", f"-c{args.conns}", f"-d{args.duration}", "-s", os.path.join(lua_dir, lua),
               f"http://127.0.0.1:{port}{path}"]
        if args.aux_cpu:
            wrk = ["taskset", "-c", args.aux_cpu] + wrk
        result = subprocess.run(wrk, env={**env, "WRK_LUA_DIR": lua_dir}, capture_output=True, text=True)
        print(next((line for line in result.stdout.splitlines() if "Requests/sec" in line), result.stdout))
        server.popen.send_signal(signal.SIGTERM)
        server.popen.wait(30)
    finally:
        for p in reversed(procs):
            p.stop()
    stats = pstats.Stats(prof)
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)
    print(f"profile: {prof}")


if __name__ == "__main__":
    main()
