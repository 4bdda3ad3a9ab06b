"""Forwarded headers trusted only from ``HTTP_TRUSTED_PROXIES`` (biothings.web.proxies)."""

import pytest
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from biothings.web.proxies import TrustedProxies
from tests.wire import Wire, access_line, get


def request_from(peer, **headers):
    class Context:
        remote_ip = peer
        protocol = "http"

    class Connection:
        context = Context()

    return HTTPServerRequest(start_line=RequestStartLine("GET", "/", "HTTP/1.1"),
                             headers=HTTPHeaders({"Host": "x", **headers}), connection=Connection())


def seen(proxies, peer, **headers):
    request = request_from(peer, **{name.replace("_", "-"): value for name, value in headers.items()})
    proxies.apply(request)
    return request.remote_ip, request.protocol


@pytest.mark.parametrize("peer, headers, expected", [
    ("127.0.0.1", {}, ("127.0.0.1", "http")),
    ("127.0.0.1", {"X_Real_Ip": "5.6.7.8"}, ("5.6.7.8", "http")),
    ("127.0.0.9", {"X_Real_Ip": "5.6.7.8"}, ("5.6.7.8", "http")),  # 127.0.0.0/8
    ("::1", {"X_Real_Ip": "5.6.7.8"}, ("5.6.7.8", "http")),
    ("::ffff:127.0.0.1", {"X_Real_Ip": "5.6.7.8"}, ("5.6.7.8", "http")),  # IPv4 on a dual-stack socket
    ("128.0.0.1", {"X_Real_Ip": "5.6.7.8"}, ("128.0.0.1", "http")),  # just outside the network
    ("10.0.0.7", {"X_Real_Ip": "5.6.7.8"}, ("5.6.7.8", "http")),
    ("10.0.1.7", {"X_Real_Ip": "5.6.7.8"}, ("10.0.1.7", "http")),  # 10.0.0.0/24 only
    ("127.0.0.1", {"X_Real_Ip": "not-an-ip"}, ("127.0.0.1", "http")),
    ("127.0.0.1", {"X_Forwarded_For": "1.2.3.4"}, ("1.2.3.4", "http")),
    ("127.0.0.1", {"X_Forwarded_For": "1.2.3.4, 10.0.0.2, 10.0.0.3"}, ("1.2.3.4", "http")),  # proxies skipped
    ("127.0.0.1", {"X_Forwarded_For": "6.6.6.6, 1.2.3.4, 10.0.0.3"}, ("1.2.3.4", "http")),  # forged hop ignored
    ("127.0.0.1", {"X_Forwarded_For": "junk, 10.0.0.3"}, ("10.0.0.3", "http")),
    ("127.0.0.1", {"X_Forwarded_For": "1.2.3.4", "X_Real_Ip": "5.6.7.8"}, ("5.6.7.8", "http")),
    ("127.0.0.1", {"X_Forwarded_Proto": "https"}, ("127.0.0.1", "https")),
    ("127.0.0.1", {"X_Forwarded_Proto": "http, HTTPS"}, ("127.0.0.1", "https")),
    ("127.0.0.1", {"X_Scheme": "https"}, ("127.0.0.1", "https")),
    ("127.0.0.1", {"X_Forwarded_Proto": "ftp"}, ("127.0.0.1", "http")),
    ("8.8.8.8", {"X_Forwarded_Proto": "https", "X_Forwarded_For": "1.2.3.4"}, ("8.8.8.8", "http")),
])
def test_forwarded_headers_count_only_from_trusted_peers(peer, headers, expected):
    proxies = TrustedProxies(["127.0.0.0/8", "::1", "10.0.0.0/24"])
    assert seen(proxies, peer, **headers) == expected


def test_nobody_trusted():
    assert seen(TrustedProxies([]), "127.0.0.1", X_Real_Ip="5.6.7.8", X_Forwarded_Proto="https") \
        == ("127.0.0.1", "http")


def test_an_invalid_entry_fails_at_start_up():
    with pytest.raises(ValueError):
        TrustedProxies(["10.0.0.300"])


def test_direct_clients_cannot_set_the_spec_server_url_or_their_address(serve, caplog):
    """Loopback not trusted here (a proxy elsewhere): the headers of a loopback client are ignored."""
    api = serve("embedded", HTTP_TRUSTED_PROXIES=["10.0.0.0/8"])
    wire = Wire(api.url)
    spec = wire.send(get("/v1/spec", "X-Forwarded-Proto: https", "X-Real-Ip: 5.6.7.8")).answer()
    assert b'"servers":[{"url":"/"}]' in spec[2]  # relative: no header names a host
    wire.send(get("/nothing-here", "X-Real-Ip: 5.6.7.8", "X-Forwarded-For: 5.6.7.8")).answer()
    assert "/nothing-here (127.0.0.1)" in access_line(caplog, "/nothing-here")
    wire.close()
