"""On-disk layout of embedded indexes, building them, and replacing them atomically.

::

    DATA_DIR/
      genes/                    one directory per index name
        current -> versions/20240101T120000-1234-ab12     (relative symlink)
        versions/
          20240101T120000-1234-ab12/
            meta.json ...       tantivy files
            mapping.json        {"properties": ..., "_meta": ...} (what get_mapping answers)
            schema.json         internal field layout (dotted ES names -> tantivy fields)
            COMPLETE            written last
      genes.lock                fcntl lock taken while building

A build writes into a fresh version directory and only then swaps ``current``
(``os.replace`` of a symlink is atomic), so readers never see a half-built
index. Readers notice the new target (one ``readlink`` a second at most) and
reopen. The previous version is kept for scrolls that are still running; older
ones are removed by the next build.
"""

import contextlib
import datetime
import fcntl
import os
import secrets
import shutil
import time

import orjson
import tantivy

from biothings.web.engines.embedded.schema import Layout

CURRENT = "current"
VERSIONS = "versions"
MAPPING_FILE = "mapping.json"
SCHEMA_FILE = "schema.json"
COMPLETE_FILE = "COMPLETE"
KEEP_VERSIONS = 2  # current + the previous one (running scrolls)
STALE_BUILD_SECONDS = 24 * 3600


def index_dir(data_dir, name):
    return os.path.join(data_dir, name)


def current_version(data_dir, name):
    """The version directory name ``current`` points at, or None."""
    try:
        return os.path.basename(os.readlink(os.path.join(data_dir, name, CURRENT)))
    except OSError:
        return None


def version_path(data_dir, name, version):
    return os.path.join(data_dir, name, VERSIONS, version)


def index_exists(data_dir, name):
    version = current_version(data_dir, name)
    return bool(version) and os.path.exists(
        os.path.join(version_path(data_dir, name, version), COMPLETE_FILE))


@contextlib.contextmanager
def build_lock(data_dir, name):
    """An exclusive inter-process lock on building ``name`` (blocks until free)."""
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(data_dir, name + ".lock"), "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _fsync_write(path, data):
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


class IndexBuilder:
    """Writes one new version of an index; ``commit`` makes it current.

    ``add(doc)`` raises ``ValueError`` for a document the mapping cannot take
    (nothing of it is indexed); ``abort`` throws the version away. ``mapping`` may
    carry the index ``settings`` (``{"settings": {"analysis": ...}, "mappings": ...}``);
    an analyzer the engine cannot honour raises ``AnalysisError`` (a ``ValueError``)
    before anything is written.
    """

    def __init__(self, data_dir, name, mapping, meta=None, heap_size=512_000_000, num_threads=1):
        if not name or "/" in name or name.startswith(".") or "," in name:
            raise ValueError(f"invalid index name {name!r}")
        self.data_dir = os.path.abspath(data_dir)
        self.name = name
        mapping = mapping or {}
        # index settings (custom analyzers) may ride beside the mapping: {"settings", "mappings"}
        self.settings = mapping.get("settings") or {}
        if isinstance(mapping.get("mappings"), dict):
            mapping = dict(mapping["mappings"], _meta=mapping["mappings"].get("_meta", mapping.get("_meta")))
        self.properties = mapping["properties"] if "properties" in mapping else {
            k: v for k, v in mapping.items() if k not in ("settings", "_meta")}
        self.meta = dict(meta or mapping.get("_meta") or {})
        self.layout = Layout.from_mapping({"properties": self.properties}, self.settings)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        self.version = f"{stamp}-{os.getpid()}-{secrets.token_hex(3)}"
        self.path = version_path(self.data_dir, name, self.version)
        os.makedirs(self.path)
        self.index = tantivy.Index(self.layout.schema, path=self.path, reuse=False)
        self.layout.register(self.index)
        self.writer = self.index.writer(heap_size=heap_size, num_threads=num_threads)
        self.seen = set()
        self.count = 0
        self.replaced = 0
        self.done = False

    def add(self, doc):
        """Index one document (a dict with ``_id``); the last one with an id wins."""
        if not isinstance(doc, dict):
            raise ValueError(f"a document must be a JSON object, not {type(doc).__name__}")
        source = dict(doc)
        doc_id = source.pop("_id", None)
        if doc_id is None or isinstance(doc_id, (dict, list, bool)) or doc_id == "":
            raise ValueError("document has no valid _id")
        doc_id = str(doc_id)
        source_bytes = orjson.dumps(source)
        row = self.layout.row(doc_id, source, source_bytes)
        self.layout.count(row)
        document = tantivy.Document.from_dict(row, self.layout.schema)
        if doc_id in self.seen:
            self.writer.delete_documents_by_term("_id", doc_id)
            self.replaced += 1
        else:
            self.seen.add(doc_id)
            self.count += 1
        self.writer.add_document(document)

    def commit(self, meta=None):
        """Persist, then atomically make this version the current one. Returns the version."""
        if meta is not None:
            self.meta = dict(meta)
        self.writer.commit()
        self.writer.wait_merging_threads()
        self.writer = None
        mapping = {"properties": self.properties, "_meta": self.meta}
        _fsync_write(os.path.join(self.path, MAPPING_FILE), orjson.dumps(mapping, option=orjson.OPT_INDENT_2))
        _fsync_write(os.path.join(self.path, SCHEMA_FILE), orjson.dumps(self.layout.to_json()))
        _fsync_write(os.path.join(self.path, COMPLETE_FILE), str(self.count).encode())
        swap_current(self.data_dir, self.name, self.version)
        self.done = True
        cleanup_versions(self.data_dir, self.name)
        return self.version

    def abort(self):
        """Drop the version being built; the current index stays as it was."""
        if self.done:
            return
        self.done = True
        try:
            if self.writer is not None:
                self.writer.rollback()
        except Exception:  # noqa: BLE001 - best effort before removing the files
            pass
        self.writer = None
        self.index = None
        shutil.rmtree(self.path, ignore_errors=True)


def swap_current(data_dir, name, version):
    base = index_dir(data_dir, name)
    tmp = os.path.join(base, f".{CURRENT}.{os.getpid()}.{secrets.token_hex(3)}")
    os.symlink(os.path.join(VERSIONS, version), tmp)
    os.replace(tmp, os.path.join(base, CURRENT))
    fd = os.open(base, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def cleanup_versions(data_dir, name, keep=KEEP_VERSIONS):
    """Remove complete versions older than the ``keep`` newest (the current one is
    always kept) and abandoned partial builds older than a day."""
    root = os.path.join(index_dir(data_dir, name), VERSIONS)
    current = current_version(data_dir, name)
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return
    complete = [v for v in entries if os.path.exists(os.path.join(root, v, COMPLETE_FILE))]
    keep_set = set(complete[-keep:]) | {current}
    now = time.time()
    for version in entries:
        path = os.path.join(root, version)
        if version in keep_set:
            continue
        if version in complete:
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                if now - os.path.getmtime(path) > STALE_BUILD_SECONDS:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                pass


def live_count(data_dir, name):
    """Documents of the version ``current`` points at (its ``COMPLETE`` file); None without one."""
    version = current_version(data_dir, name)
    if version is None:
        return None
    try:
        with open(os.path.join(version_path(data_dir, name, version), COMPLETE_FILE), "rb") as handle:
            return int(handle.read().strip() or 0)
    except (OSError, ValueError):
        return None


def read_json(path):
    with open(path, "rb") as handle:
        return orjson.loads(handle.read())


# ---------------------------------------------------------------------- mapping inference

def infer_mapping(documents):
    """An ES mapping for ``documents`` (an iterable of dicts), as Elasticsearch's dynamic
    mapping makes it: the first type seen at a path wins (strings -> ``text`` with a
    ``keyword`` sub-field, ``ignore_above`` 256; ints -> ``long``; floats -> ``double``;
    bools -> ``boolean``; objects -> ``properties``), nulls and empty lists map nothing.
    A later value of another type is then coerced where Elasticsearch coerces it (``"7"``
    or ``7.5`` into a long, a number into a text) and otherwise refused when the document
    is loaded, with its line number: never a silent switch of the field's type. ``_id``
    is not mapped."""
    seen = {}
    for doc in documents:
        if isinstance(doc, dict):
            _observe(doc, "", seen, top=True)
    return {"properties": _build_properties(seen)}


def _observe(obj, prefix, seen, top=False):
    for key, value in obj.items():
        if top and key == "_id":
            continue
        _observe_value(prefix + key, value, seen)


def _kind(value):
    if isinstance(value, dict):
        return "object"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    return "string"


def _observe_value(path, value, seen):
    if value is None:
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            _observe_value(path, item, seen)
        return
    kind = seen.setdefault(path, _kind(value))  # the first type seen wins
    if kind == "object" and isinstance(value, dict):
        _observe(value, path + ".", seen)


_LEAF_SPECS = {
    "boolean": {"type": "boolean"},
    "long": {"type": "long"},
    "double": {"type": "double"},
    "string": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}},
}


def _build_properties(seen):
    root = {}
    for path in sorted(seen):  # a parent before its children: "a" < "a.b"
        parts = path.split(".")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {"properties": {}})["properties"]
        if seen[path] == "object":
            node.setdefault(parts[-1], {"properties": {}})
        else:
            node[parts[-1]] = dict(_LEAF_SPECS[seen[path]])
    return root


# ---------------------------------------------------------------------- convenience

def build_index(data_dir, name, documents, mapping=None, meta=None, on_error="abort"):
    """Build index ``name`` from ``documents`` (dicts with ``_id``) and make it current.

    Without a mapping one is inferred (the documents are read into memory first).
    ``on_error="skip"`` skips documents the mapping cannot take; ``"abort"`` raises
    and leaves the current index untouched. Returns ``{"version", "total", "errors",
    "replaced"}``.
    """
    if mapping is None:
        documents = list(documents)
        mapping = infer_mapping(documents)
    builder = IndexBuilder(data_dir, name, mapping, meta)
    errors = 0
    try:
        for doc in documents:
            try:
                builder.add(doc)
            except ValueError:
                if on_error != "skip":
                    raise
                errors += 1
        meta = dict(builder.meta)
        stats = dict(meta.get("stats") or {})
        stats["total"] = builder.count
        meta["stats"] = stats
        version = builder.commit(meta)
    except BaseException:
        builder.abort()
        raise
    return {"version": version, "total": builder.count, "errors": errors, "replaced": builder.replaced}


def iter_documents(path):
    """Documents of an NDJSON file or a JSON array file (``.gz`` too), as dicts."""
    from biothings.web.documents import read_documents  # one reader for the loader and the app

    for _lineno, doc, error in read_documents(path):
        if error is not None:
            raise ValueError(error)
        yield doc


def ensure_index(data_dir, index_name, documents_path, mapping_path=None, meta_path=None):
    """Build ``index_name`` from ``documents_path`` unless it already exists.

    Safe when several processes start at once: the first builds under a file lock,
    the others wait and find it built. Returns True when this call built it.
    """
    data_dir = os.path.abspath(data_dir)
    if index_exists(data_dir, index_name):
        return False
    with build_lock(data_dir, index_name):
        if index_exists(data_dir, index_name):
            return False
        mapping = read_json(mapping_path) if mapping_path else None
        meta = read_json(meta_path) if meta_path else {}
        if mapping is not None and "_meta" in mapping and not meta:
            meta = mapping["_meta"]
        meta = dict(meta)
        meta.setdefault("build_version", datetime.date.today().strftime("%Y%m%d"))
        meta.setdefault("build_date", datetime.datetime.now().astimezone().isoformat(timespec="seconds"))
        build_index(data_dir, index_name, iter_documents(documents_path), mapping, meta, on_error="skip")
        return True
