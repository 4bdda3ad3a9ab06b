"""Serializers of API answers: json (orjson), yaml, html, msgpack."""

import html

import msgpack
import orjson
import yaml


def _default(value):
    """orjson fallback for values it does not know (sets, tuples of odd types)."""
    if isinstance(value, (set, frozenset)):
        return list(value)
    return str(value)


def to_json(data, sort_keys=False, pretty=False):
    option = 0
    if sort_keys:
        option |= orjson.OPT_SORT_KEYS
    if pretty:
        option |= orjson.OPT_INDENT_2
    return orjson.dumps(data, default=_default, option=option | orjson.OPT_NON_STR_KEYS)


def error_json(code, reason, /, **extra):
    """The contract's JSON error body, ``{"code", "success": false, "error", ...}``: the one
    builder of every error the API writes (handlers, the request guard, the HTTP server)."""
    return to_json({"code": code, "success": False, "error": reason, **extra})


def to_yaml(data, sort_keys=False):
    return yaml.safe_dump(orjson.loads(to_json(data)), sort_keys=sort_keys, allow_unicode=True).encode()


def to_msgpack(data, sort_keys=False):
    return msgpack.packb(orjson.loads(to_json(data, sort_keys=sort_keys)), use_bin_type=True)


_HTML_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}}
pre{{background:#f6f8fa;padding:1rem;border-radius:6px;overflow:auto;font-size:13px}}
.k{{color:#0550ae}}.s{{color:#0a3069}}.n{{color:#953800}}</style></head>
<body><h1>{title}</h1><p><a href="{json_url}">JSON</a></p><pre>{body}</pre></body></html>"""


def to_html(data, sort_keys=False, title="Result", json_url="?format=json"):
    """A readable page; every string from the data is escaped."""
    text = to_json(data, sort_keys=sort_keys, pretty=True).decode()
    return _HTML_PAGE.format(title=html.escape(title), json_url=html.escape(json_url, quote=True),
                             body=html.escape(text)).encode()


CONTENT_TYPES = {
    "json": "application/json; charset=UTF-8",
    "yaml": "text/x-yaml; charset=UTF-8",
    "html": "text/html; charset=UTF-8",
    "msgpack": "application/x-msgpack",
}


def serialize(data, fmt="json", sort_keys=False, **html_args):
    """``(bytes, content type)`` of ``data`` in format ``fmt``."""
    if fmt == "yaml":
        return to_yaml(data, sort_keys), CONTENT_TYPES["yaml"]
    if fmt == "html":
        return to_html(data, sort_keys, **html_args), CONTENT_TYPES["html"]
    if fmt == "msgpack":
        return to_msgpack(data, sort_keys), CONTENT_TYPES["msgpack"]
    return to_json(data, sort_keys), CONTENT_TYPES["json"]
