"""ETag from the index build and the request; If-None-Match -> 304."""

import json
import re
import time

import pytest

from tests import data
from tests.conftest import cluster_url
from tests.server.test_observability import scrape


def etag(client, path, **kwargs):
    response = client.get(path, **kwargs)
    assert response.status_code == 200, response.text
    return response.headers["Etag"]


def test_same_request_same_etag(api):
    first = etag(api, "/v1/gene/1017")
    assert etag(api, "/v1/gene/1017") == first
    assert first.startswith('"') and first.endswith('"')
    # query arguments are normalized: their order does not matter
    assert etag(api, "/v1/query?q=cdk2&size=3") == etag(api, "/v1/query?size=3&q=cdk2")


@pytest.mark.parametrize("other", [
    "/v1/gene/1018",
    "/v1/gene/1017?fields=symbol",
    "/v1/gene/1017?format=yaml",
    "/v1/gene/1017?dotfield=true",
    "/v1/query?q=cdk2",
    "/v1/metadata",
    "/v1/metadata/fields",
])
def test_different_request_different_etag(api, other):
    assert etag(api, other) != etag(api, "/v1/gene/1017")


def test_if_none_match_is_304_without_body(api):
    for path in ("/v1/gene/1017", "/v1/query?q=symbol:CDK2&fields=name", "/v1/metadata", "/v1/metadata/fields"):
        tag = etag(api, path)
        again = api.get(path, headers={"If-None-Match": tag})
        assert again.status_code == 304, path
        assert again.content == b""
        assert again.headers["Etag"] == tag
        assert again.headers["Cache-Control"] == "max-age=604800, public"
        assert again.headers["X-Request-Id"]
        # weak comparison and lists of tags, as RFC 9110 has them
        assert api.get(path, headers={"If-None-Match": f'"other", W/{tag}'}).status_code == 304
        stale = api.get(path, headers={"If-None-Match": '"something-else"'})
        assert stale.status_code == 200 and stale.headers["Etag"] == tag and stale.content


def test_304_does_not_run_the_query(serve, api):
    client = serve(api.backend)
    tag = etag(client, "/v1/query?q=cdk2")
    before = scrape(client).get(("biothings_engine_duration_seconds_count",
                                 (("engine", engine_name(api)), ("operation", "search"))))
    for _ in range(3):
        assert client.get("/v1/query?q=cdk2", headers={"If-None-Match": tag}).status_code == 304
    after = scrape(client).get(("biothings_engine_duration_seconds_count",
                                (("engine", engine_name(api)), ("operation", "search"))))
    assert before == after and before >= 1


def engine_name(api):
    return api.backend


@pytest.mark.parametrize("method, path, kwargs", [
    ("GET", "/v1/gene/nope", {}),                                  # 404
    ("GET", "/v1/query?q=cdk2&size=abc", {}),                       # 400
    ("GET", "/v1/nowhere", {}),                                     # unknown route
    ("GET", "/v1/query?q=cdk2&fetch_all=true", {}),                 # scroll
    ("GET", "/v1/query?q=cdk2&rawquery=1", {}),                     # the engine query, not an answer
    ("GET", "/status", {}),                                         # health, not the build
    ("POST", "/v1/query", {"data": {"q": "cdk2", "scopes": "symbol"}}),
    ("POST", "/v1/gene", {"data": {"ids": "1017"}}),
])
def test_no_etag(api, method, path, kwargs):
    response = api.request(method, path, **kwargs)
    assert "Etag" not in response.headers, (response.status_code, response.text[:200])


def test_no_etag_on_scroll_pages_and_random(serve, api):
    client = serve(api.backend, ALLOW_RANDOM_QUERY=True, ES_SCROLL_SIZE=2)
    first = client.get("/v1/query", params={"q": "symbol:CDK*", "fetch_all": "true"}).json()
    page = client.get("/v1/query", params={"scroll_id": first["_scroll_id"]})
    assert page.status_code == 200 and "Etag" not in page.headers
    assert "Etag" not in client.get("/v1/query", params={"q": "__any__"}).headers


def test_etag_can_be_disabled(serve, api):
    client = serve(api.backend, ETAG=False)
    response = client.get("/v1/gene/1017")
    assert response.status_code == 200 and "Etag" not in response.headers


def small_docs(tmp_path):
    path = tmp_path / "docs.ndjson"
    path.write_text("".join(json.dumps(doc) + "\n" for doc in data.DOCS[:40]))
    return str(path)


def test_rebuilt_index_changes_the_etag(serve, api, tmp_path, request):
    from biothings.web.load import load
    from biothings.web.settings import BiothingWebSettings
    if api.backend == "embedded":
        values = dict(ES_HOST="", EMBEDDED_DATA_DIR=str(tmp_path / "data"), EMBEDDED_DATA_FILES={})
    else:
        values = dict(ES_HOST=cluster_url(api.backend, request))
    name = f"bt_etag_{int(time.time() * 1000)}"
    settings = BiothingWebSettings("config", ES_INDICES={"gene": name}, METADATA_REFRESH_INTERVAL=0.2, **values)
    documents = small_docs(tmp_path)
    load(settings, documents, mapping=data.MAPPING_PATH, meta={**data.META, "build_version": "1"}, progress=False)
    client = serve(config=settings)
    first_id = data.DOCS[0]["_id"]
    before = etag(client, f"/v1/gene/{first_id}")
    assert client.get("/v1/metadata").json()["build_version"] == "1"
    load(settings, documents, mapping=data.MAPPING_PATH, meta={**data.META, "build_version": "2"}, progress=False)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and client.get("/v1/metadata").json()["build_version"] != "2":
        time.sleep(0.2)
    assert client.get("/v1/metadata").json()["build_version"] == "2"
    after = etag(client, f"/v1/gene/{first_id}")
    assert after != before
    assert client.get(f"/v1/gene/{first_id}", headers={"If-None-Match": before}).status_code == 200
    assert client.get(f"/v1/gene/{first_id}", headers={"If-None-Match": after}).status_code == 304


# ---------------------------------------------------------------- near misses: one argument value apart

def without_took(body):
    return re.sub(rb'"?took"?: ?[0-9]+', b"", body)


@pytest.mark.parametrize("first, second", [
    ("/v1/query?q=cdk2", "/v1/query?q=brca1"),
    ("/v1/query?q=cdk2&size=1", "/v1/query?q=cdk2&size=2"),
    ("/v1/query?q=cdk2&fields=symbol", "/v1/query?q=cdk2&fields=name"),
    ("/v1/query?q=cdk2&fields=symbol&fields=name", "/v1/query?q=cdk2&fields=symbolname"),  # values kept apart
    ("/v1/query?q=cdk2&fields=symbol,name", "/v1/query?q=cdk2&fields=symbol&fields=name"),
    ("/v1/query?q=cdk2&size=1", "/v1/query?q=cdk2&size1="),  # names and values kept apart
    ("/v1/query?q=cdk2", "/v1/query?q=cdk2&size=10"),  # the default, spelled out, is another request
    ("/v1/gene/1017?fields=symbol", "/v1/gene/1017?fields=symbol&format=yaml"),
])
def test_each_distinct_argument_value_has_its_own_etag(api, first, second):
    tags = {path: etag(api, path) for path in (first, second)}
    assert tags[first] != tags[second]
    for path, other in ((first, second), (second, first)):
        # revalidating one answer with the other's ETag gets the answer, not a 304
        response = api.get(path, headers={"If-None-Match": tags[other]})
        assert response.status_code == 200 and response.headers["Etag"] == tags[path]
        assert without_took(response.content) == without_took(api.get(path).content)
        assert api.get(path, headers={"If-None-Match": tags[path]}).status_code == 304


def test_revalidation_answers_the_request_not_the_other_answer(api):
    cdk2 = api.get("/v1/query", params={"q": "symbol:CDK2", "fields": "symbol"})
    brca1 = api.get("/v1/query", params={"q": "symbol:BRCA1", "fields": "symbol"},
                    headers={"If-None-Match": cdk2.headers["Etag"]})
    assert brca1.status_code == 200 and [hit["symbol"] for hit in brca1.json()["hits"]] == ["BRCA1"]


def test_the_config_and_the_build_are_in_the_etag(serve, api):
    """Two APIs over one index that differ by a setting give one request two ETags."""
    plain = etag(serve(api.backend), "/v1/gene/1017")
    assert etag(serve(api.backend), "/v1/gene/1017") == plain  # same settings, same build: same tag
    assert etag(serve(api.backend, CACHE_MAX_AGE=60), "/v1/gene/1017") != plain


# ---------------------------------------------------------------- the config token

class Builder:  # a class-valued setting
    pass


class OtherBuilder:
    pass


def test_config_token_reads_classes_by_name_not_address():
    from biothings.web.caching import _stable, config_token
    from biothings.web.pipeline import ESQueryBuilder
    from biothings.web.settings import BiothingWebSettings
    assert _stable(ESQueryBuilder) == "biothings.web.pipeline.builder.ESQueryBuilder"
    assert _stable(test_config_token_reads_classes_by_name_not_address) == (
        "tests.contract.test_caching.test_config_token_reads_classes_by_name_not_address")
    assert _stable(object()) == "object" and _stable({1, 2}) == "set"
    first, second = (BiothingWebSettings("config", ES_QUERY_BUILDER=Builder, ES_INDICES={"gene": "genes"})
                     for _ in range(2))
    token = config_token(first)
    assert len(token) == 16 and token == config_token(first) == config_token(second)
    assert config_token(BiothingWebSettings("config", ES_QUERY_BUILDER=OtherBuilder,
                                            ES_INDICES={"gene": "genes"})) != token
    assert config_token(BiothingWebSettings("config", ES_QUERY_BUILDER=Builder,
                                            ES_INDICES={"gene": "other"})) != token
    # values orjson cannot write (tuple keys): the names of the settings only
    odd = BiothingWebSettings("config", ES_INDICES={"gene": "genes"}, LICENSE_TRANSFORM={("a", "b"): 1})
    assert len(config_token(odd)) == 16
    assert config_token(odd) == config_token(BiothingWebSettings(
        "config", ES_INDICES={"gene": "other"}, LICENSE_TRANSFORM={("a", "b"): 1}))
