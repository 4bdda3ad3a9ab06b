"""A 77,000-gene embedded index for the benchmarks, built once from the 1,965-gene sample.

    python benchmarks/genes77k.py [--data-dir /tmp/bench-genes77k] [--docs 77000]

Each sample gene is copied under new ids (``_id`` and ``entrezgene`` from 10,000,000 on;
the first 1,965 keep their own) with varied fields: symbol and aliases get a suffix,
the name's words are reshuffled, taxid, type_of_gene, chromosome, genomic position,
pubmed_count and MIM redrawn; nested parts (go, ensembl, refseq, uniprot, pathway)
are kept as the sample has them, so documents keep their sizes (291 bytes at the
median, 17 KB at most). Deterministic: the same documents, in the same order, for a
given ``--docs`` and seed. The index is rebuilt only when the data directory lacks it.
"""

import argparse
import os
import random
import sys

import orjson

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
DEMO = os.path.join(ROOT, "biothings", "web", "demo")
SAMPLE = os.environ.get("GENES_SAMPLE", "/work/shared/data/genes-sample.ndjson")
if not os.path.exists(SAMPLE):
    SAMPLE = os.path.join(DEMO, "genes.ndjson")  # the same 1,965 genes, shipped with the package
INDEX = "genes"
SEED = 20261130
FIRST_NEW_ID = 10_000_000
TAXA = [9606] * 6 + [10090, 10116, 7955, 7227]


def sample_genes(path=SAMPLE):
    with open(path, "rb") as handle:
        return [orjson.loads(line) for line in handle if line.strip()]


def generate(count, seed=SEED, sample=None):
    """The ``count`` documents, in order."""
    sample = sample or sample_genes()
    rng = random.Random(seed)
    types = sorted({d["type_of_gene"] for d in sample if isinstance(d.get("type_of_gene"), str)})
    chroms = sorted({d["chromosome"] for d in sample if isinstance(d.get("chromosome"), str)})
    for n in range(count):
        copy, base = divmod(n, len(sample))
        doc = dict(sample[base])
        if copy == 0:
            yield doc
            continue
        gene_id = FIRST_NEW_ID + n
        suffix = f"-{copy}"
        doc["_id"] = str(gene_id)
        doc["entrezgene"] = gene_id
        doc["symbol"] = doc["symbol"] + suffix
        aliases = doc.get("alias")
        if isinstance(aliases, list):
            doc["alias"] = [alias + suffix for alias in aliases]
        elif isinstance(aliases, str):
            doc["alias"] = aliases + suffix
        words = doc.get("name", "").split()
        rng.shuffle(words)
        doc["name"] = " ".join(words)
        doc["taxid"] = rng.choice(TAXA)
        doc["type_of_gene"] = rng.choice(types)
        chrom = rng.choice(chroms)
        doc["chromosome"] = chrom
        doc["map_location"] = f"{chrom}q{rng.randint(11, 35)}.{rng.randint(1, 3)}"
        start = rng.randint(1, 240_000_000)
        doc["genomic_pos"] = {"chr": chrom, "start": start, "end": start + rng.randint(500, 200_000),
                              "strand": rng.choice([1, -1])}
        doc["pubmed_count"] = rng.randint(0, 3000)
        if "MIM" in doc or rng.random() < 0.2:
            doc["MIM"] = str(rng.randint(100000, 699999))
        yield doc


def build(data_dir, count=77_000, seed=SEED):
    """The embedded index ``genes`` of ``count`` documents in ``data_dir``; built when absent.
    Returns the ids, in document order."""
    from biothings.web.engines.embedded import ensure_index, index_exists
    data_dir = os.path.abspath(data_dir)
    marker = os.path.join(data_dir, f".genes77k-{count}-{seed}")
    docs = list(generate(count, seed))
    ids = [doc["_id"] for doc in docs]
    if os.path.exists(marker) and index_exists(data_dir, INDEX):
        return ids
    os.makedirs(data_dir, exist_ok=True)
    if index_exists(data_dir, INDEX):
        raise SystemExit(f"{data_dir} holds another '{INDEX}' index: use an empty --data-dir")
    source = os.path.join(data_dir, "genes.ndjson")
    with open(source, "wb") as out:
        for doc in docs:
            out.write(orjson.dumps(doc) + b"\n")
    ensure_index(data_dir, INDEX, source, os.path.join(DEMO, "genes.mapping.json"),
                 os.path.join(DEMO, "genes.meta.json"))
    os.remove(source)
    open(marker, "w").close()
    return ids


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="/tmp/bench-genes77k")
    parser.add_argument("--docs", type=int, default=77_000)
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    ids = build(args.data_dir, args.docs)
    print(f"{len(ids)} documents in {os.path.abspath(args.data_dir)}/{INDEX}")


if __name__ == "__main__":
    main()
