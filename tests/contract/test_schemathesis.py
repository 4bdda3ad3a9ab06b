"""Schemathesis against the API's own OpenAPI document (``/v1/spec``).

Every operation of the spec gets a fixed, derandomized budget of generated
requests, valid ones and invalid ones (schemathesis' positive and negative
modes); any 5xx, or an error that is not the contract's JSON, fails the suite.
"""

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from biothings.web.openapi import generate_spec
from biothings.web.settings import BiothingWebSettings

# the operations of the demo API's spec, known before any server runs
OPERATIONS = [(method.upper(), path) for path, item in generate_spec(BiothingWebSettings("config"))["paths"].items()
              for method in item]
EXAMPLES = 25  # per operation and mode
HEADER_LIMIT = 65536


@pytest.fixture(scope="session")
def api_schema(api):
    return schemathesis.openapi.from_url(api.url + "/v1/spec")


def errors_are_contract_json(ctx, response, case):
    if response.status_code >= 400 and case.method.upper() != "HEAD":
        content_type = response.headers.get("content-type", [""])
        content_type = content_type[0] if isinstance(content_type, list) else content_type
        assert content_type.startswith("application/json"), response.text[:200]
        body = response.json()
        assert body["code"] == response.status_code and body["success"] is False and body["error"]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
@pytest.mark.parametrize("method, path", OPERATIONS)
def test_spec_operation(api, api_schema, method, path, mode):
    operation = api_schema[path][method]
    calls = []

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        try:
            response = case.call(base_url=api.url, timeout=30)
        except requests.ConnectionError:
            # a request head over the server's max_header_size (64 KiB) gets a 431
            # and the connection closes, maybe while the client still sends it
            # (see docs/limits.md)
            url = case.as_curl_command()
            assert len(url) > HEADER_LIMIT, url[:300]
            return
        calls.append(response.status_code)
        case.validate_response(response, checks=[not_a_server_error, errors_are_contract_json])

    run()
    assert calls
