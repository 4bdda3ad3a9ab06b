"""Which cluster ``ES_HOST`` names, and which client talks to it.

Read once per process at start-up: the cluster's ``GET /`` answers
``version.number`` and, on OpenSearch, ``version.distribution``. ``SUPPORT`` maps
that to the client package that speaks the cluster's protocol and the engine built
on it, so no request pays for the choice:

- Elasticsearch 9: ``elasticsearch`` (9.x sends ``compatible-with=9``; 8.x sends
  ``compatible-with=8``, which Elasticsearch 9 accepts too).
- Elasticsearch 8: ``elasticsearch`` 8.x (Elasticsearch 8 refuses
  ``compatible-with=9``), the ``es8`` extra.
- Elasticsearch 7: ``elasticsearch7``, the ``es7`` extra.
- OpenSearch 1-3: ``opensearch-py``, the ``opensearch`` extra.

Anything else, or a client that is not installed, is a ``ClusterError``: one line
naming the version found and what to install.
"""

import asyncio
import base64
import http.client
import importlib
import logging
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import NamedTuple

import certifi
import orjson

from biothings.web.engines.base import Engine
from biothings.web.engines.errors import EngineUnavailable

logger = logging.getLogger("biothings.web")


class ClusterError(Exception):
    """A cluster this installation cannot serve; the message is one line for the operator."""


class Cluster(NamedTuple):
    """A cluster as its ``GET /`` describes it."""

    distribution: str  # "elasticsearch" or "opensearch"
    version: str       # version.number, e.g. "8.15.3"
    url: str           # the host that answered

    @classmethod
    def from_root(cls, answer, url):
        """From the JSON of ``GET /``; ``ClusterError`` when it is not an Elasticsearch or OpenSearch answer."""
        version = answer.get("version") if isinstance(answer, dict) else None
        number = version.get("number") if isinstance(version, dict) else None
        if not isinstance(number, str) or not number.split(".")[0].isdigit():
            raise ClusterError(f"{url}: GET / answered no version.number: not Elasticsearch or OpenSearch")
        distribution = version.get("distribution") or "elasticsearch"
        return cls(str(distribution).lower(), number, url)

    @property
    def major(self):
        return int(self.version.split(".")[0])

    def __str__(self):
        name = "OpenSearch" if self.distribution == "opensearch" else "Elasticsearch"
        return f"{name} {self.version} at {self.url}"


class Client(NamedTuple):
    """A client package from PyPI, and the engine built on it."""

    module: str              # import name
    package: str             # pip name
    extra: str               # the biothings extra that installs it ("" for the core install)
    engine: str              # engine class on this client
    majors: tuple = ()       # client major versions that can talk to the cluster (() for any)
    sync_class: str = "Elasticsearch"  # the blocking client (the loader's)


_ES = "biothings.web.engines.elasticsearch.ElasticsearchEngine"
_ES7 = "biothings.web.engines.classic.Elasticsearch7Engine"
_OPENSEARCH = "biothings.web.engines.classic.OpenSearchEngine"

# (distribution, major version) -> the client that serves it
SUPPORT = {
    ("elasticsearch", 7): Client("elasticsearch7", "elasticsearch7", "es7", _ES7),
    ("elasticsearch", 8): Client("elasticsearch", "elasticsearch", "es8", _ES, majors=(8,)),
    ("elasticsearch", 9): Client("elasticsearch", "elasticsearch", "", _ES, majors=(8, 9)),
    **{("opensearch", major): Client("opensearchpy", "opensearch-py", "opensearch", _OPENSEARCH,
                                     sync_class="OpenSearch") for major in (1, 2, 3)},
}


def client_for(cluster):
    """The installed client module that serves ``cluster``, and its ``Client`` entry.

    Raises ``ClusterError`` for an unsupported version, or when the client it needs
    is not installed (the message names the extra to install).
    """
    client = SUPPORT.get((cluster.distribution, cluster.major))
    if client is None:
        raise ClusterError(f"{cluster}: not supported (Elasticsearch 7, 8 and 9 and OpenSearch 1, 2 and 3 are)")
    install = f'pip install "biothings[{client.extra}]"' if client.extra else "pip install biothings"
    try:
        module = importlib.import_module(client.module)
    except ImportError:
        raise ClusterError(f"{cluster}: needs the {client.package} client: {install}") from None
    installed = module.__versionstr__
    if client.majors and int(installed.split(".")[0]) not in client.majors:
        raise ClusterError(f"{cluster}: needs the {client.package} client {' or '.join(map(str, client.majors))}.x "
                           f"({installed} is installed): {install}")
    return module, client


# ---------------------------------------------------------------- GET /

def host_urls(hosts):
    """``ES_HOST`` entries as base URLs (``host:9200`` -> ``http://host:9200``)."""
    return [host if "://" in host else f"http://{host}" for host in hosts]


def _credentials(value):
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return f"{value[0]}:{value[1]}"
    return str(value)


def _request_headers(url, client_args):
    """The headers of ``GET /``: the credentials the client would send."""
    headers = {"accept": "application/json"}
    headers.update({str(k).lower(): str(v) for k, v in (client_args.get("headers") or {}).items()})
    parts = urllib.parse.urlsplit(url)
    basic = client_args.get("basic_auth") or client_args.get("http_auth")
    if parts.username is not None:
        basic = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
    if basic is not None and not callable(basic):
        headers["authorization"] = "Basic " + base64.b64encode(_credentials(basic).encode()).decode()
    api_key = client_args.get("api_key")
    if api_key is not None:
        if isinstance(api_key, (list, tuple)):
            api_key = base64.b64encode(_credentials(api_key).encode()).decode()
        headers["authorization"] = f"ApiKey {api_key}"
    if client_args.get("bearer_auth") is not None:
        headers["authorization"] = f"Bearer {client_args['bearer_auth']}"
    return headers


def client_errors(module):
    """The exception classes of a client package (``elasticsearch``: ``ApiError`` for an
    answer with an error status, ``TransportError`` for no answer; the 7.x-style clients:
    ``TransportError`` for both)."""
    return tuple(getattr(module, name) for name in ("ApiError", "TransportError") if hasattr(module, name))


def classic_client_args(client_args, module):
    """``ES_ARGS`` for a 7.x-style client (``elasticsearch7``, ``opensearch-py``): these take
    credentials as ``http_auth`` (and ``api_key``: Elasticsearch 7 only) and drop any other
    keyword without a word, so the 8.x names ``basic_auth`` and ``bearer_auth`` (and
    ``api_key`` for OpenSearch) become the ``Authorization`` header ``GET /`` was sent with."""
    dropped = ("basic_auth", "bearer_auth") + (() if module == "elasticsearch7" else ("api_key",))
    if not any(client_args.get(key) is not None for key in dropped):
        return dict(client_args)
    args = {key: value for key, value in client_args.items() if key not in dropped}
    if not callable(args.get("http_auth")):  # a request signer stays the client's
        args.pop("http_auth", None)
    authorization = _request_headers("", client_args)["authorization"]
    args["headers"] = {**{str(k): v for k, v in (args.get("headers") or {}).items()
                          if str(k).lower() != "authorization"}, "authorization": authorization}
    return args


def _ssl_context(client_args):
    context = client_args.get("ssl_context")
    if context is not None:
        return context
    # the clients' default CA bundle is certifi's (a dependency of each of them)
    context = ssl.create_default_context(cafile=client_args.get("ca_certs") or certifi.where())
    if client_args.get("verify_certs") is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if client_args.get("client_cert"):
        context.load_cert_chain(client_args["client_cert"], client_args.get("client_key"))
    return context


def _plain_url(url):
    """``url`` without credentials (they go in a header, never in logs or messages)."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # not a number
        port = -1
    if not parts.hostname or parts.scheme not in ("http", "https") or port == -1:
        shown = url.partition("://")[2].rpartition("@")[2] or url  # no credentials in messages
        raise ClusterError(f"{shown}: not an http(s) URL with a host and a port number (ES_HOST)")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return urllib.parse.urlunsplit(parts._replace(netloc=host + (f":{port}" if port else "")))


def _get_root(url, client_args, timeout, failures=None):
    """The body of ``GET /`` at ``url``; None when the host does not answer (yet): logged,
    or added to ``failures`` when a list is given."""
    plain = _plain_url(url)
    request = urllib.request.Request(plain + "/", headers=_request_headers(url, client_args))
    context = _ssl_context(client_args) if plain.startswith("https://") else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.read(1 << 20)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:  # starting up, no master yet
            _failed(failures, f"{plain}: GET / answered {exc.code}")
            return None
        raise ClusterError(f"{plain}: GET / answered {exc.code} {exc.reason} (check ES_HOST and ES_ARGS)") from None
    except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out, TLS
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ssl.SSLError):  # answering, but not as the settings trust
            raise ClusterError(f"{plain}: TLS: {reason} (check ca_certs, verify_certs in ES_ARGS)") from None
        _failed(failures, f"{plain}: GET / failed: {reason}")
        return None


def _failed(failures, message):
    if failures is None:
        logger.warning("%s", message)
    else:
        failures.append(message)


def read_cluster(hosts, client_args=None, timeout=10, failures=None):
    """The ``Cluster`` the first answering host describes; None when no host answers.

    ``client_args`` are the client's keyword arguments (``ES_ARGS``): credentials
    (``basic_auth``/``http_auth``, ``api_key``, ``bearer_auth``, ``headers``) and TLS
    settings (``ca_certs``, ``verify_certs``, ``client_cert``, ``ssl_context``) apply
    to this request as well. Raises ``ClusterError`` when a host answers something
    else than a cluster's 200, or cannot be trusted. ``failures``: a list that collects
    why hosts did not answer, instead of the log.
    """
    client_args = client_args or {}
    for url in host_urls(hosts):
        url = url.rstrip("/")
        body = _get_root(url, client_args, timeout, failures)
        if body is None:
            continue
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict):
            raise ClusterError(f"{_plain_url(url)}: GET / did not answer JSON: not Elasticsearch or OpenSearch")
        return Cluster.from_root(answer, _plain_url(url))
    return None


# ---------------------------------------------------------------- engines

def open_engine(cluster, hosts, **engine_args):
    """The engine that serves ``cluster`` (``ClusterError`` when none can)."""
    module, client = client_for(cluster)
    module_name, _, class_name = client.engine.rpartition(".")
    engine = getattr(importlib.import_module(module_name), class_name)(hosts, **engine_args)
    engine.cluster = cluster  # what it serves decides, e.g., which point in time API it has
    logger.info("%s: %s client %s", cluster, client.package, module.__versionstr__)
    return engine


def connect(hosts, connections=64, timeout=10, **client_args):
    """The engine for the cluster ``hosts`` name, chosen from its ``GET /``.

    A cluster that does not answer yet gets a ``DeferredEngine``: the API starts,
    answers 503 and chooses once the cluster answers.
    """
    engine_args = dict(client_args, connections=connections, timeout=timeout)
    cluster = read_cluster(hosts, client_args, timeout)
    if cluster is None:
        logger.warning("%s: no answer to GET /; the client is chosen once the cluster answers", ", ".join(hosts))
        return DeferredEngine(hosts, **engine_args)
    return open_engine(cluster, hosts, **engine_args)


class DeferredEngine(Engine):
    """The engine of a cluster that did not answer at start-up.

    Each call first reads ``GET /`` again (one read in flight, shared by the calls
    waiting; off the event loop) and answers 503 while the cluster does not answer;
    once it does, the chosen engine serves this and every later call.
    """

    def __init__(self, hosts, **engine_args):
        self.hosts = hosts
        self.engine_args = engine_args
        self.engine = None
        self._opening = None

    @property
    def name(self):
        return self.engine.name if self.engine is not None else "elasticsearch"

    async def _engine(self):
        if self.engine is not None:
            return self.engine
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open())
            self._opening.add_done_callback(self._opened)
        return await asyncio.shield(self._opening)

    async def _open(self):
        args = self.engine_args
        loop = asyncio.get_running_loop()
        client_args = {key: value for key, value in args.items() if key not in ("connections", "timeout")}
        cluster = await loop.run_in_executor(None, read_cluster, self.hosts, client_args, args.get("timeout", 10))
        if cluster is None:
            raise EngineUnavailable("Search engine unreachable or timed out.")
        try:
            return open_engine(cluster, self.hosts, **args)
        except ClusterError as exc:
            logger.error("%s", exc)
            raise EngineUnavailable("Search engine version not supported by this installation.") from None

    def _opened(self, future):
        self._opening = None
        if not future.cancelled() and future.exception() is None:
            self.engine = future.result()

    async def search(self, index, body, scroll=None):
        return await (await self._engine()).search(index, body, scroll=scroll)

    async def msearch(self, index, bodies):
        return await (await self._engine()).msearch(index, bodies)

    async def scroll(self, scroll_id, scroll="1m"):
        return await (await self._engine()).scroll(scroll_id, scroll)

    async def search_page(self, index, body, state=None, keep_alive="1m"):
        return await (await self._engine()).search_page(index, body, state, keep_alive)

    async def close_pages(self, state):
        if self.engine is not None:
            await self.engine.close_pages(state)

    async def get_mapping(self, index):
        return await (await self._engine()).get_mapping(index)

    async def count(self, index):
        return await (await self._engine()).count(index)

    async def health(self):
        return await (await self._engine()).health()

    async def info(self):
        return await (await self._engine()).info()

    async def close(self):
        if self._opening is not None:
            self._opening.cancel()
        if self.engine is not None:
            await self.engine.close()
