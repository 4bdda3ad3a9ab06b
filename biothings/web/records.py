"""Serializers of streamed records (the hits of an export): NDJSON, TSV, CSV, a JSON array.

A stream is written page by page, so each format is a ``Records`` object giving
the bytes before the first record (``head``), those of a page of records
(``page``) and those after the last (``tail``).

TSV and CSV write one row a document, with columns (decisions):

- the columns are the ``fields`` parameter, in its order (dotted paths into nested
  objects: ``genomic_pos.chr``); without it, ``_id`` and every field of the mapping
  that holds values (``/metadata/fields`` without the objects), in alphabetical order
  (the order every backend can give: clusters answer mappings sorted);
- a path met through lists (``go.BP.id``), or holding a list, gives every value met,
  joined with ``|`` (``LIST_SEPARATOR``: commas are common inside the values, in gene
  names); a missing value or ``null`` is an empty cell; an object is its JSON text;
  ``true``/``false`` and numbers as in JSON;
- TSV escapes what would break its rows, as PostgreSQL's text format does: a
  backslash, tab, newline or carriage return in a value becomes ``\\\\``, ``\\t``,
  ``\\n``, ``\\r``; rows end with ``\\n``. CSV is RFC 4180 (Python's ``csv``: cells with a
  comma, quote or line break quoted, quotes doubled), rows end with ``\\r\\n``.
"""

import csv
import io

import orjson

LIST_SEPARATOR = "|"
_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})

CONTENT_TYPES = {
    "ndjson": "application/x-ndjson",
    "json": "application/json; charset=UTF-8",
    "tsv": "text/tab-separated-values; charset=UTF-8",
    "csv": "text/csv; charset=UTF-8",
}


def _dumps_option(sort_keys):
    return orjson.OPT_NON_STR_KEYS | (orjson.OPT_SORT_KEYS if sort_keys else 0)


class Records:
    """One format: the bytes of a stream of records."""

    content_type = None

    def head(self):
        return b""

    def page(self, docs):
        raise NotImplementedError

    def tail(self):
        return b""


class NDJSONRecords(Records):
    """One JSON document a line."""

    content_type = CONTENT_TYPES["ndjson"]

    def __init__(self, sort_keys=True):
        self.option = _dumps_option(sort_keys)

    def page(self, docs):
        dumps, option = orjson.dumps, self.option
        return b"".join([dumps(doc, option=option) + b"\n" for doc in docs])


class JSONArrayRecords(Records):
    """One JSON array of the documents, one a line."""

    content_type = CONTENT_TYPES["json"]

    def __init__(self, sort_keys=True):
        self.option = _dumps_option(sort_keys)
        self.first = True

    def head(self):
        return b"["

    def page(self, docs):
        if not docs:
            return b""
        dumps, option = orjson.dumps, self.option
        text = b",\n".join([dumps(doc, option=option) for doc in docs])
        if self.first:
            self.first = False
            return b"\n" + text
        return b",\n" + text

    def tail(self):
        return b"]\n" if self.first else b"\n]\n"


def cell_values(doc, path):
    """Every value at the dotted ``path`` of ``doc`` (lists walked); a flattened document
    (``dotfield``) has the path as one key."""
    if path in doc:
        found = doc[path]
        return found if isinstance(found, list) else [found]
    current = [doc]
    for key in path.split("."):
        found = []
        for node in current:
            for item in node if isinstance(node, list) else (node,):
                if isinstance(item, dict) and key in item:
                    value = item[key]
                    found.extend(value if isinstance(value, list) else (value,))
        current = found
    return current


def cell_text(value):
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return orjson.dumps(value).decode()
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS).decode()


def cell(doc, path):
    """The text of the cell of column ``path`` for ``doc``."""
    return LIST_SEPARATOR.join(cell_text(value) for value in cell_values(doc, path) if value is not None)


class TSVRecords(Records):
    """Tab-separated values, a header row first."""

    content_type = CONTENT_TYPES["tsv"]

    def __init__(self, columns):
        self.columns = list(columns)

    def _row(self, cells):
        return ("\t".join(text.translate(_TSV_ESCAPES) for text in cells) + "\n").encode()

    def head(self):
        return self._row(self.columns)

    def page(self, docs):
        columns = self.columns
        return b"".join([self._row([cell(doc, column) for column in columns]) for doc in docs])


class CSVRecords(Records):
    """Comma-separated values (RFC 4180), a header row first."""

    content_type = CONTENT_TYPES["csv"]

    def __init__(self, columns):
        self.columns = list(columns)

    def _rows(self, rows):
        text = io.StringIO()
        csv.writer(text, lineterminator="\r\n").writerows(rows)
        return text.getvalue().encode()

    def head(self):
        return self._rows([self.columns])

    def page(self, docs):
        columns = self.columns
        return self._rows([cell(doc, column) for column in columns] for doc in docs)


def value_fields(mapping):
    """The dotted paths of a mapping's fields that hold values (not objects), in its order
    (multi-fields, ``a.raw``, are index-only: not in documents)."""
    paths = []

    def walk(properties, prefix):
        for name, spec in properties.items():
            path = f"{prefix}{name}"
            if isinstance(spec, dict) and "properties" in spec:
                walk(spec["properties"], path + ".")
            else:
                paths.append(path)

    walk((mapping or {}).get("properties") or {}, "")
    return paths


def records(fmt, columns=(), sort_keys=True):
    """The ``Records`` of format ``fmt`` (ndjson, json, tsv, csv)."""
    if fmt == "tsv":
        return TSVRecords(columns)
    if fmt == "csv":
        return CSVRecords(columns)
    if fmt == "json":
        return JSONArrayRecords(sort_keys)
    return NDJSONRecords(sort_keys)
