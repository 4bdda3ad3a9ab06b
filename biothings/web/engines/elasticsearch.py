"""The Elasticsearch engine: ``AsyncElasticsearch`` with errors mapped to ours."""

import logging
import warnings

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


_MISSING = object()


class ClientShortcut:
    """POST requests sent to the client's transport with what the client would add, worked out once.

    ``client.perform_request`` copies and rewrites the headers (the compatible media
    types), opens an OpenTelemetry span and wraps the answer at every call: 7.5% of an
    annotation request's instructions. Its transport (nodes, retries, serializers,
    connections) does the rest. ``post`` sends the same request to the transport: the
    client's headers (credentials, ``headers`` and ``opaque_id`` of ``ES_ARGS``) with the
    compatible media types, and its per-request settings (timeout, retries), read from the
    client once (private attributes of the clients supported, 8.18 to 9.x: ``tests/server/
    test_clusters.py`` checks that both ways send the same request). The client is called
    as usual (``direct`` False) when it traces its requests (OpenTelemetry: its spans need
    its own layer), talks to a serverless project, or lacks one of the attributes read."""

    # what the client passes its transport at every request: these always, the back-off
    # settings when the client has them (9.x)
    SETTINGS = ("request_timeout", "max_retries", "retry_on_timeout", "retry_on_status", "client_meta")
    OPTIONAL_SETTINGS = ("retry_backoff_base", "retry_backoff_cap")

    def __init__(self, client, direct=None):
        self.client = client
        self.transport = client.transport
        self.settings = {name: getattr(client, f"_{name}", _MISSING) for name in self.SETTINGS}
        self.settings.update((name, getattr(client, f"_{name}")) for name in self.OPTIONAL_SETTINGS
                             if hasattr(client, f"_{name}"))
        client_headers = getattr(client, "_headers", None)
        if direct is None:
            otel = getattr(client, "_otel", None)  # None: a client from before its tracing support
            traced = otel is not None and getattr(otel, "enabled", True)
            # a serverless project (9.x clients) gets an API version header, not the media types
            serverless = getattr(client, "_is_serverless", False)
            direct = (not traced and not serverless and client_headers is not None
                      and _MISSING not in self.settings.values())
        self.direct = direct
        major = elasticsearch.__versionstr__.partition(".")[0]  # 8.x: Elasticsearch 8 and 9; 9.x: 9

        def headers(subtype):
            if not direct:  # what the client is given, and rewrites
                return {"accept": "application/json", "content-type": f"application/{subtype}"}
            return {**client_headers, "accept": f"application/vnd.elasticsearch+json; compatible-with={major}",
                    "content-type": f"application/vnd.elasticsearch+{subtype}; compatible-with={major}"}
        self.headers = {subtype: headers(subtype) for subtype in ("json", "x-ndjson")}

    async def post(self, path, body, subtype="json", endpoint_id=None, path_parts=None):
        """The answer of ``POST path`` (a JSON body, or NDJSON bytes); a non-2xx answer
        raises as the client's error would after translation (``engines.errors``)."""
        headers = self.headers[subtype]
        if not self.direct:
            response = await self.client.perform_request("POST", path, headers=headers, body=body,
                                                         endpoint_id=endpoint_id, path_parts=path_parts)
            return response.body
        meta, answer = await self.transport.perform_request("POST", path, headers=headers, body=body,
                                                            **self.settings)
        if "warning" in meta.headers:  # deprecations, as the client reports them
            warnings.warn(meta.headers["warning"], elasticsearch.ElasticsearchWarning, stacklevel=2)
        if not 200 <= meta.status < 300:
            raise error_from_answer(meta.status, answer, client_message(answer))
        return answer


def client_message(answer):
    """The message the client gives an error answer: the error's type, else the body."""
    message = str(answer)
    if isinstance(answer, dict):
        error = answer.get("error", message)
        message = error["type"] if isinstance(error, dict) and "type" in error else error
    return message


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
        self._shortcut = ClientShortcut(self.client)

    @staticmethod
    def translate_error(exc, scrolling=False):
        return translate_error(exc, scrolling)

    # search and msearch are the request path: straight to the client's transport
    # (``ClientShortcut``); scrolls and the rest through the client
    _JSON_HEADERS = {"accept": "application/json", "content-type": "application/json"}

    @translated()
    async def search(self, index, body, scroll=None):
        path = self._index_path(index, "_search")
        if scroll:
            response = await self.client.perform_request("POST", path, params={"scroll": scroll},
                                                         headers=self._JSON_HEADERS, body=body,
                                                         endpoint_id="search", path_parts={"index": index})
            return response.body
        return await self._shortcut.post(path, body, endpoint_id="search", path_parts={"index": index})

    @translated()
    async def msearch(self, index, bodies):
        # NDJSON made here in one pass (the transport passes bytes through)
        dumps = orjson.dumps
        searches = b"".join([b"{}\n" + dumps(body) + b"\n" for body in bodies])
        answer = await self._shortcut.post(self._index_path(index, "_msearch"), searches, "x-ndjson",
                                           endpoint_id="msearch", path_parts={"index": index})
        return answer["responses"]

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
