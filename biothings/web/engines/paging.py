"""Paged reads on a cluster: a point in time and ``search_after`` (``Engine.search_page``).

Elasticsearch's reference recommends a point in time (PIT) with ``search_after`` to
read past ``index.max_result_window`` (``from`` is capped there; scroll contexts are
costlier and bound to one query). A PIT pins the index as it was when it was opened:
documents written later, an alias moved to a new build, are not seen by the pages.
``search_after`` carries the sort values of the last hit of a page to the next; a
tiebreak unique per document, last in the sort, makes sure hits with equal sort
values are neither repeated nor skipped across pages.

Per cluster family (``PointInTime``):

- Elasticsearch 7.10+: ``POST /<index>/_pit``, ``pit`` in the search body (the
  search names no index), ``DELETE /_pit``; the tiebreak is ``_shard_doc`` (7.12+,
  the shard and Lucene document of the hit, stable within a PIT), ``_id`` before
  7.12.
- OpenSearch 2.4+: ``POST /<index>/_search/point_in_time``, ``pit`` in the body,
  ``DELETE /_search/point_in_time``; the tiebreak is ``_id`` (``_shard_doc`` came
  to OpenSearch only in its 3.x line).
- Older clusters (Elasticsearch 7.0-7.9, OpenSearch 1.x-2.3) and a cluster that
  refuses to open a PIT: no point in time. The pages search the concrete indices
  the index name resolved to at the first page (an alias moved to a new build
  later is not followed; the old build deleted ends the read with
  ``ResultSetGone``), sorted with an ``_id`` tiebreak. What is then not stable:
  documents written to those indices between two pages are seen if they sort
  after the current position, a document deleted before its page is missing, a
  document updated with new sort values can be seen twice or not at all.

A PIT that expired, was closed, or whose index was deleted (the loader deletes the
previous build once the alias moved to the new one) ends the read: ``ResultSetGone``.
"""

import asyncio

from biothings.web.engines.errors import EngineError, IndexNotFound, QueryError, ResultSetGone


class PointInTime:
    """How one cluster family opens, uses and closes a point in time."""

    def __init__(self, open_path, id_key, close_path, close_body, tiebreak):
        self.open_path = open_path    # endpoint under the index that opens one
        self.id_key = id_key          # its id in the answer
        self.close_path = close_path  # the path that closes one
        self.close_body = close_body  # id -> the body of that request
        self.tiebreak = tiebreak      # the sort key unique per document within a PIT


ELASTICSEARCH_PIT = PointInTime("_pit", "id", "/_pit", lambda pit: {"id": pit}, "_shard_doc")
ELASTICSEARCH_7_10_PIT = PointInTime("_pit", "id", "/_pit", lambda pit: {"id": pit}, "_id")
OPENSEARCH_PIT = PointInTime("_search/point_in_time", "pit_id", "/_search/point_in_time",
                             lambda pit: {"pit_id": [pit]}, "_id")
# the tiebreak of a read without a point in time
NO_PIT_TIEBREAK = "_id"


def version_at_least(version, wanted):
    """Whether the version text ``version`` ("7.10.2") is at least ``wanted`` ((7, 10))."""
    numbers = []
    for part in str(version).split(".")[:len(wanted)]:
        digits = "".join(ch for ch in part if ch.isdigit())
        numbers.append(int(digits) if digits else 0)
    return tuple(numbers) >= tuple(wanted)


class PointInTimePaging:
    """``search_page`` and ``close_pages`` of a cluster engine.

    The engine provides ``_call(method, path, params=None, body=None)`` (its client's
    request, errors translated) and ``point_in_time()``: its family's
    ``PointInTime``, or ``None`` when its clusters have none.
    """

    pit_refused = False  # the cluster refused to open a point in time: none is tried again

    def point_in_time(self):
        raise NotImplementedError

    async def search_page(self, index, body, state=None, keep_alive="1m"):
        if state is None:
            state = await self._open_pages(index, keep_alive)
            first = True
        else:
            first = False
        body = dict(body)
        asked_sort = body.get("sort")
        sort = list(asked_sort) if isinstance(asked_sort, list) else [asked_sort] if asked_sort else ["_score"]
        sort.append({state["tb"]: "asc"})
        body["sort"] = sort
        if not first:
            body.pop("from", None)  # search_after goes on from the last hit
            body["search_after"] = state["after"]
        pit = state.get("pit")
        try:
            if pit is not None:
                body["pit"] = {"id": pit, "keep_alive": keep_alive}
                response = await self._call("POST", "/_search", body=body)
            else:
                response = await self._call("POST", self._index_path(state["idx"], "_search"), body=body)
        except (QueryError, IndexNotFound) as exc:
            if first:
                await self.close_pages(state)
                raise
            raise ResultSetGone("The result set is gone: it expired (the cursor outlived its keep-alive) or its "
                                "index was deleted (a reload) since its first page.") from exc
        except BaseException:  # cancelled, unavailable: the point in time is released in the background
            if first:
                asyncio.ensure_future(self.close_pages(state))
            raise
        hits = response["hits"]["hits"]
        # the values of our sort (a cluster may add a tiebreak of its own after them)
        after = hits[-1].get("sort", [])[:len(sort)] if hits else None
        kept = len(sort) - 1
        for hit in hits:  # the tiebreak is ours: the hits look as the same search without it
            if asked_sort:
                hit["sort"] = hit.get("sort", [])[:kept]
            else:
                hit.pop("sort", None)
        size = body.get("size", 10)
        if not size or len(hits) < size or not after:
            await self.close_pages(state)
            return response, None
        following = dict(state, after=after)
        if pit is not None:
            following["pit"] = response.get("pit_id", pit)  # Elasticsearch may hand a new id on
        return response, following

    async def _open_pages(self, index, keep_alive):
        """The state of a new read: a point in time, or the concrete indices behind ``index``."""
        flavour = None if self.pit_refused else self.point_in_time()
        if flavour is not None:
            try:
                answer = await self._call("POST", self._index_path(index, flavour.open_path),
                                          params={"keep_alive": keep_alive})
                return {"pit": answer[flavour.id_key], "tb": flavour.tiebreak}
            except IndexNotFound:
                raise
            except QueryError:  # no such API on this cluster: read without one from now on
                self.pit_refused = True
        mapping = await self.get_mapping(index)
        return {"idx": sorted(mapping), "tb": NO_PIT_TIEBREAK}

    async def close_pages(self, state):
        pit = (state or {}).get("pit")
        flavour = self.point_in_time()
        if pit is None or flavour is None:
            return
        try:
            await self._call("DELETE", flavour.close_path, body=flavour.close_body(pit))
        except EngineError:
            pass  # gone already, or it expires by itself
