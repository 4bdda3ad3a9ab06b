"""Optional bearer-token authentication (off by default).

Routes listed in ``AUTH_REQUIRED_ROUTES`` (handler names such as ``query``,
``annotation``, ``metadata``, or ``"*"`` for every API route) need an
``Authorization: Bearer <token>`` header. A token is accepted when it is:

1. one of ``AUTH_STATIC_TOKENS`` (a list, or ``{token: subject}``); or
2. a JWT signed by a key of the OpenID Connect issuer ``AUTH_OIDC_ISSUER``
   (keys from its JWKS, found through ``{issuer}/.well-known/openid-configuration``,
   fetched asynchronously and cached), unexpired, with the expected issuer and
   audience (``AUTH_OIDC_AUDIENCE``); or
3. active according to the issuer's token introspection endpoint (RFC 7662),
   the fallback for opaque tokens and JWTs signed by a key the JWKS lacks.

Answers: ``401`` with ``WWW-Authenticate: Bearer`` for a missing or bad token;
``503`` with ``Retry-After`` when the identity provider cannot be reached (the
token may well be good: the client should retry, not log in again).

Every token is checked for this API's audience (``AUTH_OIDC_AUDIENCE``, required
when a provider validates tokens: otherwise a token minted for any other client
of the same issuer would do). No client can make the API hammer its provider:
introspection answers, active or not, are cached (``AUTH_INTROSPECTION_CACHE_SECONDS``),
concurrent checks of one token share one call, and the calls to the provider are
capped (``AUTH_PROVIDER_CALLS_PER_SECOND``; past it a 503, not a call).
"""

import asyncio
import base64
import collections
import hashlib
import hmac
import logging
import time
import urllib.parse

import orjson
import tornado.httpclient

from biothings.web.handlers.base import APIError

logger = logging.getLogger("biothings.web.auth")

# A JWKS lacking a token's key is fetched again at most this often (seconds).
_MIN_REFETCH_INTERVAL = 10
# Introspection answers kept at most (the oldest go first).
INTROSPECTION_CACHE_SIZE = 10000


class ProviderUnavailable(Exception):
    """The identity provider did not answer usably."""


class AuthConfigurationError(ValueError):
    """The authentication settings would accept tokens they should not: a start-up error."""


def check_settings(web_settings):
    """Refuse settings under which a provider validates tokens for no audience in particular."""
    if ((web_settings.get("AUTH_OIDC_ISSUER") or web_settings.get("AUTH_INTROSPECTION_URL"))
            and not web_settings.get("AUTH_OIDC_AUDIENCE")):
        raise AuthConfigurationError(
            "AUTH_OIDC_AUDIENCE is empty while AUTH_OIDC_ISSUER (or AUTH_INTROSPECTION_URL) is set: tokens the "
            "provider minted for any of its other clients would be accepted. Set AUTH_OIDC_AUDIENCE to this "
            "API's audience (its client id or resource name at the provider).")


class CallBudget:
    """A token bucket: at most ``rate`` calls a second (bursts of ``max(1, rate)``)."""

    def __init__(self, rate):
        self.rate = float(rate)
        self.capacity = max(1.0, self.rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def take(self):
        if self.rate <= 0:
            return True
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def _unauthorized(web_settings, reason, error="invalid_token"):
    realm = str(web_settings.get("API_NAME") or "api").replace('"', "'")
    challenge = f'Bearer realm="{realm}"'
    if error:
        challenge += f', error="{error}", error_description="{reason}"'
    return APIError(401, reason, headers={"WWW-Authenticate": challenge})


class Authenticator:
    """Validates bearer tokens for one API; keeps provider documents cached."""

    def __init__(self, web_settings):
        self.web_settings = web_settings
        static = web_settings.get("AUTH_STATIC_TOKENS") or {}
        if isinstance(static, str):
            static = [token.strip() for token in static.split(",") if token.strip()]
        if not isinstance(static, dict):
            static = {token: "static" for token in static}
        self.static_tokens = {str(token).encode(): subject for token, subject in static.items()}
        self.issuer = (web_settings.get("AUTH_OIDC_ISSUER") or "").rstrip("/")
        self.audience = web_settings.get("AUTH_OIDC_AUDIENCE") or None
        self.algorithms = list(web_settings.get("AUTH_OIDC_ALGORITHMS") or ["RS256"])
        self.timeout = float(web_settings.get("AUTH_PROVIDER_TIMEOUT") or 5)
        self.cache_seconds = float(web_settings.get("AUTH_JWKS_CACHE_SECONDS") or 300)
        self.leeway = float(web_settings.get("AUTH_LEEWAY") or 0)
        self.introspection_seconds = float(web_settings.get("AUTH_INTROSPECTION_CACHE_SECONDS") or 0)
        self.provider_calls = CallBudget(web_settings.get("AUTH_PROVIDER_CALLS_PER_SECOND") or 0)
        self._discovery = None  # (document, fetched at)
        self._keys = None  # ({kid: PyJWK}, fetched at)
        self._introspected = collections.OrderedDict()  # sha256(token) -> (claims or reason refused, until)
        self._flights = {}  # key -> future of the provider call under way

    # ---------------------------------------------------------- entry point
    async def authenticate(self, authorization):
        """Claims of the bearer token in an ``Authorization`` header value, or raise ``APIError``."""
        settings = self.web_settings
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized(settings, "Authentication required: send 'Authorization: Bearer <token>'.", None)
        encoded = token.encode("utf-8", "replace")
        for known, subject in self.static_tokens.items():
            if hmac.compare_digest(known, encoded):
                return {"sub": subject, "auth": "static"}
        if not self.issuer and not settings.get("AUTH_INTROSPECTION_URL"):
            raise _unauthorized(settings, "Invalid token.")
        try:
            return await self._validate(token)
        except ProviderUnavailable as exc:
            logger.warning("identity provider unavailable: %s", exc)
            raise APIError(503, "Identity provider unavailable, retry later.",
                           headers={"Retry-After": "10"}) from None

    async def _validate(self, token):
        import jwt
        settings = self.web_settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            header = None
        if header is not None and self.issuer:
            key = await self._signing_key(header.get("kid"))
            if key is not None:
                try:
                    return jwt.decode(token, key=key, algorithms=self.algorithms, audience=self.audience,
                                      issuer=self.issuer, leeway=self.leeway,
                                      options={"require": ["exp", "iss"], "verify_aud": self.audience is not None})
                except jwt.ExpiredSignatureError:
                    raise _unauthorized(settings, "Token expired.") from None
                except jwt.InvalidAudienceError:
                    raise _unauthorized(settings, "Token not meant for this API (audience).") from None
                except jwt.InvalidIssuerError:
                    raise _unauthorized(settings, "Token from another issuer.") from None
                except jwt.InvalidTokenError:
                    raise _unauthorized(settings, "Invalid token.") from None
        # opaque token, or a key the JWKS does not have: ask the provider
        endpoint = await self._introspection_endpoint()
        if endpoint:
            return await self._introspected_claims(endpoint, token)
        raise _unauthorized(settings, "Invalid token.")

    async def _single_flight(self, key, call):
        """``await call()``, shared by every caller asking for ``key`` while it runs."""
        flight = self._flights.get(key)
        if flight is None:
            flight = self._flights[key] = asyncio.ensure_future(call())
            flight.add_done_callback(lambda _done: self._flights.pop(key, None))
        return await asyncio.shield(flight)

    async def _introspected_claims(self, endpoint, token):
        """The claims of an opaque token, from the cache or from one introspection call."""
        key = hashlib.sha256(token.encode("utf-8", "replace")).digest()
        cached = self._introspected.get(key)
        if cached is not None and cached[1] > time.monotonic():
            claims = cached[0]
        else:
            claims = await self._single_flight(key, lambda: self._introspect_and_cache(key, endpoint, token))
        if isinstance(claims, str):
            raise _unauthorized(self.web_settings, claims)
        return claims

    async def _introspect_and_cache(self, key, endpoint, token):
        try:
            claims = await self._introspect(endpoint, token)
        except APIError as refused:  # inactive, expired, another audience: cached too
            claims = refused.error
        until = time.monotonic() + self.introspection_seconds
        exp = claims.get("exp") if isinstance(claims, dict) else None
        if isinstance(exp, (int, float)):  # never trusted past its expiry
            until = min(until, time.monotonic() + exp + self.leeway - time.time())
        if self.introspection_seconds > 0:
            self._introspected[key] = (claims, until)
            self._introspected.move_to_end(key)
            while len(self._introspected) > INTROSPECTION_CACHE_SIZE:
                self._introspected.popitem(last=False)
        return claims

    # ---------------------------------------------------------- provider calls
    async def _fetch_json(self, url, **kwargs):
        if not self.provider_calls.take():
            raise ProviderUnavailable(f"{url}: more than AUTH_PROVIDER_CALLS_PER_SECOND calls")
        request = tornado.httpclient.HTTPRequest(url, connect_timeout=self.timeout, request_timeout=self.timeout,
                                                 **kwargs)
        try:
            response = await tornado.httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
        except Exception as exc:  # connection refused, DNS, TLS, timeout
            raise ProviderUnavailable(f"{url}: {exc}") from None
        if response.code == 599 or response.code >= 500 or response.code == 429:
            raise ProviderUnavailable(f"{url}: HTTP {response.code}")
        try:
            return response.code, orjson.loads(response.body or b"null")
        except orjson.JSONDecodeError:
            raise ProviderUnavailable(f"{url}: not JSON (HTTP {response.code})") from None

    async def _discovery_document(self):
        now = time.monotonic()
        if self._discovery is not None and now - self._discovery[1] < self.cache_seconds:
            return self._discovery[0]
        return await self._single_flight("discovery", self._fetch_discovery)

    async def _fetch_discovery(self):
        now = time.monotonic()
        code, document = await self._fetch_json(self.issuer + "/.well-known/openid-configuration")
        if code != 200 or not isinstance(document, dict):
            raise ProviderUnavailable(f"discovery document: HTTP {code}")
        self._discovery = (document, now)
        return document

    async def _signing_key(self, kid):
        now = time.monotonic()
        keys = self._keys
        stale = keys is None or now - keys[1] >= self.cache_seconds
        unknown = keys is not None and kid not in keys[0] and now - keys[1] >= _MIN_REFETCH_INTERVAL
        if stale or unknown:
            keys = await self._single_flight("jwks", self._fetch_keys)
        key = keys[0].get(kid)
        if key is None and kid is None and len(keys[0]) == 1:
            key = next(iter(keys[0].values()))
        return key

    async def _fetch_keys(self):
        import jwt
        now = time.monotonic()
        jwks_uri = self.web_settings.get("AUTH_OIDC_JWKS_URL") or (await self._discovery_document()).get("jwks_uri")
        if not jwks_uri:
            raise ProviderUnavailable("the discovery document names no jwks_uri")
        code, document = await self._fetch_json(jwks_uri)
        if code != 200 or not isinstance(document, dict):
            raise ProviderUnavailable(f"JWKS: HTTP {code}")
        found = {}
        for entry in document.get("keys") or []:
            if not isinstance(entry, dict):
                continue
            try:
                key = jwt.PyJWK(entry)
            except (jwt.PyJWKError, jwt.InvalidKeyError, KeyError, TypeError, ValueError):
                continue  # a key type we cannot use, or one missing a member (PyJWT: KeyError)
            found[entry.get("kid")] = key
        self._keys = (found, now)
        return self._keys

    async def _introspection_endpoint(self):
        configured = self.web_settings.get("AUTH_INTROSPECTION_URL")
        if configured:
            return configured
        if not self.issuer:
            return None
        return (await self._discovery_document()).get("introspection_endpoint")

    async def _introspect(self, endpoint, token):
        settings = self.web_settings
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        client_id = settings.get("AUTH_INTROSPECTION_CLIENT_ID")
        if client_id:
            secret = settings.get("AUTH_INTROSPECTION_CLIENT_SECRET") or ""
            pair = f"{urllib.parse.quote(client_id)}:{urllib.parse.quote(secret)}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        body = urllib.parse.urlencode({"token": token, "token_type_hint": "access_token"})
        code, answer = await self._fetch_json(endpoint, method="POST", headers=headers, body=body)
        if code != 200 or not isinstance(answer, dict):
            raise ProviderUnavailable(f"introspection: HTTP {code}")
        if answer.get("active") is not True:
            raise _unauthorized(settings, "Invalid or inactive token.")
        exp = answer.get("exp")
        if isinstance(exp, (int, float)) and exp + self.leeway < time.time():
            raise _unauthorized(settings, "Token expired.")
        if self.audience is not None and "aud" in answer:
            audiences = answer["aud"] if isinstance(answer["aud"], list) else [answer["aud"]]
            if self.audience not in audiences:
                raise _unauthorized(settings, "Token not meant for this API (audience).")
        return answer


def requires_auth(web_settings, handler_class):
    required = web_settings.get("AUTH_REQUIRED_ROUTES") or []
    if isinstance(required, str):
        required = [name.strip() for name in required.split(",") if name.strip()]
    name = getattr(handler_class, "name", None)
    return bool(required) and ("*" in required or name in required)


class AuthRequiredMixin:
    """Put before a handler class: its requests need a valid bearer token."""

    async def prepare(self):
        result = super().prepare()
        if result is not None:
            await result
        if self.request.method == "OPTIONS":  # CORS preflights carry no credentials
            return
        self.current_user = await self.web_settings.authenticator.authenticate(
            self.request.headers.get("Authorization"))

    def cache_max_age(self):
        return 0  # answers for one client: never public in shared caches


def protect(web_settings, handler_class):
    """``handler_class``, or a subclass needing a token when the settings say so
    (settings that would accept foreign tokens stop the start here)."""
    if not requires_auth(web_settings, handler_class):
        return handler_class
    web_settings.authenticator  # noqa: B018 - made now: a settings mistake stops the start
    return type(handler_class.__name__, (AuthRequiredMixin, handler_class), {"__module__": handler_class.__module__})
