"""The embedded engine on the demo genes, checked against answers computed here
directly from the NDJSON (not against hard-coded guesses)."""

import asyncio
import collections
import os
import re
import time

import orjson
import pytest

from biothings.web.engines.embedded import EmbeddedEngine, build_index, ensure_index, infer_mapping
from biothings.web.engines.embedded import engine as engine_module
from biothings.web.engines.errors import IndexNotFound, QueryError, ScrollError
from tests import data

DEMO = data.DEMO
NDJSON = os.path.join(DEMO, "genes.ndjson")
MAPPING = os.path.join(DEMO, "genes.mapping.json")
META = os.path.join(DEMO, "genes.meta.json")


def run(coro):
    return asyncio.run(coro)


def load_json(path):
    with open(path, "rb") as handle:
        return orjson.loads(handle.read())


DOCS = [orjson.loads(line) for line in open(NDJSON, "rb") if line.strip()]
BY_ID = {d["_id"]: d for d in DOCS}
MAP = load_json(MAPPING)


# ---------------------------------------------------------------------- independent oracle

def values(doc, path):
    """All leaf values at a dotted path (lists flattened, objects in lists too)."""
    nodes = [doc]
    for part in path.split("."):
        nxt = []
        for node in nodes:
            if isinstance(node, list):
                node_items = node
            else:
                node_items = [node]
            for item in node_items:
                if isinstance(item, dict) and part in item:
                    nxt.append(item[part])
        nodes = nxt
    out = []
    stack = list(nodes)
    while stack:
        item = stack.pop(0)
        if isinstance(item, list):
            stack[:0] = item
        elif item is not None:
            out.append(item)
    return out


def leaf_fields(properties, prefix=""):
    for key, spec in properties.items():
        if "properties" in spec:
            yield from leaf_fields(spec["properties"], prefix + key + ".")
        else:
            yield prefix + key, spec["type"]


FIELDS = dict(leaf_fields(MAP["properties"]))
TEXT = [f for f, t in FIELDS.items() if t == "text"]
KEYWORD = [f for f, t in FIELDS.items() if t == "keyword"]
INTS = [f for f, t in FIELDS.items() if t == "integer"]


def tokens(text):
    return re.findall(r"[^\W_]+", str(text).lower())


def term_matches(doc, term):
    """A bare query_string term over all fields (text analyzed, keyword exact, ints parsed)."""
    toks = tokens(term)
    for f in TEXT:
        doc_tokens = {t for v in values(doc, f) for t in tokens(v)}
        if toks and all(t in doc_tokens for t in toks):
            return True
    for f in KEYWORD:
        if term in [str(v) for v in values(doc, f)]:
            return True
    if re.fullmatch(r"-?\d+", term):
        for f in INTS:
            if int(term) in values(doc, f):
                return True
    return False


def ids_where(pred):
    return {d["_id"] for d in DOCS if pred(d)}


def osa(a, b):
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


# ---------------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("embedded"))
    assert ensure_index(path, "genes", NDJSON, MAPPING, META) is True
    assert ensure_index(path, "genes", NDJSON, MAPPING, META) is False  # already there
    return path


@pytest.fixture(scope="session")
def engine(data_dir):
    eng = EmbeddedEngine(data_dir)
    yield eng
    run(eng.close())


def search(engine, body, index="genes", **kwargs):
    return run(engine.search(index, body, **kwargs))


def hit_ids(response):
    return [h["_id"] for h in response["hits"]["hits"]]


def qs(engine, text, size=3000, **extra):
    body = {"query": {"query_string": {"query": text, "default_operator": "AND", "lenient": True, **extra}},
            "size": size}
    return search(engine, body)


def all_ids(response):
    assert response["hits"]["total"]["value"] == len(response["hits"]["hits"])
    return set(hit_ids(response))


# ---------------------------------------------------------------------- shape

def test_response_shape(engine):
    r = search(engine, {"query": {"match_all": {}}, "size": 2})
    assert set(r) >= {"took", "timed_out", "_shards", "hits"}
    assert isinstance(r["took"], int) and r["timed_out"] is False
    assert r["hits"]["total"] == {"value": len(DOCS), "relation": "eq"}
    hit = r["hits"]["hits"][0]
    assert hit["_index"] == "genes" and isinstance(hit["_id"], str)
    assert isinstance(hit["_score"], float) and "_id" not in hit["_source"]
    assert hit["_source"] == {k: v for k, v in BY_ID[hit["_id"]].items() if k != "_id"}
    assert "sort" not in hit and "_explanation" not in hit
    r = search(engine, {"query": {"ids": {"values": ["1017"]}}, "version": True})
    assert r["hits"]["hits"][0]["_version"] == 1


def test_id_lookups(engine):
    r = search(engine, {"query": {"term": {"_id": "1017"}}})
    assert hit_ids(r) == ["1017"] and r["hits"]["hits"][0]["_source"]["symbol"] == "CDK2"
    r = search(engine, {"query": {"ids": {"values": ["1017", "1018", "nope"]}}})
    assert set(hit_ids(r)) == {"1017", "1018"}
    r = search(engine, {"query": {"terms": {"_id": ["1017", "1"]}}})
    assert set(hit_ids(r)) == {"1017", "1"}
    r = search(engine, {"query": {"multi_match": {"query": "1017", "fields": ["_id"], "operator": "and"}}})
    assert hit_ids(r) == ["1017"]
    assert hit_ids(qs(engine, "_id:1017")) == ["1017"]


# ---------------------------------------------------------------------- query_string

@pytest.mark.parametrize("term", ["cdk2", "CDK2", "kinase", "9606", "protein-coding", "ENSG00000123374"])
def test_query_string_bare_terms(engine, term):
    assert all_ids(qs(engine, term)) == ids_where(lambda d: term_matches(d, term))


def test_query_string_fields_and_phrases(engine):
    assert all_ids(qs(engine, "symbol:CDK2")) == ids_where(
        lambda d: "cdk2" in {t for v in values(d, "symbol") for t in tokens(v)})
    assert "1017" in all_ids(qs(engine, "symbol:CDK2"))

    def phrase(d):
        return any(" cyclin dependent " in " " + " ".join(tokens(v)) + " " for v in values(d, "name"))
    expected = ids_where(phrase)
    assert expected and all_ids(qs(engine, 'name:"cyclin dependent"')) == expected
    assert all_ids(qs(engine, 'name:"dependent cyclin"')) == set()
    r = qs(engine, "type_of_gene:protein-coding")
    assert all_ids(r) == ids_where(lambda d: d.get("type_of_gene") == "protein-coding")
    # keyword fields are case-sensitive
    assert all_ids(qs(engine, "type_of_gene:Protein-coding")) == set()


def test_query_string_ranges(engine):
    def in_range(d, lo, hi):
        return any(lo <= v <= hi for v in values(d, "taxid"))
    assert qs(engine, "taxid:[9000 TO 10000]", size=0)["hits"]["total"]["value"] == len(
        ids_where(lambda d: in_range(d, 9000, 10000)))
    assert qs(engine, "taxid:[1 TO 9000]", size=0)["hits"]["total"]["value"] == 0
    expected = ids_where(lambda d: any(v > 1000 for v in values(d, "pubmed_count")))
    assert all_ids(qs(engine, "pubmed_count:>1000")) == expected
    expected = ids_where(lambda d: any(100 <= v < 200 for v in values(d, "pubmed_count")))
    assert all_ids(qs(engine, "pubmed_count:[100 TO 200}")) == expected
    assert all_ids(qs(engine, "pubmed_count:>=100 AND pubmed_count:<200")) == expected
    expected = ids_where(lambda d: any(v <= 5 for v in values(d, "pubmed_count")))
    assert all_ids(qs(engine, "pubmed_count:[* TO 5]")) == expected


def test_query_string_wildcards_fuzzy_exists(engine):
    def prefix(d, p):
        return (any(t.startswith(p) for f in TEXT for v in values(d, f) for t in tokens(v))
                or any(str(v).startswith(p) for f in KEYWORD for v in values(d, f)))
    expected = ids_where(lambda d: prefix(d, "cdk"))
    assert len(expected) > 5 and all_ids(qs(engine, "cdk*")) == expected
    expected = ids_where(lambda d: any(re.fullmatch(r"c.k2", t) for v in values(d, "symbol") for t in tokens(v)))
    assert all_ids(qs(engine, "symbol:c?k2")) == expected and "1017" in expected
    expected = ids_where(lambda d: any(osa(t, "cdk2") <= 1 for v in values(d, "symbol") for t in tokens(v)))
    assert all_ids(qs(engine, "symbol:cdk2~1")) == expected and len(expected) > 1
    assert all_ids(qs(engine, "symbol:cdk2~")) == expected  # AUTO: 1 edit for 3-5 chars
    expected = ids_where(lambda d: bool(values(d, "ec")))
    assert all_ids(qs(engine, "_exists_:ec")) == expected
    assert all_ids(qs(engine, "ec:*")) == expected
    expected = ids_where(lambda d: bool(values(d, "genomic_pos")))
    assert all_ids(qs(engine, "_exists_:genomic_pos")) == expected  # an object field
    assert qs(engine, "*:*", size=0)["hits"]["total"]["value"] == len(DOCS)


def test_query_string_boolean_logic(engine):
    def has(term):
        return lambda d: term_matches(d, term)
    kinase, cyclin, dependent, cdk2 = has("kinase"), has("cyclin"), has("dependent"), has("cdk2")
    expected = ids_where(lambda d: kinase(d) and (cyclin(d) or dependent(d)) and not cdk2(d))
    assert expected and all_ids(qs(engine, "kinase AND (cyclin OR dependent) NOT cdk2")) == expected
    assert all_ids(qs(engine, "kinase AND NOT cyclin")) == ids_where(lambda d: kinase(d) and not cyclin(d))
    assert all_ids(qs(engine, "+kinase -cyclin")) == ids_where(lambda d: kinase(d) and not cyclin(d))
    assert all_ids(qs(engine, "cyclin kinase")) == ids_where(lambda d: cyclin(d) and kinase(d))
    assert all_ids(qs(engine, "cdk2 OR cdk3")) == ids_where(lambda d: has("cdk2")(d) or has("cdk3")(d))
    assert all_ids(qs(engine, "NOT cdk2")) == ids_where(lambda d: not cdk2(d))
    # Lucene classic semantics: "a OR b AND c" is "a +b +c" (a is optional)
    assert all_ids(qs(engine, "cdk3 OR cyclin AND kinase")) == ids_where(lambda d: cyclin(d) and kinase(d))
    # default operator OR
    r = search(engine, {"query": {"query_string": {"query": "cdk2 cdk3"}}, "size": 100})
    assert all_ids(r) == ids_where(lambda d: has("cdk2")(d) or has("cdk3")(d))
    # field groups
    expected = ids_where(lambda d: {"cdk2", "cdk3"} & {t for v in values(d, "symbol") for t in tokens(v)})
    assert all_ids(qs(engine, "symbol:(cdk2 OR cdk3)")) == expected and len(expected) == 2


def test_query_string_boost_escape_errors_lenient(engine):
    r = qs(engine, "symbol:cdk2^5 OR symbol:cdk3")
    assert hit_ids(r)[0] == "1017"
    assert all_ids(qs(engine, r"type_of_gene:protein\-coding")) == ids_where(
        lambda d: d.get("type_of_gene") == "protein-coding")
    assert all_ids(qs(engine, "taxid:abc")) == set()  # lenient: no match, no error
    with pytest.raises(QueryError):
        qs(engine, "symbol:(cdk2")
    with pytest.raises(QueryError):
        search(engine, {"query": {"query_string": {"query": "AND AND"}}})
    with pytest.raises(QueryError):
        search(engine, {"query": {"term": {"taxid": "abc"}}})  # not lenient
    assert qs(engine, "")["hits"]["total"]["value"] == 0


def test_query_string_fields_param(engine):
    body = {"query": {"query_string": {"query": "cdk2", "fields": ["symbol", "alias"]}}, "size": 50}
    expected = ids_where(lambda d: any("cdk2" in tokens(v) for f in ("symbol", "alias") for v in values(d, f)))
    assert all_ids(search(engine, body)) == expected
    body = {"query": {"query_string": {"query": "cdk2", "default_field": "name"}}}
    assert search(engine, body)["hits"]["total"]["value"] == 0


# ---------------------------------------------------------------------- other clauses

def test_match_multi_match(engine):
    r = search(engine, {"query": {"match": {"name": {"query": "cyclin kinase", "operator": "and"}}}, "size": 100})
    expected = ids_where(lambda d: any({"cyclin", "kinase"} <= set(tokens(v)) for v in values(d, "name")))
    assert all_ids(r) == expected
    r = search(engine, {"query": {"match": {"name": "cyclin kinase"}}, "size": 500})
    expected = ids_where(lambda d: any({"cyclin", "kinase"} & set(tokens(v)) for v in values(d, "name")))
    assert all_ids(r) == expected
    body = {"multi_match": {"query": "CDK2", "fields": ["symbol", "alias", "taxid"], "operator": "and",
                            "lenient": True}}
    expected = ids_where(lambda d: any("cdk2" in tokens(v) for f in ("symbol", "alias") for v in values(d, f)))
    assert all_ids(search(engine, {"query": body, "size": 100})) == expected
    body = {"multi_match": {"query": 9606, "fields": ["taxid"]}}
    assert search(engine, {"query": body, "size": 0})["hits"]["total"]["value"] == len(DOCS)


def test_term_terms_range_exists_prefix_wildcard_regexp(engine):
    def count(q):
        return search(engine, {"query": q, "size": 0})["hits"]["total"]["value"]
    assert count({"term": {"type_of_gene": "ncRNA"}}) == len(ids_where(lambda d: d.get("type_of_gene") == "ncRNA"))
    assert count({"term": {"symbol": "CDK2"}}) == 0  # term is not analyzed: text tokens are lowercase
    assert count({"term": {"symbol": "cdk2"}}) == 1
    assert count({"terms": {"chromosome": ["1", "2"]}}) == len(
        ids_where(lambda d: set(map(str, values(d, "chromosome"))) & {"1", "2"}))
    assert count({"terms": {"genomic_pos.strand": [1]}}) == len(
        ids_where(lambda d: 1 in values(d, "genomic_pos.strand")))
    assert count({"range": {"genomic_pos.start": {"gte": 1000000, "lt": 5000000}}}) == len(
        ids_where(lambda d: any(1000000 <= v < 5000000 for v in values(d, "genomic_pos.start"))))
    assert count({"range": {"pubmed_count": {"gt": 10.5}}}) == len(
        ids_where(lambda d: any(v > 10.5 for v in values(d, "pubmed_count"))))
    assert count({"range": {"map_location": {"gte": "1p", "lt": "1q"}}}) == len(
        ids_where(lambda d: any("1p" <= v < "1q" for v in values(d, "map_location"))))
    assert count({"exists": {"field": "MIM"}}) == len(ids_where(lambda d: bool(values(d, "MIM"))))
    assert count({"exists": {"field": "not_a_field"}}) == 0
    assert count({"prefix": {"ensembl.gene": "ENSG0000012"}}) == len(
        ids_where(lambda d: any(v.startswith("ENSG0000012") for v in values(d, "ensembl.gene"))))
    assert count({"wildcard": {"map_location": {"value": "1?q*"}}}) == len(
        ids_where(lambda d: any(re.fullmatch(r"1.q.*", v) for v in values(d, "map_location"))))
    assert count({"regexp": {"MIM": "1[0-2].*"}}) == len(
        ids_where(lambda d: any(re.fullmatch(r"1[0-2].*", v) for v in values(d, "MIM"))))
    assert count({"match_none": {}}) == 0
    assert count({"term": {"unmapped_field": "x"}}) == 0


def test_bool_and_compound(engine):
    def ids(q, size=3000):
        return all_ids(search(engine, {"query": q, "size": size}))
    ncrna = lambda d: d.get("type_of_gene") == "ncRNA"  # noqa: E731
    chr1 = lambda d: "1" in values(d, "chromosome")  # noqa: E731
    q = {"bool": {"must": [{"term": {"chromosome": "1"}}], "filter": {"term": {"type_of_gene": "ncRNA"}}}}
    assert ids(q) == ids_where(lambda d: chr1(d) and ncrna(d))
    q = {"bool": {"should": [{"term": {"chromosome": "1"}}, {"term": {"type_of_gene": "ncRNA"}}]}}
    assert ids(q) == ids_where(lambda d: chr1(d) or ncrna(d))
    q = {"bool": {"should": [{"term": {"chromosome": "1"}}, {"term": {"type_of_gene": "ncRNA"}}],
                  "minimum_should_match": 2}}
    assert ids(q) == ids_where(lambda d: chr1(d) and ncrna(d))
    q = {"bool": {"must_not": {"term": {"type_of_gene": "ncRNA"}}}}
    assert ids(q) == ids_where(lambda d: not ncrna(d))
    q = {"bool": {"filter": [{"term": {"chromosome": "1"}}], "must_not": [{"term": {"type_of_gene": "ncRNA"}}]}}
    assert ids(q) == ids_where(lambda d: chr1(d) and not ncrna(d))
    r = search(engine, {"query": {"constant_score": {"filter": {"term": {"chromosome": "1"}}, "boost": 2.0}}})
    assert {h["_score"] for h in r["hits"]["hits"]} == {2.0}
    q = {"dis_max": {"queries": [{"term": {"symbol": "cdk2"}}, {"term": {"symbol": "cdk3"}}]}}
    assert ids(q) == {"1017", "1018"}
    q = {"bool": {"filter": {"term": {"type_of_gene": "ncRNA"}}}}
    assert {h["_score"] for h in search(engine, {"query": q})["hits"]["hits"]} == {0.0}


def test_random_score(engine):
    body = {"query": {"function_score": {"query": {"match_all": {}}, "random_score": {},
                                         "boost_mode": "replace"}}, "size": 1}
    seen = set()
    for _ in range(8):
        r = search(engine, body)
        assert r["hits"]["total"]["value"] == len(DOCS) and len(r["hits"]["hits"]) == 1
        seen.add(hit_ids(r)[0])
    assert len(seen) > 1
    body["query"]["function_score"]["query"] = {"term": {"type_of_gene": "ncRNA"}}
    body["size"] = 30
    r = search(engine, body)
    ids = hit_ids(r)
    assert len(ids) == len(set(ids)) == 30 and all(BY_ID[i]["type_of_gene"] == "ncRNA" for i in ids)


# ---------------------------------------------------------------------- paging, sort, _source

def test_from_size(engine):
    full = hit_ids(search(engine, {"query": {"match": {"name": "protein family member"}}, "size": 40}))
    page = hit_ids(search(engine, {"query": {"match": {"name": "protein family member"}}, "from": 10, "size": 10}))
    assert page == full[10:20]
    r = search(engine, {"query": {"match": {"name": "protein family member"}}, "size": 0})
    assert r["hits"]["hits"] == [] and r["hits"]["total"]["value"] > 40
    with pytest.raises(QueryError):
        search(engine, {"query": {"match_all": {}}, "from": 9995, "size": 10})


def test_sort(engine):
    r = search(engine, {"query": {"match_all": {}}, "size": 2000, "sort": [{"pubmed_count": {"order": "desc"}}]})
    got = [h["sort"][0] for h in r["hits"]["hits"]]
    present = sorted((max(values(d, "pubmed_count")) for d in DOCS if values(d, "pubmed_count")), reverse=True)
    assert got[:len(present)] == present
    assert all(v is None for v in got[len(present):])
    assert all(h["_score"] is None for h in r["hits"]["hits"])
    # multi-key: keyword asc then integer desc
    body = {"query": {"match_all": {}}, "size": 2000,
            "sort": [{"type_of_gene": {"order": "asc"}}, {"genomic_pos.start": {"order": "desc"}}, "_id"]}
    r = search(engine, body)

    def key(d):
        tog = d.get("type_of_gene")
        starts = values(d, "genomic_pos.start")
        return (tog is None, tog or "", not starts, -(max(starts) if starts else 0), d["_id"])
    assert hit_ids(r) == [d["_id"] for d in sorted(DOCS, key=key)]
    assert r["hits"]["hits"][0]["sort"][0] == sorted(d["type_of_gene"] for d in DOCS)[0]
    # ascending on a multi-valued field uses the smallest value
    r = search(engine, {"query": {"ids": {"values": ["49"]}}, "sort": [{"genomic_pos.start": "asc"}]})
    assert r["hits"]["hits"][0]["sort"] == [min(values(BY_ID["49"], "genomic_pos.start"))]
    # paging a sorted result
    page = search(engine, dict(body, **{"from": 100, "size": 10}))
    assert hit_ids(page) == hit_ids(r if False else search(engine, body))[100:110]
    with pytest.raises(QueryError, match="Text fields"):
        search(engine, {"sort": [{"symbol": "asc"}]})
    with pytest.raises(QueryError, match="No mapping"):
        search(engine, {"sort": [{"nope": "asc"}]})
    r = search(engine, {"query": {"match": {"name": "kinase"}}, "sort": ["_score"], "size": 5})
    scores = [h["_score"] for h in r["hits"]["hits"]]
    assert scores == sorted(scores, reverse=True) and scores[0] is not None


def test_source_filtering(engine):
    def one(spec, doc_id="1"):
        r = search(engine, {"query": {"ids": {"values": [doc_id]}}, "_source": spec})
        return r["hits"]["hits"][0].get("_source", "ABSENT")
    doc = BY_ID["1"]
    assert one(["symbol", "taxid"]) == {"symbol": doc["symbol"], "taxid": doc["taxid"]}
    assert one(["genomic_pos.start"]) == {"genomic_pos": {"start": doc["genomic_pos"]["start"]}}
    assert one(["go.CC.id"]) == {"go": {"CC": [{"id": x["id"]} for x in doc["go"]["CC"]]}}
    assert one({"includes": ["go"], "excludes": ["go.CC", "go.*.evidence"]}) == {
        "go": {k: [{"id": x["id"]} for x in v] for k, v in doc["go"].items() if k != "CC"}}
    assert one({"excludes": ["go", "refseq"]}) == {k: v for k, v in doc.items() if k not in ("go", "refseq", "_id")}
    assert one(["sym*"]) == {"symbol": doc["symbol"]}
    assert one(False) == "ABSENT"
    assert one(["does_not_exist"]) == {}


# ---------------------------------------------------------------------- aggregations

def per_doc_counts(field, docs=DOCS):
    counter = collections.Counter()
    for d in docs:
        for v in set(values(d, field)):
            counter[v] += 1
    return counter


def expected_buckets(counter, size):
    ordered = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
    return [{"key": k, "doc_count": n} for k, n in ordered[:size]], sum(n for _k, n in ordered[size:])


def test_terms_aggregations(engine):
    body = {"size": 0, "aggs": {
        "type_of_gene": {"terms": {"field": "type_of_gene", "size": 3}},
        "chromosome": {"terms": {"field": "chromosome", "size": 10}},
        "cc": {"terms": {"field": "go.CC.id", "size": 7}},
        "taxid": {"terms": {"field": "taxid"}},
        "strand": {"terms": {"field": "genomic_pos.strand", "size": 5}},
    }}
    aggs = search(engine, body)["aggregations"]
    for name, field, size in [("type_of_gene", "type_of_gene", 3), ("chromosome", "chromosome", 10),
                              ("cc", "go.CC.id", 7), ("taxid", "taxid", 10), ("strand", "genomic_pos.strand", 5)]:
        buckets, other = expected_buckets(per_doc_counts(field), size)
        assert aggs[name]["buckets"] == buckets, name
        assert aggs[name]["sum_other_doc_count"] == other, name
        assert aggs[name]["doc_count_error_upper_bound"] == 0
    assert isinstance(aggs["taxid"]["buckets"][0]["key"], int)


def test_nested_and_missing_aggregations(engine):
    body = {"query": {"term": {"chromosome": "1"}}, "size": 0, "aggs": {
        "type_of_gene": {"terms": {"field": "type_of_gene", "size": 2}, "aggs": {
            "map": {"terms": {"field": "map_location", "size": 3}},
            "map__missing": {"missing": {"field": "ec"}}}},
        "type_of_gene__missing": {"missing": {"field": "ensembl.gene"}},
    }}
    aggs = search(engine, body)["aggregations"]
    docs = [d for d in DOCS if "1" in values(d, "chromosome")]
    buckets, other = expected_buckets(per_doc_counts("type_of_gene", docs), 2)
    assert [{"key": b["key"], "doc_count": b["doc_count"]} for b in aggs["type_of_gene"]["buckets"]] == buckets
    assert aggs["type_of_gene"]["sum_other_doc_count"] == other
    for bucket in aggs["type_of_gene"]["buckets"]:
        inner = [d for d in docs if d.get("type_of_gene") == bucket["key"]]
        sub, sub_other = expected_buckets(per_doc_counts("map_location", inner), 3)
        assert bucket["map"]["buckets"] == sub and bucket["map"]["sum_other_doc_count"] == sub_other
        assert bucket["map__missing"] == {"doc_count": sum(1 for d in inner if not values(d, "ec"))}
    assert aggs["type_of_gene__missing"]["doc_count"] == sum(1 for d in docs if not values(d, "ensembl.gene"))


def test_metric_aggregations_and_errors(engine):
    aggs = search(engine, {"size": 0, "aggs": {"s": {"stats": {"field": "pubmed_count"}},
                                               "mx": {"max": {"field": "genomic_pos.end"}}}})["aggregations"]
    counts = [v for d in DOCS for v in values(d, "pubmed_count")]
    assert aggs["s"]["count"] == len(counts) and aggs["s"]["max"] == max(counts)
    assert aggs["s"]["min"] == min(counts) and aggs["s"]["sum"] == sum(counts)
    assert aggs["mx"]["value"] == max(v for d in DOCS for v in values(d, "genomic_pos.end"))
    with pytest.raises(QueryError, match="Text fields are not optimised"):
        search(engine, {"size": 0, "aggs": {"s": {"terms": {"field": "symbol"}}}})
    r = search(engine, {"size": 0, "aggs": {"u": {"terms": {"field": "unmapped"}}}})
    assert r["aggregations"]["u"]["buckets"] == []


def test_post_filter_narrows_hits_not_aggs(engine):
    body = {"query": {"match_all": {}}, "post_filter": {"term": {"type_of_gene": "ncRNA"}}, "size": 0,
            "aggs": {"t": {"terms": {"field": "type_of_gene", "size": 20}}}}
    r = search(engine, body)
    assert r["hits"]["total"]["value"] == per_doc_counts("type_of_gene")["ncRNA"]
    assert sum(b["doc_count"] for b in r["aggregations"]["t"]["buckets"]) == len(DOCS)


def test_explain(engine):
    r = search(engine, {"query": {"match": {"symbol": "cdk2"}}, "explain": True})
    explanation = r["hits"]["hits"][0]["_explanation"]
    assert isinstance(explanation["value"], float) and explanation["description"]
    assert isinstance(explanation["details"], list)


# ---------------------------------------------------------------------- scroll, msearch

def test_scroll_across_engines(engine, data_dir):
    body = {"query": {"term": {"type_of_gene": "ncRNA"}}, "size": 200}
    first = search(engine, body, scroll="1m")
    assert "_scroll_id" in first
    other = EmbeddedEngine(data_dir)  # as if another server process continued
    try:
        seen = hit_ids(first)
        scroll_id = first["_scroll_id"]
        while True:
            page = run(other.scroll(scroll_id, scroll="1m"))
            if not page["hits"]["hits"]:
                break
            seen += hit_ids(page)
            scroll_id = page["_scroll_id"]
        assert len(seen) == len(set(seen)) == per_doc_counts("type_of_gene")["ncRNA"]
        with pytest.raises(ScrollError):
            run(other.scroll("not-a-scroll-id"))
        expired = search(engine, body, scroll="1ms")
        time.sleep(0.01)
        with pytest.raises(ScrollError):
            run(other.scroll(expired["_scroll_id"]))
    finally:
        run(other.close())


def test_msearch_one_failing_body(engine):
    bodies = [
        {"query": {"multi_match": {"query": "1017", "fields": ["_id"], "operator": "and"}}},
        {"query": {"query_string": {"query": "symbol:(broken"}}},
        {"query": {"multi_match": {"query": "1018", "fields": ["_id"], "operator": "and"}}},
    ]
    results = run(engine.msearch("genes", bodies))
    assert len(results) == 3
    assert hit_ids(results[0]) == ["1017"] and hit_ids(results[2]) == ["1018"]
    assert results[1]["status"] == 400 and results[1]["error"]["type"] and results[1]["error"]["reason"]


def test_mapping_health_info_and_missing_index(engine):
    mapping = run(engine.get_mapping("genes"))
    assert mapping["genes"]["mappings"]["properties"] == MAP["properties"]
    meta = mapping["genes"]["mappings"]["_meta"]
    assert meta["src"] == load_json(META)["src"] and meta["stats"]["total"] == len(DOCS)
    health = run(engine.health())
    assert health["status"] == "green" and health["cluster_name"] == "embedded" and health["number_of_nodes"] == 1
    info = run(engine.info())
    assert info["name"] == "embedded" and info["version"]["distribution"] == "embedded"
    assert run(engine.count("genes")) == len(DOCS)
    with pytest.raises(IndexNotFound):
        search(engine, {}, index="nope")
    with pytest.raises(IndexNotFound):
        search(engine, {}, index="../genes")


def test_comma_separated_indexes(engine, data_dir, tmp_path):
    build_index(data_dir, "genes_small", [d for d in DOCS if d["_id"] in ("1017", "1018")], MAP)
    r = search(engine, {"query": {"match": {"symbol": "cdk2"}}}, index="genes,genes_small")
    assert r["hits"]["total"]["value"] == 2 and {h["_index"] for h in r["hits"]["hits"]} == {"genes", "genes_small"}
    with pytest.raises(QueryError):
        search(engine, {"aggs": {"t": {"terms": {"field": "taxid"}}}}, index="genes,genes_small")


# ---------------------------------------------------------------------- reload, persistence

def test_atomic_reload_and_persistence(tmp_path, monkeypatch):
    monkeypatch.setattr(engine_module, "RECHECK_SECONDS", 0.05)
    path = str(tmp_path)
    build_index(path, "g", DOCS[:100], MAP, {"build_version": "one"})
    eng = EmbeddedEngine(path)
    try:
        assert run(eng.count("g")) == 100
        scrolling = search(eng, {"query": {"match_all": {}}, "size": 30}, index="g", scroll="1m")
        build_index(path, "g", DOCS[:250], MAP, {"build_version": "two"})
        time.sleep(0.1)
        assert run(eng.count("g")) == 250
        assert run(eng.get_mapping("g"))["g"]["mappings"]["_meta"]["build_version"] == "two"
        # a scroll opened on the previous version finishes on it
        page = run(eng.scroll(scrolling["_scroll_id"]))
        assert page["hits"]["total"]["value"] == 100 and len(page["hits"]["hits"]) == 30
    finally:
        run(eng.close())
    # persistence: a new engine (a new process) finds the same index
    again = EmbeddedEngine(path)
    try:
        r = search(again, {"query": {"ids": {"values": [DOCS[200]["_id"]]}}}, index="g")
        assert r["hits"]["hits"][0]["_source"]["symbol"] == DOCS[200]["symbol"]
    finally:
        run(again.close())
    versions = os.listdir(os.path.join(path, "g", "versions"))
    assert len(versions) == 2  # current + previous, older ones cleaned up


def test_duplicate_ids_last_wins_and_inferred_mapping(tmp_path):
    docs = [{"_id": "a", "name": "first one", "n": 1}, {"_id": "b", "name": "other", "n": 2.5, "flag": True},
            {"_id": "a", "name": "second one", "n": 3, "tags": ["x y", "z"], "obj": {"k": "v"}}]
    mapping = infer_mapping(docs)
    assert mapping["properties"]["name"]["type"] == "text"
    assert mapping["properties"]["name"]["fields"]["keyword"]["type"] == "keyword"
    assert mapping["properties"]["n"] == {"type": "long"}  # the first type seen wins, as in ES (2.5 is coerced)
    assert mapping["properties"]["flag"] == {"type": "boolean"}
    assert mapping["properties"]["obj"]["properties"]["k"]["type"] == "text"
    result = build_index(str(tmp_path), "t", docs)
    assert result["total"] == 2 and result["replaced"] == 1
    eng = EmbeddedEngine(str(tmp_path))
    try:
        r = search(eng, {"query": {"term": {"_id": "a"}}}, index="t")
        assert r["hits"]["total"]["value"] == 1 and r["hits"]["hits"][0]["_source"]["name"] == "second one"
        r = search(eng, {"query": {"term": {"name.keyword": "second one"}}}, index="t")
        assert hit_ids(r) == ["a"]
        r = search(eng, {"query": {"query_string": {"query": "flag:true"}}}, index="t")
        assert hit_ids(r) == ["b"]
    finally:
        run(eng.close())


def test_values_of_a_text_field_are_100_positions_apart(tmp_path):
    """Elasticsearch's position_increment_gap: a phrase matches across two values of a field
    only with a slop of 100 or more (tantivy's own gap is 1); within a value as usual; the gap
    word is not searchable; keyword-analyzed text fields take no gap words."""
    docs = [{"_id": "across", "tags": ["alpha beta", "gamma delta"], "code": ["x", "y"]},
            {"_id": "within", "tags": ["beta gamma"]},
            {"_id": "zqx", "tags": ["a zqx b"]}]
    mapping = {"properties": {"tags": {"type": "text"}, "code": {"type": "text", "analyzer": "keyword"}}}
    build_index(str(tmp_path), "t", docs, mapping)
    eng = EmbeddedEngine(str(tmp_path))
    try:
        def phrase(text, slop=0, field="tags"):
            body = {"query": {"match_phrase": {field: {"query": text, "slop": slop}}}}
            return sorted(hit_ids(search(eng, body, index="t")))
        assert phrase("beta gamma") == ["within"]
        assert phrase("beta gamma", 99) == ["within"]
        assert phrase("beta gamma", 100) == ["across", "within"]
        assert phrase("alpha beta") == ["across"] and phrase("gamma delta") == ["across"]
        # the gap word is dropped and its neighbours keep their places, as around any word
        assert phrase("a b") == [] and phrase("a b", 1) == ["zqx"]
        assert phrase("zqx") == []
        assert phrase("y", field="code") == ["across"]  # the whole value, no gap words in it
        source = search(eng, {"query": {"ids": {"values": ["across"]}}}, index="t")["hits"]["hits"][0]["_source"]
        assert source["tags"] == ["alpha beta", "gamma delta"]  # the document as given
    finally:
        run(eng.close())


def test_searches_do_not_block_the_loop(engine):
    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)
        task = asyncio.create_task(ticker())
        body = {"query": {"match_all": {}}, "size": 1000,
                "sort": [{"type_of_gene": "asc"}, {"pubmed_count": "desc"}]}
        await asyncio.gather(*[engine.search("genes", body) for _ in range(4)])
        task.cancel()
        return ticks
    assert run(main()) > 1


def test_msearch_id_batch_matches_single_searches(engine):
    """The batched id lookups answer exactly as one search per body would."""
    bodies = [{"query": {"multi_match": {"query": i, "fields": ["_id"], "operator": "and"}}, "size": 10}
              for i in ["1017", "nope", "1", "1017"]]
    bodies.append({"query": {"term": {"_id": "49"}}, "_source": ["symbol"], "version": True})
    batched = run(engine.msearch("genes", bodies))
    for body, answer in zip(bodies, batched):
        single = search(engine, body)
        for response in (single, answer):
            response.pop("took")
        assert answer == single
    assert batched[1]["hits"]["total"]["value"] == 0
    assert batched[4]["hits"]["hits"][0]["_source"] == {"symbol": BY_ID["49"]["symbol"]}


def builder_id_batch(ids, **values):
    """The search bodies the pipeline sends for a batch of ids: POST /v1/gene (``annotation``)
    or POST /v1/query with ``scopes=_id``, with the request's ``timeout``."""
    from biothings.web.options import Options
    from biothings.web.pipeline import ESQueryBackend, ESQueryBuilder
    from biothings.web.settings import BiothingWebSettings
    settings = BiothingWebSettings(ES_INDICES={"gene": "genes"})
    bodies = ESQueryBuilder(settings).build(list(ids), Options(values))
    return ESQueryBackend(settings).timed(bodies)


@pytest.mark.parametrize("options", [
    {"annotation": True},
    {"annotation": True, "fields": ["symbol", "go.BP"]},
    {"annotation": True, "fields": ["-go", "-alias"]},
    {"scopes": ["_id"], "size": 10},
    {"scopes": "_id", "size": 3, "fields": ["symbol"]},
], ids=["annotation", "annotation-fields", "annotation-excludes", "query", "query-fields"])
def test_id_batches_answer_as_the_general_search(engine, options):
    """A batch of ids as the pipeline builds it (the ``ids`` query on ``_id``, size 1000,
    version, timeout, source filtering) takes the lookup fast path, and every answer,
    in order, duplicates and misses included, is the one the general search gives."""
    ids = ["1017", "nope", "672", "1017", "1", "", "49", "nope"]
    bodies = builder_id_batch(ids, **options)
    assert all(engine_module._plain_id_lookup(body) is not None for body in bodies)
    batched = run(engine.msearch("genes", bodies))
    opened = engine.handle("genes").current()
    for body, answer in zip(bodies, batched):
        general = engine_module.execute(opened, dict(body))
        single = search(engine, body)
        for response in (general, single, answer):
            response.pop("took")
        assert answer == general and single == general
    assert [hit_ids(answer) for answer in batched] == [[i] if i in BY_ID else [] for i in ids]
    first = batched[0]["hits"]["hits"][0]
    assert first["_score"] == 1.0 and ("_version" in first) == bool(options.get("annotation"))
    assert first["_source"] is not batched[3]["hits"]["hits"][0]["_source"]  # duplicates: own copies


def test_id_lookup_fast_path_only_for_one_plain_id(engine):
    """What the fast path does not take: several ids, paging, sorting, a window past the limit."""
    plain = engine_module._plain_id_lookup
    assert plain({"query": {"ids": {"values": ["1017"]}}, "size": 1000}) == ("1017", 1.0)
    assert plain({"query": {"term": {"_id": "1017"}}}) == ("1017", None)
    for body in ({"query": {"ids": {"values": ["1017", "672"]}}},
                 {"query": {"ids": {"values": ["1017"], "boost": 2}}},
                 {"query": {"ids": {"values": [True]}}},
                 {"query": {"ids": {"values": ["1017"]}}, "from": 1},
                 {"query": {"ids": {"values": ["1017"]}}, "size": 0},
                 {"query": {"ids": {"values": ["1017"]}}, "size": 10001},
                 {"query": {"ids": {"values": ["1017"]}}, "sort": ["symbol"]}):
        assert plain(body) is None
    body = {"query": {"ids": {"values": ["1017"]}}, "size": 10001}
    with pytest.raises(QueryError, match="Result window is too large"):
        search(engine, body)


def test_forged_scroll_id_is_refused(engine):
    """A scroll id carries its query: one not signed by the engine never runs."""
    import base64
    import zlib

    import orjson

    first = search(engine, {"query": {"match_all": {}}, "size": 5}, scroll="1m")
    payload, _, signature = first["_scroll_id"].rpartition(".")
    state = orjson.loads(zlib.decompress(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
    state["b"] = {"query": {"wildcard": {"symbol": "*"}}, "size": 10000}
    forged = base64.urlsafe_b64encode(zlib.compress(orjson.dumps(state))).decode().rstrip("=")
    with pytest.raises(ScrollError):
        run(engine.scroll(forged + "." + signature))
    with pytest.raises(ScrollError):
        run(engine.scroll(forged))
    assert run(engine.scroll(first["_scroll_id"]))["hits"]["hits"]


@pytest.mark.parametrize("includes", [["symbol"], ["symbol", "name", "go"], ["ensembl", "nope"], ["a"], ["MIM"]])
def test_source_filter_of_top_level_names_keeps_what_the_walk_keeps(includes):
    """``fields=symbol,name`` picks the keys (no walk over the document); the answer is the
    one the general filter gives, on every demo gene and on keys holding dots or nothing."""
    from biothings.web.engines.embedded.source import SourceFilter
    fast = SourceFilter.parse(includes)
    assert fast.top_level is not None
    walk = SourceFilter.parse(includes)
    walk.top_level = None  # the general filter, for the comparison
    odd = [{"a": {}, "a.b": 1, "b": [], "ab": 2}, {"a": [], "a.b": {"c": 1}}, {"a": [{"x": None}, 3]}, {}]
    for doc in [{k: v for k, v in d.items() if k != "_id"} for d in DOCS] + odd:
        assert fast.apply(doc) == walk.apply(doc)
    assert SourceFilter.parse(["go.BP"]).top_level is None
    assert SourceFilter.parse(["sym*"]).top_level is None
    assert SourceFilter.parse({"includes": ["symbol"], "excludes": ["symbol"]}).top_level is None


@pytest.mark.parametrize("words, slop, frequency", [
    ("protein kinase", 2, 1.0),
    ("kinase protein", 2, 1 / 3),  # a swap takes two moves
    ("kinase protein", 1, 0.0),
    ("protein x kinase", 2, 1 / 2),
    ("protein x y kinase", 2, 1 / 3),
    ("protein x y z kinase", 2, 0.0),
    ("protein kinase kinase kinase", 2, 1.0),  # one match: the matcher stops once "protein" is done
    ("protein kinase protein kinase", 2, 2.0),
    ("protein x kinase y z protein kinase", 1, 1.5),
])
def test_sloppy_frequency_is_lucenes(words, slop, frequency):
    """Lucene's SloppyPhraseMatcher: 1 / (1 + moves) for each match it finds."""
    from biothings.web.engines.embedded.sloppy import sloppy_frequency
    tokens = words.split()
    positions = [[at for at, token in enumerate(tokens) if token == word] for word in ("protein", "kinase")]
    assert sloppy_frequency(positions, slop) == pytest.approx(frequency)


SLOPPY_TEXTS = {"a": "protein kinase", "b": "kinase protein", "c": "protein x kinase",
                "d": "protein kinase kinase kinase", "e": "protein x kinase y z protein kinase",
                "f": ["other words", "protein"], "g": ["protein", "kinase"]}


def lucene_sloppy_scores():
    """Lucene's BM25 of ``"protein kinase"~2`` over SLOPPY_TEXTS, written out."""
    import math
    lengths = {"a": 2, "b": 2, "c": 3, "d": 4, "e": 7, "f": 3, "g": 2}
    average = sum(lengths.values()) / len(lengths)
    frequencies = {"a": 1.0, "b": 1 / 3, "c": 1 / 2, "d": 1.0, "e": 1 / 2 + 1}  # "g": 101 positions apart
    # "protein" in all 7 documents, "kinase" in 6; Lucene's idf of a phrase is the sum
    idf = math.log(1 + (7 - 7 + 0.5) / (7 + 0.5)) + math.log(1 + (7 - 6 + 0.5) / (6 + 0.5))
    return {key: idf * f / (f + 1.2 * (1 - 0.75 + 0.75 * lengths[key] / average)) for key, f in frequencies.items()}


@pytest.fixture
def sloppy_engine(tmp_path):
    build_index(str(tmp_path), "t", [{"_id": key, "name": text} for key, text in SLOPPY_TEXTS.items()],
                {"properties": {"name": {"type": "text"}}})
    eng = EmbeddedEngine(str(tmp_path))
    yield lambda words, slop=2: {hit["_id"]: hit["_score"] for hit in search(eng, {"query": {"match_phrase": {
        "name": {"query": words, "slop": slop}}}}, index="t")["hits"]["hits"]}
    run(eng.close())


def test_exact_phrases_score_as_lucene(sloppy_engine):
    """An exact phrase is one match of frequency 1 where the words follow each other (not in
    "g", whose values are 100 positions apart), with the sum of the words' idf."""
    import math
    lengths, average = {"a": 2, "d": 4, "e": 7}, 23 / 7
    idf = math.log(1 + (7 - 7 + 0.5) / (7 + 0.5)) + math.log(1 + (7 - 6 + 0.5) / (6 + 0.5))
    hits = sloppy_engine("protein kinase", slop=0)
    assert hits.keys() == lengths.keys()
    for key, length in lengths.items():
        assert hits[key] == pytest.approx(idf / (1 + 1.2 * (1 - 0.75 + 0.75 * length / average)), rel=1e-5), key


def test_sloppy_phrases_score_as_lucene(sloppy_engine):
    """BM25 with Lucene's sloppy frequency (tantivy's own counts the matches: "protein x
    kinase y z protein kinase" would score as two exact matches), over a multi-valued field too."""
    hits = sloppy_engine("protein kinase")
    expected = lucene_sloppy_scores()
    assert hits.keys() == expected.keys()
    for key, score in expected.items():
        assert hits[key] == pytest.approx(score, rel=1e-5), key
    assert sorted(hits, key=hits.get, reverse=True) == sorted(expected, key=expected.get, reverse=True)


def test_sloppy_phrases_rescored_up_to_the_limit(sloppy_engine, monkeypatch):
    """Up to MAX_RESCORED matches get Lucene's scores; one more keeps tantivy's (the same
    matches), as does a phrase repeating a word."""
    from biothings.web.engines.embedded import sloppy
    expected = lucene_sloppy_scores()
    monkeypatch.setattr(sloppy, "MAX_RESCORED", len(expected))
    assert sloppy_engine("protein kinase")["e"] == pytest.approx(expected["e"], rel=1e-5)
    monkeypatch.setattr(sloppy, "MAX_RESCORED", len(expected) - 1)
    hits = sloppy_engine("protein kinase")
    assert hits.keys() == expected.keys()
    assert hits["e"] != pytest.approx(expected["e"], rel=1e-3)  # two matches counted as two
    monkeypatch.setattr(sloppy, "MAX_RESCORED", 10_000)
    # a repeated word: tantivy's matches and scores, as docs/embedded.md lists (Lucene would
    # want "protein" twice, so "a" would not match)
    hits = sloppy_engine("protein kinase protein")
    assert set(hits) == {"a", "b", "d", "e"} and hits["a"] == hits["b"]
