"""``ES_ARGS`` for the 7.x-style clients: the credentials they would drop become the header
``GET /`` was sent with (the HTTP test, tests/server/test_clusters.py, checks the requests)."""

import pytest

from biothings.web.engines.clusters import classic_client_args

BASIC = "Basic ZWxhc3RpYzpzM2NyZXQ="  # elastic:s3cret


@pytest.mark.parametrize("module", ["opensearchpy", "elasticsearch7"])
def test_eight_style_credentials_become_the_authorization_header(module):
    assert classic_client_args({"basic_auth": ("elastic", "s3cret"), "maxsize": 4}, module) == {
        "maxsize": 4, "headers": {"authorization": BASIC}}
    assert classic_client_args({"bearer_auth": "t0ken"}, module) == {"headers": {"authorization": "Bearer t0ken"}}
    args = {"basic_auth": "elastic:s3cret", "headers": {"X-Opaque-Id": "a", "Authorization": "old"}}
    assert classic_client_args(args, module) == {"headers": {"X-Opaque-Id": "a", "authorization": BASIC}}


def test_api_key_stays_for_the_client_that_takes_it():
    assert classic_client_args({"api_key": "k"}, "elasticsearch7") == {"api_key": "k"}
    assert classic_client_args({"api_key": "k"}, "opensearchpy") == {"headers": {"authorization": "ApiKey k"}}
    assert classic_client_args({"api_key": ("id", "key")}, "opensearchpy") == {
        "headers": {"authorization": "ApiKey aWQ6a2V5"}}


def test_arguments_the_client_takes_are_left_alone():
    args = {"http_auth": ("elastic", "s3cret"), "headers": {"a": "b"}, "ca_certs": "/ca.pem"}
    assert classic_client_args(args, "opensearchpy") == args
    assert classic_client_args({"basic_auth": None}, "opensearchpy") == {"basic_auth": None}


def test_a_request_signer_stays_the_clients():
    def signer(request):
        return request
    args = classic_client_args({"http_auth": signer, "bearer_auth": "t"}, "opensearchpy")
    assert args == {"http_auth": signer, "headers": {"authorization": "Bearer t"}}
    assert classic_client_args({"http_auth": ("a", "b"), "bearer_auth": "t"}, "opensearchpy") == {
        "headers": {"authorization": "Bearer t"}}
