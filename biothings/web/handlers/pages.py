"""HTML pages (front page, interactive docs), their static files, and the OpenAPI document.

The pages are rendered server side with every value escaped; their scripts are
static files (``biothings/web/static``) that put text in the page only through
``textContent``, under a Content-Security-Policy that allows no inline script.
Nothing is loaded from another host.
"""

import copy
import hashlib
import html
import os

import orjson
import tornado.web

from biothings.web import formats
from biothings.web.handlers.base import BaseAPIHandler, BaseHandler
from biothings.web.openapi import app_rules, generate_spec, query_examples

STATIC_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "static")

PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")

_VERSIONS = {}


def _static_version(name):
    """Content hash of a static file (``?v=``: cached for long, refreshed when it changes)."""
    version = _VERSIONS.get(name)
    if version is None:
        with open(os.path.join(STATIC_DIR, name), "rb") as file:
            version = _VERSIONS[name] = hashlib.sha256(file.read()).hexdigest()[:12]
    return version


def _prefix(api):
    prefix = api.API_PREFIX.strip("/")
    return "/" + prefix if prefix else ""


def _base(api):
    version = api.API_VERSION.strip("/")
    return _prefix(api) + ("/" + version if version else "")


def static_url(api, name):
    return f"{_prefix(api)}/_static/{name}?v={_static_version(name)}"


def cached_spec(application, api):
    """The OpenAPI document of ``api`` as served by ``application`` (built once, without servers)."""
    spec = application.specs.get(id(api))
    if spec is None:
        spec = application.specs[id(api)] = generate_spec(api, rules=app_rules(application, api))
    return spec


def _script_json(data):
    """JSON safe inside ``<script type="application/json">`` (no ``</script>``, no comment opener)."""
    text = orjson.dumps(data).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class _PageHandler(BaseHandler):
    """An HTML page: never in the OpenAPI document, locked down by CSP."""

    openapi = {}

    def finish_page(self, page):
        self.set_header("Content-Type", formats.CONTENT_TYPES["html"])
        self.set_header("Content-Security-Policy", PAGE_CSP)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "same-origin")
        self.finish(page)


class FrontPageHandler(_PageHandler):
    """``/``: the API's name, types and routes, and a query box with facets."""

    name = "frontpage"

    def get(self):
        root = self.application.biothings  # the root: every API of a config package
        apis = root.all_settings()
        esc = html.escape
        sections, endpoints = [], []
        for api in apis:
            spec = cached_spec(self.application, api)
            base = _base(api)
            routes = []
            for path, item in spec["paths"].items():
                for method, operation in item.items():
                    if method == "head":
                        continue
                    takes_query = any(parameter["name"] == "q" for parameter in operation.get("parameters", ()))
                    if method == "get" and "{" not in path and not takes_query:
                        shown = f'<a href="{esc(path, quote=True)}"><code>{esc(path)}</code></a>'
                    else:
                        shown = f"<code>{esc(path)}</code>"
                    routes.append(f'<tr><td><span class="method {method}">{method.upper()}</span></td>'
                                  f"<td>{shown}</td><td>{esc(operation.get('summary', ''))}</td></tr>")
            types = "".join(f"<li><code>{esc(typ)}</code></li>" for typ in api.biothing_types)
            heading = f"<h2>{esc(str(api.API_NAME))}</h2>" if len(apis) > 1 else "<h2>Routes</h2>"
            description = f"<p>{esc(str(api.API_DESCRIPTION or ''))}</p>" if len(apis) > 1 else ""
            sections.append(
                f'<section class="api">{heading}{description}'
                f'<p class="links"><a class="docs-link" href="{esc(base, quote=True)}/docs">Interactive docs</a> · '
                f'<a href="{esc(base, quote=True)}/spec">OpenAPI (JSON)</a> · '
                f'<a href="{esc(base, quote=True)}/spec?format=yaml">OpenAPI (YAML)</a></p>'
                f'<h3>Types</h3><ul class="types">{types}</ul>'
                f'<table class="routes"><thead><tr><th>Method</th><th>Route</th><th>What</th></tr></thead>'
                f'<tbody>{"".join(routes)}</tbody></table></section>')
            label = str(api.API_NAME) if len(apis) > 1 else ""
            targets = [(None, f"{base}/query", f"{base}/metadata/fields")]
            if len(api.biothing_types) > 1:
                targets += [(typ, f"{base}/{typ}/query", f"{base}/{typ}/metadata/fields")
                            for typ in api.biothing_types]
            for typ, query_url, fields_url in targets:
                annotation_type = typ or api.default_type
                scope = typ or ("all types" if len(api.biothing_types) > 1 else "")
                endpoints.append({
                    "label": " / ".join(part for part in (label, scope) if part) or str(api.API_NAME),
                    "query": query_url,
                    "fields": fields_url,
                    "annotation": f"{base}/{annotation_type}/" if annotation_type else None,
                })
        first = apis[0]
        examples = query_examples(first)
        fielded = [example for example in examples if ":" in example]
        page = _FRONT_PAGE.format(
            query_examples=esc(", ".join(examples[:4]), quote=True),
            filter_example=esc((fielded or examples)[-1], quote=True),
            title=esc(str(root.API_NAME)),
            description=esc(str(root.API_DESCRIPTION or "")),
            css=esc(static_url(first, "biothings.css"), quote=True),
            script=esc(static_url(first, "front.js"), quote=True),
            config=_script_json({"endpoints": endpoints}),
            endpoint_hidden=" hidden" if len(endpoints) == 1 else "",
            sections="".join(sections),
        )
        self.finish_page(page)


class DocsHandler(_PageHandler):
    """``/{ver}/docs``: the OpenAPI document rendered, with a "try it" form per operation."""

    name = "docs"

    def get(self):
        api = self.web_settings
        base = _base(api)
        page = _DOCS_PAGE.format(
            title=html.escape(str(api.API_NAME)),
            css=html.escape(static_url(api, "biothings.css"), quote=True),
            script=html.escape(static_url(api, "docs.js"), quote=True),
            spec=html.escape(f"{base}/spec", quote=True),
            config=_script_json({"spec": f"{base}/spec"}),
        )
        self.finish_page(page)


class StaticHandler(tornado.web.StaticFileHandler):
    """The pages' scripts and styles (``/_static/<file>``), packaged with biothings."""

    accepts_web_settings = False
    openapi = {}

    def initialize(self, path=STATIC_DIR, default_filename=None):
        super().initialize(path, default_filename)

    def set_extra_headers(self, path):
        self.set_header("X-Content-Type-Options", "nosniff")

    def write_error(self, status_code, **kwargs):
        self.set_header("Content-Type", formats.CONTENT_TYPES["json"])
        self.finish(formats.error_json(status_code, "Not Found." if status_code == 404 else self._reason))


class SpecHandler(BaseAPIHandler):
    """``/{ver}/spec``: the OpenAPI 3.1 document (JSON, or ``?format=yaml``)."""

    name = "spec"
    kwargs_name = "spec"

    def get(self):
        """The server URL is relative ("/": the host the document came from): a Host or
        X-Forwarded-Proto header cannot put another host in an answer cached in public."""
        self.parse_options()
        spec = copy.copy(cached_spec(self.application, self.web_settings))
        spec["servers"] = [{"url": "/"}]
        self.finish_result(spec)


_FRONT_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<link rel="stylesheet" href="{css}"></head><body>
<header><h1 id="title">{title}</h1><p class="description">{description}</p></header>
<main>
<form id="search" class="search" role="search">
  <label class="endpoint"{endpoint_hidden}>Search in <select id="endpoint" aria-label="API"></select></label>
  <div class="row"><input type="search" id="q" name="q" autocomplete="off" aria-label="query"
    placeholder="e.g. {query_examples}">
  <button type="submit" id="submit">Search</button></div>
  <div class="row options">
    <label>Facets <select id="facet-fields" multiple size="4" aria-label="facet fields"></select></label>
    <label>Filter <input type="text" id="filter" aria-label="filter" placeholder="e.g. {filter_example}"></label>
    <label>Size <input type="number" id="size" min="0" max="1000" value="10" aria-label="size"></label>
  </div>
</form>
<noscript><p>The query box needs JavaScript; the routes below work without it.</p></noscript>
<p id="summary" aria-live="polite"></p>
<div class="results"><div id="facets"></div><ol id="hits"></ol></div>
<nav id="pager" class="pager" hidden><button type="button" id="prev">Previous</button>
<button type="button" id="next">Next</button></nav>
{sections}
</main>
<script type="application/json" id="bt-config">{config}</script>
<script src="{script}"></script>
</body></html>"""

_DOCS_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · API docs</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<link rel="stylesheet" href="{css}"></head><body class="docs">
<header><h1 id="title">{title}</h1><p id="description"></p>
<p class="links"><a href="/">Front page</a> · <a href="{spec}">OpenAPI (JSON)</a> ·
<a href="{spec}?format=yaml">OpenAPI (YAML)</a></p></header>
<main id="operations"><p id="loading">Loading the OpenAPI document...</p>
<noscript><p>This page needs JavaScript; the OpenAPI document is linked above.</p></noscript></main>
<script type="application/json" id="bt-config">{config}</script>
<script src="{script}"></script>
</body></html>"""
