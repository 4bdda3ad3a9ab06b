"""A tiny OpenID Connect provider for tests: discovery, JWKS, introspection.

Signs RS256 tokens with a key generated here; ``provider.token(**claims)``.
``provider.down = True`` makes every endpoint answer 503; ``provider.delay``
seconds pass before introspection answers; ``provider.introspections`` counts them.
``provider.answers[path] = (status, body bytes)`` makes an endpoint answer that instead.
"""

import asyncio
import base64
import time

import jwt
import orjson
import tornado.web
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.servers import LoopbackServer

CLIENT_ID, CLIENT_SECRET = "biothings-api", "s3cret"


def new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class _Handler(tornado.web.RequestHandler):
    def initialize(self, provider):
        self.provider = provider

    def prepare(self):
        self.provider.calls += 1
        self.provider.paths.append(self.request.path)
        if self.provider.down:
            self.set_status(503)
            self.finish({"error": "down"})
        elif self.request.path in self.provider.answers:
            status, body = self.provider.answers[self.request.path]
            self.set_status(status)
            self.set_header("Content-Type", "application/json")
            self.finish(body)

    def answer(self, document):
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(document))


class _Discovery(_Handler):
    def get(self):
        url = self.provider.url
        self.answer({"issuer": url, "jwks_uri": url + "/jwks", "introspection_endpoint": url + "/introspect",
                     "token_endpoint": url + "/token"})


class _Keys(_Handler):
    def get(self):
        key = jwt.algorithms.RSAAlgorithm.to_jwk(self.provider.key.public_key(), as_dict=True)
        self.answer({"keys": [*self.provider.other_keys, {**key, "kid": self.provider.kid, "use": "sig",
                                                          "alg": "RS256"}]})


class _Introspect(_Handler):
    async def post(self):
        self.provider.introspections += 1
        self.provider.requests.append((dict(self.request.headers), self.request.body_arguments))
        await asyncio.sleep(self.provider.delay)
        if self.provider.fail_with:  # an error with a JSON body, as providers send them
            self.set_status(self.provider.fail_with)
            return self.answer({"error": "server_error"})
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if self.request.headers.get("Authorization") != expected:
            self.set_status(401)
            return self.answer({"error": "invalid_client"})
        token = self.get_body_argument("token", "")
        claims = self.provider.opaque.get(token)
        self.answer({"active": True, **claims} if claims else {"active": False})


class OIDCProvider(LoopbackServer):
    def __init__(self):
        super().__init__()
        self.key = new_key()
        self.kid = "key-1"
        self.down = False
        self.calls = 0
        self.introspections = 0
        self.delay = 0.0
        self.fail_with = None  # an HTTP status introspection answers with instead
        self.requests = []  # (headers, form fields) of each introspection call
        self.other_keys = []  # JWKS entries listed before the signing key
        self.paths = []  # the path of each request
        self.answers = {}  # path -> (status, body) answered instead of the endpoint's own
        self.opaque = {}  # opaque token -> introspection claims

    def token(self, key=None, kid=None, **claims):
        now = int(time.time())
        payload = {"iss": self.url, "sub": "alice", "aud": "biothings", "iat": now, "exp": now + 300, **claims}
        payload = {name: value for name, value in payload.items() if value is not None}
        return jwt.encode(payload, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid})

    def make_app(self):
        return tornado.web.Application([
            (r"/.well-known/openid-configuration", _Discovery, {"provider": self}),
            (r"/jwks", _Keys, {"provider": self}),
            (r"/introspect", _Introspect, {"provider": self}),
        ])
