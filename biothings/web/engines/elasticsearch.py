"""The Elasticsearch engine: ``AsyncElasticsearch`` with errors mapped to ours."""

import logging

import elasticsearch
import orjson
from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, TransportError

from biothings.web.engines.base import Engine, IndexPaths, translated
from biothings.web.engines.errors import EngineUnavailable, error_from_answer
from biothings.web.engines.paging import ELASTICSEARCH_PIT, PointInTimePaging


def translate_error(exc, scrolling=False):
    """An ``elasticsearch`` exception as one of ``engines.errors``."""
    if isinstance(exc, (TransportConnectionError, ConnectionTimeout)):
        return EngineUnavailable("Search engine unreachable or timed out.")
    if isinstance(exc, elasticsearch.ApiError):
        status = exc.meta.status if exc.meta is not None else 500
        return error_from_answer(status, exc.body, exc.message, scrolling)
    if isinstance(exc, TransportError):
        return EngineUnavailable("Search engine unreachable.")
    return None


class _OrjsonNdjson(elasticsearch.serializer.NdjsonSerializer):
    def json_dumps(self, data):
        return orjson.dumps(data, default=self.default)

    def json_loads(self, data):
        return orjson.loads(data)


class _OrjsonCompatNdjson(_OrjsonNdjson):
    mimetype = "application/vnd.elasticsearch+x-ndjson"


class _OrjsonCompatJson(elasticsearch.serializer.OrjsonSerializer):
    mimetype = "application/vnd.elasticsearch+json"


def orjson_serializers():
    """orjson for every JSON flavour the client sends and receives (the default is ``json``)."""
    return {serializer.mimetype: serializer for serializer in (
        elasticsearch.serializer.OrjsonSerializer(), _OrjsonCompatJson(), _OrjsonNdjson(), _OrjsonCompatNdjson())}


def quiet_transport_logging():
    """The client logs every request at INFO: keep that to warnings unless configured."""
    for name in ("elastic_transport.transport", "elastic_transport.node_pool", "elasticsearch"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


def _plain_http(host):
    if isinstance(host, dict):
        return host.get("scheme") == "http"
    return isinstance(host, str) and host.startswith("http://")


class ElasticsearchEngine(PointInTimePaging, Engine):
    """Elasticsearch 8 and 9 over HTTP, with the ``elasticsearch`` client: 9.x sends
    ``compatible-with=9`` (Elasticsearch 9 only), 8.x ``compatible-with=8`` (8 and 9)."""

    name = "elasticsearch"
    client_errors = (elasticsearch.ApiError, TransportError)

    def __init__(self, hosts, connections=64, timeout=10, **es_args):
        es_args.setdefault("request_timeout", timeout)
        es_args.setdefault("connections_per_node", connections)
        es_args.setdefault("retry_on_timeout", False)
        es_args.setdefault("max_retries", 1)
        host_list = [hosts] if isinstance(hosts, (str, dict)) else list(hosts)
        if "node_class" not in es_args and host_list and all(_plain_http(host) for host in host_list):
            from biothings.web.engines.http_node import LeanHttpNode
            es_args["node_class"] = LeanHttpNode
        if "serializer" not in es_args:
            es_args.setdefault("serializers", orjson_serializers())
        quiet_transport_logging()
        self.client = elasticsearch.AsyncElasticsearch(hosts, **es_args)
        self._index_path = IndexPaths().path

    @staticmethod
    def translate_error(exc, scrolling=False):
        return translate_error(exc, scrolling)

    # search and msearch are the request path: they go straight to the client's
    # perform_request (same transport, headers and errors as client.search and
    # client.msearch, without their per-call parameter rewriting)
    _JSON_HEADERS = {"accept": "application/json", "content-type": "application/json"}
    _NDJSON_HEADERS = {"accept": "application/json", "content-type": "application/x-ndjson"}

    @translated()
    async def search(self, index, body, scroll=None):
        response = await self.client.perform_request(
            "POST", self._index_path(index, "_search"), params={"scroll": scroll} if scroll else None,
            headers=self._JSON_HEADERS, body=body, endpoint_id="search", path_parts={"index": index})
        return response.body

    @translated()
    async def msearch(self, index, bodies):
        # NDJSON made here in one pass (the client passes bytes through)
        dumps = orjson.dumps
        searches = b"".join([b"{}\n" + dumps(body) + b"\n" for body in bodies])
        response = await self.client.perform_request(
            "POST", self._index_path(index, "_msearch"), headers=self._NDJSON_HEADERS, body=searches,
            endpoint_id="msearch", path_parts={"index": index})
        return response.body["responses"]

    @translated(scrolling=True)
    async def scroll(self, scroll_id, scroll="1m"):
        response = await self.client.scroll(scroll_id=scroll_id, scroll=scroll)
        return response.body

    @translated()
    async def _call(self, method, path, params=None, body=None):
        """Any request of the REST API (the paged reads' point in time calls)."""
        response = await self.client.perform_request(method, path, params=params, body=body,
                                                     headers=self._JSON_HEADERS if body is not None else self._ACCEPT)
        return response.body

    _ACCEPT = {"accept": "application/json"}

    def point_in_time(self):
        return ELASTICSEARCH_PIT  # Elasticsearch 8 and 9

    @translated()
    async def get_mapping(self, index):
        return (await self.client.indices.get_mapping(index=index)).body

    @translated()
    async def count(self, index):
        return (await self.client.count(index=index)).body["count"]

    @translated()
    async def health(self):
        return (await self.client.cluster.health()).body

    @translated()
    async def info(self):
        return (await self.client.info()).body

    async def close(self):
        await self.client.close()
