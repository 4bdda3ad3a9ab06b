"""Anonymous memory of one server process through rounds of expensive requests, then idle.

    python benchmarks/memory_after_bursts.py                       # the defaults
    python benchmarks/memory_after_bursts.py --rounds 5 --idle 15 --env MEMORY_RESTART_BYTES=0

Each round sends two of each of ``probe_under_load.py``'s cases (``--cases``) at once,
each on its own connection, and waits for all of them; ``RssAnon`` (the memory no file
backs) is read from ``/proc/<pid>/status`` at start, after each round and after the
idle pause. The index is the demo genes copied ``--copies`` times (built once, kept).
Linux only. Results: docs/benchmarks.md, "Memory after bursts".
"""

import argparse
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

import probe_under_load as probe  # noqa: E402
from tests.servers import free_port, wait_http  # noqa: E402


def anonymous_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) // 1024
    return None


def burst(port, cases):
    threads = [threading.Thread(target=probe.call, args=(port, *probe.CASES[name]))
               for name in cases for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--idle", type=float, default=15, help="seconds idle after the last round")
    parser.add_argument("--cases", default="batch,yaml,sort,facets")
    parser.add_argument("--copies", type=int, default=40, help="copies of the demo genes in the index")
    parser.add_argument("--data-dir", default="/tmp/biothings-probe-bench")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a setting of the server")
    args = parser.parse_args()
    os.makedirs(args.data_dir, exist_ok=True)
    probe.build_index(args.data_dir, args.copies, os.path.join(probe.DEMO, "genes.ndjson"))
    port = free_port()
    env = dict(os.environ, EMBEDDED_DATA_DIR=args.data_dir, EMBEDDED_DATA_FILES="{}", ACCESS_LOG_LEVEL="ERROR",
               **dict(setting.split("=", 1) for setting in args.env))
    server = subprocess.Popen([sys.executable, "index.py", f"--port={port}", "--address=127.0.0.1", "--processes=1"],
                              cwd=probe.ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/gene/1017")
        print(f"start: {anonymous_mib(server.pid)} MiB", flush=True)
        for number in range(1, args.rounds + 1):
            burst(port, args.cases.split(","))
            print(f"after round {number}: {anonymous_mib(server.pid)} MiB", flush=True)
        time.sleep(args.idle)
        print(f"idle {args.idle:g} s: {anonymous_mib(server.pid)} MiB", flush=True)
    finally:
        server.terminate()
        _, log = server.communicate(timeout=60)
    print(f"restarts in place: {log.count('starting again in place')}")


if __name__ == "__main__":
    main()
