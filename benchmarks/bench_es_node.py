#!/usr/bin/env python3
"""CPU per search of the Elasticsearch client with each HTTP node, against the ES stub.

    python benchmarks/bench_es_node.py [--searches 6000] [--rounds 5]

Why ``engines/http_node.py`` exists: ``AsyncElasticsearch`` lets a client pick the
HTTP layer under its transport (``node_class``). This measures, in one process,
interleaved, the CPU time per ``ElasticsearchEngine.search`` (32 concurrent) with
our node (``LeanHttpNode``: asyncio protocol + httptools) and with the client's
default aiohttp node; and, for scale, the share of the client layer above the
transport. Medians over ``--rounds``. The stub runs on CPU 1, this on CPU 0.
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_vs_biothings import default_bench_dir, free_port  # noqa: E402

from biothings.web.engines.elasticsearch import ElasticsearchEngine  # noqa: E402

INDEX = "mygene_test"
BODY = {"query": {"multi_match": {"query": "1017", "fields": ["_id"], "operator": "and"}}, "size": 10}


async def cpu_per_search(url, variant, searches, concurrency=32):
    args = {"node_class": "aiohttp"} if variant == "aiohttp node" else {}
    engine = ElasticsearchEngine([url], **args)
    await engine.search(INDEX, BODY)  # connect, product check
    transport = engine.client.transport
    headers = dict(engine.client._headers)
    headers.update({"accept": "application/vnd.elasticsearch+json; compatible-with=8",
                    "content-type": "application/vnd.elasticsearch+json; compatible-with=8"})

    async def search():
        if variant == "our node, transport only":
            await transport.perform_request("POST", f"/{INDEX}/_search", headers=headers, body=BODY)
        else:
            await engine.search(INDEX, BODY)

    slots = asyncio.Semaphore(concurrency)

    async def one():
        async with slots:
            await search()
    start = time.process_time()
    await asyncio.gather(*(one() for _ in range(searches)))
    spent = time.process_time() - start
    await engine.close()
    return spent / searches * 1e6


async def measure(url, searches, rounds):
    results = {"our node (LeanHttpNode)": [], "aiohttp node": [], "our node, transport only": []}
    for _ in range(rounds):
        for variant in results:
            results[variant].append(await cpu_per_search(url, variant, searches))
    print("| client stack | CPU us per search (median) | rounds |")
    print("|---|---:|---|")
    for variant, values in results.items():
        print(f"| {variant} | {statistics.median(values):.1f} | {', '.join(f'{v:.0f}' for v in values)} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--searches", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bench-dir", default=default_bench_dir())
    args = parser.parse_args()
    port = free_port()
    stub = subprocess.Popen(["taskset", "-c", "1", sys.executable, os.path.join(args.bench_dir, "es_stub.py"),
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/", timeout=2).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        os.sched_setaffinity(0, {0})
        try:
            import uvloop
            uvloop.run(measure(url, args.searches, args.rounds))
        except ImportError:
            asyncio.run(measure(url, args.searches, args.rounds))
    finally:
        stub.terminate()
        stub.wait()


if __name__ == "__main__":
    main()
