"""/{ver}/spec: a valid OpenAPI 3.1 document of the running app; the docs page and static files."""

import jsonschema
import pytest
import yaml
from openapi_spec_validator import validate

from biothings.web.settings import BiothingWebSettings

HOSTILE = '<img src=x onerror="window.pwned=1"></script><script>window.pwned=2</script>'


def schema_validator(spec, schema):
    """A JSON Schema validator of ``schema`` (``$ref``s resolve inside ``spec``)."""
    return jsonschema.Draft202012Validator({**schema, "components": spec["components"]})


def response_schema(spec, path, method, status="200"):
    return spec["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]


def check(spec, path, method, response):
    """``response`` (a ``requests`` answer) conforms to what ``spec`` says of it."""
    status = str(response.status_code)
    assert status in spec["paths"][path][method]["responses"], (path, method, status)
    schema_validator(spec, response_schema(spec, path, method, status)).validate(response.json())


def test_spec_is_valid_openapi_31(api):
    response = api.get("/v1/spec")
    assert response.status_code == 200
    spec = response.json()
    validate(spec)
    assert spec["openapi"] == "3.1.0"
    assert spec["info"]["title"] == "Demo Gene API"
    assert spec["servers"] == [{"url": "/"}]  # relative: no Host header can change it
    forged = api.get("/v1/spec", headers={"Host": "evil.example", "X-Forwarded-Proto": "https"}).json()
    assert forged["servers"] == [{"url": "/"}]
    as_yaml = api.get("/v1/spec", params={"format": "yaml"})
    assert as_yaml.headers["Content-Type"].startswith("text/x-yaml")
    from_yaml = yaml.safe_load(as_yaml.text)
    validate(from_yaml)
    assert from_yaml == spec


def test_spec_paths_are_the_app_routes(api):
    spec = api.get("/v1/spec").json()
    methods = {path: sorted(item) for path, item in spec["paths"].items()}
    assert methods["/v1/query"] == ["get", "post"] and methods["/v1/gene/query"] == ["get", "post"]
    assert methods["/v1/gene/{id}"] == ["get"] and methods["/v1/gene"] == ["post"]
    assert methods["/status"] == ["get", "head"]
    assert {"/v1/metadata", "/v1/metadata/fields", "/v1/gene/metadata", "/metadata", "/v1/spec"} <= set(methods)
    # pages and static files are not API operations
    assert not [path for path in methods if path == "/" or "docs" in path or "_static" in path]
    ids = [operation["operationId"] for item in spec["paths"].values() for operation in item.values()]
    assert len(ids) == len(set(ids))
    # every documented operation answers (no 404/405 from routing)
    for path, item in spec["paths"].items():
        for method in item:
            url = path.replace("{id}", "1017")
            response = api.request(method.upper(), url, params={"q": "cdk2"} if method == "get" else None,
                                   json={"q": ["cdk2"], "ids": ["1017"]} if method == "post" else None)
            assert response.status_code == 200, (method, path, response.status_code)


def test_spec_declares_options_bodies_and_errors(api):
    spec = api.get("/v1/spec").json()
    query = spec["paths"]["/v1/query"]["get"]
    parameters = {parameter["name"]: parameter for parameter in query["parameters"]}
    assert {"q", "fields", "size", "from", "sort", "facets", "facet_size", "filter", "fetch_all",
            "scroll_id", "dotfield", "format"} <= set(parameters)
    assert parameters["size"]["schema"] == {"type": "integer", "maximum": 1000, "minimum": 0, "default": 10}
    assert "limit" in parameters["size"]["description"]
    assert parameters["fields"]["style"] == "form" and parameters["fields"]["explode"] is False
    assert parameters["format"]["schema"]["enum"] == ["json", "yaml", "html", "msgpack"]
    # the app-declared option of the demo config, with its description and limit
    species = parameters["species"]
    assert species["schema"]["type"] == "array" and species["schema"]["maxItems"] == 10
    assert species["description"] == "Species names or NCBI taxids."
    # POST: JSON and form bodies from the declared options
    body = spec["paths"]["/v1/query"]["post"]["requestBody"]
    assert set(body["content"]) == {"application/json", "application/x-www-form-urlencoded",
                                    "application/x-ndjson", "text/plain"}  # JSON, a form, one term a line
    json_schema = body["content"]["application/json"]["schema"]
    assert json_schema["required"] == ["q"] and {"scopes", "with_total", "species"} <= set(json_schema["properties"])
    assert body["content"]["application/x-www-form-urlencoded"]["encoding"]["q"] == {"style": "form", "explode": False}
    batch = spec["paths"]["/v1/gene"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert batch["required"] == ["id"] and "ids" in batch["properties"]["id"]["description"]
    # annotation: the id is a path parameter, not a query one
    one = spec["paths"]["/v1/gene/{id}"]["get"]
    assert [p for p in one["parameters"] if p["name"] == "id"] == [
        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}, "description": "Document id(s)."}]
    # responses: a schema for success, the contract's errors
    assert set(one["responses"]) == {"200", "400", "404", "500", "503"}
    assert one["responses"]["404"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert "Retry-After" in one["responses"]["503"]["headers"]
    assert {"text/x-yaml", "application/x-msgpack", "text/html"} <= set(one["responses"]["200"]["content"])


def test_answers_match_the_spec_schemas(api):
    spec = api.get("/v1/spec").json()
    check(spec, "/v1/query", "get", api.get("/v1/query", params={"q": "cdk2", "facets": "type_of_gene"}))
    check(spec, "/v1/query", "get", api.get("/v1/query", params={"q": "__all__", "facets": "type_of_gene(taxid)",
                                                                 "size": 0}))
    check(spec, "/v1/query", "get", api.get("/v1/query", params={"q": "symbol:("}))  # 400
    check(spec, "/v1/query", "post", api.post("/v1/query", json={"q": ["CDK2", "nope"], "scopes": ["symbol"]}))
    check(spec, "/v1/query", "post", api.post("/v1/query", data={"q": "CDK2", "scopes": "symbol", "with_total": "1"}))
    check(spec, "/v1/query", "post", api.post("/v1/query", json={"q": []}))  # 400
    check(spec, "/v1/gene/{id}", "get", api.get("/v1/gene/1017"))
    check(spec, "/v1/gene/{id}", "get", api.get("/v1/gene/no-such-gene"))  # 404
    check(spec, "/v1/gene", "post", api.post("/v1/gene", json={"ids": ["1017", "nope"]}))
    check(spec, "/v1/metadata", "get", api.get("/v1/metadata"))
    check(spec, "/v1/metadata/fields", "get", api.get("/v1/metadata/fields"))
    check(spec, "/status", "get", api.get("/status"))
    check(spec, "/v1/spec", "get", api.get("/v1/spec"))
    with pytest.raises(jsonschema.ValidationError):  # the schemas do say something
        schema_validator(spec, response_schema(spec, "/v1/query", "get")).validate({"hits": "no"})


APP_OPTION = {"type": int, "default": 3, "min": 1, "max": 5, "description": "An app option."}


def test_spec_of_config_with_app_declared_options_and_routes(serve):
    import tornado.web

    from biothings.web.settings.default import APP_LIST, QUERY_KWARGS

    class Hello(tornado.web.RequestHandler):
        def get(self, who):
            self.write({"hello": who})

    client = serve(
        "embedded",
        API_NAME=HOSTILE,
        QUERY_KWARGS={"GET": {**QUERY_KWARGS["GET"], "depth": APP_OPTION,
                              "mode": {"type": str, "enum": ["a", "b"], "required": True}},
                      "POST": {**QUERY_KWARGS["POST"], "depth": APP_OPTION}},
        APP_LIST=APP_LIST + [(r"/{pre}/{ver}/hello/(?P<who>\w+)", Hello)],
    )
    spec = client.get("/v1/spec").json()
    validate(spec)
    assert spec["info"]["title"] == HOSTILE
    parameters = {p["name"]: p for p in spec["paths"]["/v1/query"]["get"]["parameters"]}
    assert parameters["depth"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 5, "default": 3}
    assert parameters["depth"]["description"] == "An app option."
    assert parameters["mode"]["required"] is True and parameters["mode"]["schema"]["enum"] == ["a", "b"]
    assert "depth" in spec["paths"]["/v1/query"]["post"]["requestBody"]["content"]["application/json"]["schema"][
        "properties"]
    assert "species" not in parameters  # only what this app declares
    hello = spec["paths"]["/v1/hello/{who}"]["get"]
    assert hello["parameters"][0]["name"] == "who" and hello["parameters"][0]["in"] == "path"
    assert client.get("/v1/hello/you").json() == {"hello": "you"}


def test_spec_of_config_package(serve, embedded_dir):
    settings = BiothingWebSettings("tests.configs.multiapi", EMBEDDED_DATA_DIR=embedded_dir, ES_HOST="")
    client = serve(config=settings)
    first = client.get("/first/v1/spec").json()
    second = client.get("/second/v1/spec").json()
    validate(first)
    validate(second)
    assert first["info"]["title"] == "First API" and second["info"]["title"] == "Second API"
    assert "/first/v1/gene/{id}" in first["paths"] and "/first/status" in first["paths"]
    assert "/second/v1/thing/{id}" in second["paths"] and "/second/v1/gene/{id}" not in second["paths"]
    assert not [path for path in second["paths"] if path.startswith("/first")]
    check(second, "/second/v1/thing/{id}", "get", client.get("/second/v1/thing/1017"))
    assert client.get("/second/v1/docs").status_code == 200


def test_docs_page_and_static_files(api):
    page = api.get("/v1/docs")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert 'href="/v1/spec"' in page.text and "<script src=\"/_static/docs.js?v=" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing from another host
    for name, kind in (("docs.js", "javascript"), ("front.js", "javascript"), ("biothings.css", "css")):
        static = api.get(f"/_static/{name}")
        assert static.status_code == 200 and kind in static.headers["Content-Type"], name
        assert "http://" not in static.text and "https://" not in static.text
    missing = api.get("/_static/nope.js")
    assert missing.status_code == 404 and missing.json()["success"] is False
    assert api.get("/_static/../openapi.py").status_code in (403, 404)


def test_front_page_escapes_server_side(serve):
    client = serve("embedded", API_NAME=HOSTILE, API_DESCRIPTION=HOSTILE)
    page = client.get("/")
    assert page.status_code == 200
    assert "<img" not in page.text and "window.pwned=2</script>" not in page.text
    assert page.text.count("&lt;img src=x onerror=&quot;window.pwned=1&quot;&gt;") >= 2
    assert "Content-Security-Policy" in page.headers
    front = client.get("/")
    assert 'href="/v1/docs"' in front.text and 'href="/v1/spec"' in front.text


def test_metrics_is_documented_as_prometheus_text(api):
    operation = api.get("/v1/spec").json()["paths"]["/metrics"]["get"]
    assert list(operation["responses"]["200"]["content"]) == ["text/plain; version=0.0.4"]
    assert "Prometheus" in operation["description"]
    response = api.get("/metrics")
    assert response.headers["Content-Type"].startswith("text/plain") and "# TYPE" in response.text


def test_examples_come_from_the_config_or_the_mapping(api, serve):
    """The demo's examples are its config's; an API without QUERY_EXAMPLES shows generic ones."""
    def shown(client):
        page = client.get("/").text
        description = client.get("/v1/spec").json()["paths"]["/v1/query"]["get"]["description"]
        return page, description

    page, description = shown(api)
    assert "e.g. cdk2, symbol:CDK2" in page and 'placeholder="e.g. taxid:9606"' in page
    assert "`cdk2`, `symbol:CDK2`" in description
    page, description = shown(serve(api.backend, QUERY_EXAMPLES=[]))
    assert "cdk2" not in page.lower() and "taxid:9606" not in page
    first_field = next(iter(api.get("/v1/metadata/fields").json()))
    assert f"e.g. __all__, _exists_:{first_field}" in page
    assert f"`__all__`, `_exists_:{first_field}`" in description and "cdk2" not in description
