"""The benchmark's second reference: the gene API as a maintainer would write it on FastAPI.

    BENCH_ES_HOST=http://127.0.0.1:9200 uvicorn fastapi_app:app --app-dir benchmarks/reference \\
        --loop uvloop --http httptools --no-access-log

FastAPI on uvicorn (uvloop, httptools), the async Elasticsearch 8 client (its default
aiohttp node) and orjson answers: the five routes of the HTTP benchmark with the answers
of this framework and of BioThings, byte for byte (keys sorted, as BioThings' ``_sorted``
default). Written plainly, with the usual speed advice taken: orjson, answers returned as
``Response`` objects (no ``jsonable_encoder`` pass), no access log. No request budgets,
option checks or error shapes beyond what the five routes need: a real app would pay for
those too.

Dependencies: ``requirements.txt`` beside this file (``bench_vs_biothings.py`` installs
them into a venv of their own).
"""

import contextlib
import os

import orjson
from elasticsearch import AsyncElasticsearch, NotFoundError
from fastapi import FastAPI, Form, Query
from fastapi.responses import Response

ES_HOST = os.environ.get("BENCH_ES_HOST", "http://127.0.0.1:9200")
INDEX = os.environ.get("BENCH_ES_INDEX", "mygene_test")
BIOTHING_TYPE = "gene"
MAX_MATCH = 1000

es = AsyncElasticsearch(ES_HOST)


class JSONAnswer(Response):
    media_type = "application/json"

    def render(self, content):
        return orjson.dumps(content, option=orjson.OPT_SORT_KEYS)


@contextlib.asynccontextmanager
async def lifespan(app):
    yield
    await es.close()


app = FastAPI(lifespan=lifespan)


def document(hit, score=True):
    doc = {"_id": hit["_id"]}
    if score:
        doc["_score"] = hit["_score"]
    if "_version" in hit:
        doc["_version"] = hit["_version"]
    doc.update(hit.get("_source") or {})
    return doc


def source_fields(fields):
    return fields.split(",") if fields else None


@app.get("/v1/gene/{gene_id}")
async def annotation(gene_id: str, fields: str | None = None):
    try:
        hit = await es.get(index=INDEX, id=gene_id, source_includes=source_fields(fields))
    except NotFoundError:
        return JSONAnswer({"code": 404, "success": False, "error": "Not Found."}, status_code=404)
    return JSONAnswer(document(hit, score=False))


@app.get("/v1/query")
async def query(q: str, fields: str | None = None, size: int = Query(10, ge=0, le=1000),
                from_: int = Query(0, alias="from", ge=0)):
    res = await es.search(index=INDEX, query={"query_string": {"query": q, "default_operator": "AND",
                                                               "lenient": True}},
                          size=size, from_=from_, source=source_fields(fields), track_total_hits=True)
    hits = res["hits"]
    return JSONAnswer({"took": res["took"], "total": hits["total"]["value"], "max_score": hits["max_score"],
                       "hits": [document(hit) for hit in hits["hits"]]})


@app.post("/v1/query")
async def batch(q: str = Form(...), scopes: str = Form("_id"), fields: str | None = Form(None),
                size: int = Form(10, ge=0, le=1000)):
    terms = [term.strip() for term in q.split(",") if term.strip()][:1000]
    fields_list = scopes.split(",")
    searches = []
    for term in terms:
        if fields_list == ["_id"]:
            match = {"ids": {"values": [term]}}
        else:
            match = {"multi_match": {"query": term, "fields": fields_list, "operator": "and", "lenient": True}}
        searches += [{"index": INDEX}, {"query": match, "size": size, "_source": source_fields(fields)}
                     if fields else {"query": match, "size": size}]
    res = await es.msearch(searches=searches)
    out = []
    for term, answer in zip(terms, res["responses"]):
        hits = answer.get("hits", {}).get("hits", [])
        if not hits:
            out.append({"query": term, "notfound": True})
        out.extend({"query": term, **document(hit)} for hit in hits)
    return JSONAnswer(out)


@app.get("/v1/metadata")
async def metadata():
    mappings = await es.indices.get_mapping(index=INDEX)
    meta = next(iter(mappings.values()))["mappings"].get("_meta", {})
    return JSONAnswer({"biothing_type": BIOTHING_TYPE, **meta})
