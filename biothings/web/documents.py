"""Reading document files: NDJSON, ``_bulk`` NDJSON and JSON arrays, gzipped or not.

One reader for the loader (``biothings.web.load``) and the embedded engine's start-up
build (``EMBEDDED_DATA_FILES``): both report a bad line the same way, with its number.
"""

import gzip

import orjson


def open_file(path):
    """The file, gunzipped on the fly when its name ends with .gz."""
    if str(path).endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def _first_char(path):
    with open_file(path) as handle:
        while True:
            chunk = handle.read(4096)
            if not chunk:
                return b""
            stripped = chunk.lstrip()
            if stripped.startswith(b"\xef\xbb\xbf"):
                stripped = stripped[3:].lstrip()
            if stripped:
                return stripped[:1]


def _check(doc):
    if not isinstance(doc, dict):
        return f"expected a JSON object, got {type(doc).__name__}"
    doc_id = doc.get("_id")
    if doc_id is None or doc_id == "":
        return "document has no _id"
    if isinstance(doc_id, (dict, list, bool)):
        return f"invalid _id {doc_id!r}"
    return None


def _json_lines(path):
    """``(line_number, value, error)`` for each non-blank line of an NDJSON file."""
    with open_file(path) as handle:
        for number, line in enumerate(handle, 1):
            if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            if not line.strip():
                continue
            try:
                yield number, orjson.loads(line), None
            except orjson.JSONDecodeError as exc:
                yield number, None, f"line {number}: invalid JSON: {exc}"


_BULK_ACTIONS = ("index", "create", "update", "delete")


def _bulk_action(value):
    """``(action, metadata)`` of a ``_bulk`` action line (``{"index": {"_id": "1017"}}``), else None."""
    if isinstance(value, dict) and len(value) == 1:
        (action, meta), = value.items()
        if action in _BULK_ACTIONS and isinstance(meta, dict):
            return action, meta
    return None


def _is_bulk(path):
    """Whether ``path`` is in ``_bulk`` format: one of its first two valid lines is an
    action line (every other line is one; a document never looks like one)."""
    valid = (value for _number, value, error in _json_lines(path) if error is None)
    return any(_bulk_action(value) is not None for value, _ in zip(valid, range(2)))


def _read_bulk(path):
    """Documents of a ``_bulk`` file: an action line (``index`` or ``create``, whose
    ``_id`` is the document's), then the document's line. ``_index`` is ignored:
    the loader's index is the config's (or ``--index``)."""
    action = None  # (line number, name, metadata) of the action line waiting for its document
    for number, value, error in _json_lines(path):
        found = None if error else _bulk_action(value)
        if found is not None and action is not None:  # the previous action lost its document
            yield action[0], None, f"line {action[0]}: bulk action without its document line"
            action = None
        if action is None:
            if error:
                yield number, None, error
            elif found is None:
                yield number, None, f"line {number}: expected a bulk action line, got a document"
            elif found[0] == "delete":  # no document line follows
                yield number, None, f"line {number}: bulk action 'delete' is not a document"
            else:
                action = (number, *found)
            continue
        _, name, meta = action
        action = None
        if error:
            yield number, None, error
            continue
        if name == "update":
            yield number, None, f"line {number}: bulk action 'update' is not a document (index or create)"
            continue
        if isinstance(value, dict) and meta.get("_id") is not None:
            value["_id"] = meta["_id"]
        problem = _check(value)
        if problem:
            yield number, None, f"line {number}: {problem}"
        else:
            yield number, value, None
    if action is not None:
        yield action[0], None, f"line {action[0]}: bulk action without its document line"


def read_documents(path):
    """Yield ``(line_number, doc, error)`` for each document of ``path``: NDJSON, a
    JSON array, or ``_bulk`` NDJSON (an action line before each document).

    ``error`` is None for a good document, else a message starting with the
    line number (for a JSON array: the item number); ``doc`` is then None.
    """
    if _first_char(path) == b"[":
        with open_file(path) as handle:
            data = handle.read()
        try:
            items = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            yield 1, None, f"{path}: invalid JSON array: {exc}"
            return
        for number, doc in enumerate(items, 1):
            problem = _check(doc)
            if problem:
                yield number, None, f"item {number}: {problem}"
            else:
                yield number, doc, None
        return
    if _is_bulk(path):
        yield from _read_bulk(path)
        return
    for number, doc, error in _json_lines(path):
        problem = error or _check(doc)
        if problem:
            yield number, None, problem if error else f"line {number}: {problem}"
        else:
            yield number, doc, None


def position(number, path):
    """How a message names the place of a document: ``line N``, or ``item N`` of an array."""
    return f"item {number}" if _first_char(path) == b"[" else f"line {number}"
