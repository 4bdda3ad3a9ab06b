"""Load documents into the configured backend: the embedded engine or a cluster.

::

    python -m biothings.web.load --conf=config genes.ndjson [--index genes]
        [--mapping genes.mapping.json] [--meta genes.meta.json]
        [--on-error skip|abort] [--batch-size 1000] [--quiet]

Input: NDJSON (one JSON object a line), ``_bulk`` NDJSON (an action line such as
``{"index": {"_id": "1017"}}`` before each document, as bulk files and dumps are)
or a JSON array, optionally gzipped (``.gz``). Every document needs an ``_id``
(a bulk action's ``_id`` is the document's). A malformed line (bad JSON, not an
object, no ``_id``, or a value the mapping cannot take) is reported with its line
number; ``--on-error skip`` (default) skips it and the run ends with a warning
and exit code 0, ``--on-error abort`` stops with exit code 1 and replaces nothing.

The backend follows the config: ``ES_HOST`` set -> the cluster's ``GET /`` picks
the client (Elasticsearch 7, 8, 9 or OpenSearch, as the server does), a new
concrete index ``NAME_<timestamp>`` is created with the mapping, the mapping
file's index settings (``settings``: analysis...) and ``_meta``, filled with bulk
requests, refreshed, then alias ``NAME`` is switched to it atomically and the
previous index is deleted; ``ES_HOST`` empty -> an embedded index in
``EMBEDDED_DATA_DIR``, swapped in atomically. Without ``--index`` the first
value of ``ES_INDICES`` is used. Without ``--mapping`` one is inferred (see
``biothings.web.engines.embedded.infer_mapping``).
"""

import argparse
import datetime
import importlib
import logging
import os
import sys
import time

import orjson

from biothings.web.documents import open_file, position, read_documents  # read_documents: public here too

logger = logging.getLogger("biothings.web.load")

DEFAULT_DATA_DIR = "./.biothings_data"
# seconds a cluster request of the loader may take at least, whatever ES_REQUEST_TIMEOUT (a
# search's budget) says: a bulk request takes longer than a search
CLUSTER_TIMEOUT_FLOOR = 60


class LoadError(Exception):
    """The load was aborted; nothing was replaced."""


# ---------------------------------------------------------------------- settings

def _settings(config):
    """Settings object from a BiothingWebSettings, a module, a module name or a path."""
    if config is None:
        config = "config"
    if hasattr(config, "ES_INDICES") and hasattr(config, "get") and hasattr(config, "index"):
        return config  # already a BiothingWebSettings
    try:
        from biothings.web.settings import BiothingWebSettings
    except ImportError:  # pragma: no cover - the settings module is part of the package
        BiothingWebSettings = None
    if BiothingWebSettings is not None:
        return BiothingWebSettings(config)
    return importlib.import_module(config) if isinstance(config, str) else config


def _setting(settings, name, default):
    value = getattr(settings, name, None)
    return default if value is None else value


def _read_json_file(path):
    with open_file(path) as handle:
        return orjson.loads(handle.read())


def normalize_mapping(mapping):
    """``{"properties"}``, ``{"mappings": {...}}`` or a get-mapping answer -> ``{"properties", "_meta"?}``."""
    if not isinstance(mapping, dict):
        raise LoadError("a mapping must be a JSON object")
    if "properties" in mapping:
        return mapping
    if "mappings" in mapping:
        return normalize_mapping(mapping["mappings"])
    inner = _only_index(mapping)
    if inner is not None:
        return normalize_mapping(inner)
    return {"properties": mapping}


def _only_index(definition):
    """The inside of ``{"<index name>": {"mappings"|"properties"...}}`` (a get-index answer), else None."""
    if len(definition) == 1:
        (_name, inner), = definition.items()
        if isinstance(inner, dict) and ("mappings" in inner or "properties" in inner):
            return inner
    return None


# what a cluster reports in an index's settings but refuses in a create-index request
_REPORTED_SETTINGS = ("uuid", "version", "creation_date", "creation_date_string", "provided_name")


def index_settings(definition):
    """The index settings of a mapping file (``{"mappings", "settings"}`` or a get-index
    answer): analysis (normalizers, analyzers), shards... as a create-index request takes
    them (the ``index`` level flattened, settings a cluster only reports left out)."""
    if not isinstance(definition, dict) or "properties" in definition:
        return {}
    settings = definition.get("settings")
    if settings is None and "mappings" not in definition:
        inner = _only_index(definition)
        settings = inner.get("settings") if inner is not None else None
    if not isinstance(settings, dict):
        return {}
    flat = dict(settings.get("index") or {})
    flat.update((key, value) for key, value in settings.items() if key != "index")
    for key in _REPORTED_SETTINGS:
        flat.pop(key, None)
    return flat


def build_meta(meta, total, biothing_type=None):
    meta = dict(meta or {})
    now = datetime.datetime.now().astimezone()
    meta.setdefault("build_version", now.strftime("%Y%m%d"))
    meta.setdefault("build_date", now.isoformat(timespec="seconds"))
    if biothing_type and "biothing_type" not in meta:
        meta["biothing_type"] = biothing_type
    meta.setdefault("src", {})
    stats = dict(meta.get("stats") or {})
    stats["total"] = total
    meta["stats"] = stats
    return meta


# ---------------------------------------------------------------------- progress

class Progress:
    """tqdm on a terminal; plain periodic lines otherwise (docs and docs/s)."""

    def __init__(self, enabled=True, label="loading", every=5.0, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.count = 0
        self.started = time.monotonic()
        self.last = self.started
        self.every = every
        self.label = label
        self.bar = None
        if enabled and getattr(self.stream, "isatty", lambda: False)():
            try:
                from tqdm import tqdm
                self.bar = tqdm(desc=label, unit=" docs", file=self.stream, smoothing=0.1)
            except ImportError:  # pragma: no cover
                self.bar = None

    def update(self, n=1):
        self.count += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled:
            now = time.monotonic()
            if now - self.last >= self.every:
                self.last = now
                rate = self.count / max(now - self.started, 1e-9)
                print(f"{self.label}: {self.count} docs ({rate:,.0f} docs/s)", file=self.stream, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
        elapsed = time.monotonic() - self.started
        return elapsed


# ---------------------------------------------------------------------- loading

def load(settings_or_module, path, index=None, mapping=None, meta=None, on_error="skip",
         batch_size=1000, progress=True, stream=None, allow_shrink=False, timeout=None):
    """Load ``path`` into the backend the settings name. Returns a summary dict:
    ``{"index", "backend", "total", "errors", "error_lines", "seconds", ...}``.

    ``mapping`` / ``meta`` are dicts or paths to JSON files. Raises ``LoadError``
    when aborted (``on_error="abort"`` and a bad document, a backend failure, or a
    new build that lost the data: no document, or fewer than ``LOAD_SHRINK_LIMIT`` of
    the live index's unless ``allow_shrink``); the previous index is then left as it was.
    ``timeout``: seconds one cluster request may take (default ``ES_REQUEST_TIMEOUT``, at
    least 60: a bulk request takes longer than a search).
    """
    if on_error not in ("skip", "abort"):
        raise ValueError("on_error must be 'skip' or 'abort'")
    stream = stream or sys.stderr
    settings = _settings(settings_or_module)
    indices = dict(_setting(settings, "ES_INDICES", {}) or {})
    if index is None:
        if not indices:
            raise LoadError("no --index given and the config has no ES_INDICES")
        index = next(iter(indices.values()))
    biothing_type = next((t for t, name in indices.items() if name == index), None)
    if not os.path.exists(path):
        raise LoadError(f"no such file: {path}")
    # a cluster that does not answer fails here, before the file is read
    loader = make_target(settings, index, stream, timeout)

    if isinstance(mapping, (str, os.PathLike)):
        mapping = _read_json_file(mapping)
    if isinstance(meta, (str, os.PathLike)):
        meta = _read_json_file(meta)
    settings_of_index = index_settings(mapping)
    if mapping is not None:
        mapping = normalize_mapping(mapping)
        if meta is None and mapping.get("_meta"):
            meta = mapping["_meta"]
    else:
        from biothings.web.engines.embedded import infer_mapping
        mapping = infer_mapping(doc for _n, doc, error in read_documents(path) if error is None)
        print(f"inferred a mapping of {len(mapping['properties'])} top-level fields", file=stream)
    properties = mapping.get("properties", {})

    errors = []

    def record(failures):
        for number, message in failures:
            errors.append((number, message))
            print(f"warning: {path}: {_label(path, number, message)}", file=stream)
        if errors and on_error == "abort":
            number, message = errors[0]
            raise LoadError(f"{path}: {_label(path, number, message)}")

    bar = Progress(progress, label=f"loading {index}", stream=stream)
    try:
        loader.begin(properties, settings_of_index)
        batch = []
        for number, doc, error in read_documents(path):
            if error is not None:
                record([(number, error)])
                continue
            batch.append((number, doc))
            if len(batch) >= batch_size:
                record(loader.add(batch))
                bar.update(len(batch))
                batch = []
        if batch:
            record(loader.add(batch))
            bar.update(len(batch))
        total = loader.count()
        if not allow_shrink:
            check_shrink(total, loader.live_count(), _setting(settings, "LOAD_SHRINK_LIMIT", 0.5), index)
        final_meta = build_meta(meta, total, biothing_type)
        details = loader.finish(final_meta)
    except loader.errors as exc:  # the cluster failed or refused a request: one line, not a traceback
        loader.abort()
        bar.close()
        raise LoadError(f"the cluster failed: {type(exc).__name__}: {exc}") from exc
    except BaseException:
        loader.abort()
        bar.close()
        raise
    seconds = bar.close()
    summary = {"index": index, "backend": loader.backend, "total": total,
               "errors": len(errors), "error_lines": [n for n, _m in errors][:1000],
               "seconds": round(seconds, 3), "docs_per_second": round(total / max(seconds, 1e-9), 1)}
    summary.update(details)
    return summary


def check_shrink(total, live, limit, index):
    """Refuse a new build that lost the data: no document at all, or fewer than ``limit``
    times the live index's (``LoadError``; ``--allow-shrink`` loads it anyway)."""
    if total == 0:
        raise LoadError(f"the new build of {index} has no document (every line was skipped?): "
                        f"refusing to replace the live index (--allow-shrink to load it anyway)")
    if live and total < live * limit:
        raise LoadError(f"the new build of {index} has {total} documents, the live index {live}: fewer than "
                        f"{limit:.0%} of them (LOAD_SHRINK_LIMIT), refusing to replace it "
                        f"(--allow-shrink to load it anyway)")


def make_target(settings, index, stream, timeout=None):
    """Where the documents go: the cluster ``ES_HOST`` names, else the embedded engine."""
    from biothings.web.settings import parse_es_hosts
    hosts = parse_es_hosts(_setting(settings, "ES_HOST", ""))
    if hosts:
        return cluster_target(settings, hosts, index, stream, timeout)
    data_dir = _setting(settings, "EMBEDDED_DATA_DIR", DEFAULT_DATA_DIR) or DEFAULT_DATA_DIR
    return _EmbeddedTarget(os.path.abspath(data_dir), index)


def _label(path, number, message):
    if message.startswith(("line ", "item ")):
        return message
    return f"{position(number, path)}: {message}"


class _EmbeddedTarget:
    backend = "embedded"
    errors = ()  # its failures are Python's own (OSError, ValueError)

    def __init__(self, data_dir, index):
        self.data_dir = data_dir
        self.index = index
        self.builder = None
        self.lock = None

    def begin(self, properties, index_settings):
        from biothings.web.engines.embedded import IndexBuilder
        from biothings.web.engines.embedded.store import build_lock
        self.lock = build_lock(self.data_dir, self.index)
        self.lock.__enter__()
        self.builder = IndexBuilder(self.data_dir, self.index, {"properties": properties, "settings": index_settings})

    def add(self, batch):
        failed = []
        for number, doc in batch:
            try:
                self.builder.add(doc)
            except ValueError as exc:
                failed.append((number, str(exc)))
        return failed

    def count(self):
        return self.builder.count

    def live_count(self):
        """Documents of the build being served now (None: no index yet)."""
        from biothings.web.engines.embedded.store import live_count
        return live_count(self.data_dir, self.index)

    def finish(self, meta):
        version = self.builder.commit(meta)
        self._unlock()
        return {"version": version, "data_dir": self.data_dir, "replaced_ids": self.builder.replaced}

    def abort(self):
        if self.builder is not None:
            self.builder.abort()
        self._unlock()

    def _unlock(self):
        if self.lock is not None:
            lock, self.lock = self.lock, None
            lock.__exit__(None, None, None)


def cluster_target(settings, hosts, index, stream, timeout=None):
    """The load target on the cluster at ``hosts``, through the client its ``GET /``
    calls for (see ``biothings.web.engines.clusters``)."""
    from biothings.web.engines.clusters import (ClusterError, classic_client_args, client_errors, client_for, host_urls,
                                                read_cluster)
    hosts = host_urls(hosts)
    args = dict(_setting(settings, "ES_ARGS", {}) or {})
    default_timeout = max(float(_setting(settings, "ES_REQUEST_TIMEOUT", 10) or 10), CLUSTER_TIMEOUT_FLOOR)
    try:
        failures = []
        cluster = read_cluster(hosts, args, default_timeout if timeout is None else timeout, failures)
        if cluster is None:
            raise LoadError(f"{'; '.join(failures)}: no cluster answers at ES_HOST (leave ES_HOST empty "
                            f"to load into the embedded engine)")
        module, client = client_for(cluster)
    except ClusterError as exc:
        raise LoadError(str(exc)) from None
    target = _ElasticsearchTarget
    if client.module != "elasticsearch":
        target, args = _ClassicClientTarget, classic_client_args(args, client.module)
    if timeout is None:  # ES_ARGS's own timeout, else the default
        args.setdefault(target.timeout_argument, default_timeout)
    else:  # given: it wins over ES_ARGS's
        args[target.timeout_argument] = timeout
    helpers = importlib.import_module(f"{client.module}.helpers")
    loader = target(getattr(module, client.sync_class), helpers, hosts, args, index, stream)
    loader.backend = cluster.distribution  # the summary's "elasticsearch" or "opensearch"
    loader.errors = client_errors(module)
    return loader


class _ElasticsearchTarget:
    """Elasticsearch 8/9 through ``elasticsearch``: a new concrete index, bulk loaded,
    then the alias moved to it in one step. Subclasses adapt the client's calls."""

    backend = "elasticsearch"
    timeout_argument = "request_timeout"  # the client's name for a request's timeout
    errors = ()  # the client's exception classes (set by ``cluster_target``)

    def __init__(self, client_class, helpers, hosts, args, index, stream):
        self.client = client_class(hosts, **args)
        self.helpers = helpers
        self.alias = index
        self.stream = stream
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d%H%M%S%f")
        self.concrete = f"{index}_{stamp}".lower()
        self.created = False

    # the client calls whose signature differs between client families
    def create_index(self, name, mappings, settings):
        self.client.indices.create(index=name, mappings=mappings, settings=settings)

    def put_meta(self, name, meta):
        self.client.indices.put_mapping(index=name, meta=meta)

    def update_aliases(self, actions):
        self.client.indices.update_aliases(actions=actions)

    def begin(self, properties, index_settings):
        self.created = True  # before the request: a create whose answer is lost may still have landed
        self.create_index(self.concrete, {"properties": properties}, {"number_of_replicas": 0, **index_settings})

    def add(self, batch):
        numbers = []
        actions = []
        for number, doc in batch:
            source = dict(doc)
            doc_id = str(source.pop("_id"))
            numbers.append(number)
            actions.append({"_op_type": "index", "_index": self.concrete, "_id": doc_id, "_source": source})
        failed = []
        results = self.helpers.streaming_bulk(self.client, actions, chunk_size=len(actions) or 1,
                                              raise_on_error=False, raise_on_exception=False, max_retries=3)
        for number, (ok, item) in zip(numbers, results):
            if not ok:
                info = next(iter(item.values()), {}) if isinstance(item, dict) else {}
                error = info.get("error") if isinstance(info, dict) else item
                if isinstance(error, dict):
                    error = f"{error.get('type')}: {error.get('reason')}"
                failed.append((number, f"rejected by the cluster: {error}"))
        return failed

    def count(self):
        self.client.indices.refresh(index=self.concrete)
        return int(self.client.count(index=self.concrete)["count"])

    def live_count(self):
        """Documents behind the alias (or the plain index of that name) now; None: none yet."""
        if not self.client.indices.exists(index=self.alias):
            return None
        return int(self.client.count(index=self.alias)["count"])

    def finish(self, meta):
        client = self.client
        self.put_meta(self.concrete, meta)
        client.indices.refresh(index=self.concrete)
        old = []
        actions = [{"add": {"index": self.concrete, "alias": self.alias}}]
        if client.indices.exists_alias(name=self.alias):
            old = list(client.indices.get_alias(name=self.alias).keys())
            actions[:0] = [{"remove": {"index": name, "alias": self.alias}} for name in old]
        elif client.indices.exists(index=self.alias):
            # a plain index of that name goes in the same step as the alias comes: no moment without either
            actions.insert(0, {"remove_index": {"index": self.alias}})
        try:
            self.update_aliases(actions)
        except self.errors:
            # an answer lost after the cluster moved the alias (a timeout): the new index is
            # live, and an abort must not delete it
            if not self._serves_alias():
                raise
        self.created = False  # live now: an abort must not delete it
        for name in old:
            if name != self.concrete:
                self._delete(name, "the previous index")
        return {"concrete_index": self.concrete, "previous": old}

    def abort(self):
        if self.created:
            self._delete(self.concrete, "the new index")
            self.created = False

    def _serves_alias(self):
        """Whether the alias points at the new index now (False when that cannot be read)."""
        try:
            return bool(self.client.indices.exists_alias(name=self.alias, index=self.concrete))
        except self.errors:
            return False

    def _delete(self, name, what):
        """Delete ``name`` if it is there; a failure is a warning (the load's outcome stands)."""
        try:
            self.client.indices.delete(index=name, ignore_unavailable=True)
        except Exception as exc:  # noqa: BLE001 - reported; the abort reason or the swap matters more
            print(f"warning: could not delete {what} {name}: {type(exc).__name__}: {exc}", file=self.stream)


class _ClassicClientTarget(_ElasticsearchTarget):
    """Elasticsearch 7 (``elasticsearch7``) and OpenSearch (``opensearch-py``): request bodies as ``body``."""

    timeout_argument = "timeout"

    def create_index(self, name, mappings, settings):
        self.client.indices.create(index=name, body={"mappings": mappings, "settings": settings})

    def put_meta(self, name, meta):
        self.client.indices.put_mapping(index=name, body={"_meta": meta})

    def update_aliases(self, actions):
        self.client.indices.update_aliases(body={"actions": actions})


# ---------------------------------------------------------------------- CLI

def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m biothings.web.load",
        description="Load NDJSON / JSON documents into the configured backend.")
    parser.add_argument("file", help="NDJSON, bulk NDJSON or JSON array file (.gz accepted)")
    parser.add_argument("--conf", default="config", help="config module name or path (default: config)")
    parser.add_argument("--index", help="index name (default: first value of ES_INDICES)")
    parser.add_argument("--mapping", help="mapping JSON ({\"properties\": ...}, or {\"mappings\": ..., "
                                          "\"settings\": ...} with the index settings); inferred if absent")
    parser.add_argument("--meta", help="_meta JSON (build_version, src with licenses, ...)")
    parser.add_argument("--on-error", choices=("skip", "abort"), default="skip",
                        help="malformed document: skip it (default) or abort the load")
    parser.add_argument("--batch-size", type=int, default=1000, help="documents per batch")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="how long one cluster request may take (default: ES_REQUEST_TIMEOUT, at least 60; "
                             "given, it wins over a timeout in ES_ARGS)")
    parser.add_argument("--allow-shrink", action="store_true",
                        help="replace the live index even by a build with no document, or fewer than "
                             "LOAD_SHRINK_LIMIT (50%%) of its documents")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if args.timeout is not None and not 0 < args.timeout < float("inf"):  # NaN too
        parser.error("--timeout must be a number of seconds above 0")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        summary = load(args.conf, args.file, index=args.index, mapping=args.mapping, meta=args.meta,
                       on_error=args.on_error, batch_size=args.batch_size, progress=not args.quiet,
                       allow_shrink=args.allow_shrink, timeout=args.timeout)
    except LoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("aborted: nothing was replaced", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"loaded {summary['total']} documents into {summary['backend']} index "
          f"[{summary['index']}] in {summary['seconds']:.1f}s "
          f"({summary['docs_per_second']:,.0f} docs/s)", file=sys.stderr)
    if summary["errors"]:
        print(f"warning: {summary['errors']} document(s) skipped (lines "
              f"{', '.join(map(str, summary['error_lines'][:20]))}"
              f"{', ...' if summary['errors'] > 20 else ''})", file=sys.stderr)
    sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
