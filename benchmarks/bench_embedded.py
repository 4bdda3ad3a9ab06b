"""Benchmark of the embedded engine on a larger, gene-like data set.

    python benchmarks/bench_embedded.py [--docs 100000] [--runs 200] [--keep DIR]

Generates ``--docs`` documents shaped like the demo genes (deterministic seed;
symbols, names, aliases, genomic positions, GO terms... drawn from the demo's
values and recombined), loads them with the loader (embedded target), then
measures in-process engine calls (``await engine.search``: thread-pool hop
included, HTTP not included) and prints a markdown table.
"""

import argparse
import asyncio
import gc
import os
import random
import statistics
import sys
import tempfile
import time

import orjson

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path.insert(0, ROOT)

from biothings.web.engines.embedded import EmbeddedEngine  # noqa: E402
from biothings.web.load import load  # noqa: E402

DEMO = os.path.join(ROOT, "biothings", "web", "demo")


def generate(path, count, seed=20240601):
    rng = random.Random(seed)
    sample = [orjson.loads(line) for line in open(os.path.join(DEMO, "genes.ndjson"), "rb")]
    words = sorted({w for d in sample for w in d.get("name", "").split()})
    types = [d.get("type_of_gene") for d in sample if d.get("type_of_gene")]
    chroms = [d.get("chromosome") for d in sample if d.get("chromosome")]
    go_ids = sorted({g["id"] for d in sample for cat in (d.get("go") or {}).values()
                     for g in (cat if isinstance(cat, list) else [cat])})
    evidence = ["IDA", "IEA", "TAS", "IBA", "HDA", "ISS", "NAS", "IMP", "IPI"]
    taxa = [9606] * 6 + [10090, 10116, 7955, 6239]
    with open(path, "wb") as out:
        for i in range(count):
            base = sample[i % len(sample)]
            gene_id = str(100000 + i) if i >= len(sample) else base["_id"]
            symbol = base["symbol"] if i < len(sample) else f"{base['symbol']}{i % 97}X{i}"
            doc = {
                "_id": gene_id, "entrezgene": int(gene_id), "symbol": symbol,
                "name": " ".join(rng.sample(words, rng.randint(2, 6))) if i >= len(sample) else base["name"],
                "taxid": rng.choice(taxa), "type_of_gene": rng.choice(types),
                "alias": [f"{symbol[:4]}{rng.randint(1, 999)}" for _ in range(rng.randint(0, 4))],
                "map_location": f"{rng.choice(chroms)}q{rng.randint(11, 35)}.{rng.randint(1, 3)}",
                "chromosome": rng.choice(chroms),
                "genomic_pos": {"chr": rng.choice(chroms), "start": rng.randint(1, 240_000_000),
                                "end": rng.randint(1, 240_000_000), "strand": rng.choice([1, -1])},
                "ensembl": {"gene": f"ENSG{rng.randint(0, 10**11):011d}"},
                "pubmed_count": rng.randint(0, 3000),
                "go": {cat: [{"id": rng.choice(go_ids), "evidence": rng.choice(evidence)}
                             for _ in range(rng.randint(0, 12))] for cat in ("BP", "MF", "CC")},
            }
            if rng.random() < 0.4:
                doc["MIM"] = str(rng.randint(100000, 699999))
            out.write(orjson.dumps(doc) + b"\n")


def pct(samples, p):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(p / 100.0 * (len(ordered) - 1))))]


async def measure(engine, make_call, runs):
    for _ in range(min(20, runs)):  # warm-up
        await make_call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await make_call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), pct(times, 99)


async def bench(data_dir, ids, runs):
    engine = EmbeddedEngine(data_dir)
    rng = random.Random(7)
    rows = []

    def annotation_body(doc_id):  # what the builder sends for an id (GET/POST /v1/gene)
        return {"query": {"ids": {"values": [doc_id]}}, "version": True, "track_total_hits": True,
                "size": 1000, "timeout": "10000ms"}

    def id_lookup():
        return engine.search("genes", annotation_body(rng.choice(ids)))
    rows.append(("id lookup (the builder's ids query)", *await measure(engine, id_lookup, runs)))

    def batch():
        return engine.msearch("genes", [annotation_body(i) for i in rng.sample(ids, 1000)])
    rows.append(("1,000-id batch (msearch)", *await measure(engine, batch, max(10, runs // 20))))
    gc.freeze()  # what a server can do once started: the start-up heap leaves the GC's scans
    rows.append(("1,000-id batch (msearch), after gc.freeze()",
                 *await measure(engine, batch, max(10, runs // 20))))
    gc.unfreeze()

    terms = ["cdk2", "kinase", "insulin", "cyclin dependent", "receptor", "zinc finger", "tp53", "protein"]

    def fulltext():
        return engine.search("genes", {"query": {"query_string": {
            "query": rng.choice(terms), "default_operator": "AND", "lenient": True}}, "size": 10})
    rows.append(("full-text query_string (10 hits)", *await measure(engine, fulltext, runs)))

    def facets():
        return engine.search("genes", {"query": {"match_all": {}}, "size": 0, "aggs": {
            "type_of_gene": {"terms": {"field": "type_of_gene", "size": 10}},
            "taxid": {"terms": {"field": "taxid", "size": 10}},
            "type_of_gene__missing": {"missing": {"field": "type_of_gene"}}}})
    rows.append(("facets type_of_gene+taxid over all docs", *await measure(engine, facets, max(20, runs // 4))))

    def nested():
        return engine.search("genes", {"query": {"match_all": {}}, "size": 0, "aggs": {
            "type_of_gene": {"terms": {"field": "type_of_gene", "size": 10},
                             "aggs": {"chromosome": {"terms": {"field": "chromosome", "size": 10}}}}}})
    rows.append(("nested facets over all docs", *await measure(engine, nested, max(20, runs // 4))))

    def sorted_query():
        return engine.search("genes", {"query": {"query_string": {"query": "kinase", "lenient": True}},
                                       "size": 10, "sort": [{"pubmed_count": {"order": "desc"}}]})
    rows.append(("full-text sorted by pubmed_count", *await measure(engine, sorted_query, runs)))
    await engine.close()
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--keep", help="work directory to keep (default: a temp dir)")
    args = parser.parse_args()
    work = args.keep or tempfile.mkdtemp(prefix="bench_embedded_")
    os.makedirs(work, exist_ok=True)
    source = os.path.join(work, "genes.ndjson")
    started = time.perf_counter()
    generate(source, args.docs)
    print(f"generated {args.docs} docs in {time.perf_counter() - started:.1f}s ({source})", file=sys.stderr)
    config = type("config", (), {"ES_HOST": "", "ES_INDICES": {"gene": "genes"},
                                 "EMBEDDED_DATA_DIR": os.path.join(work, "data")})
    started = time.perf_counter()
    summary = load(config, source, mapping=os.path.join(DEMO, "genes.mapping.json"),
                   meta=os.path.join(DEMO, "genes.meta.json"), progress=False)
    load_seconds = time.perf_counter() - started
    ids = [orjson.loads(line)["_id"] for line in open(source, "rb")]
    rows = asyncio.run(bench(os.path.join(work, "data"), ids, args.runs))
    print(f"\n{args.docs:,} docs; load {load_seconds:.1f} s ({summary['total'] / load_seconds:,.0f} docs/s)\n")
    print("| operation | p50 (ms) | p99 (ms) |")
    print("|---|---:|---:|")
    print(f"| load {args.docs:,} docs (loader, embedded) | {load_seconds * 1000:,.0f} | |")
    for name, p50, p99 in rows:
        print(f"| {name} | {p50:.2f} | {p99:.2f} |")


if __name__ == "__main__":
    main()
