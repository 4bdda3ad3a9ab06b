"""Optional authentication: static tokens, OIDC JWTs (JWKS), introspection, per route."""

import time

import orjson
import pytest

from tests.oidc import CLIENT_ID, CLIENT_SECRET, OIDCProvider, new_key
from tests.servers import free_port


@pytest.fixture(scope="module")
def provider():
    server = OIDCProvider().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def provider_as_made(request):
    """Each test starts with the provider answering as it should."""
    yield
    if "provider" in request.fixturenames:
        provider = request.getfixturevalue("provider")
        provider.down, provider.delay, provider.fail_with = False, 0.0, None
        provider.answers.clear()
        provider.other_keys = []


@pytest.fixture
def oidc_api(serve, provider):
    provider.down = False
    return serve("embedded", AUTH_REQUIRED_ROUTES=["query", "annotation"], AUTH_OIDC_ISSUER=provider.url,
                 AUTH_OIDC_AUDIENCE="biothings", AUTH_INTROSPECTION_CLIENT_ID=CLIENT_ID,
                 AUTH_INTROSPECTION_CLIENT_SECRET=CLIENT_SECRET, AUTH_LEEWAY=0)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def assert_401(response):
    assert response.status_code == 401, (response.status_code, response.text)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = response.json()
    assert body["code"] == 401 and body["success"] is False and body["error"]
    assert "Cache-Control" not in response.headers
    return body


def test_off_by_default(api):
    plain = api.get("/v1/gene/1017")
    assert plain.status_code == 200 and plain.json()["_id"] == "1017"
    assert api.get("/v1/gene/1017", headers=bearer("garbage")).json() == plain.json()


def test_static_tokens_per_route(serve):
    client = serve("embedded", AUTH_REQUIRED_ROUTES=["query"], AUTH_STATIC_TOKENS=["t0ken", "other"])
    assert_401(client.get("/v1/query", params={"q": "cdk2"}))
    assert_401(client.get("/v1/query", params={"q": "cdk2"}, headers=bearer("wrong")))
    assert_401(client.get("/v1/query", params={"q": "cdk2"}, headers={"Authorization": "Basic dDBrZW4="}))
    assert_401(client.post("/v1/query", json={"q": ["cdk2"]}))
    ok = client.get("/v1/query", params={"q": "cdk2"}, headers=bearer("t0ken"))
    assert ok.status_code == 200 and ok.json()["total"] >= 1
    assert "public" not in ok.headers.get("Cache-Control", "")
    assert client.post("/v1/query", json={"q": ["cdk2"]}, headers=bearer("other")).status_code == 200
    # other routes stay public
    assert client.get("/v1/gene/1017").status_code == 200
    assert client.get("/v1/metadata").status_code == 200
    # preflights carry no credentials
    assert client.request("OPTIONS", "/v1/query").status_code == 204


def test_all_routes(serve):
    client = serve("embedded", AUTH_REQUIRED_ROUTES=["*"], AUTH_STATIC_TOKENS={"k": "robot"})
    for path in ("/v1/gene/1017", "/v1/query?q=cdk2", "/v1/metadata", "/v1/metadata/fields", "/status", "/v1/spec",
                 "/v1/docs", "/"):
        assert_401(client.get(path))
        assert client.get(path, headers=bearer("k")).status_code == 200, path
    assert client.get("/_static/biothings.css").status_code == 200  # assets stay public


def test_valid_jwt(oidc_api, provider):
    token = provider.token()
    response = oidc_api.get("/v1/gene/1017", headers=bearer(token))
    assert response.status_code == 200 and response.json()["_id"] == "1017"
    assert oidc_api.post("/v1/query", json={"q": ["CDK2"], "scopes": ["symbol"]},
                         headers=bearer(token)).json()[0]["_id"] == "1017"
    assert_401(oidc_api.get("/v1/gene/1017"))
    assert oidc_api.get("/v1/metadata").status_code == 200  # not listed: public


def test_keys_are_cached(oidc_api, provider):
    token = provider.token()
    assert oidc_api.get("/v1/gene/1017", headers=bearer(token)).status_code == 200
    calls = provider.calls
    for _ in range(5):
        assert oidc_api.get("/v1/gene/1017", headers=bearer(token)).status_code == 200
    assert provider.calls == calls


@pytest.mark.parametrize("case", ["expired", "audience", "issuer", "signature", "no_exp", "tampered", "garbage"])
def test_bad_jwts(oidc_api, provider, case):
    if case == "expired":
        token = provider.token(exp=int(time.time()) - 60)
    elif case == "audience":
        token = provider.token(aud="another-api")
    elif case == "issuer":
        token = provider.token(iss="http://127.0.0.1:1/elsewhere")
    elif case == "signature":
        token = provider.token(key=new_key())  # right kid, wrong key
    elif case == "no_exp":
        token = provider.token(exp=None)
    elif case == "tampered":
        header, payload, signature = provider.token().split(".")
        token = ".".join([header, payload[:-4] + "AAAA", signature])
    else:
        token = "not.a.jwt"
    body = assert_401(oidc_api.get("/v1/gene/1017", headers=bearer(token)))
    assert body["error"] == {
        "expired": "Token expired.", "audience": "Token not meant for this API (audience).",
        "issuer": "Token from another issuer.",
        "garbage": "Invalid or inactive token.",  # no JWT: the provider's introspection refused it
    }.get(case, "Invalid token.")


def test_introspection_fallback(oidc_api, provider):
    provider.opaque["opaque-good"] = {"sub": "bob", "aud": "biothings", "exp": int(time.time()) + 60}
    provider.opaque["opaque-other-aud"] = {"sub": "bob", "aud": "elsewhere"}
    provider.opaque["opaque-expired"] = {"sub": "bob", "exp": int(time.time()) - 60}
    assert oidc_api.get("/v1/gene/1017", headers=bearer("opaque-good")).status_code == 200
    assert_401(oidc_api.get("/v1/gene/1017", headers=bearer("opaque-unknown")))
    assert_401(oidc_api.get("/v1/gene/1017", headers=bearer("opaque-other-aud")))
    assert_401(oidc_api.get("/v1/gene/1017", headers=bearer("opaque-expired")))


def test_provider_down_is_503_not_401(oidc_api, provider):
    provider.down = True
    try:
        response = oidc_api.get("/v1/gene/1017", headers=bearer(provider.token()))
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "10"
        assert response.json() == {"code": 503, "success": False, "error": "Identity provider unavailable, retry later."}
        # no token at all is still the client's fault
        assert_401(oidc_api.get("/v1/gene/1017"))
    finally:
        provider.down = False
    assert oidc_api.get("/v1/gene/1017", headers=bearer(provider.token())).status_code == 200


def test_provider_unreachable_is_503(serve):
    client = serve("embedded", AUTH_REQUIRED_ROUTES=["annotation"], AUTH_PROVIDER_TIMEOUT=2,
                   AUTH_OIDC_ISSUER=f"http://127.0.0.1:{free_port()}", AUTH_OIDC_AUDIENCE="biothings")
    response = client.get("/v1/gene/1017", headers=bearer("a.b.c"))
    assert response.status_code == 503 and response.json()["code"] == 503
    assert response.headers["Retry-After"].isdigit()


def test_static_tokens_need_no_provider(serve):
    client = serve("embedded", AUTH_REQUIRED_ROUTES=["annotation"], AUTH_STATIC_TOKENS=["local"],
                   AUTH_OIDC_ISSUER=f"http://127.0.0.1:{free_port()}", AUTH_OIDC_AUDIENCE="biothings")
    assert client.get("/v1/gene/1017", headers=bearer("local")).status_code == 200


# ---------------------------------------------------------------- no client can make the API hammer its provider

def test_a_provider_without_an_audience_stops_the_start(request):
    from biothings.web.auth import AuthConfigurationError
    from tests.conftest import make_settings
    for provider in ({"AUTH_OIDC_ISSUER": "http://127.0.0.1:1"}, {"AUTH_INTROSPECTION_URL": "http://127.0.0.1:1/i"}):
        settings = make_settings("embedded", request, AUTH_REQUIRED_ROUTES=["query"], **provider)
        with pytest.raises(AuthConfigurationError, match="AUTH_OIDC_AUDIENCE"):
            settings.get_app()
        # near misses: an audience, or no provider at all, or no protected route
        make_settings("embedded", request, AUTH_REQUIRED_ROUTES=["query"], AUTH_OIDC_AUDIENCE="api", **provider).get_app()
        make_settings("embedded", request, AUTH_REQUIRED_ROUTES=["query"], AUTH_STATIC_TOKENS=["t"]).get_app()


@pytest.fixture
def introspecting(serve, provider):
    """An API checking opaque tokens at the provider's introspection endpoint only."""
    provider.down, provider.delay = False, 0.0

    def start(**overrides):
        settings = dict(AUTH_REQUIRED_ROUTES=["annotation"], AUTH_INTROSPECTION_URL=provider.url + "/introspect",
                        AUTH_OIDC_AUDIENCE="biothings", AUTH_INTROSPECTION_CLIENT_ID=CLIENT_ID,
                        AUTH_INTROSPECTION_CLIENT_SECRET=CLIENT_SECRET)
        return serve("embedded", **{**settings, **overrides})
    yield start
    provider.delay = 0.0


def test_introspection_answers_are_cached_active_or_not(introspecting, provider):
    client = introspecting()
    provider.opaque["cached-good"] = {"sub": "bob", "aud": "biothings", "exp": int(time.time()) + 60}
    provider.opaque["cached-elsewhere"] = {"sub": "bob", "aud": "another-api"}
    before = provider.introspections
    for _ in range(5):
        assert client.get("/v1/gene/1017", headers=bearer("cached-good")).status_code == 200
        assert_401(client.get("/v1/gene/1017", headers=bearer("cached-unknown")))
        assert "audience" in assert_401(client.get("/v1/gene/1017", headers=bearer("cached-elsewhere")))["error"]
    assert provider.introspections - before == 3


def test_an_expired_introspected_token_is_not_reused(introspecting, provider):
    client = introspecting(AUTH_LEEWAY=0)
    provider.opaque["short-lived"] = {"sub": "bob", "aud": "biothings", "exp": int(time.time()) + 1}
    assert client.get("/v1/gene/1017", headers=bearer("short-lived")).status_code == 200
    time.sleep(2.1)
    assert "expired" in assert_401(client.get("/v1/gene/1017", headers=bearer("short-lived")))["error"].lower()


def test_concurrent_checks_of_one_token_share_one_call(introspecting, provider):
    from concurrent.futures import ThreadPoolExecutor
    client = introspecting()
    provider.opaque["popular"] = {"sub": "bob", "aud": "biothings"}
    provider.delay = 0.5
    before = provider.introspections
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: client.get("/v1/gene/1017", headers=bearer("popular")).status_code,
                                 range(8)))
    assert statuses == [200] * 8
    assert provider.introspections - before == 1


def test_calls_to_the_provider_are_capped(introspecting, provider):
    client = introspecting(AUTH_PROVIDER_CALLS_PER_SECOND=0.05)  # one call per 20 s
    before = provider.introspections
    assert_401(client.get("/v1/gene/1017", headers=bearer("random-1")))  # the one call
    for number in range(2, 6):  # every other unknown token: no call, the client retries later
        response = client.get("/v1/gene/1017", headers=bearer(f"random-{number}"))
        assert response.status_code == 503 and int(response.headers["Retry-After"]) > 0
    assert provider.introspections - before == 1
    assert_401(client.get("/v1/gene/1017", headers=bearer("random-1")))  # cached: no call needed


def test_metrics_behind_a_token(serve):
    client = serve("embedded", AUTH_REQUIRED_ROUTES=["metrics"], AUTH_STATIC_TOKENS=["scraper"])
    assert_401(client.get("/metrics"))
    assert_401(client.get("/metrics", headers=bearer("scrape")))
    response = client.get("/metrics", headers=bearer("scraper"))
    assert response.status_code == 200 and "biothings_http_requests_total" in response.text
    assert client.get("/v1/gene/1017").status_code == 200  # the API stays public
    public = serve("embedded", AUTH_REQUIRED_ROUTES=["query"], AUTH_STATIC_TOKENS=["scraper"])
    assert public.get("/metrics").status_code == 200


# ---------------------------------------------------------------- near misses: one character, one second, one audience

@pytest.mark.parametrize("header", [
    "Bearer t0ken!", "Bearer t0kenx", "Bearer 0ken", "Bearer t0ke", "Bearer T0KEN", "Bearer t0ken,other",
    "Bearer t0kent0ken", "Bearer other-", "Bearer ther", "Bearert0ken", "Basic t0ken", "t0ken", "Bearer",
    "Bearer  ", "Token t0ken"])
def test_a_static_token_one_character_off_is_refused(serve, header):
    client = serve("embedded", AUTH_REQUIRED_ROUTES=["annotation"], AUTH_STATIC_TOKENS="t0ken, other")
    body = assert_401(client.get("/v1/gene/1017", headers={"Authorization": header}))
    assert "_id" not in body


@pytest.mark.parametrize("header", ["Bearer t0ken", "bearer t0ken", "BEARER other", "Bearer  t0ken ", "Bearer other"])
def test_the_static_tokens_themselves_pass(serve, header):
    client = serve("embedded", AUTH_REQUIRED_ROUTES=["annotation"], AUTH_STATIC_TOKENS="t0ken, other")
    response = client.get("/v1/gene/1017", headers={"Authorization": header})
    assert response.status_code == 200 and response.json()["_id"] == "1017"


def test_static_tokens_compare_whole_values_with_a_provider_too(oidc_api, serve, provider):
    """A static token plus or minus a character falls through to the provider, which refuses it."""
    client = serve("embedded", AUTH_REQUIRED_ROUTES=["annotation"], AUTH_STATIC_TOKENS={"robot-key": "robot"},
                   AUTH_OIDC_ISSUER=provider.url, AUTH_OIDC_AUDIENCE="biothings",
                   AUTH_INTROSPECTION_CLIENT_ID=CLIENT_ID, AUTH_INTROSPECTION_CLIENT_SECRET=CLIENT_SECRET)
    assert client.get("/v1/gene/1017", headers=bearer("robot-key")).status_code == 200
    for near in ("robot-key2", "obot-key", "robot-ke"):
        assert_401(client.get("/v1/gene/1017", headers=bearer(near)))


@pytest.mark.parametrize("audiences, status", [
    (["another-api", "third"], 401), (["another-api", "biothings"], 200), (["biothings"], 200), ([], 401),
    (["biothing"], 401), (["biothings2"], 401), ("biothings", 200), ("biothing", 401)])
def test_jwt_audience_lists(oidc_api, provider, audiences, status):
    response = oidc_api.get("/v1/gene/1017", headers=bearer(provider.token(aud=audiences)))
    if status == 200:
        assert response.status_code == 200 and response.json()["_id"] == "1017"
    else:
        assert "audience" in assert_401(response)["error"].lower() or audiences == []


@pytest.mark.parametrize("audiences, status", [
    (["another-api", "third"], 401), (["another-api", "biothings"], 200), (["biothings"], 200), ([], 401),
    (["biothing"], 401), ("biothings", 200), ("biothings2", 401)])
def test_introspected_audience_lists(introspecting, provider, audiences, status):
    client = introspecting()
    token = f"aud-{audiences!r}"
    provider.opaque[token] = {"sub": "bob", "aud": audiences}
    response = client.get("/v1/gene/1017", headers=bearer(token))
    if status == 200:
        assert response.status_code == 200 and response.json()["_id"] == "1017"
    else:
        assert "audience" in assert_401(response)["error"]


def expiry(leeway, seconds_past):
    """An ``exp`` that many whole seconds past the leeway, however far into the current second we are
    (``exp`` is read as a whole number of seconds)."""
    now = time.time()
    if seconds_past > 0:  # expired: at least that long past now - leeway
        return int(now) - leeway - seconds_past
    return int(now) + 1 - leeway - seconds_past  # valid: at least that long before


@pytest.mark.parametrize("leeway", [0, 30])
def test_a_jwt_expired_one_second_past_the_leeway(serve, provider, leeway):
    client = serve("embedded", AUTH_REQUIRED_ROUTES=["annotation"], AUTH_OIDC_ISSUER=provider.url,
                   AUTH_OIDC_AUDIENCE="biothings", AUTH_LEEWAY=leeway)
    provider.down = False
    assert "expired" in assert_401(client.get("/v1/gene/1017", headers=bearer(
        provider.token(exp=expiry(leeway, 1)))))["error"].lower()
    inside = client.get("/v1/gene/1017", headers=bearer(provider.token(exp=expiry(leeway, -1))))
    assert inside.status_code == 200 and inside.json()["_id"] == "1017"


@pytest.mark.parametrize("leeway", [0, 30])
def test_an_introspected_token_expired_one_second_past_the_leeway(introspecting, provider, leeway):
    client = introspecting(AUTH_LEEWAY=leeway, AUTH_INTROSPECTION_CACHE_SECONDS=60)
    provider.opaque[f"past-{leeway}"] = {"sub": "bob", "aud": "biothings", "exp": expiry(leeway, 1)}
    provider.opaque[f"inside-{leeway}"] = {"sub": "bob", "aud": "biothings", "exp": expiry(leeway, -1)}
    for _ in range(2):  # the answer cached, and the cached answer, alike
        assert "expired" in assert_401(client.get("/v1/gene/1017", headers=bearer(f"past-{leeway}")))["error"]
        inside = client.get("/v1/gene/1017", headers=bearer(f"inside-{leeway}"))
        assert inside.status_code == 200 and inside.json()["_id"] == "1017"


def test_an_inactive_introspection_answer_with_claims_is_refused(introspecting, provider):
    client = introspecting()
    provider.opaque["revoked"] = {"sub": "bob", "aud": "biothings", "active": False}
    provider.opaque["odd-active"] = {"sub": "bob", "aud": "biothings", "active": "true"}  # not JSON true
    assert "inactive" in assert_401(client.get("/v1/gene/1017", headers=bearer("revoked")))["error"]
    assert "inactive" in assert_401(client.get("/v1/gene/1017", headers=bearer("odd-active")))["error"]


# ---------------------------------------------------------------- introspection as RFC 7662 describes it

def test_the_introspection_request_is_a_form_post_with_the_client_credentials(introspecting, provider):
    client = introspecting()
    provider.opaque["form-good"] = {"sub": "bob", "aud": "biothings"}
    assert client.get("/v1/gene/1017", headers=bearer("form-good")).status_code == 200
    headers, form = provider.requests[-1]
    # these headers and no others (tornado's client adds the connection's own)
    assert sorted(headers) == ["Accept", "Accept-Encoding", "Authorization", "Connection", "Content-Length",
                               "Content-Type", "Host", "User-Agent"]
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert headers["Accept"] == "application/json"
    import base64
    assert headers["Authorization"] == "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert form == {"token": [b"form-good"], "token_type_hint": [b"access_token"]}


def test_a_client_id_without_a_secret_sends_an_empty_secret(introspecting, provider):
    client = introspecting(AUTH_INTROSPECTION_CLIENT_SECRET="")
    response = client.get("/v1/gene/1017", headers=bearer("no-secret"))
    assert response.status_code == 503  # the provider refused our credentials: its fault or ours, not the client's
    import base64
    assert provider.requests[-1][0]["Authorization"] == "Basic " + base64.b64encode(f"{CLIENT_ID}:".encode()).decode()


def test_a_provider_error_with_a_json_body_is_503(introspecting, provider):
    client = introspecting()
    provider.opaque["error-token"] = {"sub": "bob", "aud": "biothings"}
    provider.fail_with = 500
    try:
        response = client.get("/v1/gene/1017", headers=bearer("error-token"))
        assert response.status_code == 503 and response.json()["code"] == 503
    finally:
        provider.fail_with = None
    assert client.get("/v1/gene/1017", headers=bearer("error-token")).status_code == 200  # not cached


def test_introspection_refusals_say_why(introspecting, provider):
    client = introspecting(AUTH_LEEWAY=0)
    provider.opaque["why-expired"] = {"sub": "bob", "aud": "biothings", "exp": int(time.time()) - 5}
    provider.opaque["why-elsewhere"] = {"sub": "bob", "aud": "another-api"}
    assert assert_401(client.get("/v1/gene/1017", headers=bearer("why-inactive")))["error"] == \
        "Invalid or inactive token."
    assert assert_401(client.get("/v1/gene/1017", headers=bearer("why-expired")))["error"] == "Token expired."
    assert assert_401(client.get("/v1/gene/1017", headers=bearer("why-elsewhere")))["error"] == \
        "Token not meant for this API (audience)."


def test_concurrent_checks_of_different_tokens_get_their_own_answers(introspecting, provider):
    """One call per token at a time, but never one token's answer for another's."""
    from concurrent.futures import ThreadPoolExecutor
    client = introspecting()
    provider.opaque["twin-good"] = {"sub": "bob", "aud": "biothings"}
    provider.delay = 0.5
    tokens = ["twin-good", "twin-unknown"] * 3
    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda token: client.get("/v1/gene/1017", headers=bearer(token)).status_code, tokens))
    assert statuses == [200, 401] * 3


@pytest.mark.parametrize("seconds, calls", [(0, 3), (1, 1)])
def test_introspection_answers_cached_for_the_setting_s_seconds(introspecting, provider, seconds, calls):
    """0: not cached, every request asks; 1: three requests in a row share one answer."""
    client = introspecting(AUTH_INTROSPECTION_CACHE_SECONDS=seconds)
    token = f"cached-{seconds}s"
    provider.opaque[token] = {"sub": "bob", "aud": "biothings"}
    before = provider.introspections
    for _ in range(3):
        assert client.get("/v1/gene/1017", headers=bearer(token)).status_code == 200
    assert provider.introspections - before == calls


def test_the_introspection_cache_forgets_the_least_recent_first(introspecting, provider, monkeypatch):
    from biothings.web import auth
    monkeypatch.setattr(auth, "INTROSPECTION_CACHE_SIZE", 2)
    client = introspecting(AUTH_INTROSPECTION_CACHE_SECONDS=300)
    for token in ("lru-a", "lru-b", "lru-c"):
        provider.opaque[token] = {"sub": "bob", "aud": "biothings"}

    def calls_for(token):
        before = provider.introspections
        assert client.get("/v1/gene/1017", headers=bearer(token)).status_code == 200
        return provider.introspections - before
    assert [calls_for(token) for token in ("lru-a", "lru-b", "lru-b")] == [1, 1, 0]  # two fit
    assert calls_for("lru-c") == 1  # a third: the oldest, lru-a, goes
    assert calls_for("lru-b") == 0 and calls_for("lru-a") == 1


# ---------------------------------------------------------------- signing keys

def test_a_rotated_signing_key_is_fetched_once_its_kid_is_seen(oidc_api, provider, monkeypatch):
    from biothings.web import auth
    monkeypatch.setattr(auth, "_MIN_REFETCH_INTERVAL", 0)
    assert oidc_api.get("/v1/gene/1017", headers=bearer(provider.token())).status_code == 200  # keys fetched
    old_key, old_kid = provider.key, provider.kid
    provider.key, provider.kid = new_key(), "key-2"
    try:
        calls = provider.calls
        assert oidc_api.get("/v1/gene/1017", headers=bearer(provider.token())).status_code == 200
        assert provider.calls - calls == 1  # the keys again, once: an unknown kid
        assert_401(oidc_api.get("/v1/gene/1017", headers=bearer(provider.token(key=old_key, kid=old_kid))))
    finally:
        provider.key, provider.kid = old_key, old_kid


def test_a_token_without_kid_uses_the_only_key(oidc_api, provider):
    import jwt
    now = int(time.time())
    claims = {"iss": provider.url, "sub": "alice", "aud": "biothings", "iat": now, "exp": now + 300}
    token = jwt.encode(claims, provider.key, algorithm="RS256")
    assert "kid" not in jwt.get_unverified_header(token)
    assert oidc_api.get("/v1/gene/1017", headers=bearer(token)).status_code == 200
    assert_401(oidc_api.get("/v1/gene/1017", headers=bearer(jwt.encode(claims, new_key(), algorithm="RS256"))))


def test_the_challenge_names_the_api_as_realm(serve):
    client = serve("embedded", AUTH_REQUIRED_ROUTES=["annotation"], AUTH_STATIC_TOKENS=["t0ken"],
                   API_NAME='Gene "demo" API')
    response = client.get("/v1/gene/1017", headers=bearer("wrong"))
    assert_401(response)
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="Gene \'demo\' API", error="invalid_token"'), challenge


def test_the_discovery_document_is_fetched_once(oidc_api, provider):
    provider.opaque["discovered-once"] = {"sub": "bob", "aud": "biothings"}
    start = len(provider.paths)
    for _ in range(3):
        assert oidc_api.get("/v1/gene/1017", headers=bearer(provider.token())).status_code == 200
        assert oidc_api.get("/v1/gene/1017", headers=bearer("discovered-once")).status_code == 200
    paths = provider.paths[start:]
    assert paths.count("/.well-known/openid-configuration") == 1 and paths.count("/jwks") == 1


def test_keys_the_api_cannot_use_are_skipped(oidc_api, provider):
    """An unknown key type, a key missing a member (PyJWT raised KeyError: a 500 for every
    token) and an entry that is no object, before the signing key."""
    provider.other_keys = [{"kty": "unknown-type", "kid": "odd"}, {"kty": "oct"}, "not a key", {"kty": "RSA"}]
    try:
        assert oidc_api.get("/v1/gene/1017", headers=bearer(provider.token())).status_code == 200
    finally:
        provider.other_keys = []


def test_no_cap_on_provider_calls_at_zero(introspecting, provider):
    client = introspecting(AUTH_PROVIDER_CALLS_PER_SECOND=0)
    before = provider.introspections
    for number in range(5):
        assert_401(client.get("/v1/gene/1017", headers=bearer(f"uncapped-{number}")))
    assert provider.introspections - before == 5


# ---------------------------------------------------------------- what a refusal says, to the client and to the log

@pytest.mark.parametrize("api_name, realm", [("genes", "genes"), ("", "api")])
def test_a_request_without_credentials_gets_a_challenge_without_error_code(serve, api_name, realm):
    """RFC 6750 3.1: no error code when the request carried no credentials; one when they were wrong."""
    client = serve("embedded", AUTH_REQUIRED_ROUTES=["annotation"], AUTH_STATIC_TOKENS=["t0ken"], API_NAME=api_name)
    missing = client.get("/v1/gene/1017")
    assert assert_401(missing)["error"] == "Authentication required: send 'Authorization: Bearer <token>'."
    assert missing.headers["WWW-Authenticate"] == f'Bearer realm="{realm}"'
    wrong = client.get("/v1/gene/1017", headers=bearer("t0ken2"))
    assert assert_401(wrong)["error"] == "Invalid token."
    assert wrong.headers["WWW-Authenticate"] == \
        f'Bearer realm="{realm}", error="invalid_token", error_description="Invalid token."'


def test_the_start_up_error_names_the_setting_to_fill(request):
    from biothings.web.auth import AuthConfigurationError
    from tests.conftest import make_settings
    settings = make_settings("embedded", request, AUTH_REQUIRED_ROUTES=["query"], AUTH_OIDC_ISSUER="http://127.0.0.1:1")
    with pytest.raises(AuthConfigurationError) as refused:
        settings.get_app()
    assert str(refused.value) == (
        "AUTH_OIDC_AUDIENCE is empty while AUTH_OIDC_ISSUER (or AUTH_INTROSPECTION_URL) is set: tokens the "
        "provider minted for any of its other clients would be accepted. Set AUTH_OIDC_AUDIENCE to this "
        "API's audience (its client id or resource name at the provider).")


def test_an_opaque_token_without_an_introspection_endpoint_is_invalid(serve, provider):
    """The provider's discovery document names no introspection endpoint: nothing can vouch for it."""
    provider.answers["/.well-known/openid-configuration"] = (
        200, orjson.dumps({"issuer": provider.url, "jwks_uri": provider.url + "/jwks"}))
    client = serve("embedded", AUTH_REQUIRED_ROUTES=["annotation"], AUTH_OIDC_ISSUER=provider.url,
                   AUTH_OIDC_AUDIENCE="biothings")
    assert assert_401(client.get("/v1/gene/1017", headers=bearer("opaque")))["error"] == "Invalid token."
    assert client.get("/v1/gene/1017", headers=bearer(provider.token())).status_code == 200


def unavailable_logged(caplog):
    return [record.getMessage() for record in caplog.records
            if record.name == "biothings.web.auth" and record.getMessage().startswith("identity provider unavailable")]


@pytest.mark.parametrize("path, status, body, reason", [
    ("/.well-known/openid-configuration", 404, b'{"jwks_uri": "{url}/jwks"}', "discovery document: HTTP 404"),
    ("/.well-known/openid-configuration", 200, b"[]", "discovery document: HTTP 200"),
    ("/.well-known/openid-configuration", 200, b"", "discovery document: HTTP 200"),
    ("/.well-known/openid-configuration", 200, b"<html>", "{url}/.well-known/openid-configuration: not JSON (HTTP 200)"),
    ("/.well-known/openid-configuration", 200, b'{"issuer": "{url}"}', "the discovery document names no jwks_uri"),
    ("/jwks", 200, b"[]", "JWKS: HTTP 200"),
    ("/jwks", 404, b'{"keys": []}', "JWKS: HTTP 404"),
    ("/jwks", 429, b'{"error": "slow down"}', "{url}/jwks: HTTP 429"),
    ("/jwks", 500, b'{"error": "server_error"}', "{url}/jwks: HTTP 500"),
    ("/jwks", 501, b'{"error": "not implemented"}', "{url}/jwks: HTTP 501"),
])
def test_provider_failures_are_503_and_logged_with_their_cause(serve, provider, caplog, path, status, body, reason):
    """A provider answering with an error, an odd document or no JSON: the client gets a 503
    (never a 500, never a token accepted on a document the provider did not mean), the log says what failed."""
    provider.answers[path] = (status, body.replace(b"{url}", provider.url.encode()))
    client = serve("embedded", AUTH_REQUIRED_ROUTES=["annotation"], AUTH_OIDC_ISSUER=provider.url,
                   AUTH_OIDC_AUDIENCE="biothings")
    response = client.get("/v1/gene/1017", headers=bearer(provider.token()))
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "Identity provider unavailable, retry later."
    assert unavailable_logged(caplog) == ["identity provider unavailable: " + reason.replace("{url}", provider.url)]


@pytest.mark.parametrize("status, body, reason", [
    (401, b'{"error": "invalid_client"}', "introspection: HTTP 401"),
    (200, b"[]", "introspection: HTTP 200"),
    (429, b'{"error": "slow down"}', "{url}/introspect: HTTP 429"),
])
def test_introspection_failures_are_503_and_logged_with_their_cause(introspecting, provider, caplog, status, body,
                                                                     reason):
    client = introspecting()
    provider.answers["/introspect"] = (status, body)
    assert client.get("/v1/gene/1017", headers=bearer("opaque")).status_code == 503
    assert unavailable_logged(caplog) == ["identity provider unavailable: " + reason.replace("{url}", provider.url)]


def test_an_unreachable_provider_and_the_call_cap_are_logged(serve, introspecting, provider, caplog):
    port = free_port()
    unreachable = serve("embedded", AUTH_REQUIRED_ROUTES=["annotation"], AUTH_OIDC_ISSUER=f"http://127.0.0.1:{port}",
                        AUTH_OIDC_AUDIENCE="biothings")
    assert unreachable.get("/v1/gene/1017", headers=bearer("a.b.c")).status_code == 503
    capped = introspecting(AUTH_PROVIDER_CALLS_PER_SECOND=0.05)
    assert_401(capped.get("/v1/gene/1017", headers=bearer("capped-1")))
    assert capped.get("/v1/gene/1017", headers=bearer("capped-2")).status_code == 503
    logged = unavailable_logged(caplog)
    assert len(logged) == 2
    assert logged[0].startswith(f"identity provider unavailable: http://127.0.0.1:{port}/.well-known/openid-configuration: ")
    assert "Connection refused" in logged[0]
    assert logged[1] == (f"identity provider unavailable: {provider.url}/introspect: "
                         "more than AUTH_PROVIDER_CALLS_PER_SECOND calls")


# ---------------------------------------------------------------- the settings, each read as documented

def test_a_provider_slower_than_the_timeout_is_503(introspecting, provider, caplog):
    """AUTH_PROVIDER_TIMEOUT bounds the whole call (the provider here would answer after 3 s)."""
    client = introspecting(AUTH_PROVIDER_TIMEOUT=0.5)
    provider.opaque["slow-good"] = {"sub": "bob", "aud": "biothings"}
    provider.delay = 3.0
    assert client.get("/v1/gene/1017", headers=bearer("slow-good")).status_code == 503
    assert "Timeout" in unavailable_logged(caplog)[0]


def test_the_signing_keys_are_fetched_again_after_the_cache_time(serve, provider):
    client = serve("embedded", AUTH_REQUIRED_ROUTES=["annotation"], AUTH_OIDC_ISSUER=provider.url,
                   AUTH_OIDC_AUDIENCE="biothings", AUTH_JWKS_CACHE_SECONDS=0.5)
    start = len(provider.paths)
    assert client.get("/v1/gene/1017", headers=bearer(provider.token())).status_code == 200
    assert client.get("/v1/gene/1017", headers=bearer(provider.token())).status_code == 200
    assert provider.paths[start:].count("/jwks") == 1
    time.sleep(0.7)
    assert client.get("/v1/gene/1017", headers=bearer(provider.token())).status_code == 200
    assert provider.paths[start:].count("/jwks") == 2


def test_an_unknown_kid_fetches_the_keys_at_most_every_ten_seconds(oidc_api, provider):
    """A client sending made-up kids cannot make the API fetch the JWKS per request."""
    start = len(provider.paths)
    assert oidc_api.get("/v1/gene/1017", headers=bearer(provider.token())).status_code == 200
    for number in range(3):
        assert_401(oidc_api.get("/v1/gene/1017", headers=bearer(provider.token(kid=f"made-up-{number}"))))
    assert provider.paths[start:].count("/jwks") == 1


def _second_key():
    import jwt
    key = new_key()
    return key, {**jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "key-0", "alg": "RS256"}


def test_the_kid_picks_the_key_among_several(oidc_api, provider):
    import jwt
    key, entry = _second_key()
    provider.other_keys = [entry]
    assert oidc_api.get("/v1/gene/1017", headers=bearer(provider.token())).status_code == 200  # key-1, listed second
    assert oidc_api.get("/v1/gene/1017", headers=bearer(provider.token(key=key, kid="key-0"))).status_code == 200
    now = int(time.time())
    claims = {"iss": provider.url, "sub": "alice", "aud": "biothings", "iat": now, "exp": now + 300}
    # without kid, two keys: none is guessed (the provider's introspection does not know the token either)
    assert_401(oidc_api.get("/v1/gene/1017", headers=bearer(jwt.encode(claims, key, algorithm="RS256"))))


def test_a_kid_the_keys_lack_is_not_matched_to_the_only_key(oidc_api, provider):
    assert_401(oidc_api.get("/v1/gene/1017", headers=bearer(provider.token(kid="key-9"))))  # signed by key-1


@pytest.mark.parametrize("algorithms, status", [(["ES256"], 401), (["ES256", "RS256"], 200), ([], 200)])
def test_only_the_configured_algorithms_are_accepted(serve, provider, algorithms, status):
    """AUTH_OIDC_ALGORITHMS (empty: RS256 only, OIDC's default)."""
    client = serve("embedded", AUTH_REQUIRED_ROUTES=["annotation"], AUTH_OIDC_ISSUER=provider.url,
                   AUTH_OIDC_AUDIENCE="biothings", AUTH_OIDC_ALGORITHMS=algorithms)
    response = client.get("/v1/gene/1017", headers=bearer(provider.token()))
    if status == 200:
        assert response.status_code == 200 and response.json()["_id"] == "1017"
    else:
        assert assert_401(response)["error"] == "Invalid token."


def test_an_issuer_written_with_a_trailing_slash(serve, provider):
    client = serve("embedded", AUTH_REQUIRED_ROUTES=["annotation"], AUTH_OIDC_ISSUER=provider.url + "/",
                   AUTH_OIDC_AUDIENCE="biothings")
    response = client.get("/v1/gene/1017", headers=bearer(provider.token()))
    assert response.status_code == 200 and response.json()["_id"] == "1017"
    assert "/.well-known/openid-configuration" in provider.paths


def test_an_introspected_expiry_half_a_second_ago_at_zero_leeway(introspecting, provider):
    client = introspecting(AUTH_LEEWAY=0)
    provider.opaque["just-expired"] = {"sub": "bob", "aud": "biothings", "exp": time.time() - 0.5}
    assert assert_401(client.get("/v1/gene/1017", headers=bearer("just-expired")))["error"] == "Token expired."


def test_protected_routes_named_in_a_comma_separated_setting(serve):
    """AUTH_REQUIRED_ROUTES as the environment gives it: one string."""
    client = serve("embedded", AUTH_REQUIRED_ROUTES="query, annotation", AUTH_STATIC_TOKENS=["t0ken"])
    assert_401(client.get("/v1/gene/1017"))
    assert_401(client.get("/v1/query", params={"q": "cdk2"}))
    assert client.get("/v1/metadata").status_code == 200
    ok = client.get("/v1/gene/1017", headers=bearer("t0ken"))
    assert ok.status_code == 200 and ok.json()["_id"] == "1017"
    assert ok.headers["Access-Control-Allow-Origin"] == "*"  # the handler's own preparation still runs


def test_a_configured_jwks_url_needs_no_discovery(serve, provider):
    """AUTH_OIDC_JWKS_URL: the keys from there, even when the discovery document is broken."""
    provider.answers["/.well-known/openid-configuration"] = (404, b'{"error": "not found"}')
    client = serve("embedded", AUTH_REQUIRED_ROUTES=["annotation"], AUTH_OIDC_ISSUER=provider.url,
                   AUTH_OIDC_AUDIENCE="biothings", AUTH_OIDC_JWKS_URL=provider.url + "/jwks")
    response = client.get("/v1/gene/1017", headers=bearer(provider.token()))
    assert response.status_code == 200 and response.json()["_id"] == "1017"
    assert "/.well-known/openid-configuration" not in provider.paths[-1:]


@pytest.mark.parametrize("origin", ["", "https://portal.example.org"])
def test_a_protected_route_answers_with_the_configured_origin(serve, origin):
    client = serve("embedded", AUTH_REQUIRED_ROUTES=["annotation"], AUTH_STATIC_TOKENS=["t0ken"],
                   ACCESS_CONTROL_ALLOW_ORIGIN=origin)
    ok = client.get("/v1/gene/1017", headers=bearer("t0ken"))
    assert ok.status_code == 200 and ok.headers.get("Access-Control-Allow-Origin") == (origin or None)
