"""No 500 for anything a client can send: property-based tests over every route.

Hypothesis draws parameter names (declared ones, their aliases, and others),
values of every shape (strings with control characters and Lucene syntax,
huge numbers, JSON lists and objects) and body shapes (JSON, YAML, form,
garbage). Whatever comes in, the API answers below 500, and every error is
the contract's JSON. Derandomized with a fixed budget so CI stays fast and
repeatable.
"""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biothings.web.settings import default

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


def names_of(*groups):
    found = set()
    for group in groups:
        for name, spec in group.items():
            found.add(name)
            aliases = spec.get("alias") or []
            found.update([aliases] if isinstance(aliases, str) else aliases)
    return sorted(found)


QUERY_NAMES = names_of(default.QUERY_KWARGS["GET"], default.QUERY_KWARGS["POST"]) + ["species"]
ANNOTATION_NAMES = names_of(default.ANNOTATION_KWARGS["GET"], default.ANNOTATION_KWARGS["POST"])
METADATA_NAMES = names_of(default.FIELDS_KWARGS["GET"])

# strings a hostile or careless client sends
NASTY = st.sampled_from([
    "", " ", "*", "?", "*abc", "a*", "\\", "\"", "'", "(", ")", "[", "]", "{", "}", ":", "::", "a:", ":b",
    "AND", "OR NOT", "NOT", "a AND", "~", "a~", "a~2", "^", "a^", "a^x", "/", "/a/", "/[/", "[1 TO", "[* TO *]",
    "{1 TO 2]", "a\x00b", "\x00", "\ud7ff", "\U0001f600", "<script>alert(1)</script>", "%", "%00", "\r\n",
    "__all__", "__any__", "_id:1017", "symbol:CDK2", "taxid:[9000 TO 10000]", "-", "--", "+", "a(b", "a(b(c(d)))",
    "a,b,c", "1e309", "-1", "99999999999999999999", "NaN", "true", "null", "[]", "{}", '{"script": "x"}',
    "_source", "-symbol", "all", "go|BP[0]", "|", "a|", "x|[[[", "json", "yaml", "html", "msgpack", "xml",
    "type_of_gene", "type_of_gene(taxid)", "symbol.raw", "_score", "-_score", "human", "9606",
])
TEXT = st.one_of(NASTY, st.text(max_size=40), st.text(alphabet="*?:()[]{}\"\\~^/!+-&| abc", max_size=30))
SCALAR = st.one_of(TEXT, st.integers(), st.integers(min_value=-2**70, max_value=2**70), st.booleans(),
                   st.none(), st.floats(allow_nan=False, allow_infinity=False))
JSON = st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                    st.dictionaries(TEXT, inner, max_size=3)),
                    max_leaves=12)


def param_names(declared):
    return st.one_of(st.sampled_from(declared), TEXT)


def query_params(declared):
    return st.lists(st.tuples(param_names(declared), TEXT), max_size=6)


def check(response):
    """Below 500; an error is the contract's JSON."""
    assert response.status_code < 500, (response.status_code, response.request.url, response.text[:500])
    if response.status_code >= 400:
        assert response.headers["Content-Type"].startswith("application/json"), response.text[:200]
        body = response.json()
        assert body["code"] == response.status_code and body["success"] is False
        assert isinstance(body["error"], str) and body["error"]


@FUZZ
@given(params=query_params(QUERY_NAMES))
def test_get_query(api, params):
    check(api.get("/v1/query", params=params))


@FUZZ
@given(params=query_params(QUERY_NAMES), q=TEXT)
def test_get_query_with_q(api, params, q):
    check(api.get("/v1/query", params=[("q", q)] + params))


@FUZZ
@given(body=st.dictionaries(param_names(QUERY_NAMES), JSON, max_size=6), q=JSON)
def test_post_query_json(api, body, q):
    check(api.post("/v1/query", json={"q": q, **body}))


@FUZZ
@given(params=query_params(QUERY_NAMES))
def test_post_query_form(api, params):
    check(api.post("/v1/query", data=params))


@FUZZ
@given(biothing_id=TEXT.filter(lambda text: text not in ("", ".", "..")), params=query_params(ANNOTATION_NAMES))
def test_get_annotation(api, biothing_id, params):
    from urllib.parse import quote
    check(api.get("/v1/gene/" + quote(biothing_id, safe=""), params=params))


@FUZZ
@given(body=st.dictionaries(param_names(ANNOTATION_NAMES), JSON, max_size=6), ids=JSON)
def test_post_annotation(api, body, ids):
    check(api.post("/v1/gene", json={"ids": ids, **body}))


@FUZZ
@given(path=st.sampled_from(["/v1/metadata", "/v1/metadata/fields", "/v1/gene/metadata", "/v1/gene/metadata/fields",
                             "/metadata", "/status", "/v1/spec", "/v1/docs", "/"]),
       params=query_params(METADATA_NAMES + ["format", "dev"]))
def test_get_other_routes(api, path, params):
    check(api.get(path, params=params))


CONTENT_TYPES = ["application/json", "application/yaml", "application/x-www-form-urlencoded", "text/plain",
                 "multipart/form-data", "multipart/form-data; boundary=x", "application/json; charset=latin-1",
                 "", "application/msgpack"]
RAW_BODIES = st.one_of(
    st.binary(max_size=200),
    JSON.map(lambda value: json.dumps(value).encode()),
    st.sampled_from([b"{", b"[", b"{\"q\": }", b"q=%ZZ", b"q=a&q=b&scopes=symbol", b"- a\n- b", b"!!python/object:os.system",
                     b"&&&", b"\xff\xfe", b"--x\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\ncdk2\r\n--x--",
                     b"q: [cdk2]\nscopes: symbol", b"{\"q\": [\"a\"], \"scopes\": {\"a\": 1}}"]),
)


@FUZZ
@given(path=st.sampled_from(["/v1/query", "/v1/gene", "/v1/gene/query"]), body=RAW_BODIES,
       content_type=st.sampled_from(CONTENT_TYPES))
def test_post_raw_bodies(api, path, body, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    check(api.post(path, data=body, headers=headers))


@FUZZ
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
       path=st.one_of(st.sampled_from(["/v1/query", "/v1/gene/1017", "/v1/gene", "/status", "/v1/spec", "/v1/metadata",
                                       "/nope", "/v1/", "/v1/gene/query", "/v2/query", "/v1/gene/1017/x"]),
                      st.text(alphabet="abc/._-%20", max_size=20).map(lambda text: "/" + text)))
def test_any_method_any_route(api, method, path):
    response = api.request(method, path)
    assert response.status_code < 500, (method, path, response.status_code)
    if response.status_code >= 400 and method != "HEAD":
        check(response)


@pytest.mark.parametrize("path", ["/v1/query", "/v1/gene/1017", "/v1/metadata", "/status"])
def test_hostile_headers(api, path):
    for headers in ({"Content-Type": "text/plain; charset=\"x"}, {"X-Request-Id": "<script>"}, {"Accept": "*/*;q=x"},
                    {"If-None-Match": "\"" * 100}, {"Origin": "null"}):
        check(api.get(path, params={"q": "cdk2"}, headers=headers))


JMES_FUNCTIONS = ["abs", "avg", "ceil", "contains", "ends_with", "floor", "join", "keys", "length", "map", "max",
                  "max_by", "merge", "min", "min_by", "not_null", "reverse", "sort", "sort_by", "starts_with", "sum",
                  "to_array", "to_number", "to_string", "type", "values"]
JMES_EXPRESSIONS = st.one_of(
    st.builds(lambda function, arg: f"{function}({arg})", st.sampled_from(JMES_FUNCTIONS),
              st.sampled_from(["@", "@, &x", "BP", "BP[0]", "BP[*].id", "@, `1`", "'a'", "&id", "@.x"])),
    st.sampled_from(["BP[?evidence=='IDA'].id", "[[[", "BP | sum(@)", "*.id | [0]", "@", "x.y.z", "BP[-1:]"]),
)


@FUZZ
@given(parent=st.sampled_from(["", "go", "go.BP", "genomic_pos", "symbol", "alias", "nothere", "a..b"]),
       expression=JMES_EXPRESSIONS, path=st.sampled_from(["/v1/gene/1017", "/v1/query?q=cdk2"]))
def test_jmespath_expressions(api, parent, expression, path):
    """A jmespath that fails on the data (wrong type for a function) is the client's 400."""
    check(api.get(path, params={"jmespath": f"{parent}|{expression}", "fields": "go,symbol,alias,genomic_pos"}))


def test_jmespath_type_error_is_400(api):
    response = api.get("/v1/gene/1017", params={"jmespath": "go|BP[0].id | sum(@)"})
    assert response.status_code == 400
    assert response.json()["keyword"] == "jmespath"
