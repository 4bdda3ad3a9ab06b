"""The interface between the query pipeline and a search engine.

The builder emits Elasticsearch query DSL as plain dicts; an engine executes it
and answers Elasticsearch-shaped dicts. Implementations: a cluster over HTTP,
Elasticsearch 8/9 (``engines.elasticsearch``) or Elasticsearch 7/OpenSearch
(``engines.classic``), chosen from the cluster's ``GET /`` (``engines.clusters``),
and the embedded tantivy engine (``engines.embedded``). Everything above this
layer is engine-blind.
"""

import functools
from urllib.parse import quote


class Engine:
    """Asynchronous search engine. All methods raise ``engines.errors`` types."""

    name = "engine"

    async def search(self, index, body, scroll=None):
        """Run one search body on ``index``; ``scroll`` (e.g. "1m") opens a scroll.

        Returns ``{"took", "timed_out", "hits": {"total": {"value", "relation"},
        "max_score", "hits": [{"_index", "_id", "_score", "_source", ...}]},
        "aggregations"?, "_scroll_id"?}``.
        """
        raise NotImplementedError

    async def msearch(self, index, bodies):
        """Run several bodies at once. Returns one entry per body, in order:
        a search response, or ``{"error": {"type", "reason"}, "status": int}``
        for a body that failed (the others still answer)."""
        raise NotImplementedError

    async def scroll(self, scroll_id, scroll="1m"):
        """Next page of a scroll. Raises ``ScrollError`` for a bad/expired id."""
        raise NotImplementedError

    async def search_page(self, index, body, state=None, keep_alive="1m"):
        """One page (``body["size"]`` hits) of a result set read in order, page after page.

        Every page sees the index as the first one did (a point in time: later writes
        and reloads are not seen), and the pages follow each other in an order stable
        across them, so together they hold every hit once. ``state`` is ``None`` for
        the first page, then the state the previous page returned; ``keep_alive`` is
        how long the engine keeps the result set between two pages.

        Returns ``(response, state)``: a search response (``hits`` as ``search``
        gives them, ``sort`` values included when ``body`` sorts) and the JSON-able
        state of the next page, ``None`` after the last one. Raises ``ResultSetGone``
        when the pinned result set no longer exists (expired, or its index deleted).
        """
        raise NotImplementedError

    async def close_pages(self, state):
        """Release what a paged read holds (a point in time) before it expires; never raises."""

    async def get_mapping(self, index):
        """``{concrete_index_name: {"mappings": {"properties": ..., "_meta": ...}}}``."""
        raise NotImplementedError

    async def index_version(self, index):
        """What identifies the build ``index`` (an index or alias) serves now: it changes
        when the index is reloaded. Default: the concrete index names behind it and their
        ``_meta``, from ``get_mapping``; engines override it with something cheaper."""
        import hashlib

        import orjson
        answer = await self.get_mapping(index)
        identity = [(name, (value.get("mappings") or {}).get("_meta")) for name, value in sorted(answer.items())]
        return hashlib.blake2b(orjson.dumps(identity, default=str), digest_size=8).hexdigest()

    async def count(self, index):
        """Number of documents in ``index``."""
        response = await self.search(index, {"size": 0, "track_total_hits": True})
        return response["hits"]["total"]["value"]

    async def health(self):
        """Cluster health, at least ``{"status": "green"|"yellow"|"red"}``."""
        raise NotImplementedError

    async def info(self):
        """Engine identity, e.g. ``{"name", "version": {"number"}}``."""
        raise NotImplementedError

    async def close(self):
        """Release connections, threads and file handles."""


def translated(scrolling=False):
    """Decorate an engine method: the client's exceptions (``self.client_errors``) become
    ``engines.errors`` (``self.translate_error``; ``None`` from it re-raises the original)."""
    def decorate(method):
        @functools.wraps(method)
        async def wrapper(self, *args, **kwargs):
            try:
                return await method(self, *args, **kwargs)
            except self.client_errors as exc:
                mapped = self.translate_error(exc, scrolling)
                if mapped is None:
                    raise
                raise mapped from exc
        return wrapper
    return decorate


class IndexPaths:
    """Request paths ``/{index}/{endpoint}`` of an engine over HTTP, quoted once each
    (a request then costs one dictionary look-up)."""

    def __init__(self):
        self._paths = {}

    def path(self, index, endpoint):
        if isinstance(index, (list, tuple)):  # before the look-up: lists are not hashable
            index = ",".join(index)
        key = (index, endpoint)
        path = self._paths.get(key)
        if path is None:
            path = self._paths[key] = f"/{quote(str(index), ',*')}/{endpoint}"
        return path
