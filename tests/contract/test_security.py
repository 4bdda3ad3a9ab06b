"""Security: raw switches, no scripts or DSL from user input, HTML escaping, CORS."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import data
from tests.contract.test_fuzz import JSON, TEXT

HOSTILE = '<script>alert("x")</script>'
FORBIDDEN_KEYS = ("script", "runtime_mappings", "stored_fields", "docvalue_fields", "inline")


def keys_of(node):
    """Every dict key anywhere in a built query."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from keys_of(value)
    elif isinstance(node, list):
        for item in node:
            yield from keys_of(item)


def assert_no_script(query):
    for key in keys_of(query):
        assert not any(word in str(key).lower() for word in FORBIDDEN_KEYS) and key != "source", (key, query)


# ---------------------------------------------------------------- raw / rawquery
@pytest.mark.parametrize("method, path, kwargs", [
    ("GET", "/v1/query", {"params": {"q": "cdk2"}}),
    ("GET", "/v1/gene/1017", {}),
    ("POST", "/v1/query", {"json": {"q": ["cdk2"], "scopes": ["symbol"]}}),
    ("POST", "/v1/gene", {"json": {"ids": ["1017"]}}),
])
def test_raw_and_rawquery_switch(serve, api, method, path, kwargs):
    locked = serve(api.backend, ALLOW_RAW=False)
    for flag in ("raw", "rawquery"):
        options = {key: (dict(value, **{flag: True}) if key == "json" else dict(value, **{flag: 1}))
                   for key, value in kwargs.items()} or {"params": {flag: 1}}
        response = locked.request(method, path, **options)
        assert response.status_code == 403, (flag, response.text)
        body = response.json()
        assert body["success"] is False and body["keyword"] == flag
        # allowed by default
        assert api.request(method, path, **options).status_code == 200


# ---------------------------------------------------------------- no scripts, no DSL
@pytest.mark.parametrize("params", [
    {"q": "cdk2", "sort": "_script"},
    {"q": "cdk2", "sort": '{"_script": {"script": "1"}}'},
    {"q": "cdk2", "facets": '{"script": 1}'},
    {"q": "cdk2", "facets": "_script"},
    {"q": "cdk2", "sort": "doc['x'].value"},
])
def test_scripts_in_sort_and_facets_refused(api, params):
    response = api.get("/v1/query", params=params)
    assert response.status_code == 400
    assert response.json()["keyword"] in ("sort", "facets")


@pytest.mark.parametrize("body", [
    {"q": [{"script": {"source": "doc['x'].value"}}], "scopes": ["symbol"]},
    {"q": [{"match_all": {}}], "scopes": ["symbol"]},
    {"q": [["cdk2", {"script": "1"}]], "scopes": ["symbol", "taxid"]},
    {"q": ["cdk2"], "scopes": [{"script": "1"}]},
    {"q": ["cdk2"], "scopes": ["symbol", {"match_all": {}}]},
])
def test_objects_in_batch_terms_and_scopes_refused(api, body):
    response = api.post("/v1/query", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["keyword"] in ("q", "scopes")


def test_json_in_q_is_just_text(api):
    q = json.dumps({"script": {"source": "Math.random()"}})
    # not Lucene syntax ('{' opens a range): refused as the text it is, never read as DSL
    body = api.get("/v1/query", params={"q": q, "rawquery": 1}).json()
    assert body["code"] == 400 and body["error"].startswith("Failed to parse query")
    escaped = "".join(c if c.isalnum() or c == " " else "\\" + c for c in q)
    response = api.get("/v1/query", params={"q": escaped, "rawquery": 1})
    assert response.status_code == 200
    built = response.json()
    assert built["query"]["query_string"]["query"] == escaped  # a string to parse, never DSL
    assert_no_script(built)


def test_userquery_placeholder_cannot_break_out(serve, tmp_path):
    folder = tmp_path / "userqueries" / "bysymbol"
    folder.mkdir(parents=True)
    (folder / "query.txt").write_text('{"match": {"symbol": "{{q}}"}}')
    client = serve("embedded", USERQUERY_DIR=str(tmp_path / "userqueries"))
    hostile = 'x"}}, "script": {"source": "1"}, "a": {"b": "'
    response = client.get("/v1/query", params={"q": hostile, "userquery": "bysymbol", "rawquery": 1})
    assert response.status_code == 200
    built = response.json()
    assert built["query"]["match"]["symbol"] == hostile
    assert_no_script(built)
    for name in ("../userqueries/bysymbol", "/etc", "..", ".hidden"):
        response = client.get("/v1/query", params={"q": "x", "userquery": name})
        assert response.status_code == 400
        assert response.json()["keyword"] == "userquery" and response.json()["error"] == f"Unknown userquery '{name}'."


@settings(max_examples=80, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(body=st.dictionaries(st.sampled_from(["q", "scopes", "fields", "sort", "facets", "filter", "post_filter",
                                             "analyzer", "size", "from", "always_list", "species", "ids"]),
                            JSON, max_size=6))
def test_no_user_input_becomes_a_script(api, body):
    """Whatever a client sends, the built query holds no script and no DSL of its own."""
    for method, path, payload in (("POST", "/v1/query", {**body, "rawquery": True}),
                                  ("POST", "/v1/gene", {**body, "rawquery": True})):
        response = api.request(method, path, json=payload)
        assert response.status_code < 500
        if response.status_code == 200:
            assert_no_script(response.json())
    params = {key: value if isinstance(value, str) else json.dumps(value) for key, value in body.items()}
    response = api.get("/v1/query", params={**params, "rawquery": 1})
    assert response.status_code < 500
    if response.status_code == 200:
        assert_no_script(response.json())


# ---------------------------------------------------------------- HTML escaping
def assert_escaped(text, response=None):
    if response is not None and not response.headers["Content-Type"].startswith("text/html"):
        # JSON (errors echo their input): browsers are told not to sniff it as HTML
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        return
    assert "<script>alert" not in text
    assert "<img" not in text


@settings(max_examples=40, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(value=st.one_of(st.just(HOSTILE), st.just('"><img src=x onerror=alert(1)>'), TEXT.map(lambda t: t + HOSTILE)))
def test_html_format_escapes_everything(api, value):
    for path, params in (("/v1/query", {"q": value, "format": "html"}),
                         ("/v1/query", {"q": "cdk2", "format": "html", "fields": value, "size": 1, value: value}),
                         ("/v1/gene/1017", {"format": "html", "fields": "symbol", "jmespath": "x|y", "x": value}),
                         ("/v1/metadata/fields", {"format": "html", "search": value}),
                         ("/v1/metadata", {"format": "html", value: "1"})):
        response = api.get(path, params=params)
        assert response.status_code < 500
        assert_escaped(response.text, response)


def test_html_escapes_hostile_documents(serve, tmp_path):
    from biothings.web.engines.embedded import ensure_index
    docs = tmp_path / "docs.ndjson"
    docs.write_text(json.dumps({"_id": HOSTILE, "symbol": HOSTILE, "name": '"><img src=x onerror=alert(1)>'}) + "\n")
    ensure_index(str(tmp_path / "data"), "hostile", str(docs))
    client = serve("embedded", EMBEDDED_DATA_DIR=str(tmp_path / "data"), ES_INDICES={"gene": "hostile"},
                   ANNOTATION_DEFAULT_SCOPES=["_id"])
    page = client.get("/v1/query", params={"q": "__all__", "format": "html"})
    assert page.status_code == 200 and page.text.count("&lt;script&gt;") >= 2
    assert_escaped(page.text)
    batch = client.post("/v1/gene", json={"ids": [HOSTILE], "format": "html"})
    assert batch.status_code == 200
    assert_escaped(batch.text)


def test_errors_and_front_page_escape(serve, api):
    response = api.get(f"/v1/gene/{HOSTILE}", params={"format": "html"})
    assert response.headers["Content-Type"].startswith("application/json")  # errors are JSON
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    front = serve("embedded", API_NAME=HOSTILE, API_DESCRIPTION='"><img src=x onerror=alert(1)>')
    page = front.get("/", params={"q": HOSTILE})
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert_escaped(page.text)
    assert "&lt;script&gt;alert" in page.text


# ---------------------------------------------------------------- CORS
def test_cors_configurable(serve):
    client = serve("embedded", ACCESS_CONTROL_ALLOW_ORIGIN="https://example.org", MAX_BODY_SIZE=100)
    for response in (client.get("/v1/gene/1017"), client.get("/v1/gene/nope"), client.get("/nope"),
                     client.request("OPTIONS", "/v1/query"), client.post("/v1/query", data=b"x" * 200)):
        assert response.headers["Access-Control-Allow-Origin"] == "https://example.org", response.status_code
    closed = serve("embedded", ACCESS_CONTROL_ALLOW_ORIGIN="", MAX_BODY_SIZE=100)
    for response in (closed.get("/v1/gene/1017"), closed.get("/nope"), closed.request("OPTIONS", "/v1/query"),
                     closed.post("/v1/query", data=b"x" * 200)):
        assert "Access-Control-Allow-Origin" not in response.headers, response.status_code


def test_userquery_pattern_clauses_get_the_query_string_guards(serve, tmp_path):
    """The client's text in a template's wildcard or regexp clause: a leading wildcard and a regular
    expression are expensive queries, refused unless allowed, and a regex is held to MAX_REGEX_LENGTH."""
    templates = {"wild": '{"wildcard": {"map_location": "{{q}}"}}',
                 "wildvalue": '{"wildcard": {"map_location": {"value": "{{q}}"}}}',
                 "wildkey": '{"wildcard": {"map_location": {"wildcard": "{{q}}"}}}',
                 "regex": '{"regexp": {"map_location": "{{q}}"}}',
                 "regexvalue": '{"bool": {"must": [{"regexp": {"map_location": {"value": "{{q}}"}}}]}}'}
    for name, text in templates.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "query.txt").write_text(text)
    strict = serve("embedded", USERQUERY_DIR=str(tmp_path))
    expected = {doc["_id"] for doc in data.DOCS if str(doc.get("map_location", "")).startswith("17q")}
    for name in ("wild", "wildvalue", "wildkey"):
        hits = strict.get("/v1/query", params={"q": "17q*", "userquery": name, "size": 1000, "fields": "_id"})
        assert {hit["_id"] for hit in hits.json()["hits"]} == expected, name
        for leading in ("*q21", "?7q21"):
            refused = strict.get("/v1/query", params={"q": leading, "userquery": name})
            assert refused.status_code == 400 and refused.json() == {
                "code": 400, "success": False, "keyword": "q",
                "error": "Leading wildcards are not allowed in queries (ALLOW_EXPENSIVE_QUERIES)."}, name
    for name in ("regex", "regexvalue"):
        refused = strict.get("/v1/query", params={"q": "17q.*", "userquery": name})
        assert refused.status_code == 400 and refused.json()["error"] == (
            "Regular expressions are expensive queries, disabled on this API (ALLOW_EXPENSIVE_QUERIES)."), name
    loose = serve("embedded", USERQUERY_DIR=str(tmp_path), ALLOW_EXPENSIVE_QUERIES=True, MAX_REGEX_LENGTH=5)
    for name in ("regex", "regexvalue"):
        hits = loose.get("/v1/query", params={"q": "17q.*", "userquery": name, "size": 1000, "fields": "_id"})
        assert {hit["_id"] for hit in hits.json()["hits"]} == expected, name
        long = loose.get("/v1/query", params={"q": "17q2.*", "userquery": name})
        assert long.status_code == 400 and long.json()["max"] == 5 and long.json()["num"] == 6, name
    assert loose.get("/v1/query", params={"q": "*q21", "userquery": "wild"}).status_code == 200
