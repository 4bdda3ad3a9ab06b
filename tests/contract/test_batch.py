"""POST /v1/query: batches of terms over scopes."""

import pytest

from tests import data


def post(api, **body):
    return api.post("/v1/query", json=body)


def test_terms_over_scopes_in_order(api):
    response = post(api, q=["CDK2", "BRCA1", "NOTAGENE"], scopes=["symbol"], fields="symbol")
    assert response.status_code == 200
    hits = response.json()
    assert [(hit["query"], hit.get("_id")) for hit in hits] == [
        ("CDK2", "1017"), ("BRCA1", "672"), ("NOTAGENE", None)]
    assert hits[2] == {"query": "NOTAGENE", "notfound": True}
    assert isinstance(hits[0]["_score"], float)


def test_default_scope_is_id(api):
    hits = post(api, q=["1017", 672], fields="symbol").json()
    assert [(hit["query"], hit["_id"]) for hit in hits] == [("1017", "1017"), (672, "672")]


def test_several_hits_per_term_up_to_size(api):
    expected = data.ids_where(lambda d: d.get("map_location") == "21q22.3")
    hits = post(api, q=["21q22.3"], scopes=["map_location"], fields="symbol", size=1000).json()
    assert {hit["_id"] for hit in hits} == expected
    hits = post(api, q=["21q22.3"], scopes=["map_location"], fields="symbol", size=2).json()
    assert len(hits) == 2


def test_app_extras_and_filter_apply_to_every_term(api):
    """The example app's species filter (its apply_extras) and ``filter`` hold for each term."""
    terms = ["CDK2", "BRCA1"]
    assert [hit["_id"] for hit in post(api, q=terms, scopes=["symbol"], species="human").json()] == ["1017", "672"]
    assert all(hit.get("notfound") for hit in post(api, q=terms, scopes=["symbol"], species="mouse").json())
    hits = post(api, q=terms, scopes=["symbol"], filter="symbol:BRCA1", fields="symbol").json()
    assert [(hit["query"], hit.get("symbol"), hit.get("notfound")) for hit in hits] == [
        ("CDK2", None, True), ("BRCA1", "BRCA1", None)]


def test_compound_terms(api):
    hits = post(api, q=[["cdk2", "9606"], ["cdk2", "10090"]], scopes=[["symbol", "alias"], "taxid"],
                fields="symbol").json()
    assert hits[0]["query"] == ["cdk2", "9606"] and hits[0]["_id"] == "1017"
    assert hits[1] == {"query": ["cdk2", "10090"], "notfound": True}


def test_compound_length_mismatch_is_400(api):
    response = post(api, q=[["cdk2", "9606", "x"]], scopes=["symbol", "taxid"])
    assert response.status_code == 400
    assert response.json() == {"code": 400, "success": False, "keyword": "scopes",
                               "error": "Compound query ['cdk2', '9606', 'x'] has 3 parts but 2 scopes were given."}


def test_empty_q_is_400(api):
    for body in ({"q": []}, {"q": ""}, {}):
        response = api.post("/v1/query", json=body)
        assert response.status_code == 400, body
        assert response.json()["keyword"] == "q"


def test_form_body(api):
    hits = api.post("/v1/query", data={"q": "CDK2,BRCA1", "scopes": "symbol", "fields": "symbol"}).json()
    assert [hit["_id"] for hit in hits] == ["1017", "672"]


def test_quoted_phrases_stay_one_term(api):
    hits = api.post("/v1/query", data={"q": '"cyclin dependent kinase 2"', "scopes": "name",
                                       "fields": "symbol"}).json()
    assert hits[0]["query"] == "cyclin dependent kinase 2"
    assert "1017" in {hit["_id"] for hit in hits}


def test_with_total(api):
    body = post(api, q=["21q22.3", "CDK2"], scopes=["map_location", "symbol"], size=2, with_total=True,
                fields="symbol").json()
    expected_max = len(data.ids_where(lambda d: d.get("map_location") == "21q22.3"))
    assert body["max_total"] == expected_max
    assert len(body["hits"]) == 3
    assert body["msg"] == "1 query terms return > 2 hits, using from=2 to retrieve the remaining hits"


def test_raw_batch(api):
    raw = post(api, q=["CDK2"], scopes=["symbol"], raw=True).json()
    assert raw[0]["hits"]["hits"][0]["_id"] == "1017"


@pytest.mark.noida_gap("noida-db ignores an unknown analyzer instead of failing the search")
def test_term_errors_are_reported_per_term(api):
    hits = post(api, q=["CDK2", "BRCA1"], scopes=["symbol"], analyzer="no_such_analyzer").json()
    assert [hit["query"] for hit in hits] == ["CDK2", "BRCA1"]
    assert all(set(hit) == {"query", "error"} and hit["error"] for hit in hits)


def test_typed_route(api):
    hits = api.post("/v1/gene/query", json={"q": ["CDK2"], "scopes": ["symbol"]}).json()
    assert hits[0]["_id"] == "1017"


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", None])
def test_a_json_body_is_understood_whatever_its_content_type(api, content_type):
    """curl -d '{...}' sends JSON as a form: the body is still read as JSON."""
    headers = {"Content-Type": content_type} if content_type else {}
    body = b'{"q": ["CDK2", "no-such-symbol"], "scopes": "symbol", "fields": "symbol"}'
    response = api.post("/v1/query", data=body, headers=headers)
    assert response.status_code == 200, response.text
    out = response.json()
    assert out[0]["_id"] == "1017" and out[1] == {"query": "no-such-symbol", "notfound": True}


def test_a_body_that_is_not_read_is_named_in_the_400(api):
    response = api.post("/v1/query", data=b"q=CDK2&scopes=symbol", headers={"Content-Type": "text/plain"})
    body = response.json()
    assert response.status_code == 400 and body["missing"] == "q"
    assert "Content-Type: application/json" in body["error"]
    assert "application/x-www-form-urlencoded" in body["error"]
    broken = api.post("/v1/query", data=b'{"q": ["CDK2"', headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json()["error"] == "Invalid JSON body."
    form = api.post("/v1/query", data={"q": "CDK2", "scopes": "symbol", "fields": "symbol"})
    assert form.status_code == 200 and form.json()[0]["_id"] == "1017"


def test_scopes_are_checked_for_every_request(api):
    """Scopes are checked once per distinct list and kept; a bad list (a name that is no
    field name, an entry that is a list or an object) is a 400 every time, never kept."""
    for scopes in (["symbol", ["alias"]], ["symbol", {"a": 1}], ["sym bol"], ["symbol", "alias"]):
        for _ in range(2):
            response = post(api, q=["CDK2"], scopes=scopes, fields="symbol")
            if scopes == ["symbol", "alias"]:
                assert response.status_code == 200 and response.json()[0]["_id"] == "1017"
            else:
                assert response.status_code == 400 and response.json()["success"] is False
                assert "scopes" in response.json()["error"]


def test_an_id_rule_naming_the_scope_in_the_term(serve, api):
    """ANNOTATION_ID_REGEX_LIST: a rule without scopes whose ``scope`` group names a field of the
    mapping searches the ``term`` group there; a scope not in the mapping leaves the term to the next
    rules and to the default scope (``_id``)."""
    client = serve(api.backend, ANNOTATION_ID_REGEX_LIST=[[r"(?P<scope>[a-z_.]+)=(?P<term>.+)", []]])
    answers = client.post("/v1/query", json={"q": ["symbol=CDK2", "nosuchfield=CDK2", "1017"],
                                             "fields": "symbol"}).json()
    assert [(hit["query"], hit.get("_id")) for hit in answers] == [
        ("symbol=CDK2", "1017"), ("nosuchfield=CDK2", None), ("1017", "1017")]
    assert client.get("/v1/gene/symbol=CDK2", params={"fields": "symbol"}).json()["_id"] == "1017"
