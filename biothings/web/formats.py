"""Serializers of API answers: json (orjson), yaml, html, msgpack.

Each takes a byte budget (``max_bytes``, the API's ``MAX_ANSWER_BYTES``): past it,
a 400 naming the limit. Answers with many entries (the hits of a batch or of a
search) are written one entry at a time, so an oversized answer is stopped once
the budget is spent rather than built whole first.
"""

import html

import msgpack
import orjson
import yaml

from biothings.web.pipeline.errors import BadRequest

# answers with this many entries or more are written one entry at a time
PIECEWISE_ENTRIES = 64
# libyaml's emitter when PyYAML has it (3x faster), the same text
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _default(value):
    """orjson fallback for values it does not know (sets, tuples of odd types)."""
    if isinstance(value, (set, frozenset)):
        return list(value)
    return str(value)


def too_large(size, max_bytes):
    return BadRequest(f"The answer is larger than {max_bytes} bytes (MAX_ANSWER_BYTES): "
                      f"ask for fewer hits or fields.", max=max_bytes, num=size)


def checked(body, max_bytes):
    """``body``, unless it is larger than ``max_bytes`` (0: no budget)."""
    if max_bytes and len(body) > max_bytes:
        raise too_large(len(body), max_bytes)
    return body


def entries(data):
    """How many entries an answer has: items of a list, or of the lists of a dict (hits)."""
    if isinstance(data, list):
        return len(data)
    count = 0
    if isinstance(data, dict):
        for value in data.values():  # a loop, not sum() of a generator: run twice per answer
            if isinstance(value, list):
                count += len(value)
    return count


def to_json(data, sort_keys=False, pretty=False, max_bytes=0):
    option = orjson.OPT_NON_STR_KEYS
    if sort_keys:
        option |= orjson.OPT_SORT_KEYS
    if pretty:
        option |= orjson.OPT_INDENT_2
    elif max_bytes and entries(data) >= PIECEWISE_ENTRIES:
        return _json_piecewise(data, option, sort_keys, max_bytes)
    return checked(orjson.dumps(data, default=_default, option=option), max_bytes)


def _json_piecewise(data, option, sort_keys, max_bytes):
    """``orjson.dumps(data)``, written entry by entry and stopped past ``max_bytes``."""
    writer = _PiecewiseJSON(option, sort_keys, max_bytes)
    writer.write(data, True)
    return b"".join(writer.pieces)


class _PiecewiseJSON:
    """The pieces of ``_json_piecewise``. A class, not closures: a recursive closure refers to
    itself through its cell, a reference cycle that kept the pieces (the whole answer) alive
    until the next full garbage collection, which an idle server does not run: 167 MiB held
    after a few large batches (measured with memray)."""

    __slots__ = ("option", "sort_keys", "max_bytes", "pieces", "size")

    def __init__(self, option, sort_keys, max_bytes):
        self.option, self.sort_keys, self.max_bytes = option, sort_keys, max_bytes
        self.pieces = []
        self.size = 0

    def add(self, piece):
        self.size += len(piece)
        if self.size > self.max_bytes:
            raise too_large(self.size, self.max_bytes)
        self.pieces.append(piece)

    def write(self, value, top):
        if isinstance(value, list) and len(value) >= PIECEWISE_ENTRIES:
            self.add(b"[")
            for position, item in enumerate(value):
                if position:
                    self.add(b",")
                self.add(orjson.dumps(item, default=_default, option=self.option))
            self.add(b"]")
        elif top and isinstance(value, dict) and all(isinstance(key, str) for key in value):
            self.add(b"{")
            for position, key in enumerate(sorted(value) if self.sort_keys else value):
                self.add((b',"' if position else b'"') + orjson.dumps(key)[1:] + b":")
                self.write(value[key], False)
            self.add(b"}")
        else:
            self.add(orjson.dumps(value, default=_default, option=self.option))


def error_json(code, reason, /, **extra):
    """The contract's JSON error body, ``{"code", "success": false, "error", ...}``: the one
    builder of every error the API writes (handlers, the request guard, the HTTP server)."""
    return to_json({"code": code, "success": False, "error": reason, **extra})


def to_yaml(data, sort_keys=False, max_bytes=0):
    # YAML and msgpack come from the JSON text (its types); they may be shorter than it
    tree = orjson.loads(to_json(data, max_bytes=max_bytes * 2))
    text = yaml.dump(tree, Dumper=_YAML_DUMPER, sort_keys=sort_keys, allow_unicode=True)
    return checked(text.encode(), max_bytes)


def to_msgpack(data, sort_keys=False, max_bytes=0):
    tree = orjson.loads(to_json(data, sort_keys=sort_keys, max_bytes=max_bytes * 2))
    return checked(msgpack.packb(tree, use_bin_type=True), max_bytes)


_HTML_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}}
pre{{background:#f6f8fa;padding:1rem;border-radius:6px;overflow:auto;font-size:13px}}
.k{{color:#0550ae}}.s{{color:#0a3069}}.n{{color:#953800}}</style></head>
<body><h1>{title}</h1><p><a href="{json_url}">JSON</a></p><pre>{body}</pre></body></html>"""


def to_html(data, sort_keys=False, title="Result", json_url="?format=json", max_bytes=0):
    """A readable page; every string from the data is escaped."""
    if max_bytes:
        to_json(data, max_bytes=max_bytes)  # the page is longer than the JSON: stopped before it is built
    text = to_json(data, sort_keys=sort_keys, pretty=True).decode()
    page = _HTML_PAGE.format(title=html.escape(title), json_url=html.escape(json_url, quote=True),
                             body=html.escape(text)).encode()
    return checked(page, max_bytes)


CONTENT_TYPES = {
    "json": "application/json; charset=UTF-8",
    "yaml": "text/x-yaml; charset=UTF-8",
    "html": "text/html; charset=UTF-8",
    "msgpack": "application/x-msgpack",
}


def serialize(data, fmt="json", sort_keys=False, max_bytes=0, **html_args):
    """``(bytes, content type)`` of ``data`` in format ``fmt``, at most ``max_bytes`` (0: any size)."""
    if fmt == "yaml":
        return to_yaml(data, sort_keys, max_bytes), CONTENT_TYPES["yaml"]
    if fmt == "html":
        return to_html(data, sort_keys, max_bytes=max_bytes, **html_args), CONTENT_TYPES["html"]
    if fmt == "msgpack":
        return to_msgpack(data, sort_keys, max_bytes), CONTENT_TYPES["msgpack"]
    return to_json(data, sort_keys, max_bytes=max_bytes), CONTENT_TYPES["json"]
