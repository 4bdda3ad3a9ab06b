"""Compressed answers on every backend and both HTTP servers: gzip and zstd negotiated from
Accept-Encoding, above COMPRESS_MIN_BYTES, Vary on every answer, an ETag per coding."""

import gzip
import http.client
import urllib.parse

import orjson
import pytest
import zstandard

from biothings.web.compression import accepted, etag_for, negotiate

BIG = {"q": "__all__", "size": 1000}  # about 1 MB: compressed off the event loop
SMALL = {"q": "symbol:CDK2", "fields": "symbol,name"}  # about 100 bytes
MEDIUM = {"q": "symbol:CDK2"}  # a few KB: compressed by the output transform


def raw_get(client, path, params=None, method="GET", **headers):
    """``(status, headers, body)`` as sent: no client decoding."""
    url = urllib.parse.urlsplit(client.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        connection.request(method, path + ("?" + urllib.parse.urlencode(params) if params else ""), headers=headers)
        response = connection.getresponse()
        return response.status, {key.lower(): value for key, value in response.getheaders()}, response.read()
    finally:
        connection.close()


def same_answer(one, other):
    """Two JSON answers alike but for ``took`` (milliseconds)."""
    one, other = orjson.loads(one), orjson.loads(other)
    for answer in (one, other):
        if isinstance(answer, dict):
            answer.pop("took", None)
    return one == other


def decoded(headers, body):
    coding = headers.get("content-encoding")
    if coding == "gzip":
        return gzip.decompress(body)
    if coding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    return body


@pytest.mark.parametrize("header, offered, expected", [
    ("gzip, deflate", ("zstd", "gzip"), "gzip"),
    ("gzip, deflate, br, zstd", ("zstd", "gzip"), "zstd"),  # the server's preference among equals
    ("gzip;q=1, zstd;q=0.5", ("zstd", "gzip"), "gzip"),  # the client's q-values first
    ("zstd;q=0, gzip", ("zstd", "gzip"), "gzip"),  # q=0 refuses
    ("*", ("zstd", "gzip"), "zstd"),
    ("*;q=0.5, gzip;q=0", ("zstd", "gzip"), "zstd"),
    ("gzip;q=0.5, identity", ("gzip",), None),  # identity (1) preferred to gzip (0.5)
    ("gzip;q=0.5, identity;q=0", ("gzip",), "gzip"),
    ("identity", ("zstd", "gzip"), None),
    ("", ("zstd", "gzip"), None),
    ("br", ("zstd", "gzip"), None),
    ("X-GZIP", ("gzip",), "gzip"),
    ("gzip;q=0.001", ("gzip",), None),  # identity is acceptable at q=1
    ("gzip;q=nonsense, zstd", ("zstd", "gzip"), "zstd"),  # a malformed entry is ignored
    ("gzip", (), None),  # nothing offered (COMPRESSION = [])
])
def test_negotiation(header, offered, expected):
    assert negotiate(header, offered) == expected


def test_accept_encoding_parsing_and_tags():
    assert accepted("GZIP ; q=0.8 ,zstd;q=2, br;level=1") == {"gzip": 0.8, "zstd": 1.0, "br": 1.0}
    assert etag_for('"abc"', "gzip") == '"abc-gzip"' and etag_for('W/"abc"', "zstd") == 'W/"abc-zstd"'
    assert etag_for('"abc"', None) == '"abc"' and etag_for(None, "gzip") is None


@pytest.mark.parametrize("coding", ["gzip", "zstd"])
@pytest.mark.parametrize("params", [BIG, MEDIUM], ids=["big", "medium"])
def test_answers_round_trip(api, coding, params):
    status, plain_headers, plain = raw_get(api, "/v1/query", params, **{"Accept-Encoding": "identity"})
    assert status == 200 and "content-encoding" not in plain_headers
    assert plain_headers["vary"] == "Accept-Encoding"
    status, headers, body = raw_get(api, "/v1/query", params, **{"Accept-Encoding": f"{coding}, identity;q=0.5"})
    assert status == 200 and headers["content-encoding"] == coding and headers["vary"] == "Accept-Encoding"
    assert int(headers["content-length"]) == len(body) < len(plain)
    assert same_answer(decoded(headers, body), plain)
    assert headers["etag"] == plain_headers["etag"][:-1] + f'-{coding}"'
    # HEAD: the GET's headers, the compressed length
    status, head, nothing = raw_get(api, "/v1/query", params, method="HEAD", **{"Accept-Encoding": coding})
    assert status == 200 and nothing == b""
    assert {key: head[key] for key in ("content-encoding", "etag", "vary")} == \
        {key: headers[key] for key in ("content-encoding", "etag", "vary")}
    # the length of the compressed body (its "took" may differ by a digit or two)
    assert abs(int(head["content-length"]) - len(body)) < 64 and int(head["content-length"]) < len(plain) // 2


def test_small_answers_are_not_compressed_but_vary(api):
    status, headers, body = raw_get(api, "/v1/query", SMALL, **{"Accept-Encoding": "gzip"})
    assert status == 200 and "content-encoding" not in headers and headers["vary"] == "Accept-Encoding"
    assert len(body) < 1024


def test_the_threshold_at_n_and_n_plus_one(serve, api):
    _, _, plain = raw_get(api, "/v1/query", MEDIUM, **{"Accept-Encoding": "identity"})
    at = serve(api.backend, COMPRESS_MIN_BYTES=len(plain))
    past = serve(api.backend, COMPRESS_MIN_BYTES=len(plain) + 1)
    assert raw_get(at, "/v1/query", MEDIUM, **{"Accept-Encoding": "gzip"})[1]["content-encoding"] == "gzip"
    assert "content-encoding" not in raw_get(past, "/v1/query", MEDIUM, **{"Accept-Encoding": "gzip"})[1]


def test_if_none_match_knows_each_coding(api):
    _, plain, _ = raw_get(api, "/v1/query", BIG, **{"Accept-Encoding": "identity"})
    _, zipped, _ = raw_get(api, "/v1/query", BIG, **{"Accept-Encoding": "gzip"})
    tag, gzip_tag = plain["etag"], zipped["etag"]
    assert tag != gzip_tag
    status, headers, body = raw_get(api, "/v1/query", BIG, **{"Accept-Encoding": "gzip", "If-None-Match": gzip_tag})
    assert status == 304 and body == b"" and headers["etag"] == gzip_tag and headers["vary"] == "Accept-Encoding"
    status, headers, _ = raw_get(api, "/v1/query", BIG, **{"Accept-Encoding": "identity", "If-None-Match": tag})
    assert status == 304 and headers["etag"] == tag
    # the gzip tag does not match what an identity request gets, nor another coding
    assert raw_get(api, "/v1/query", BIG, **{"Accept-Encoding": "identity", "If-None-Match": gzip_tag})[0] == 200
    assert raw_get(api, "/v1/query", BIG, **{"Accept-Encoding": "zstd", "If-None-Match": gzip_tag})[0] == 200
    # a near miss: the tag of another coding's suffix
    assert raw_get(api, "/v1/query", BIG, **{"Accept-Encoding": "gzip", "If-None-Match": tag[:-1] + '-gzi"'})[0] == 200


@pytest.mark.parametrize("server", ["biothings", "tornado"])
def test_both_http_servers_compress(serve, server):
    client = serve("embedded", HTTP_SERVER=server)
    for params in (BIG, MEDIUM):
        _, _, plain = raw_get(client, "/v1/query", params, **{"Accept-Encoding": "identity"})
        status, headers, body = raw_get(client, "/v1/query", params, **{"Accept-Encoding": "zstd"})
        assert status == 200 and headers["content-encoding"] == "zstd" and same_answer(decoded(headers, body), plain)
        assert int(headers["content-length"]) == len(body)
    status, headers, body = raw_get(client, "/v1/export", {"q": "__all__"}, **{"Accept-Encoding": "gzip"})
    _, _, plain = raw_get(client, "/v1/export", {"q": "__all__"}, **{"Accept-Encoding": "identity"})
    assert headers["transfer-encoding"] == "chunked" and headers["content-encoding"] == "gzip"
    assert decoded(headers, body) == plain and len(plain.splitlines()) == 1965


def test_compression_can_be_off(serve):
    client = serve("embedded", COMPRESSION=[])
    status, headers, _ = raw_get(client, "/v1/query", BIG, **{"Accept-Encoding": "gzip, zstd"})
    assert status == 200 and "content-encoding" not in headers


def test_other_routes_are_compressed_too(api):
    status, headers, body = raw_get(api, "/v1/spec", **{"Accept-Encoding": "gzip"})
    assert status == 200 and headers["content-encoding"] == "gzip" and decoded(headers, body).startswith(b"{")
    status, headers, _ = raw_get(api, "/v1/gene/1017", {"format": "yaml"}, **{"Accept-Encoding": "zstd"})
    assert status == 200 and headers["content-encoding"] == "zstd"


def test_static_files_answer_get_and_head_alike(api):
    """Static files are written in pieces after their Content-Length: not compressed, so HEAD
    (which has no body to compress) tells the truth."""
    _, get, body = raw_get(api, "/_static/front.js", **{"Accept-Encoding": "gzip"})
    _, head, _ = raw_get(api, "/_static/front.js", method="HEAD", **{"Accept-Encoding": "gzip"})
    assert "content-encoding" not in get and "content-encoding" not in head
    assert int(get["content-length"]) == int(head["content-length"]) == len(body)
    assert get["etag"] == head["etag"] and get["vary"] == "Accept-Encoding"
