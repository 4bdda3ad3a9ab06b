"""The Python clients of BioThings APIs, unchanged, against this server on every backend:
biothings_client and mygene (both from PyPI; they speak httpx and accept gzip and zstd)."""

import biothings_client
import mygene

from tests import data

SYMBOLS = [doc["symbol"] for doc in data.DOCS]


def clients(api):
    gene = biothings_client.get_client("gene", url=api.url + "/v1")
    legacy = mygene.MyGeneInfo()
    legacy.url = api.url + "/v1"
    return gene, legacy


def test_fetch_all(api):
    for client in clients(api):
        hits = list(client.query("__all__", fields="symbol", fetch_all=True, verbose=False))
        assert len(hits) == len(data.DOCS) and {hit["_id"] for hit in hits} == {doc["_id"] for doc in data.DOCS}
        assert all(hit["symbol"] == data.BY_ID[hit["_id"]]["symbol"] for hit in hits)


def test_querymany_over_several_posts(api):
    """The clients split the terms in POSTs of ``step`` terms (the JSON batch form; 1,000 by
    default, 100 here: noida-db takes seconds per 1,000 terms)."""
    terms = SYMBOLS[:240] + [f"no-such-gene-{n}" for n in range(10)]
    for client in clients(api):
        client.step = 100
        out = client.querymany(terms, scopes="symbol", fields="symbol", species="human", returnall=True,
                               verbose=False)
        found = {hit["query"] for hit in out["out"] if not hit.get("notfound")}
        assert found == set(SYMBOLS[:240])
        assert sorted(out["missing"]) == sorted(terms[240:])


def test_getgenes(api):
    for client in clients(api):
        docs = client.getgenes(["1017", "672", "0"], fields="symbol", verbose=False) if hasattr(client, "getgenes") \
            else client.getgenes(["1017", "672", "0"], fields="symbol")
        assert [doc.get("symbol") for doc in docs[:2]] == ["CDK2", "BRCA1"] and docs[2]["notfound"] is True
