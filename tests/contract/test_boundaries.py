"""Every limit and option bound exactly at N (served) and at N+1 (refused, naming it), over HTTP.

Small limits through settings keep the requests small. The refusals are the
contract's JSON: the status, the limit (``max``), what was asked (``num``) and
the parameter (``keyword``) where there is one. Far-past-the-limit cases live
with their features (tests/contract/test_limits.py, tests/contract/test_budgets.py).
"""

import socket

import pytest

from biothings.web.settings import default
from tests.contract.test_limits import error_of


def served(response):
    assert response.status_code == 200, (response.status_code, response.text[:300])
    return response.json()


# ---------------------------------------------------------------- HTTP: URL and body

def test_url_length(serve):
    client = serve("embedded", MAX_URL_LENGTH=100)
    prefix = "/v1/query?fields=symbol&q="
    at_limit = prefix + "a" * (100 - len(prefix))
    assert len(at_limit) == 100
    assert served(client.get(at_limit))["hits"] == []
    body = error_of(client.get(at_limit + "a"), 414)
    assert body["max"] == 100 and body["num"] == 101 and "101 characters" in body["error"]


def raw_post(client, path, body, chunked=False):
    """POST ``body`` as it is (requests would add nothing, but a socket shows the exact bytes)."""
    host, port = client.url.replace("http://", "").split(":")
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
    if chunked:
        payload = b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (body[:10], body[10:]) if part)
        request = (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + payload + b"0\r\n\r\n"
    else:
        request = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    return status, answer.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("chunked", [False, True])
def test_body_size(serve, chunked):
    client = serve("embedded", MAX_BODY_SIZE=200)
    body = b'{"ids": ["1017"], "fields": "symbol"}'
    body += b" " * (200 - len(body))  # JSON allows trailing whitespace
    status, answer = raw_post(client, "/v1/gene", body, chunked)
    assert status == 200 and b'"symbol":"CDK2"' in answer
    status, answer = raw_post(client, "/v1/gene", body + b" ", chunked)
    assert status == 413 and b'"max":200' in answer and b'"num":201' in answer


# ---------------------------------------------------------------- query strings

@pytest.mark.parametrize("keyword", ["q", "filter", "post_filter"])
def test_query_length(serve, keyword):
    client = serve("embedded", MAX_QUERY_LENGTH=20)
    params = {"q": "cdk2", "fields": "symbol"}
    params[keyword] = "symbol:CDK2" + " " * 9
    assert served(client.get("/v1/query", params=params))["hits"][0]["symbol"] == "CDK2"
    params[keyword] += " "
    body = error_of(client.get("/v1/query", params=params), 400)
    assert body["keyword"] == keyword and body["max"] == 20 and body["num"] == 21


def test_query_length_of_a_userquery(serve, tmp_path):
    (tmp_path / "named").mkdir()
    (tmp_path / "named" / "query.txt").write_text('{"match": {"symbol": "{{q}}"}}')
    client = serve("embedded", MAX_QUERY_LENGTH=4, USERQUERY_DIR=str(tmp_path))
    assert served(client.get("/v1/query", params={"q": "cdk2", "userquery": "named"}))["hits"][0]["_id"] == "1017"
    body = error_of(client.get("/v1/query", params={"q": "cdk22", "userquery": "named"}), 400)
    assert body["max"] == 4 and body["num"] == 5


def test_query_clauses(serve):
    client = serve("embedded", MAX_QUERY_CLAUSES=3)
    assert served(client.get("/v1/query", params={"q": "symbol:CDK2 OR symbol:BRCA1 OR symbol:TP53"}))["total"] == 3
    body = error_of(client.get("/v1/query", params={"q": "cdk2 OR brca1 OR tp53 OR egfr"}), 400)
    assert body["keyword"] == "q" and body["max"] == 3 and body["num"] == 4


def test_query_depth(serve):
    client = serve("embedded", MAX_QUERY_DEPTH=2)
    assert served(client.get("/v1/query", params={"q": "((symbol:CDK2))"}))["hits"][0]["_id"] == "1017"
    body = error_of(client.get("/v1/query", params={"q": "(((symbol:CDK2)))"}), 400)
    assert body["keyword"] == "q" and body["max"] == 2 and "deeper than 2" in body["error"]


def test_fuzzy_terms(serve):
    client = serve("embedded", MAX_FUZZY_TERMS=2)
    assert served(client.get("/v1/query", params={"q": "symbol:CDK2~ OR symbol:BRCA1~"}))["total"] >= 2
    body = error_of(client.get("/v1/query", params={"q": "symbol:CDK2~ OR symbol:BRCA1~ OR symbol:TP53~"}), 400)
    assert body["keyword"] == "q" and body["max"] == 2 and body["num"] == 3
    loose = serve("embedded", MAX_FUZZY_TERMS=2, ALLOW_EXPENSIVE_QUERIES=True)
    assert served(loose.get("/v1/query", params={"q": "symbol:CDK2~ OR symbol:BRCA1~ OR symbol:TP53~"}))["total"] >= 3


def test_regex_length(serve):
    client = serve("embedded", MAX_REGEX_LENGTH=5, ALLOW_EXPENSIVE_QUERIES=True)
    assert served(client.get("/v1/query", params={"q": "symbol:/cdk2./"}))["total"] == 0  # 5 characters
    assert "1017" in {hit["_id"] for hit in served(client.get("/v1/query", params={"q": "symbol:/cdk.*/",
                                                                                   "size": 100}))["hits"]}
    body = error_of(client.get("/v1/query", params={"q": "symbol:/cdk2.*/"}), 400)
    assert body["keyword"] == "q" and body["max"] == 5 and body["num"] == 6


# ---------------------------------------------------------------- paging and sizes

def test_size_bounds(api):
    assert served(api.get("/v1/query", params={"q": "__all__", "size": 0}))["hits"] == []
    body = error_of(api.get("/v1/query", params={"q": "__all__", "size": -1}), 400)
    assert body["keyword"] == "size" and body["min"] == 0 and body["num"] == -1
    assert len(served(api.get("/v1/query", params={"q": "__all__", "size": 1000, "fields": "_id"}))["hits"]) == 1000
    body = error_of(api.get("/v1/query", params={"q": "__all__", "size": 1001}), 400)
    assert body["keyword"] == "size" and body["max"] == 1000 and body["num"] == 1001
    body = error_of(api.get("/v1/query", params={"q": "__all__", "limit": 1001}), 400)
    assert body["keyword"] == "size" and body["alias"] == "limit"


def test_from_bounds(api):
    sort = {"q": "__all__", "sort": "entrezgene"}
    first_two = [hit["_id"] for hit in served(api.get("/v1/query", params={**sort, "size": 2}))["hits"]]
    second = served(api.get("/v1/query", params={**sort, "size": 1, "from": 1}))["hits"]
    assert [hit["_id"] for hit in second] == first_two[1:]
    assert served(api.get("/v1/query", params={**sort, "size": 1, "from": 0}))["hits"][0]["_id"] == first_two[0]
    body = error_of(api.get("/v1/query", params={"q": "__all__", "from": -1}), 400)
    assert body["keyword"] == "from" and body["min"] == 0 and body["num"] == -1
    assert served(api.get("/v1/query", params={"q": "__all__", "from": 10000, "size": 0}))["hits"] == []
    body = error_of(api.get("/v1/query", params={"q": "__all__", "from": 10001, "size": 0}), 400)
    assert body["keyword"] == "from" and body["max"] == 10000 and body["num"] == 10001


def test_result_window(serve):
    client = serve("embedded", MAX_RESULT_WINDOW=100)
    page = served(client.get("/v1/query", params={"q": "__all__", "from": 90, "size": 10}))
    assert len(page["hits"]) == 10
    for params in ({"from": 91, "size": 10}, {"from": 0, "size": 101}, {"skip": 100, "limit": 1}):
        body = error_of(client.get("/v1/query", params={"q": "__all__", **params}), 400)
        assert body["keyword"] == "from" and body["max"] == 100 and body["num"] == 101
    default = serve("embedded")  # MAX_RESULT_WINDOW = 10000
    assert served(default.get("/v1/query", params={"q": "__all__", "from": 9990, "size": 10}))["hits"] == []
    body = error_of(default.get("/v1/query", params={"q": "__all__", "from": 9991, "size": 10}), 400)
    assert body["keyword"] == "from" and body["max"] == 10000 and body["num"] == 10001
    # a batch's size counts per term
    assert served(client.post("/v1/query", json={"q": ["CDK2"], "scopes": "symbol", "size": 100}))[0]["_id"] == "1017"
    body = error_of(client.post("/v1/query", json={"q": ["CDK2"], "scopes": "symbol", "size": 100, "from": 1}), 400)
    assert body["num"] == 101


# ---------------------------------------------------------------- batches

def with_max(kwargs, method, name, limit):
    return {**kwargs, method: {**kwargs[method], name: {**kwargs[method][name], "max": limit}}}


@pytest.mark.parametrize("path, key, kwargs", [
    ("/v1/gene", "ids", "ANNOTATION_KWARGS"), ("/v1/query", "q", "QUERY_KWARGS")])
def test_batch_size(serve, path, key, kwargs):
    name = "id" if key == "ids" else "q"
    client = serve("embedded", **{kwargs: with_max(getattr(default, kwargs), "POST", name, 3)})
    terms = ["1017", "1018", "672", "7157"]
    answer = served(client.post(path, json={key: terms[:3], "fields": "symbol"}))
    assert [hit["_id"] for hit in answer] == terms[:3]
    body = error_of(client.post(path, json={key: terms, "fields": "symbol"}), 400)
    assert body["keyword"] == name and body["max"] == 3 and body["num"] == 4
    assert "4 given, the maximum is 3" in body["error"]
    form = error_of(client.post(path, data={key: ",".join(terms)}), 400)  # a form's list counts alike
    assert form["max"] == 3 and form["num"] == 4


@pytest.mark.parametrize("path, key", [("/v1/gene", "ids"), ("/v1/query", "q")])
def test_default_batch_size_is_a_thousand(api, path, key):
    ids = [str(number) for number in range(1001)]
    body = error_of(api.post(path, json={key: ids}), 400)
    assert body["max"] == 1000 and body["num"] == 1001 and "1000" in body["error"]


@pytest.mark.parametrize("name, limit", [("fields", 1000), ("always_list", 1000), ("allow_null", 1000),
                                         ("sort", 10), ("facets", 1000)])
def test_list_parameters_at_their_max(serve, name, limit):
    client = serve("embedded", MAX_FACET_BUCKETS=0)
    sortable = ["entrezgene", "taxid", "type_of_gene", "map_location", "chromosome", "genomic_pos.start",
                "genomic_pos.end", "MIM", "ec", "pubmed_count", "genomic_pos.strand"]
    values = sortable if name == "sort" else [f"f{number}" for number in range(limit + 1)]
    params = {"q": "symbol:CDK2", name: ",".join(values[:limit])}
    assert served(client.get("/v1/query", params=params))["hits"][0]["_id"] == "1017"
    body = error_of(client.get("/v1/query", params={**params, name: ",".join(values)}), 400)
    assert body["keyword"] == name and body["max"] == limit and body["num"] == limit + 1


# ---------------------------------------------------------------- facets

def test_facet_size_bounds(api):
    answer = served(api.get("/v1/query", params={"q": "__all__", "facets": "taxid", "facet_size": 1}))
    assert len(answer["facets"]["taxid"]["terms"]) == 1
    body = error_of(api.get("/v1/query", params={"q": "__all__", "facets": "taxid", "facet_size": 0}), 400)
    assert body["keyword"] == "facet_size" and "greater than 0" in body["error"]
    assert served(api.get("/v1/query", params={"q": "__all__", "facets": "taxid", "facet_size": 1000}))["facets"]
    body = error_of(api.get("/v1/query", params={"q": "__all__", "facets": "taxid", "facet_size": 1001}), 400)
    assert body["keyword"] == "facet_size" and body["max"] == 1000 and body["num"] == 1001
    body = error_of(api.get("/v1/query", params={"q": "__all__", "facets": "taxid", "facet_size": -1}), 400)
    assert body["keyword"] == "facet_size" and body["min"] == 0


@pytest.mark.parametrize("facets, size, buckets, answered", [
    ("taxid,type_of_gene", 50, 100, {"taxid", "type_of_gene"}),  # 2 facets x 50
    ("type_of_gene(taxid)", 9, 90, {"type_of_gene"})])  # 9 + 9 x 9
def test_facet_buckets(serve, facets, size, buckets, answered):
    params = {"q": "__all__", "facets": facets, "facet_size": size, "size": 0}
    exact = serve("embedded", MAX_FACET_BUCKETS=buckets, ALLOW_NESTED_AGGS=True)
    assert set(served(exact.get("/v1/query", params=params))["facets"]) == answered
    body = error_of(serve("embedded", MAX_FACET_BUCKETS=buckets - 1, ALLOW_NESTED_AGGS=True).get(
        "/v1/query", params=params), 400)
    assert body["keyword"] == "facets" and body["max"] == buckets - 1 and body["num"] == buckets


def test_facet_depth(serve):
    client = serve("embedded", MAX_AGGS_DEPTH=2, ALLOW_NESTED_AGGS=True)
    answer = served(client.get("/v1/query", params={"q": "__all__", "facets": "type_of_gene(taxid)", "size": 0}))
    assert answer["facets"]["type_of_gene"]["terms"][0]["taxid"]["terms"]
    body = error_of(client.get("/v1/query", params={"q": "__all__", "facets": "type_of_gene(taxid(chromosome))"}), 400)
    assert body["keyword"] == "facets" and body["max"] == 2 and body["num"] == 3


# ---------------------------------------------------------------- jmespath

def test_jmespath_length(serve):
    expression = "alias|[?@=='CDK2']"
    client = serve("embedded", JMESPATH_MAX_LENGTH=len(expression))
    hit = served(client.get("/v1/query", params={"q": "symbol:CDK2", "fields": "alias", "jmespath": expression}))
    assert hit["hits"][0]["alias"] == ["CDK2"]
    body = error_of(client.get("/v1/query", params={"q": "symbol:CDK2", "jmespath": expression + " "}), 400)
    assert body["keyword"] == "jmespath" and body["max"] == len(expression) and body["num"] == len(expression) + 1


def test_jmespath_values(serve):
    """``alias`` of CDK2 is a list of 3 strings: the list and its items are 4 values."""
    params = {"q": "symbol:CDK2", "fields": "alias", "jmespath": "alias|@"}
    exact = serve("embedded", JMESPATH_MAX_VALUES=4)
    assert served(exact.get("/v1/query", params=params))["hits"][0]["alias"] == ["CDKN2", "p33(CDK2)", "CDK2"]
    body = error_of(serve("embedded", JMESPATH_MAX_VALUES=3).get("/v1/query", params=params), 400)
    assert body["keyword"] == "jmespath" and body["max"] == 3


# ---------------------------------------------------------------- annotation matches

def test_annotation_max_match(serve):
    """An id matching several documents answers a list of at most ANNOTATION_MAX_MATCH of them."""
    from collections import Counter
    from tests import data
    counts = Counter(doc["map_location"] for doc in data.DOCS if isinstance(doc.get("map_location"), str))
    three = next(value for value, count in sorted(counts.items()) if count == 3 and ":" not in value)
    four = next(value for value, count in sorted(counts.items()) if count == 4 and ":" not in value)
    client = serve("embedded", ANNOTATION_MAX_MATCH=3)
    exact = served(client.get(f"/v1/gene/map_location:{three}", params={"fields": "map_location"}))
    assert len(exact) == 3 and {hit["map_location"] for hit in exact} == {three}
    past = served(client.get(f"/v1/gene/map_location:{four}", params={"fields": "map_location"}))
    assert len(past) == 3 and {hit["map_location"] for hit in past} == {four}
    batch = served(client.post("/v1/gene", json={"ids": [f"map_location:{four}"], "fields": "map_location"}))
    assert len(batch) == 3
