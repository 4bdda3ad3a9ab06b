"""Front page and OpenAPI document."""

import html

import orjson

from biothings.web import formats
from biothings.web.handlers.base import BaseAPIHandler, BaseHandler
from biothings.web.openapi import generate_spec


class FrontPageHandler(BaseHandler):
    """``/``: the API's name, types and routes, and a query box."""

    name = "frontpage"

    def get(self):
        settings = self.application.biothings  # the root: every API of a config package
        apis = settings.all_settings()
        sections = []
        for api in apis:
            prefix = "/" + api.API_PREFIX.strip("/") if api.API_PREFIX.strip("/") else ""
            base = f"{prefix}/{api.API_VERSION}"
            routes = [f"{base}/query?q=", f"{base}/metadata", f"{base}/metadata/fields", f"{prefix}/status",
                      f"{base}/spec"] + [f"{base}/{typ}/&lt;id&gt;" for typ in api.biothing_types]
            items = "".join(f"<li><code>{route if '&lt;' in route else html.escape(route)}</code></li>"
                            for route in routes)
            types = ", ".join(html.escape(typ) for typ in api.biothing_types)
            sections.append(
                f'<section><h2>{html.escape(api.API_NAME)}</h2><p>{html.escape(api.API_DESCRIPTION)}</p>'
                f"<p>Types: {types}</p><ul>{items}</ul></section>")
        first = apis[0]
        prefix = "/" + first.API_PREFIX.strip("/") if first.API_PREFIX.strip("/") else ""
        page = _PAGE.replace("{title}", html.escape(settings.API_NAME)) \
            .replace("{sections}", "".join(sections)) \
            .replace("{query_url}", orjson.dumps(f"{prefix}/{first.API_VERSION}/query").decode())
        self.set_header("Content-Type", formats.CONTENT_TYPES["html"])
        self.finish(page)


class SpecHandler(BaseAPIHandler):
    """``/{ver}/spec``: the OpenAPI 3.1 document (JSON, or ``?format=yaml``)."""

    name = "spec"
    kwargs_name = "spec"

    def get(self):
        self.parse_options()
        spec = generate_spec(self.web_settings, f"{self.request.protocol}://{self.request.host}")
        self.finish_result(spec)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
form{display:flex;gap:.5rem;margin:1rem 0}input[type=search]{flex:1;padding:.5rem;font-size:1rem}
button{padding:.5rem 1rem}#results li{margin:.3rem 0}#facets{color:#555}
code{background:#f3f3f3;padding:0 .25rem}.err{color:#b00}
</style></head><body>
<h1>{title}</h1>
<form id="search"><input type="search" id="q" name="q" placeholder="e.g. cdk2, symbol:CDK2, name:&quot;cyclin dependent&quot;" aria-label="query">
<input type="text" id="facets-input" placeholder="facets, e.g. type_of_gene" aria-label="facets">
<button type="submit">Search</button></form>
<p id="summary"></p><div id="facets"></div><ol id="results"></ol>
{sections}
<script>
const QUERY_URL = {query_url};
function text(tag, value, cls) { const e = document.createElement(tag); e.textContent = value; if (cls) e.className = cls; return e; }
document.getElementById('search').addEventListener('submit', async (event) => {
  event.preventDefault();
  const params = new URLSearchParams({q: document.getElementById('q').value});
  const facets = document.getElementById('facets-input').value.trim();
  if (facets) params.set('facets', facets);
  const summary = document.getElementById('summary'), list = document.getElementById('results'), box = document.getElementById('facets');
  list.replaceChildren(); box.replaceChildren(); summary.textContent = 'Searching...'; summary.className = '';
  try {
    const response = await fetch(QUERY_URL + '?' + params.toString());
    const data = await response.json();
    if (!response.ok || data.success === false) { summary.textContent = data.error || response.statusText; summary.className = 'err'; return; }
    summary.textContent = data.total + ' hits in ' + data.took + ' ms';
    for (const hit of data.hits) {
      const item = document.createElement('li'); item.className = 'hit';
      const link = text('a', hit._id); link.href = QUERY_URL.replace(/query$/, '') + 'query?q=_id:' + encodeURIComponent(JSON.stringify(String(hit._id)));
      item.append(link, text('span', ' ' + [hit.symbol, hit.name].filter(Boolean).join(' - ')));
      list.append(item);
    }
    for (const [name, facet] of Object.entries(data.facets || {})) {
      box.append(text('h3', name));
      const ul = document.createElement('ul');
      for (const term of facet.terms) ul.append(text('li', term.term + ': ' + term.count));
      box.append(ul);
    }
  } catch (error) { summary.textContent = String(error); summary.className = 'err'; }
});
</script></body></html>"""
