"""Query strings as Elasticsearch reads them, and the guard on costly ones (over HTTP)."""

import concurrent.futures
import logging

import pytest

from biothings.web.engines.embedded import EmbeddedEngine, build_index
from biothings.web.engines.embedded.analysis import AnalysisError
from tests import data


def total(client, q, **params):
    response = client.get("/v1/query", params={"q": q, "fields": "_id", **params})
    assert response.status_code == 200, response.text
    return response.json()["total"]


def error_of(response, status=400):
    assert response.status_code == status, (response.status_code, response.text[:300])
    return response.json()


@pytest.fixture(scope="module")
def embedded(request):
    from tests.conftest import make_settings
    from tests.servers import APIServer
    from tests.conftest import Client
    server = APIServer(make_settings("embedded", request)).start()
    yield Client(server.url, "embedded")
    server.stop()


# ---------------------------------------------------------------------- semantics (embedded)

@pytest.mark.parametrize("q,expected", [
    ("cdk2 9606", 0),                  # bare words analysed together: all in one field
    ("kinase pseudo", 0),
    ("cyclin dependent kinase 2", 1),
    ("kinase && cyclin", 5), ("kinase || cyclin", 29), ("!pseudo", 1545),
    ("4.1", 1), ("1.5", 0), ("p58.1", 1),   # the standard tokenizer keeps numbers whole
    ("genomic_pos.strand:[-1 TO 0]", 396), ("genomic_pos.strand:<=-1", 396), ("genomic_pos.start:<-2", 0),
    ("genomic_pos:*", 731), ("_exists_:\"go.*\"", 543), ("_exists_:go.*", 0),
    ("_id:1017", 1), ("cdk2~0", 1), ("taxid:abc AND kinase", 0), ("taxid:abc OR kinase", 29),
])
def test_elasticsearch_semantics(embedded, q, expected):
    assert total(embedded, q) == expected


@pytest.mark.parametrize("q", ["entrezgene:-1", "entrezgene:+1017", "a/b", "a:b:c", "AND", "(kinase", "kinase^"])
def test_syntax_elasticsearch_refuses_is_400(api, q):
    body = error_of(api.get("/v1/query", params={"q": q}))
    assert body["error"].startswith("Failed to parse query") and body["keyword"] == "q"


@pytest.mark.parametrize("q,expected", [("pubmed_count:[1000 TO *]", 23), ("pubmed_count:{* TO 0]", 0),
                                        ("*:*", 1965), ("genomic_pos.strand:[-1 TO 0]", 396)])
def test_open_ranges_and_match_all_accepted(api, q, expected):
    assert total(api, q) == expected


def test_every_search_tracks_exact_totals(api):
    built = api.get("/v1/query", params={"q": "kinase OR protein", "rawquery": 1}).json()
    assert built["track_total_hits"] is True


def test_facet_size_zero_is_400(api):
    body = error_of(api.get("/v1/query", params={"q": "__all__", "facets": "type_of_gene", "facet_size": 0}))
    assert body["keyword"] == "facet_size"
    assert api.get("/v1/query", params={"q": "__all__", "facets": "type_of_gene", "facet_size": 1}).status_code == 200


# ---------------------------------------------------------------------- expensive queries

@pytest.mark.parametrize("q", ["name:/kin.se/", "name:/[a-z]*ase.*/", "name:/(.*)ase(.*)/", "kinase OR /k.*/",
                               "symbol:[cdk1 TO cdk3]", "[a TO b]"])
def test_expensive_queries_off_by_default(api, q):
    body = error_of(api.get("/v1/query", params={"q": q}))
    assert "ALLOW_EXPENSIVE_QUERIES" in body["error"] and body["keyword"] == "q"


def test_expensive_queries_one_setting(serve):
    client = serve("embedded", ALLOW_EXPENSIVE_QUERIES=True)
    assert total(client, "name:/kin.se/") == 29
    assert total(client, "symbol:[cdk1 TO cdk3]") == 3
    assert total(client, "symbol:*DK2") == 2  # CDK2, and symbols with a second word cdk2


def test_regex_length_limit(serve):
    client = serve("embedded", ALLOW_EXPENSIVE_QUERIES=True, MAX_REGEX_LENGTH=8)
    assert total(client, "name:/kin.se.*/") == 29        # 8 characters
    body = error_of(client.get("/v1/query", params={"q": "name:/kin.se.*.*/"}))  # 10
    assert body["max"] == 8 and body["num"] == 10


def test_fuzzy_terms_limit(serve):
    client = serve("embedded", MAX_FUZZY_TERMS=2)
    assert total(client, "kinaze~ OR cyclyn~") > 0
    body = error_of(client.get("/v1/query", params={"q": "kinaze~ OR cyclyn~ OR protien~"}))
    assert body["max"] == 2 and body["num"] == 3


def test_clause_limit(serve):
    client = serve("embedded", MAX_QUERY_CLAUSES=5)
    assert total(client, "zzq OR zzr OR zzs OR zzt OR kinase") == 29
    body = error_of(client.get("/v1/query", params={"q": "zzq OR zzr OR zzs OR zzt OR zzu OR kinase"}))
    assert body["max"] == 5 and body["num"] == 6


def test_deep_nesting_is_a_clear_400(serve, caplog):
    client = serve("embedded", MAX_QUERY_DEPTH=30)
    assert total(client, "(" * 30 + "kinase" + ")" * 30) == 29
    with caplog.at_level(logging.WARNING):
        body = error_of(client.get("/v1/query", params={"q": "(" * 1000 + "kinase" + ")" * 1000}))
    assert body["max"] == 30 and "deeper than 30" in body["error"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_guard_reads_userquery_templates(serve, tmp_path):
    folder = tmp_path / "userqueries" / "named"
    folder.mkdir(parents=True)
    (folder / "query.txt").write_text('{"query_string": {"query": "name:({{q}})"}}')
    client = serve("embedded", USERQUERY_DIR=str(tmp_path / "userqueries"), MAX_QUERY_LENGTH=30)
    assert total(client, "kinase", userquery="named") == 29
    body = error_of(client.get("/v1/query", params={"q": "*ase", "userquery": "named"}))
    assert "wildcard" in body["error"].lower()
    error_of(client.get("/v1/query", params={"q": "/k.*/", "userquery": "named"}))
    body = error_of(client.get("/v1/query", params={"q": "kinase " * 6, "userquery": "named"}))
    assert body["max"] == 30


def test_parsing_is_thread_safe(embedded):
    """The same valid 300-clause query from 8 threads: every answer a 200 (luqum's
    shared parser answered some of them 400)."""
    q = " OR ".join(f"symbol:GENE{i}" for i in range(299)) + " OR symbol:CDK2"

    def ask(_):
        return embedded.get("/v1/query", params={"q": q, "fields": "_id"}).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(ask, range(48)))
    assert statuses == [200] * 48


# ---------------------------------------------------------------------- analyzers

MAPPING = {
    "settings": {"analysis": {"normalizer": {"folded": {"type": "custom", "filter": ["lowercase", "asciifolding"]}},
                              "analyzer": {"spaces": {"type": "custom", "tokenizer": "whitespace",
                                                      "filter": ["lowercase"]}}}},
    "mappings": {"properties": {"code": {"type": "keyword", "normalizer": "folded"},
                                "label": {"type": "text", "analyzer": "spaces"},
                                "plain": {"type": "text", "analyzer": "simple"},
                                "exact": {"type": "text", "analyzer": "keyword"}}},
}
DOCS = [{"_id": "1", "code": "Ärger-1", "label": "Alpha-1 B.2", "plain": "abc123def", "exact": "Whole Value"},
        {"_id": "2", "code": "arger-2", "label": "alpha-1 c", "plain": "x-y", "exact": "whole value"}]


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("analysis"))
    build_index(directory, "things", DOCS, MAPPING)
    return EmbeddedEngine(directory)


@pytest.mark.parametrize("query,ids", [
    ({"term": {"code": "ARGER-1"}}, {"1"}),                  # the normalizer applies to terms
    ({"query_string": {"query": "code:arger*"}}, {"1", "2"}),
    ({"query_string": {"query": "label:alpha-1"}}, {"1", "2"}),  # whitespace tokenizer: one token
    ({"query_string": {"query": "label:b.2"}}, {"1"}),
    ({"query_string": {"query": "plain:def"}}, {"1"}),          # simple: letters only
    ({"query_string": {"query": "plain:123"}}, set()),
    ({"query_string": {"query": 'exact:"Whole Value"'}}, {"1"}),  # keyword analyzer: the whole value
    ({"match": {"label": {"query": "ALPHA-1 B.2", "operator": "and"}}}, {"1"}),
    ({"match": {"plain": {"query": "abc123def", "analyzer": "standard"}}}, set()),
])
def test_mapping_analyzers_are_honoured(analysed, query, ids):
    import asyncio
    answer = asyncio.run(analysed.search("things", {"query": query}))
    assert {hit["_id"] for hit in answer["hits"]["hits"]} == ids


@pytest.mark.parametrize("settings,properties,name", [
    ({}, {"t": {"type": "text", "analyzer": "english"}}, "english"),
    ({"analysis": {"analyzer": {"a": {"type": "custom", "tokenizer": "ngram"}}}},
     {"t": {"type": "text", "analyzer": "a"}}, "ngram"),
    ({"analysis": {"analyzer": {"a": {"type": "custom", "tokenizer": "standard", "filter": ["porter_stem"]}}}},
     {"t": {"type": "text", "analyzer": "a"}}, "porter_stem"),
    ({}, {"k": {"type": "keyword", "normalizer": "nope"}}, "nope"),
])
def test_unsupported_analysis_refused_at_load_time_by_name(tmp_path, settings, properties, name):
    with pytest.raises(AnalysisError, match=name):
        build_index(str(tmp_path), "things", DOCS[:1], {"settings": settings, "mappings": {"properties": properties}})


def test_batch_analyzer_option(api):
    found = api.post("/v1/query", json={"q": ["CDK2"], "scopes": ["symbol"]}).json()
    assert found[0]["_id"] == "1017"
    # the keyword analyzer keeps "CDK2" as is; the index holds "cdk2": Elasticsearch finds nothing
    kept = api.post("/v1/query", json={"q": ["CDK2"], "scopes": ["symbol"], "analyzer": "keyword"}).json()
    assert kept[0].get("notfound") is True


# ---------------------------------------------------------------------- oracles: slop, fuzzy AUTO, sort values

def ids_of(client, q, **params):
    response = client.get("/v1/query", params={"q": q, "fields": "_id", "size": 1000, **params})
    assert response.status_code == 200, response.text
    return {hit["_id"] for hit in response.json()["hits"]}


def phrase_within(doc, first, second, slop):
    """Lucene's sloppy phrase of two terms: positions p1, p2 in one value with |p2 - p1 - 1| <= slop."""
    for value in data.values(doc, "name"):
        tokens = data.tokens(value)
        ones = [i for i, token in enumerate(tokens) if token == first]
        twos = [i for i, token in enumerate(tokens) if token == second]
        if any(abs(p2 - p1 - 1) <= slop for p1 in ones for p2 in twos):
            return True
    return False


@pytest.mark.parametrize("first, second, slop", [("cyclin", "kinase", 0), ("cyclin", "kinase", 1),
                                                 ("kinase", "cyclin", 2), ("kinase", "cyclin", 3),
                                                 ("protein", "kinase", 2)])
def test_phrase_slop(embedded, first, second, slop):
    expected = data.ids_where(lambda doc: phrase_within(doc, first, second, slop))
    assert ids_of(embedded, f'name:"{first} {second}"~{slop}') == expected
    if slop in (1, 3):
        assert expected, "a case that matches nothing proves nothing"


def osa_distance(a, b):
    """Optimal string alignment (Damerau-Levenshtein without repeated edits of a substring)."""
    rows = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            rows[i][j] = min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                rows[i][j] = min(rows[i][j], rows[i - 2][j - 2] + 1)
    return rows[-1][-1]


@pytest.mark.parametrize("term, edits", [("kxnaxe", 2), ("kinaxe", 2), ("cyclxn", 2), ("cyclx", 1), ("kinas", 1),
                                         ("cdk", 1), ("ab", 0)])
def test_fuzzy_auto_allows_edits_by_length(embedded, term, edits):
    """AUTO: 0 edits up to 2 characters, 1 up to 5, 2 from 6 on (Elasticsearch's fuzziness)."""
    expected = data.ids_where(lambda doc: any(osa_distance(term, token) <= edits
                                              for value in data.values(doc, "name") for token in data.tokens(value)))
    assert ids_of(embedded, f"name:{term}~") == expected
    if len(term) >= 6:
        assert expected, "a case that matches nothing proves nothing"


def test_sort_values_on_hits_only_when_sorted(api):
    hits = api.get("/v1/query", params={"q": "symbol:CDK*", "sort": "-entrezgene", "fields": "entrezgene",
                                        "size": 5}).json()["hits"]
    assert [hit["sort"] for hit in hits] == [[hit["entrezgene"]] for hit in hits]
    assert [hit["entrezgene"] for hit in hits] == sorted((hit["entrezgene"] for hit in hits), reverse=True)
    two_keys = api.get("/v1/query", params={"q": "symbol:CDK*", "sort": "chromosome,-entrezgene",
                                            "fields": "chromosome,entrezgene", "size": 3}).json()["hits"]
    assert [hit["sort"] for hit in two_keys] == [[hit["chromosome"], hit["entrezgene"]] for hit in two_keys]
    unsorted = api.get("/v1/query", params={"q": "symbol:CDK*", "fields": "entrezgene", "size": 5}).json()["hits"]
    assert unsorted and all("sort" not in hit for hit in unsorted)


@pytest.mark.parametrize("q", [r"nam\*:[a TO c]", r"na\?e:[a TO c]"])
def test_a_range_over_a_field_pattern_reaching_a_text_field_is_expensive(api, q):
    """A field pattern is written with its wildcards escaped, as Elasticsearch's query_string wants them."""
    assert error_of(api.get("/v1/query", params={"q": q}))["error"] == (
        "Ranges over text fields are expensive queries, disabled on this API (ALLOW_EXPENSIVE_QUERIES): "
        f"[{q.split(':')[0].replace(chr(92), '')}].")


@pytest.mark.noida_gap("noida-db does not expand a field pattern in a query_string range")
@pytest.mark.parametrize("q", [r"taxi\*:[9000 TO 10000]", r"taxi\?:[9000 TO 10000]"])
def test_a_range_over_a_field_pattern_of_numbers_only_runs(api, q):
    response = api.get("/v1/query", params={"q": q})
    assert response.status_code == 200 and response.json()["total"] == sum(
        1 for doc in data.DOCS if 9000 <= doc.get("taxid", 0) <= 10000)
