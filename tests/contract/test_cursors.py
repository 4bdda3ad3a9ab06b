"""Cursor paging on every backend: ``cursor=true`` answers ``next``, ``after=`` the page after it,
pinned to the index as the first page saw it; altered, expired or misplaced cursors are 400s."""

import asyncio
import json
import time
import uuid

import pytest

from biothings.web.load import load
from biothings.web.settings import BiothingWebSettings
from tests import data
from tests.conftest import BACKENDS, ClusterIndex, cluster_url, load_es_index
from tests.servers import wait_for

NCRNA = {doc["_id"] for doc in data.DOCS if doc.get("type_of_gene") == "ncRNA"}


def read_all(client, params, path="/v1/query", **follow):
    """Every page of a cursor read: (the pages' answers, the hits in order)."""
    first = client.get(path, params={**params, "cursor": "true"})
    assert first.status_code == 200, first.text
    pages = [first.json()]
    while "next" in pages[-1]:
        response = client.get(path, params={"after": pages[-1]["next"], **follow})
        assert response.status_code == 200, response.text
        pages.append(response.json())
        assert len(pages) < 500
    return pages, [hit for page in pages for hit in page["hits"]]


def error_of(response, status=400):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == status and body["success"] is False
    return body


def test_cursor_pages_hold_every_hit_once(api):
    pages, hits = read_all(api, {"q": "type_of_gene:ncRNA", "size": 100, "sort": "entrezgene",
                                 "fields": "symbol,entrezgene"})
    ids = [hit["_id"] for hit in hits]
    assert len(ids) == len(set(ids)) == len(NCRNA) and set(ids) == NCRNA
    assert [hit["entrezgene"] for hit in hits] == sorted(hit["entrezgene"] for hit in hits)
    assert all(page["total"] == len(NCRNA) for page in pages)
    assert [len(page["hits"]) for page in pages[:-1]] == [100] * (len(pages) - 1) and "next" not in pages[-1]
    # the first page is the page of the same query without a cursor
    plain = api.get("/v1/query", params={"q": "type_of_gene:ncRNA", "size": 100, "sort": "entrezgene",
                                         "fields": "symbol,entrezgene"}).json()
    assert [hit["_id"] for hit in plain["hits"]] == ids[:100]
    assert "next" not in plain


def test_ties_of_a_sort_are_neither_repeated_nor_skipped(api):
    """Hundreds of genes share each type_of_gene: the tiebreak orders them across pages."""
    pages, hits = read_all(api, {"q": "__all__", "size": 50, "sort": "type_of_gene", "fields": "type_of_gene"})
    ids = [hit["_id"] for hit in hits]
    assert len(ids) == len(set(ids)) == len(data.DOCS)
    kinds = [hit.get("type_of_gene") for hit in hits]
    present = [kind for kind in kinds if kind is not None]
    assert present == sorted(present) and kinds[:len(present)] == present  # missing values last


@pytest.mark.noida_gap("search_after on _score skips hits of equal score (float precision)")
@pytest.mark.osmem_gap("search_after on _score repeats and skips hits (float precision)")
def test_pages_sorted_by_score_hold_every_hit_once(api):
    expected = {hit["_id"] for hit in api.get("/v1/query", params={"q": "kinase", "size": 1000}).json()["hits"]}
    pages, hits = read_all(api, {"q": "kinase", "size": 7, "fields": "symbol"})
    ids = [hit["_id"] for hit in hits]
    assert len(ids) == len(set(ids)) == len(expected) and set(ids) == expected
    scores = [hit["_score"] for hit in hits]
    assert scores == sorted(scores, reverse=True)


def test_deep_pages_never_need_from_past_the_result_window(serve, api):
    client = serve(api.backend, MAX_RESULT_WINDOW=300)
    assert error_of(client.get("/v1/query", params={"q": "__all__", "size": 100, "from": 201}))["max"] == 300
    _, hits = read_all(client, {"q": "__all__", "size": 100, "sort": "entrezgene", "fields": "_id"})
    assert len(hits) == len({hit["_id"] for hit in hits}) == len(data.DOCS)
    # a first page may start at from (within the window); the cursor goes on from there
    _, rest = read_all(client, {"q": "__all__", "size": 100, "from": 200, "sort": "entrezgene", "fields": "_id"})
    assert [hit["_id"] for hit in rest] == [hit["_id"] for hit in hits[200:]]


def test_a_cursor_keeps_its_parameters_and_the_page_may_change_their_shape(api):
    first = api.get("/v1/query", params={"q": "type_of_gene:ncRNA", "size": 3, "sort": "entrezgene",
                                         "fields": "symbol", "cursor": "1"}).json()
    second = api.get("/v1/query", params={"after": first["next"]}).json()
    assert len(second["hits"]) == 3 and set(second["hits"][0]) == {"_id", "_score", "sort", "symbol"}
    assert second["hits"][0]["sort"][0] > first["hits"][-1]["sort"][0]
    # size, fields and format may change on a page; q and sort may not
    reshaped = api.get("/v1/query", params={"after": second["next"], "size": 5, "fields": "name"})
    assert reshaped.status_code == 200
    page = reshaped.json()
    assert len(page["hits"]) == 5 and "name" in page["hits"][0] and "symbol" not in page["hits"][0]
    assert page["hits"][0]["sort"][0] > second["hits"][-1]["sort"][0]
    same = api.get("/v1/query", params={"after": second["next"], "q": "type_of_gene:ncRNA"})
    assert same.status_code == 200
    for name, value in (("q", "cdk2"), ("sort", "-entrezgene"), ("filter", "taxid:9606"), ("post_filter", "cdk2")):
        body = error_of(api.get("/v1/query", params={"after": second["next"], name: value}))
        assert body["keyword"] == "after" and f"'{name}' is fixed by the cursor" in body["error"]
    assert "Cache-Control" not in reshaped.headers and "Etag" not in reshaped.headers


def test_an_altered_cursor_is_refused(api):
    cursor = api.get("/v1/query", params={"q": "__all__", "size": 5, "cursor": "1"}).json()["next"]
    body, _, signature = cursor.rpartition(".")
    flip = {"A": "B", "B": "A"}
    near_misses = [
        body[:-1] + flip.get(body[-1], "A") + "." + signature,  # one character of the payload
        body + "." + signature[:-1] + flip.get(signature[-1], "A"),  # one character of the signature
        body + "." + signature[:-2],  # a shortened signature
        body, "", "x", "." + signature, cursor + "x",
    ]
    for altered in near_misses:
        found = error_of(api.get("/v1/query", params={"after": altered}))
        assert found["keyword"] == "after" and "altered" in found["error"], altered
    assert api.get("/v1/query", params={"after": cursor}).status_code == 200  # the cursor itself is fine


def test_a_cursor_of_another_deployment_is_refused(serve, api):
    ours = serve(api.backend, CURSOR_SECRET="one secret")
    theirs = serve(api.backend, CURSOR_SECRET="another secret")
    same = serve(api.backend, CURSOR_SECRET="one secret")
    cursor = ours.get("/v1/query", params={"q": "__all__", "size": 5, "cursor": "1"}).json()["next"]
    assert "altered, or made by another deployment" in error_of(theirs.get("/v1/query", params={"after": cursor}))["error"]
    assert same.get("/v1/query", params={"after": cursor}).status_code == 200  # one secret, any host


def test_an_expired_cursor_is_refused(serve, api):
    client = serve(api.backend, CURSOR_KEEP_ALIVE=2)
    first = client.get("/v1/query", params={"q": "__all__", "size": 5, "sort": "entrezgene", "cursor": "1"}).json()
    second = client.get("/v1/query", params={"after": first["next"]})  # within its keep-alive
    assert second.status_code == 200
    time.sleep(2.5)
    body = error_of(client.get("/v1/query", params={"after": second.json()["next"]}))
    assert body["keyword"] == "after" and "expired" in body["error"] and "CURSOR_KEEP_ALIVE" in body["error"]


def test_a_cursor_belongs_to_its_route(api):
    cursor = api.get("/v1/gene/query", params={"q": "__all__", "size": 5, "cursor": "1"}).json()["next"]
    assert "another route" in error_of(api.get("/v1/query", params={"after": cursor}))["error"]
    assert api.get("/v1/gene/query", params={"after": cursor}).status_code == 200


def test_cursors_do_not_mix_with_scrolls_or_random_documents(api):
    assert error_of(api.get("/v1/query", params={"q": "cdk2", "cursor": "1", "fetch_all": "1"}))["keyword"] == "cursor"
    assert error_of(api.get("/v1/query", params={"q": "__any__", "cursor": "1"}))["keyword"] in ("cursor", "q")


def test_facets_come_with_the_first_page_only(api):
    first = api.get("/v1/query", params={"q": "__all__", "size": 5, "cursor": "1", "facets": "type_of_gene"}).json()
    assert "facets" in first
    second = api.get("/v1/query", params={"after": first["next"]}).json()
    assert "facets" not in second and len(second["hits"]) == 5


# ---------------------------------------------------------------- reloads

def write_ndjson(path, docs):
    path.write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    return str(path)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_reload_mid_pagination_gives_consistent_pages(backend, request, serve, tmp_path):
    """Pages go on on the build of the first page: the embedded store keeps the previous
    version, a cluster's point in time keeps the index the alias pointed at."""
    index = f"cursor_{uuid.uuid4().hex[:8]}"
    mapping = json.loads(open(data.MAPPING_PATH).read())
    mapping["properties"]["build"] = {"type": "keyword"}
    first_build = [dict(doc, build="first") for doc in data.DOCS]
    second_build = [dict(doc, build="second") for doc in data.DOCS[:300]]
    if backend == "embedded":
        settings = BiothingWebSettings("config", ES_HOST="", EMBEDDED_DATA_DIR=str(tmp_path / "data"),
                                       EMBEDDED_DATA_FILES={}, ES_INDICES={"gene": index})
        load(settings, write_ndjson(tmp_path / "first.ndjson", first_build), mapping=mapping,
             meta=dict(data.META), progress=False)
    else:
        url = cluster_url(backend, request)
        settings = BiothingWebSettings("config", ES_HOST=url, ES_INDICES={"gene": index})
        old = load_es_index(url, index + "_first", docs=first_build, mapping=mapping)
        old.call("POST", "_aliases", {"actions": [{"add": {"index": old.name, "alias": index}}]})
    client = serve(config=settings)
    params = {"q": "__all__", "size": 200, "sort": "entrezgene", "fields": "build", "cursor": "1"}
    pages = [client.get("/v1/query", params=params).json()]
    pages.append(client.get("/v1/query", params={"after": pages[-1]["next"]}).json())

    # the reload: a new build, smaller, marked "second"
    if backend == "embedded":
        load(settings, write_ndjson(tmp_path / "second.ndjson", second_build), mapping=mapping,
             meta=dict(data.META, build_version="second"), progress=False, allow_shrink=True)
    else:
        new = load_es_index(url, index + "_second", docs=second_build, mapping=mapping)
        new.call("POST", "_aliases", {"actions": [{"remove": {"index": old.name, "alias": index}},
                                                  {"add": {"index": new.name, "alias": index}}]})
    fresh = wait_for(lambda: (lambda answer: answer if answer["total"] == 300 else None)(
        client.get("/v1/query", params={"q": "__all__", "size": 1, "fields": "build"}).json()))
    assert fresh and fresh["hits"][0]["build"] == "second", "the reload was not seen"

    while "next" in pages[-1]:
        response = client.get("/v1/query", params={"after": pages[-1]["next"]})
        assert response.status_code == 200, response.text
        pages.append(response.json())
    hits = [hit for page in pages for hit in page["hits"]]
    assert {hit["build"] for hit in hits} == {"first"}
    assert len(hits) == len({hit["_id"] for hit in hits}) == len(data.DOCS)
    assert {page["total"] for page in pages} == {len(data.DOCS)}
    if backend != "embedded":
        for name in (old.name, new.name):
            ClusterIndex(url, name).delete()


def test_the_embedded_read_ends_when_its_build_is_gone(serve, tmp_path):
    """The store keeps one previous version: after a second reload the first page's build is
    gone from disk. A process that has it open goes on reading it; another one (the next page
    of a cursor can reach any process serving the data) answers that the result set is gone."""
    def settings():
        return BiothingWebSettings("config", ES_HOST="", EMBEDDED_DATA_DIR=str(tmp_path / "data"),
                                   EMBEDDED_DATA_FILES={}, ES_INDICES={"gene": "genes"}, CURSOR_SECRET="shared")
    mapping = json.loads(open(data.MAPPING_PATH).read())
    load(settings(), data.DOCUMENTS_PATH, mapping=mapping, progress=False)
    first_process = serve(config=settings())
    first = first_process.get("/v1/query", params={"q": "__all__", "size": 100, "cursor": "1"}).json()
    for build in ("second", "third"):
        load(settings(), data.DOCUMENTS_PATH, mapping=mapping, meta=dict(data.META, build_version=build),
             progress=False)
    second = first_process.get("/v1/query", params={"after": first["next"]})
    assert second.status_code == 200 and len(second.json()["hits"]) == 100
    other_process = serve(config=settings())
    body = error_of(other_process.get("/v1/query", params={"after": first["next"]}))
    assert body["keyword"] == "after" and "reloaded twice" in body["error"]


def test_a_cluster_read_ends_when_its_point_in_time_is_gone(request, serve):
    """A point in time closed (or expired, or its index deleted) ends the read: a 400."""
    url = cluster_url("opensearch", request)
    index = load_es_index(url, f"cursor_{uuid.uuid4().hex[:8]}", docs=data.DOCS[:50])
    client = serve("opensearch", ES_INDICES={"gene": index.name})
    try:
        first = client.get("/v1/query", params={"q": "__all__", "size": 10, "cursor": "1"}).json()
        index.session.delete(f"{url}/_search/point_in_time/_all", timeout=30)
        body = error_of(client.get("/v1/query", params={"after": first["next"]}))
        assert "result set is gone" in body["error"]
    finally:
        index.delete()


# ---------------------------------------------------------------- engines

@pytest.mark.parametrize("version, pit", [("2.3.0", False), ("2.4.0", True)])
def test_opensearch_reads_without_a_point_in_time_before_2_4(request, version, pit):
    """OpenSearch before 2.4 has no point in time: the read searches the concrete indices
    the alias resolved to at the first page, with an _id tiebreak."""
    from biothings.web.engines.clusters import Cluster, connect
    url = cluster_url("opensearch", request)
    index = load_es_index(url, f"pit_{uuid.uuid4().hex[:8]}", docs=data.DOCS[:120])

    async def read():
        engine = connect([url])
        engine.cluster = Cluster("opensearch", version, url)
        ids, state, first_state = [], None, None
        try:
            while True:
                response, state = await engine.search_page(index.name, {"size": 25, "sort": [{"type_of_gene": "asc"}],
                                                                        "_source": False}, state)
                first_state = first_state or state
                ids += [hit["_id"] for hit in response["hits"]["hits"]]
                if state is None:
                    return ids, first_state
        finally:
            await engine.close()

    try:
        ids, first_state = asyncio.run(read())
    finally:
        index.delete()
    assert len(ids) == len(set(ids)) == 120
    assert ("pit" in first_state) is pit and ("idx" in first_state) is not pit
    assert first_state["tb"] == "_id"
