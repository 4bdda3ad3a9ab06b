"""Elasticsearch 7 and OpenSearch: engines on the client API ``elasticsearch7`` and
``opensearch-py`` share (opensearch-py began as a fork of the 7.10 client).

Both send plain ``application/json`` (Elasticsearch 7 and OpenSearch know no
compatibility media types; OpenSearch answers 406 to the 8.x client's), retry and
pool connections in their own transport (aiohttp), and raise their own
``TransportError`` family carrying the cluster's status and error body. Their
answers have the shapes the pipeline reads (``hits.total`` an object since 7.0,
typeless mappings, terms aggregations), so nothing is rewritten per request.
"""

import importlib
import logging

import orjson

from biothings.web.engines.base import Engine, IndexPaths, translated
from biothings.web.engines.clusters import classic_client_args, client_errors
from biothings.web.engines.errors import EngineUnavailable, error_from_answer
from biothings.web.engines.paging import (ELASTICSEARCH_7_10_PIT, ELASTICSEARCH_PIT, OPENSEARCH_PIT, PointInTimePaging,
                                          version_at_least)

_JSON_HEADERS = {"accept": "application/json", "content-type": "application/json"}
_NDJSON_HEADERS = {"accept": "application/json", "content-type": "application/x-ndjson"}


def orjson_serializer(module):
    """The client module's JSON serializer, on orjson (its default is ``json``);
    bytes made by the engine (msearch NDJSON) pass through."""
    class OrjsonSerializer(module.serializer.JSONSerializer):
        def dumps(self, data):
            if isinstance(data, (str, bytes)):
                return data
            return orjson.dumps(data, default=self.default)

        def loads(self, s):
            return orjson.loads(s)

    return OrjsonSerializer()


def quiet_client_logging(module):
    """These clients log every request at INFO and every 4xx answer (a client's bad
    query) at WARNING: keep them to errors unless configured (the API logs its answers)."""
    logger = logging.getLogger(module.logger.name)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.ERROR)


class ClassicClientEngine(PointInTimePaging, Engine):
    """A cluster over HTTP through a 7.x-style client (``client_module``)."""

    client_module = None  # import name of the client package
    client_class = None   # its asyncio client class
    cluster = None  # the Cluster it serves (engines.clusters sets it): which point in time it has

    def __init__(self, hosts, connections=64, timeout=10, **client_args):
        module = importlib.import_module(self.client_module)
        client_args = classic_client_args(client_args, self.client_module)
        client_args.setdefault("timeout", timeout)
        client_args.setdefault("maxsize", connections)  # connections per node
        client_args.setdefault("retry_on_timeout", False)
        client_args.setdefault("max_retries", 1)
        client_args.setdefault("serializer", orjson_serializer(module))
        quiet_client_logging(module)
        self.client = getattr(module, self.client_class)(hosts, **client_args)
        self._request = self.client.transport.perform_request
        self.client_errors = client_errors(module)
        self._connection_errors = (module.ConnectionError,)  # ConnectionTimeout and SSLError too
        self._index_path = IndexPaths().path

    def translate_error(self, exc, scrolling=False):
        """A client exception as one of ``engines.errors``."""
        if isinstance(exc, self._connection_errors):
            return EngineUnavailable("Search engine unreachable or timed out.")
        status = exc.status_code if isinstance(exc.status_code, int) else 500
        return error_from_answer(status, exc.info, exc.error, scrolling)

    @translated()
    async def search(self, index, body, scroll=None):
        return await self._request("POST", self._index_path(index, "_search"),
                                   params={"scroll": scroll} if scroll else None, body=body, headers=_JSON_HEADERS)

    @translated()
    async def msearch(self, index, bodies):
        dumps = orjson.dumps
        searches = b"".join([b"{}\n" + dumps(body) + b"\n" for body in bodies])
        response = await self._request("POST", self._index_path(index, "_msearch"), body=searches,
                                       headers=_NDJSON_HEADERS)
        return response["responses"]

    @translated(scrolling=True)
    async def scroll(self, scroll_id, scroll="1m"):
        return await self._request("POST", "/_search/scroll", body={"scroll_id": scroll_id, "scroll": scroll},
                                   headers=_JSON_HEADERS)

    @translated()
    async def _call(self, method, path, params=None, body=None):
        """Any request of the REST API (the paged reads' point in time calls)."""
        return await self._request(method, path, params=params, body=body, headers=_JSON_HEADERS)

    @translated()
    async def get_mapping(self, index):
        return await self._request("GET", self._index_path(index, "_mapping"), headers=_JSON_HEADERS)

    @translated()
    async def count(self, index):
        return (await self._request("GET", self._index_path(index, "_count"), headers=_JSON_HEADERS))["count"]

    @translated()
    async def health(self):
        return await self._request("GET", "/_cluster/health", headers=_JSON_HEADERS)

    @translated()
    async def info(self):
        return await self._request("GET", "/", headers=_JSON_HEADERS)

    async def close(self):
        await self.client.close()


class Elasticsearch7Engine(ClassicClientEngine):
    """Elasticsearch 7.x with ``elasticsearch7`` (``pip install "biothings[es7]"``)."""

    name = "elasticsearch"
    client_module = "elasticsearch7"
    client_class = "AsyncElasticsearch"

    def point_in_time(self):
        version = self.cluster.version if self.cluster is not None else "7.17"
        if not version_at_least(version, (7, 10)):
            return None
        return ELASTICSEARCH_PIT if version_at_least(version, (7, 12)) else ELASTICSEARCH_7_10_PIT


class OpenSearchEngine(ClassicClientEngine):
    """OpenSearch 1.x-3.x with ``opensearch-py`` (``pip install "biothings[opensearch]"``)."""

    name = "opensearch"
    client_module = "opensearchpy"
    client_class = "AsyncOpenSearch"

    def point_in_time(self):
        version = self.cluster.version if self.cluster is not None else "2.4"
        return OPENSEARCH_PIT if version_at_least(version, (2, 4)) else None
