"""Bounded soak test: mixed GET/POST at full speed against one server process.

    python benchmarks/soak.py [--duration 60] [--connections 32] [--url URL --pid PID]

Without ``--url`` it starts ``python index.py --processes=1`` on a loopback
port (the embedded demo gene API, built on first use in ``--data-dir``) and
stops it at the end. The load generator (aiohttp, closed loop: each connection
sends its next request when the last one is answered) runs a fixed mix of
annotation, query, facet, batch and metadata requests, plus a few requests
that must fail with a given 4xx. Every second it samples the server's resident
memory (``/proc/<pid>/status``) and open file descriptors (``/proc/<pid>/fd``).

Fails (exit 1) on any unexpected status, a connection error, memory growing by
more than ``--max-rss-growth`` MiB between the first and last fifth of the
run (after warm-up), or file descriptors growing by more than the connection
count. Prints a markdown summary.
"""

import argparse
import asyncio
import collections
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path.insert(0, ROOT)

import orjson  # noqa: E402

from tests.servers import free_port, wait_http  # noqa: E402


def load_ids():
    with open(os.path.join(ROOT, "biothings", "web", "demo", "genes.ndjson"), "rb") as handle:
        docs = [orjson.loads(line) for line in handle if line.strip()]
    return [doc["_id"] for doc in docs], [doc["symbol"] for doc in docs if doc.get("symbol")]


def request_mix(ids, symbols, rng):
    """``(name, method, path, json body, expected status)`` of each kind, with weights."""
    def annotation():
        return "GET annotation", "GET", f"/v1/gene/{rng.choice(ids)}", None, 200

    def query():
        return "GET query", "GET", f"/v1/query?q=symbol:{rng.choice(symbols)}&fields=symbol,name", None, 200

    def fulltext():
        word = rng.choice(["kinase", "receptor", "protein", "zinc", "cdk*", "name:factor"])
        return "GET full text", "GET", f"/v1/query?q={word}&size=20", None, 200

    def facets():
        return "GET facets", "GET", "/v1/query?q=__all__&facets=type_of_gene,chromosome&size=0", None, 200

    def batch_query():
        return ("POST query batch", "POST", "/v1/query",
                {"q": rng.sample(symbols, 20), "scopes": ["symbol"], "fields": "symbol"}, 200)

    def batch_ids():
        return "POST annotation batch", "POST", "/v1/gene", {"ids": rng.sample(ids, 20), "fields": "symbol"}, 200

    def metadata():
        return "GET metadata", "GET", rng.choice(["/v1/metadata", "/v1/metadata/fields", "/status"]), None, 200

    def bad_parameter():
        return "GET bad parameter (400)", "GET", "/v1/query?q=cdk2&size=abc", None, 400

    def missing():
        return "GET unknown id (404)", "GET", f"/v1/gene/nope{rng.randrange(10**6)}", None, 404

    def bad_body():
        return "POST bad body (400)", "POST", "/v1/query", {"q": []}, 400

    kinds = [(annotation, 30), (query, 20), (fulltext, 10), (facets, 5), (batch_query, 10), (batch_ids, 10),
             (metadata, 5), (bad_parameter, 4), (missing, 4), (bad_body, 2)]
    makers = [maker for maker, weight in kinds for _ in range(weight)]
    return lambda: rng.choice(makers)()


def sample_process(pid):
    with open(f"/proc/{pid}/status") as handle:
        rss = next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:")) / 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


async def soak(url, pid, duration, connections, warmup):
    import aiohttp
    ids, symbols = load_ids()
    counts = collections.Counter()
    unexpected = collections.Counter()
    latencies = []
    errors = collections.Counter()
    samples = []
    stop_at = time.monotonic() + warmup + duration
    measuring = asyncio.Event()

    async def worker(index, session):
        rng = random.Random(index)
        make = request_mix(ids, symbols, rng)
        while time.monotonic() < stop_at:
            name, method, path, body, expected = make()
            started = time.perf_counter()
            try:
                async with session.request(method, url + path, json=body) as response:
                    await response.read()
                    status = response.status
            except Exception as exc:  # connection refused/reset, timeout
                errors[type(exc).__name__] += 1
                continue
            if measuring.is_set():
                latencies.append(time.perf_counter() - started)
                counts[(name, status)] += 1
                if status != expected:
                    unexpected[(name, status)] += 1

    async def monitor():
        start = time.monotonic()
        while time.monotonic() < stop_at:
            if time.monotonic() - start >= warmup:
                measuring.set()
                samples.append((time.monotonic() - start - warmup, *sample_process(pid)))
            await asyncio.sleep(1)

    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        began = time.monotonic()
        await asyncio.gather(monitor(), *(worker(i, session) for i in range(connections)))
        elapsed = time.monotonic() - began - warmup
    return counts, unexpected, errors, latencies, samples, elapsed


def summarize(args, counts, unexpected, errors, latencies, samples, elapsed):
    total = sum(counts.values())
    fifth = max(1, len(samples) // 5)
    rss_first = statistics.mean(s[1] for s in samples[:fifth])
    rss_last = statistics.mean(s[1] for s in samples[-fifth:])
    fds = [s[2] for s in samples]
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0

    failures = []
    if unexpected:
        failures.append(f"unexpected statuses: {dict(unexpected)}")
    if errors:
        failures.append(f"connection errors: {dict(errors)}")
    if rss_last - rss_first > args.max_rss_growth:
        failures.append(f"memory grew by {rss_last - rss_first:.1f} MiB")
    if max(fds) - fds[0] > args.connections + 8:
        failures.append(f"file descriptors grew from {fds[0]} to {max(fds)}")
    lines = [
        f"Soak: {elapsed:.0f} s after {args.warmup} s warm-up, {args.connections} connections, one server process "
        f"({'embedded demo' if not args.url else args.url}), {os.cpu_count()} cores shared with the load generator.",
        "",
        "| measure | value |", "|---|---|",
        f"| requests | {total} ({total / elapsed:.0f} req/s) |",
        f"| latency p50 / p99 / max | {pct(0.5):.1f} / {pct(0.99):.1f} / {pct(1.0):.1f} ms |",
        f"| unexpected statuses | {sum(unexpected.values())} |",
        f"| connection errors | {sum(errors.values())} |",
        f"| RSS first fifth -> last fifth | {rss_first:.1f} -> {rss_last:.1f} MiB "
        f"(min {min(s[1] for s in samples):.1f}, max {max(s[1] for s in samples):.1f}) |",
        f"| open fds start / max / end | {fds[0]} / {max(fds)} / {fds[-1]} |",
        "", "| request | status | count |", "|---|---|---|",
    ]
    for (name, status), count in sorted(counts.items()):
        lines.append(f"| {name} | {status} | {count} |")
    lines += ["", "Result: " + ("PASS" if not failures else "FAIL: " + "; ".join(failures))]
    return "\n".join(lines), not failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=60, help="seconds of measured load")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of load before measuring")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--url", help="an already running server (needs --pid)")
    parser.add_argument("--pid", type=int, help="its process id, for memory and fd samples")
    parser.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "biothings-soak-data"))
    parser.add_argument("--max-rss-growth", type=float, default=20.0, help="MiB")
    args = parser.parse_args()

    process = None
    url, pid = args.url, args.pid
    if not url:
        port = free_port()
        env = {**os.environ, "EMBEDDED_DATA_DIR": args.data_dir, "LOGGING_LEVEL": "WARNING"}
        process = subprocess.Popen([sys.executable, "index.py", f"--port={port}", "--address=127.0.0.1",
                                    "--processes=1", "--logging=warning"], cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url, pid = f"http://127.0.0.1:{port}", process.pid
        wait_http(url + "/status", timeout=120)
    elif not pid:
        parser.error("--url needs --pid")
    try:
        results = asyncio.run(soak(url, pid, args.duration, args.connections, args.warmup))
        with urllib.request.urlopen(url + "/status", timeout=10) as response:
            assert response.status == 200  # still healthy after the soak
    finally:
        if process is not None:
            process.send_signal(signal.SIGTERM)
            code = process.wait(30)
    text, ok = summarize(args, *results)
    if process is not None and code != 0:
        text += f"\nServer exit status after SIGTERM: {code}"
        ok = False
    print(text)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
