"""The Elasticsearch engine: ``AsyncElasticsearch`` with errors mapped to ours."""

import functools
import logging
from urllib.parse import quote

import elasticsearch
import orjson
from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, TransportError

from biothings.web.engines.base import Engine
from biothings.web.engines.errors import EngineUnavailable, IndexNotFound, QueryError, ScrollError

# Elasticsearch answers these when it is busy rather than when the query is wrong.
_OVERLOAD_TYPES = ("es_rejected_execution_exception", "circuit_breaking_exception")


def _root_reason(info):
    """The most useful human reason in an Elasticsearch error body."""
    if not isinstance(info, dict):
        return str(info) if info else None
    error = info.get("error", info)
    if isinstance(error, str):
        return error
    if not isinstance(error, dict):
        return None
    for cause in error.get("root_cause") or []:
        if isinstance(cause, dict) and cause.get("reason"):
            return cause["reason"]
    caused = error.get("caused_by")
    if isinstance(caused, dict) and caused.get("reason"):
        return caused["reason"]
    for failure in error.get("failed_shards") or []:
        reason = (failure.get("reason") or {}).get("reason") if isinstance(failure, dict) else None
        if reason:
            return reason
    return error.get("reason")


def _error_type(info):
    if isinstance(info, dict) and isinstance(info.get("error"), dict):
        return info["error"].get("type") or ""
    return ""


def translate_error(exc, scrolling=False):
    """An ``elasticsearch`` exception as one of ``engines.errors``."""
    if isinstance(exc, (TransportConnectionError, ConnectionTimeout)):
        return EngineUnavailable("Search engine unreachable or timed out.")
    if isinstance(exc, elasticsearch.ApiError):
        status = exc.meta.status if exc.meta is not None else 500
        info = exc.body if isinstance(exc.body, dict) else {}
        kind = _error_type(info)
        reason = _root_reason(info) or exc.message or "Search engine error."
        if status == 429 or kind in _OVERLOAD_TYPES or status in (502, 503, 504):
            return EngineUnavailable("Search engine overloaded, retry later.")
        if scrolling and status in (400, 404):
            return ScrollError("Invalid or expired scroll_id.")
        if status == 404 and "index_not_found" in kind:
            return IndexNotFound("Index not found.")
        if 400 <= status < 500:
            return QueryError(reason)
        return EngineUnavailable("Search engine failed.")
    if isinstance(exc, TransportError):
        return EngineUnavailable("Search engine unreachable.")
    return None


def _translated(scrolling=False):
    def decorate(method):
        @functools.wraps(method)
        async def wrapper(self, *args, **kwargs):
            try:
                return await method(self, *args, **kwargs)
            except (elasticsearch.ApiError, TransportError) as exc:
                mapped = translate_error(exc, scrolling)
                if mapped is None:
                    raise
                raise mapped from exc
        return wrapper
    return decorate


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


class ElasticsearchEngine(Engine):
    """Elasticsearch 8/9 (or a compatible server) over HTTP."""

    name = "elasticsearch"

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
        self._paths = {}

    # search and msearch are the request path: they go straight to the client's
    # perform_request (same transport, headers and errors as client.search and
    # client.msearch, without their per-call parameter rewriting)
    _JSON_HEADERS = {"accept": "application/json", "content-type": "application/json"}
    _NDJSON_HEADERS = {"accept": "application/json", "content-type": "application/x-ndjson"}

    def _index_path(self, index, endpoint):
        if isinstance(index, (list, tuple)):  # before the lookup: lists are not hashable
            index = ",".join(index)
        key = (index, endpoint)
        path = self._paths.get(key)
        if path is None:
            path = self._paths[key] = f"/{quote(str(index), ',*')}/{endpoint}"
        return path

    @_translated()
    async def search(self, index, body, scroll=None):
        response = await self.client.perform_request(
            "POST", self._index_path(index, "_search"), params={"scroll": scroll} if scroll else None,
            headers=self._JSON_HEADERS, body=body, endpoint_id="search", path_parts={"index": index})
        return response.body

    @_translated()
    async def msearch(self, index, bodies):
        # NDJSON made here in one pass (the client passes bytes through)
        dumps = orjson.dumps
        searches = b"".join([b"{}\n" + dumps(body) + b"\n" for body in bodies])
        response = await self.client.perform_request(
            "POST", self._index_path(index, "_msearch"), headers=self._NDJSON_HEADERS, body=searches,
            endpoint_id="msearch", path_parts={"index": index})
        return response.body["responses"]

    @_translated(scrolling=True)
    async def scroll(self, scroll_id, scroll="1m"):
        response = await self.client.scroll(scroll_id=scroll_id, scroll=scroll)
        return response.body

    @_translated()
    async def get_mapping(self, index):
        return (await self.client.indices.get_mapping(index=index)).body

    @_translated()
    async def count(self, index):
        return (await self.client.count(index=index)).body["count"]

    @_translated()
    async def health(self):
        return (await self.client.cluster.health()).body

    @_translated()
    async def info(self):
        return (await self.client.info()).body

    async def close(self):
        await self.client.close()
