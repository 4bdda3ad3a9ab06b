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
"""

import base64
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


class ProviderUnavailable(Exception):
    """The identity provider did not answer usably."""


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
        self._discovery = None  # (document, fetched at)
        self._keys = None  # ({kid: PyJWK}, fetched at)

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
            return await self._introspect(endpoint, token)
        raise _unauthorized(settings, "Invalid token.")

    # ---------------------------------------------------------- provider calls
    async def _fetch_json(self, url, **kwargs):
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
        code, document = await self._fetch_json(self.issuer + "/.well-known/openid-configuration")
        if code != 200 or not isinstance(document, dict):
            raise ProviderUnavailable(f"discovery document: HTTP {code}")
        self._discovery = (document, now)
        return document

    async def _signing_key(self, kid):
        import jwt
        now = time.monotonic()
        keys = self._keys
        stale = keys is None or now - keys[1] >= self.cache_seconds
        unknown = keys is not None and kid not in keys[0] and now - keys[1] >= _MIN_REFETCH_INTERVAL
        if stale or unknown:
            jwks_uri = self.web_settings.get("AUTH_OIDC_JWKS_URL") or (await self._discovery_document()).get("jwks_uri")
            if not jwks_uri:
                raise ProviderUnavailable("the discovery document names no jwks_uri")
            code, document = await self._fetch_json(jwks_uri)
            if code != 200 or not isinstance(document, dict):
                raise ProviderUnavailable(f"JWKS: HTTP {code}")
            found = {}
            for entry in document.get("keys") or []:
                try:
                    key = jwt.PyJWK(entry)
                except (jwt.PyJWKError, jwt.InvalidKeyError, TypeError, ValueError):
                    continue  # a key type we cannot use
                found[entry.get("kid")] = key
            keys = self._keys = (found, now)
        key = keys[0].get(kid)
        if key is None and kid is None and len(keys[0]) == 1:
            key = next(iter(keys[0].values()))
        return key

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


def authenticator(web_settings):
    """The ``Authenticator`` of an API, made once."""
    found = web_settings.__dict__.get("_authenticator")
    if found is None:
        found = web_settings.__dict__["_authenticator"] = Authenticator(web_settings)
    return found


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
        self.current_user = await authenticator(self.web_settings).authenticate(
            self.request.headers.get("Authorization"))

    def cache_max_age(self):
        return 0  # answers for one client: never public in shared caches


def protect(web_settings, handler_class):
    """``handler_class``, or a subclass needing a token when the settings say so."""
    if not requires_auth(web_settings, handler_class):
        return handler_class
    return type(handler_class.__name__, (AuthRequiredMixin, handler_class), {"__module__": handler_class.__module__})
