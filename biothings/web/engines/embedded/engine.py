"""``EmbeddedEngine``: the Elasticsearch-shaped engine over local tantivy indexes."""

import base64
import hashlib
import hmac
import importlib.metadata
import os
import random
import threading
import time
import zlib

import orjson
import tantivy

from biothings.web.engines.base import Engine
from biothings.web.engines.errors import (EngineError, IndexNotFound, QueryError, ResultSetGone, ScrollError,
                                          SearchCancelled, SearchTimeout)
from biothings.web.engines.embedded import store
from biothings.web.engines.embedded.aggs import MAX_BUCKETS, AggPlan, BucketBudget
from biothings.web.engines.embedded.lanes import Lane, checkpoint
from biothings.web.engines.embedded.query import ID, ID_FIELD, MUST, Compiler, TEXT_FIELD_REASON
from biothings.web.engines.embedded.schema import Layout
from biothings.web.engines.embedded.source import SourceFilter

Q = tantivy.Query

MAX_RESULT_WINDOW = 10000
MAX_SCROLL_SIZE = 10000
RECHECK_SECONDS = 1.0
# documents read between two checks of the search's budget
CHECK_EVERY_HITS = 64
OPEN_VERSIONS_PER_INDEX = 3

try:
    TANTIVY_VERSION = importlib.metadata.version("tantivy")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover
    TANTIVY_VERSION = "unknown"


class OpenedIndex:
    """One version of one index, opened read-only."""

    def __init__(self, name, version, path):
        self.name = name
        self.version = version
        self.path = path
        mapping = store.read_json(os.path.join(path, store.MAPPING_FILE))
        self.mapping = {"properties": mapping.get("properties", {}), "_meta": mapping.get("_meta", {})}
        self.layout = Layout.from_json(store.read_json(os.path.join(path, store.SCHEMA_FILE)))
        self.index = tantivy.Index.open(path)
        self.layout.register(self.index)
        self.schema = self.index.schema
        self.searcher = self.index.searcher()
        self.num_docs = self.searcher.num_docs


class IndexHandle:
    """The current version of an index name, re-checked at most once a second."""

    def __init__(self, engine, name):
        self.engine = engine
        self.name = name
        self.opened = None
        self.checked = 0.0

    def current(self):
        """No lock: this runs inside searches under a deadline, where an interruption landing
        just after a lock is taken could leave it held (see ``biothings.web.watchdog``). Two
        threads checking at once both read the pointer; ``open_version`` opens a build once."""
        now = time.monotonic()
        opened = self.opened
        if opened is not None and now - self.checked < RECHECK_SECONDS:
            return opened
        version = store.current_version(self.engine.data_dir, self.name)
        if version is None:
            self.opened = None
            raise IndexNotFound(f"no such index [{self.name}]", index=self.name)
        if opened is None or opened.version != version:
            opened = self.opened = self.engine.open_version(self.name, version)
        self.checked = time.monotonic()
        return opened


def _duration_seconds(text, setting="scroll"):
    if text is None:
        return 60.0
    if isinstance(text, (int, float)):
        return float(text) / 1000.0
    units = {"nanos": 1e-9, "micros": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}
    text = str(text).strip()
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            number = text[: -len(unit)]
            try:
                return float(number) * units[unit]
            except ValueError:
                break
    raise QueryError(f"failed to parse setting [{setting}] with value [{text}] as a time value")


SCROLL_KEY_FILE = ".scroll-key"


def load_scroll_key(data_dir, name=SCROLL_KEY_FILE):
    """The secret that signs scroll ids, shared by every process serving ``data_dir``
    (``name``: the key file, one per purpose: API cursors have their own).

    Scroll ids carry their query; the signature makes sure a client cannot
    hand-craft one and so reach the engine without passing through the builder.
    """
    path = os.path.join(data_dir, name)
    try:
        with open(path, "rb") as handle:
            key = handle.read()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    key = os.urandom(32)
    try:
        os.makedirs(data_dir, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its key
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:  # read-only data dir: scrolls continue in this process only
        return key
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key)
    return key


def encode_scroll(state, key):
    payload = base64.urlsafe_b64encode(zlib.compress(orjson.dumps(state), 6)).decode().rstrip("=")
    signature = hmac.new(key, payload.encode(), hashlib.sha256).digest()[:16]
    return payload + "." + base64.urlsafe_b64encode(signature).decode().rstrip("=")


def decode_scroll(scroll_id, key):
    try:
        payload, _, signature = str(scroll_id).strip().rpartition(".")
        expected = hmac.new(key, payload.encode(), hashlib.sha256).digest()[:16]
        given = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        if not payload or not hmac.compare_digest(expected, given):
            raise ValueError("bad signature")
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        state = orjson.loads(zlib.decompress(raw))
        if not isinstance(state, dict) or not {"i", "b", "o", "v", "e"} <= set(state):
            raise ValueError("incomplete")
        return state
    except Exception:  # noqa: BLE001 - any failure means the id is not ours
        raise ScrollError("Invalid scroll_id: cannot parse scroll id", scroll_id=scroll_id)


class SortKey:
    __slots__ = ("kind", "field", "desc", "missing_first")

    def __init__(self, kind, field=None, desc=False, missing_first=False):
        self.kind = kind          # "score", "field", "doc"
        self.field = field
        self.desc = desc
        self.missing_first = missing_first


class EmbeddedEngine(Engine):
    """Elasticsearch-shaped search over tantivy indexes in ``data_dir/<index name>``.

    Searches run in threads (tantivy releases the GIL), in two lanes: id lookups
    apart from the other searches, so they never queue behind expensive ones
    (``lanes``). Each search stops at its body's ``timeout`` (Elasticsearch's
    per-search timeout: here a ``SearchTimeout``, 503) or when the coroutine
    awaiting it is cancelled. Indexes open lazily, read-only; a rebuilt index
    (``current`` symlink swapped by the loader) is noticed within a second.
    Several processes can serve one ``data_dir``.
    """

    name = "embedded"

    def __init__(self, data_dir, max_workers=None, lookup_workers=2, max_buckets=MAX_BUCKETS):
        self.data_dir = os.path.abspath(data_dir)
        self.max_buckets = max_buckets  # buckets one search may return (search.max_buckets)
        self.max_workers = max_workers or max(2, (os.cpu_count() or 1) * 2)
        self.searches = Lane("search", self.max_workers)
        self.lookups = Lane("lookup", lookup_workers)
        self._handles = {}
        self._versions = {}  # (name, version) -> OpenedIndex, few per index
        self._scroll_key = None
        self._batch = threading.local()  # .builds: {index name: build} a running msearch pinned

    # ------------------------------------------------------------------ plumbing

    @property
    def scroll_key(self):
        if self._scroll_key is None:
            self._scroll_key = load_scroll_key(self.data_dir)
        return self._scroll_key

    def _check_name(self, name):
        if not name or "/" in name or name.startswith(".") or name in ("versions", "current"):
            raise IndexNotFound(f"no such index [{name}]", index=name)

    def handle(self, name):
        handle = self._handles.get(name)
        if handle is None:
            self._check_name(name)
            handle = self._handles.setdefault(name, IndexHandle(self, name))  # one wins, atomically
        return handle

    def opened(self, name):
        """The build of ``name`` a search reads: the current one, or the one its batch
        pinned (every body of an msearch reads one build, whatever the loader swaps meanwhile)."""
        pinned = getattr(self._batch, "builds", None)
        if pinned is None:
            return self.handle(name).current()
        if name not in pinned:
            pinned[name] = self.handle(name).current()
        return pinned[name]

    def open_version(self, name, version):
        key = (name, version)
        opened = self._versions.get(key)
        if opened is not None:
            return opened
        path = store.version_path(self.data_dir, name, version)
        if not os.path.exists(os.path.join(path, store.COMPLETE_FILE)):
            raise IndexNotFound(f"no such index [{name}] (version {version} is gone)", index=name)
        # no lock (searches call this under a deadline, see IndexHandle.current): two threads
        # opening one build at once keep the first one stored; older builds of the name beyond
        # OPEN_VERSIONS_PER_INDEX are forgotten (their readers keep what they hold)
        opened = self._versions.setdefault(key, OpenedIndex(name, version, path))
        same = [k for k in list(self._versions) if k[0] == name and k != key]
        for old in same[:-(OPEN_VERSIONS_PER_INDEX - 1) or None]:
            self._versions.pop(old, None)
        return opened

    def names(self, index):
        if isinstance(index, (list, tuple)):
            names = [str(n).strip() for n in index]
        else:
            names = [n.strip() for n in str(index or "").split(",")]
        names = list(dict.fromkeys(n for n in names if n))
        if not names:
            raise IndexNotFound("no index given")
        return names

    def indices(self):
        """Names of the indexes present in data_dir."""
        try:
            entries = sorted(os.listdir(self.data_dir))
        except OSError:
            return []
        return [e for e in entries if store.current_version(self.data_dir, e)]

    # ------------------------------------------------------------------ API

    async def search(self, index, body, scroll=None):
        if scroll is not None:
            self.scroll_key  # noqa: B018 - made before the job, which a cancellation may cut anywhere
        lane = self.lookups if scroll is None and _is_lookup(body) else self.searches
        return await lane.run(_timeout_of(body), self.search_sync, index, body, scroll)

    async def msearch(self, index, bodies):
        # one job: splitting a batch over threads is slower (GIL hand-offs)
        bodies = list(bodies)
        searches = [body[1] if isinstance(body, tuple) and len(body) == 2 else body for body in bodies]
        lookups = [_plain_id_lookup(search) for search in searches]  # read once, here and in the job
        cheap = all(lookup is not None or _is_lookup(search) for lookup, search in zip(lookups, searches))
        lane = self.lookups if cheap else self.searches
        return await lane.run(_batch_timeout(searches), self.msearch_sync, index, bodies, lookups)

    async def scroll(self, scroll_id, scroll="1m"):
        self.scroll_key  # noqa: B018
        return await self.searches.run(None, self.scroll_sync, scroll_id, scroll)

    async def search_page(self, index, body, state=None, keep_alive="1m"):
        """A page of a paged read, pinned to the index version of the first page.

        A version of an index never changes, and the same search on it gives its hits
        in the same order (ties broken by document address), so the next page is the
        next offset in that order: the state is ``{"v": version, "o": offset}``, no
        search_after values or tiebreak are needed, and no page costs more than the
        same offset of a scroll. The store keeps the previous version while a reload
        swaps in a new one, so a read continues on its version across one reload;
        a second reload removes it (``ResultSetGone``). ``keep_alive``: nothing is held
        (the cursor that carries the state expires on its own).
        """
        return await self.searches.run(_timeout_of(body), self.search_page_sync, index, body, state)

    def search_page_sync(self, index, body, state=None):
        started = time.perf_counter()
        names = self.names(index)
        if len(names) != 1:
            raise QueryError("the embedded engine pages through one index at a time")
        body = dict(body or {})
        size = min(_int(body.get("size", 10), "size"), MAX_SCROLL_SIZE)
        if state is None:
            opened = self.handle(names[0]).current()
            offset = _int(body.get("from", 0), "from")
        else:
            try:
                opened = self.open_version(names[0], str(state["v"]))
                offset = int(state["o"])
            except (IndexNotFound, OSError, ValueError, KeyError, TypeError):
                raise ResultSetGone("The result set is gone: the index was reloaded twice since its first page.")
        response = execute(opened, body, offset, size, window=False, max_buckets=self.max_buckets)
        served = offset + len(response["hits"]["hits"])
        more = size and len(response["hits"]["hits"]) == size and served < response["hits"]["total"]["value"]
        response["took"] = int((time.perf_counter() - started) * 1000)
        return response, ({"v": opened.version, "o": served} if more else None)

    async def get_mapping(self, index):
        return await self.lookups.run(None, self.get_mapping_sync, index)

    async def index_version(self, index):
        """The version directories ``current`` points at (one readlink per index, no thread hop)."""
        return ",".join(store.current_version(self.data_dir, name) or "" for name in self.names(index))

    async def count(self, index):
        response = await self.search(index, {"size": 0, "track_total_hits": True})
        return response["hits"]["total"]["value"]

    async def health(self):
        names = await self.lookups.run(None, self.indices)
        return {
            "cluster_name": "embedded", "status": "green", "timed_out": False,
            "number_of_nodes": 1, "number_of_data_nodes": 1,
            "active_primary_shards": len(names), "active_shards": len(names),
            "relocating_shards": 0, "initializing_shards": 0, "unassigned_shards": 0,
            "delayed_unassigned_shards": 0, "number_of_pending_tasks": 0,
            "number_of_in_flight_fetch": 0, "task_max_waiting_in_queue_millis": 0,
            "active_shards_percent_as_number": 100.0,
        }

    async def info(self):
        return {
            "name": "embedded", "cluster_name": "embedded",
            "version": {"number": TANTIVY_VERSION, "distribution": "embedded",
                        "build_flavor": "tantivy"},
            "tagline": "You Know, for Search (embedded tantivy)",
        }

    async def close(self):
        self.searches.close()
        self.lookups.close()
        self._handles.clear()
        self._versions.clear()

    # ------------------------------------------------------------------ sync implementations

    def get_mapping_sync(self, index):
        out = {}
        for name in self.names(index):
            opened = self.handle(name).current()
            out[name] = {"mappings": {"properties": opened.mapping["properties"],
                                      "_meta": opened.mapping["_meta"]}}
        return out

    def msearch_sync(self, index, bodies, plain=None):
        """The answers of ``bodies``, each from the build its index had when the batch began;
        ``plain``: ``_plain_id_lookup`` of each, if known."""
        self._batch.builds = {}
        try:
            return self._msearch_pinned(index, bodies, plain)
        finally:
            self._batch.builds = None

    def _msearch_pinned(self, index, bodies, plain):
        results = [None] * len(bodies)
        lookups = {}  # index name -> [(position, id, body)]: plain id lookups, run as one search
        for position, body in enumerate(bodies):
            if isinstance(body, tuple) and len(body) == 2:  # (header, body) pairs
                header, body = body
                target = (header or {}).get("index", index)
            else:
                target = index
            lookup = _plain_id_lookup(body) if plain is None else plain[position]
            if lookup is not None and isinstance(target, str) and "," not in target:
                lookups.setdefault(target, []).append((position, lookup, body))
                continue
            checkpoint()
            try:
                results[position] = self.search_sync(target, body)
            except (SearchTimeout, SearchCancelled):
                raise  # the whole request is over, not this body
            except EngineError as exc:
                results[position] = error_entry(exc)
        for target, items in lookups.items():
            checkpoint()
            try:
                answers = id_lookups(self.opened(target), items)
            except (SearchTimeout, SearchCancelled):
                raise
            except EngineError as exc:
                answers = [(position, error_entry(exc)) for position, _lookup, _body in items]
            for position, answer in answers:
                results[position] = answer
        return results

    def search_sync(self, index, body, scroll=None):
        started = time.perf_counter()
        body = dict(body or {})
        names = self.names(index)
        if scroll is not None:
            expiry = _duration_seconds(scroll)
            if len(names) != 1:
                raise QueryError("the embedded engine scrolls one index at a time")
            opened = self.opened(names[0])
            offset = _int(body.get("from", 0), "from")
            size = min(_int(body.get("size", 10), "size"), MAX_SCROLL_SIZE)
            response = execute(opened, body, offset, size, window=False)
            state = {"i": names[0], "b": {k: v for k, v in body.items()
                                          if k not in ("aggs", "aggregations", "from")},
                     "o": offset + size, "v": opened.version, "e": time.time() + expiry}
            response["_scroll_id"] = encode_scroll(state, self.scroll_key)
        elif len(names) == 1:
            opened = self.opened(names[0])
            lookup = _plain_id_lookup(body)
            if lookup is not None:
                (_position, response), = id_lookups(opened, [(0, lookup, body)])
            else:
                response = execute(opened, body, max_buckets=self.max_buckets)
        else:
            response = self._search_many(names, body)
        response["took"] = int((time.perf_counter() - started) * 1000)
        return response

    def scroll_sync(self, scroll_id, scroll="1m"):
        started = time.perf_counter()
        state = decode_scroll(scroll_id, self.scroll_key)
        if time.time() > float(state["e"]):
            raise ScrollError("No search context found for id: the scroll has expired",
                              scroll_id=scroll_id)
        expiry = _duration_seconds(scroll)
        try:
            opened = self.open_version(state["i"], state["v"])
        except (IndexNotFound, OSError, ValueError):
            raise ScrollError("No search context found for id: the index was replaced",
                              scroll_id=scroll_id)
        body = state["b"]
        size = min(_int(body.get("size", 10), "size"), MAX_SCROLL_SIZE)
        offset = int(state["o"])
        response = execute(opened, body, offset, size, window=False)
        state = dict(state, o=offset + size, e=time.time() + expiry)
        response["_scroll_id"] = encode_scroll(state, self.scroll_key)
        response["took"] = int((time.perf_counter() - started) * 1000)
        return response

    def _search_many(self, names, body):
        """Several indexes: merge hits by score (or sort values); no aggregations."""
        if body.get("aggs") or body.get("aggregations"):
            raise QueryError("the embedded engine aggregates one index at a time")
        offset = _int(body.get("from", 0), "from")
        size = _int(body.get("size", 10), "size")
        partial = dict(body, **{"from": 0, "size": offset + size})
        responses = []
        for name in names:
            checkpoint()
            responses.append(execute(self.opened(name), partial))
        hits = [hit for r in responses for hit in r["hits"]["hits"]]
        if body.get("sort") and any("sort" in h for h in hits):
            keys = parse_sort(body.get("sort"), None)
            for position in reversed(range(len(keys))):
                key = keys[position]
                hits.sort(key=lambda h, p=position: _present_key(h["sort"][p]), reverse=key.desc)
                if key.desc:
                    # missing values last even in descending order
                    hits.sort(key=lambda h, p=position: h["sort"][p] is None)
        else:
            hits.sort(key=lambda h: -(h["_score"] or 0.0))
        scores = [r["hits"]["max_score"] for r in responses if r["hits"]["max_score"] is not None]
        return {
            "took": 0, "timed_out": False,
            "_shards": {"total": len(names), "successful": len(names), "skipped": 0, "failed": 0},
            "hits": {"total": {"value": sum(r["hits"]["total"]["value"] for r in responses),
                               "relation": "eq"},
                     "max_score": max(scores) if scores else None,
                     "hits": hits[offset:offset + size]},
        }


# keys of a body that only looks documents up by id (``timeout``: the request's budget)
_LOOKUP_KEYS = frozenset({"query", "size", "from", "_source", "version", "track_total_hits", "timeout"})


def _is_lookup(body):
    """Whether ``body`` only looks documents up by ``_id``: cheap, run in the lookup lane."""
    if not isinstance(body, dict) or not _LOOKUP_KEYS.issuperset(body):
        return False
    query = body.get("query")
    if isinstance(query, dict) and len(query) == 1 and isinstance(query.get("ids"), dict):
        return True
    return _plain_id_lookup(body) is not None


def _timeout_of(body):
    """Seconds of the body's ``timeout`` (an Elasticsearch time value), None without one."""
    timeout = body.get("timeout") if isinstance(body, dict) else None
    if timeout is None:
        return None
    seconds = _duration_seconds(timeout, "timeout")
    return seconds if seconds > 0 else None


def _batch_timeout(searches):
    """Seconds of the shortest ``timeout`` of a batch's bodies (None: no deadline); a value
    the bodies share (the request's, one string) is read once, not once per body."""
    shortest = last = None
    for body in searches:
        value = body.get("timeout") if isinstance(body, dict) else None
        if value is None or value is last:
            continue
        last = value
        seconds = _timeout_of(body)
        if seconds is not None and (shortest is None or seconds < shortest):
            shortest = seconds
    return shortest


def _plain_id_lookup(body):
    """``(id, score)`` when ``body`` only looks up one ``_id`` (the batch annotation/query
    case: the builder's ``ids`` query), else None. ``score`` is the constant an ``ids``
    query gives (1.0); None for a ``multi_match``/``term`` on ``_id``, scored as that term."""
    if not isinstance(body, dict) or not _LOOKUP_KEYS.issuperset(body):
        return None
    size = body.get("size", 10)
    if body.get("from", 0) != 0 or isinstance(size, bool) or not isinstance(size, int) \
            or not 1 <= size <= MAX_RESULT_WINDOW:
        return None
    query = body.get("query")
    if not isinstance(query, dict) or len(query) != 1:
        return None
    (kind, spec), = query.items()
    if not isinstance(spec, dict):
        return None
    score = None
    if kind == "ids":
        values = spec.get("values")
        if list(spec) != ["values"] or not isinstance(values, list) or len(values) != 1:
            return None
        value, score = values[0], 1.0
    elif kind == "multi_match":
        if spec.get("fields") != ["_id"] or set(spec) - {"query", "fields", "operator", "lenient",
                                                          "analyzer", "type"}:
            return None
        value = spec.get("query")
    elif kind == "term" and list(spec) == [ID]:
        value = spec[ID]
        if isinstance(value, dict):
            if set(value) != {"value"}:
                return None
            value = value["value"]
    else:
        return None
    if isinstance(value, (bool, float)) or not isinstance(value, (str, int)):
        return None
    return str(value), score


def id_lookups(opened, items):
    """Many single-id searches as one tantivy search; answers as ``search`` would give them.
    ``items``: ``(position, (id, score), body)``, ``score`` as ``_plain_id_lookup`` gives it."""
    started = time.perf_counter()
    searcher = opened.searcher
    wanted = list(dict.fromkeys(doc_id for _p, (doc_id, _score), _b in items))
    found = searcher.search(Q.term_set_query(opened.schema, ID, wanted), len(wanted), count=False).hits
    found.sort(key=lambda hit: _addr_key(hit[1]))  # doc store order: fewer block reads
    docs = {}
    for _score, address in found:
        doc = searcher.doc(address)
        docs[doc.get_first("_id")] = doc.get_first("_source")
    term_score = None
    if docs and any(score is None for _p, (_id, score), _b in items):
        # every _id has doc freq 1: the BM25 score of an id term is the same for all
        scored = Compiler(opened.layout, opened.schema, searcher).term(ID_FIELD, next(iter(docs)))
        top = searcher.search(scored, 1, count=False).hits
        term_score = top[0][0] if top else 1.0
    took = int((time.perf_counter() - started) * 1000)
    filters = _SourceFilters()
    answers = []
    for position, (doc_id, score), body in items:
        raw = docs.get(doc_id)
        hits = []
        if score is None:
            score = term_score
        if raw is not None:
            hit = {"_index": opened.name, "_id": doc_id, "_score": score}
            if body.get("version"):
                hit["_version"] = 1
            source_filter = filters.parse(body.get("_source"))
            if source_filter is not False:
                source = orjson.loads(raw)
                hit["_source"] = source if source_filter is None else source_filter.apply(source)
            hits.append(hit)
        answers.append((position, {
            "took": took, "timed_out": False,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {"total": {"value": len(hits), "relation": "eq"},
                     "max_score": score if hits else None, "hits": hits},
        }))
    return answers


class _SourceFilters:
    """``SourceFilter.parse`` once for the bodies of a batch, which share their ``_source``."""

    __slots__ = ("spec", "parsed")

    def __init__(self):
        self.spec = self.parsed = None

    def parse(self, spec):
        if spec is None:
            return None
        if spec is not self.spec:
            self.spec, self.parsed = spec, SourceFilter.parse(spec)
        return self.parsed


def _present_key(value):
    return (0, value) if value is not None else (1, 0)


def error_entry(exc):
    if isinstance(exc, IndexNotFound):
        kind = "index_not_found_exception"
    elif isinstance(exc, ScrollError):
        kind = "search_context_missing_exception"
    elif isinstance(exc, QueryError):
        kind = "query_shard_exception"
    else:
        kind = "exception"
    return {"error": {"type": kind, "reason": exc.reason,
                      "root_cause": [{"type": kind, "reason": exc.reason}]},
            "status": exc.status}


def _int(value, name):
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise QueryError(f"[{name}] must be an integer, got {value!r}")
    if number < 0:
        raise QueryError(f"[{name}] parameter cannot be negative, found [{number}]")
    return number


def parse_sort(spec, layout):
    """ES ``sort`` -> [SortKey]. ``layout`` None skips field checks."""
    if spec is None:
        return []
    if isinstance(spec, (str, dict)):
        spec = [spec]
    keys = []
    for item in spec:
        options = {}
        if isinstance(item, str):
            name = item
            if ":" in name:  # "field:desc" (URL style)
                name, _, order = name.partition(":")
                options = {"order": order}
        elif isinstance(item, dict) and len(item) == 1:
            (name, options), = item.items()
            if isinstance(options, str):
                options = {"order": options}
            elif not isinstance(options, dict):
                raise QueryError(f"malformed sort entry {item!r}")
        else:
            raise QueryError(f"malformed sort entry {item!r}")
        order = str(options.get("order", "desc" if name == "_score" else "asc")).lower()
        if order not in ("asc", "desc"):
            raise QueryError(f"[sort] order must be asc or desc, got [{order}]")
        desc = order == "desc"
        missing_first = str(options.get("missing", "_last")) == "_first"
        if name == "_score":
            keys.append(SortKey("score", desc=desc))
        elif name == "_doc":
            keys.append(SortKey("doc", desc=desc))
        else:
            field = None
            if layout is not None:
                if name == ID:
                    field = ID_FIELD
                else:
                    field = layout.fields.get(name)
                    if field is None or field.kind is None:
                        if "unmapped_type" in options:
                            continue
                        raise QueryError(f"No mapping found for [{name}] in order to sort on")
                    if field.kind == "text":
                        raise QueryError(TEXT_FIELD_REASON.format(name=name))
            keys.append(SortKey("field", field, desc, missing_first))
    return keys


def _addr_key(address):
    return (address.segment_ord, address.doc)


def execute(opened, body, offset=None, size=None, window=True, max_buckets=MAX_BUCKETS):
    """Run one search body against one opened index version (synchronously)."""
    searcher = opened.searcher
    compiler = Compiler(opened.layout, opened.schema, searcher)
    if not isinstance(body, dict):
        raise QueryError("request body must be an object")
    query = compiler.compile(body.get("query"))
    hits_query = query
    if body.get("post_filter") is not None:
        post = compiler.compile(body["post_filter"])
        hits_query = Q.boolean_query([(MUST, query), (MUST, Q.const_score_query(post, 0.0))])
    if offset is None:
        offset = _int(body.get("from", 0), "from")
    if size is None:
        size = _int(body.get("size", 10), "size")
    if window and offset + size > MAX_RESULT_WINDOW:
        raise QueryError(f"Result window is too large, from + size must be less than or equal "
                         f"to: [{MAX_RESULT_WINDOW}] but was [{offset + size}]. See the scroll api "
                         f"for a more efficient way to request large data sets.")
    source_filter = SourceFilter.parse(body.get("_source"))
    keys = parse_sort(body.get("sort"), opened.layout)
    checkpoint()
    try:
        if compiler.random is not None:
            total, ranked = _random_hits(searcher, hits_query, offset, size, compiler.random)
            sorted_by_fields = False
        elif keys and not (len(keys) == 1 and keys[0].kind == "score" and keys[0].desc):
            total, ranked = _sorted_hits(searcher, hits_query, keys, offset, size, opened.schema)
            sorted_by_fields = True
        else:
            total, ranked = _scored_hits(searcher, hits_query, offset, size)
            sorted_by_fields = False
        max_score = None
        if not sorted_by_fields and total and size:
            if offset == 0 and ranked:
                max_score = ranked[0][0]
            else:
                checkpoint()
                top = searcher.search(hits_query, 1, count=False).hits
                max_score = top[0][0] if top else None
        hits = []
        explain = bool(body.get("explain"))
        version = bool(body.get("version"))
        for position, (score, address, sort_values) in enumerate(ranked):
            if not position % CHECK_EVERY_HITS:
                checkpoint()
            doc = searcher.doc(address)
            hit = {"_index": opened.name, "_id": doc.get_first("_id"),
                   "_score": None if sorted_by_fields else score}
            if version:
                hit["_version"] = 1
            if source_filter is not False:
                source = orjson.loads(doc.get_first("_source"))
                hit["_source"] = source if source_filter is None else source_filter.apply(source)
            if sort_values is not None:
                hit["sort"] = sort_values
            if explain:
                hit["_explanation"] = _explanation(hits_query, searcher, address)
            hits.append(hit)
        response = {
            "took": 0, "timed_out": False,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {"total": {"value": total, "relation": "eq"}, "max_score": max_score, "hits": hits},
        }
        aggs = body.get("aggs", body.get("aggregations"))
        if aggs:
            checkpoint()
            response["aggregations"] = _aggregate(opened, compiler, query, aggs, max_buckets)
    except ValueError as exc:  # tantivy refused something the compiler let through
        raise QueryError(f"search failed: {exc}")
    return response


def _scored_hits(searcher, query, offset, size):
    result = searcher.search(query, max(size, 1), count=True, offset=offset)
    hits = result.hits if size else []
    return result.count, [(score, address, None) for score, address in hits]


def _count(searcher, query):
    return searcher.search(query, 1, count=True).count


def _random_hits(searcher, query, offset, size, options):
    total = _count(searcher, query)
    checkpoint()
    seed = options.get("seed")
    rng = random.Random(seed) if seed is not None else random.Random(os.urandom(16))
    want = min(total, offset + size)
    if not want or not size:
        return total, []
    if want <= 20:
        positions = rng.sample(range(total), want)
        ranked = []
        for position in positions:
            found = searcher.search(query, 1, count=False, offset=position).hits
            if found:
                ranked.append(found[0][1])
    else:
        ranked = [address for _score, address in searcher.search(query, total, count=False).hits]
        rng.shuffle(ranked)
        ranked = ranked[:want]
    scores = sorted((rng.random() for _ in ranked), reverse=True)
    picked = list(zip(scores, ranked))[offset:offset + size]
    return total, [(score, address, None) for score, address in picked]


def _column_values(searcher, query, key, total):
    """address -> sort value of ``key`` for every match (None when missing)."""
    hits = searcher.search(query, total, count=False, order_by_field=_sort_column(key),
                           order=tantivy.Order.Asc).hits
    return {_addr_key(address): value for value, address in hits}


def _sort_column(key):
    """The fast column the engine orders ``key`` by: the smallest value ascending, the largest descending."""
    return key.field.tname if (not key.desc or key.field.tname == ID) else key.field.max_name


def _page_candidates(searcher, schema, query, key, want):
    """The matches that can be among the first ``want`` when ``key`` sorts first: those whose
    key is at least as good as the ``want``-th best's. The engine finds them: its ``want``
    best by ``key`` alone, then every match holding one of their values (a match holding
    such a value sorts at least as well). ``(query, count)``, or None when it cannot narrow."""
    if key.kind != "field" or key.missing_first or (key.field is not ID_FIELD and not key.field.indexed):
        return None
    order = tantivy.Order.Desc if key.desc else tantivy.Order.Asc
    best = searcher.search(query, want, count=False, order_by_field=_sort_column(key), order=order).hits
    values = list({value for value, _address in best})
    if len(best) < want or None in values:
        return None  # the page reaches matches without the key
    try:
        holding = Q.const_score_query(Q.term_set_query(schema, key.field.tname, values), 0.0)
    except ValueError:  # a value type the index cannot look up
        return None
    narrowed = Q.boolean_query([(MUST, query), (MUST, holding)])
    count = _count(searcher, narrowed)
    return (narrowed, count) if count >= want else None


def _sorted_hits(searcher, query, keys, offset, size, schema):
    total = _count(searcher, query)
    checkpoint()
    if not total or not size or offset >= total:
        return total, []
    want = offset + size
    if len(keys) == 1 and keys[0].kind == "field" and not keys[0].missing_first:
        key = keys[0]
        order = tantivy.Order.Desc if key.desc else tantivy.Order.Asc
        hits = searcher.search(query, size, count=False, order_by_field=_sort_column(key),
                               order=order, offset=offset).hits
        return total, [(None, address, [_sort_value(key, value)]) for value, address in hits]
    # general case: the matches that can make the page (the engine narrows them by the
    # first key), with their key values, sorted here
    matches = total
    # (not with a score key: combined queries score differently, an all-matching one as 0)
    if want < total and not any(key.kind == "score" for key in keys):
        narrowed = _page_candidates(searcher, schema, query, keys[0], want)
        if narrowed is not None:
            query, matches = narrowed
        checkpoint()
    scored = searcher.search(query, matches, count=False).hits
    addresses = [address for _score, address in scored]
    addresses.sort(key=_addr_key)
    columns = []
    for key in keys:
        checkpoint()
        if key.kind == "score":
            columns.append({_addr_key(a): s for s, a in scored})
        elif key.kind == "doc":
            columns.append({_addr_key(a): _addr_key(a) for a in addresses})
        else:
            columns.append(_column_values(searcher, query, key, matches))
    rows = [(a, [column.get(_addr_key(a)) for column in columns]) for a in addresses]
    for position in reversed(range(len(keys))):
        key = keys[position]
        rows.sort(key=lambda row, p=position: (row[1][p] is not None, row[1][p])
                  if row[1][p] is not None else (False, 0), reverse=key.desc)
        # present values in order; missing ones last (or first with missing=_first)
        rows.sort(key=lambda row, p=position, first=key.missing_first:
                  (row[1][p] is None) != first)
    page = rows[offset:want]
    out = []
    for address, values in page:
        out.append((None, address, [_sort_value(k, v) for k, v in zip(keys, values)]))
    return total, out


def _sort_value(key, value):
    if key.kind == "doc":
        return value[1] if value is not None else None
    if key.kind == "field" and key.field.kind == "bool" and value is not None:
        return 1 if value else 0
    return value


def _explanation(query, searcher, address):
    try:
        raw = orjson.loads(query.explain(searcher, address).to_json())
    except Exception:  # noqa: BLE001 - explanations are best effort
        return {"value": 0.0, "description": "no explanation available", "details": []}
    return _es_explanation(raw)


def _es_explanation(node):
    out = {"value": node.get("value", 0.0), "description": node.get("description", ""),
           "details": [_es_explanation(d) for d in node.get("details", []) or []]}
    if node.get("context"):
        out["description"] += " [" + "; ".join(map(str, node["context"])) + "]"
    return out


def _aggregate(opened, compiler, query, aggs, max_buckets):
    plan = AggPlan(aggs, opened.layout)
    return plan.collect(opened.searcher, compiler, query, None, BucketBudget(max_buckets))
