"""OpenAPI 3.1 document of a running API, generated from its routes and declared options.

Every path comes from a route of the application (``APP_LIST`` as expanded for
this API, plus rules an app added); every parameter and request body property
comes from the options its handler declares (``QUERY_KWARGS``,
``ANNOTATION_KWARGS``, ..., including the ones an app adds). What a handler
answers is described by ``OPERATIONS`` (keyed by the handler's ``name``), or by
the handler's own ``openapi`` attribute: ``{(METHOD, path parameter count):
{...}}``, ``{}`` to keep a handler (an HTML page) out of the document.
"""

import re

import biothings

_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string", list: "array", dict: "object"}
_SCALAR = ["string", "integer", "number", "boolean"]


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


# ---------------------------------------------------------------- schemas
SCHEMAS = {
    "Error": {
        "type": "object",
        "description": "Every error, on every route.",
        "required": ["code", "success", "error"],
        "properties": {
            "code": {"type": "integer", "description": "The HTTP status."},
            "success": {"const": False},
            "error": {"type": "string"},
            "keyword": {"type": "string", "description": "The parameter at fault (400)."},
            "alias": {"description": "The name the client used for it."},
            "missing": {"type": "string"},
            "max": {"type": "number"},
            "min": {"type": "number"},
            "num": {"type": "number"},
            "allowed": {"type": "array"},
            "reason": {},
            "request_id": {"type": "string", "description": "Logged with the failure (500)."},
        },
    },
    "Document": {
        "type": "object",
        "description": "One document of the index, with its id.",
        "required": ["_id"],
        "properties": {"_id": {"type": "string"}, "_version": {"type": "integer"}},
        "additionalProperties": True,
    },
    "Hit": {
        "type": "object",
        "description": "A document that matched, with its score.",
        "required": ["_id"],
        "properties": {"_id": {"type": "string"}, "_score": {"type": ["number", "null"]}},
        "additionalProperties": True,
    },
    "FacetTerm": {
        "type": "object",
        "required": ["term", "count"],
        "properties": {"term": {"type": _SCALAR}, "count": {"type": "integer"}},
        "additionalProperties": _ref("Facet"),
    },
    "Facet": {
        "type": "object",
        "description": "Terms facet; nested facets appear inside each term.",
        "required": ["terms"],
        "properties": {
            "_type": {"type": "string"},
            "terms": {"type": "array", "items": _ref("FacetTerm")},
            "other": {"type": "integer"},
            "missing": {"type": "integer"},
            "total": {"type": "integer"},
        },
    },
    "QueryResult": {
        "type": "object",
        "required": ["hits"],
        "properties": {
            "took": {"type": "integer", "description": "Milliseconds."},
            "total": {"type": "integer"},
            "max_score": {"type": ["number", "null"]},
            "hits": {"type": "array", "items": _ref("Hit")},
            "facets": {"type": "object", "additionalProperties": _ref("Facet")},
            "_scroll_id": {"type": "string", "description": "With fetch_all: pass it as scroll_id for the next page."},
            "next": {"type": "string", "description": "With cursor or after, while hits remain: pass it as after "
                                                      "for the next page."},
        },
        "additionalProperties": True,
    },
    "ScrollEnd": {
        "type": "object",
        "description": "Past the last page of a scroll.",
        "required": ["success", "error"],
        "properties": {"success": {"const": False}, "error": {"type": "string"}},
    },
    "Annotation": {
        "description": "The document, or a list when several documents match the id.",
        "anyOf": [_ref("Document"), {"type": "array", "items": _ref("Document")}],
    },
    "BatchItem": {
        "description": "One hit of a term (or id), the term not found, or the term's own error.",
        "anyOf": [
            {"allOf": [_ref("Hit"), {"type": "object", "required": ["query"]}]},
            {"type": "object", "required": ["query", "notfound"],
             "properties": {"query": {}, "notfound": {"const": True}}},
            {"type": "object", "required": ["query", "error"],
             "properties": {"query": {}, "error": {"type": "string"}}},
        ],
    },
    "BatchResult": {"type": "array", "items": _ref("BatchItem")},
    "BatchLine": {
        "description": "One line of a streamed batch (NDJSON): a term's hits, the term not found, or its error.",
        "anyOf": [
            {"type": "object", "required": ["query", "hits"],
             "properties": {"query": {}, "total": {"type": "integer"}, "hits": {"type": "array", "items": _ref("Hit")}}},
            {"type": "object", "required": ["query", "notfound"],
             "properties": {"query": {}, "notfound": {"const": True}}},
            {"type": "object", "required": ["query", "error"],
             "properties": {"query": {}, "error": {"type": "string"}}},
        ],
    },
    "BatchResultWithTotal": {
        "type": "object",
        "required": ["hits"],
        "properties": {
            "max_total": {"type": "integer"},
            "hits": _ref("BatchResult"),
            "msg": {"type": "string"},
        },
    },
    "Metadata": {
        "type": "object",
        "properties": {
            "biothing_type": {"type": "string"},
            "build_date": {"type": "string"},
            "build_version": {"type": "string"},
            "src": {"type": "object"},
            "stats": {"type": "object"},
        },
        "additionalProperties": True,
    },
    "Fields": {
        "type": "object",
        "description": "Dotted field name -> its type in the mapping.",
        "additionalProperties": {
            "type": "object",
            "properties": {
                "type": {"type": "string"},
                "index": {"type": "boolean"},
                "searched_by_default": {"type": "boolean"},
            },
        },
    },
    "Status": {
        "type": "object",
        "required": ["success", "status"],
        "properties": {"success": {"type": "boolean"}, "status": {"type": "string"}},
        "additionalProperties": True,
    },
    "OpenAPI": {"type": "object", "required": ["openapi", "info", "paths"]},
}

_ERRORS = {
    "400": "Bad request: a parameter, the body or the query syntax.",
    "404": "Not found.",
    "405": "Method not allowed on this route.",
    "429": "Too many streams at once (MAX_CONCURRENT_STREAMS); see Retry-After.",
    "500": "Internal error (no details; logged with the request id).",
    "503": "Search engine unreachable, overloaded or timed out; see Retry-After.",
}

# ---------------------------------------------------------------- operations
# handler name -> {(method, path parameter count): what the operation does}.
# "group": the *_KWARGS declaring its options; "result": its 200 schema;
# "errors": statuses it answers beyond 400/500.
OPERATIONS = {
    "query": {
        ("GET", 0): {
            "summary": "Search {typ}",
            "description": "Lucene query-string syntax in `q` ({examples}, `a AND (b OR c) NOT d`); "
                           "`__all__` matches every document. `facets` adds terms facets; `fetch_all` scrolls; "
                           "`cursor=true` answers a `next` cursor, `after=<next>` the page after it.",
            "result": {"anyOf": [_ref("QueryResult"), _ref("ScrollEnd")]},
            "errors": ("503",),
        },
        ("POST", 0): {
            "summary": "Batch query {typ}",
            "description": "Each term of `q` is matched against the `scopes` fields; one entry per hit "
                           "(up to `size` per term) or per term not found, in input order. A body of one term "
                           "a line (`application/x-ndjson`: a JSON string, number or list a line; `text/plain`: "
                           "the line), the other parameters in the query string, is a streamed batch of up to "
                           "MAX_BATCH_STREAM_TERMS terms: one NDJSON line per term, in order.",
            "result": {"anyOf": [_ref("BatchResult"), _ref("BatchResultWithTotal")]},
            "request_content": {"application/x-ndjson": {"schema": {"type": "string"}},
                                "text/plain": {"schema": {"type": "string"}}},
            "result_content": {"application/x-ndjson": {"schema": {"type": "string",
                                                                   "description": "BatchLine objects, one a line."}}},
            "errors": ("429", "503"),
        },
    },
    "export": {
        ("GET", 0): {
            "summary": "Export every {typ} hit of a query",
            "description": "Every hit of `q` as one stream (chunked transfer): `ndjson` (one document a line), "
                           "`tsv` or `csv` (a header row, then one row a document; `fields` are the columns, "
                           "dotted paths, lists joined with `|`), or `json` (an array). The stream is pinned to "
                           "the index as it was at its start. An error after the first bytes closes the "
                           "connection before the end of the stream.",
            "result": {"type": "array", "items": _ref("Hit")},
            "errors": ("429", "503"),
        },
    },
    "annotation": {
        ("GET", 1): {
            "summary": "One {typ} by id",
            "description": "The document with that id (an id like `field:value` searches that field).",
            "path_params": ("id",),
            "result": _ref("Annotation"),
            "errors": ("404", "503"),
        },
        ("POST", 0): {
            "summary": "Several {typ} documents by id",
            "description": "One entry per id, in input order: the document, or `notfound`. At most 1000 ids.",
            "result": _ref("BatchResult"),
            "errors": ("503",),
        },
    },
    "metadata": {("GET", 0): {"summary": "Build and source metadata{of_typ}", "result": _ref("Metadata"),
                              "errors": ("404", "503")}},
    "fields": {("GET", 0): {"summary": "Fields of the mapping{of_typ}", "result": _ref("Fields"),
                            "errors": ("404", "503")}},
    "status": {
        ("GET", 0): {"summary": "Search engine health", "result": _ref("Status"), "errors": ("503",)},
        ("HEAD", 0): {"summary": "Search engine health (no body)", "result": None, "errors": ("503",)},
    },
    "spec": {("GET", 0): {"summary": "This OpenAPI document", "result": _ref("OpenAPI")}},
}

# Descriptions of the standard options (an option's own "description" wins).
DESCRIPTIONS = {
    "q": "The query: Lucene query-string syntax (GET); a list of terms (POST).",
    "fields": "Fields to return (dotted paths; `-x` excludes x; `all` for every field).",
    "size": "Hits to return (per term on POST).",
    "from": "Offset of the first hit.",
    "sort": "Sort fields; `-field` for descending. Default: by score.",
    "facets": "Fields to count terms of; `a(b)` nests b inside each term of a when allowed.",
    "facet_size": "Terms per facet.",
    "filter": "A query-string filter applied to hits and facets.",
    "post_filter": "A query-string filter applied to hits only (facets unchanged).",
    "fetch_all": "Scroll through every hit, one page per request; answers a `_scroll_id`.",
    "cursor": "Answer a `next` cursor while hits remain (cursor paging; the pages are pinned to the index "
              "as the first one saw it).",
    "after": "The `next` cursor of the previous page: answers the page after it (its query and sort come "
             "from the cursor). Altered or expired: 400.",
    "scroll_id": "The `_scroll_id` of the previous page.",
    "explain": "Add the scoring explanation to each hit.",
    "userquery": "A named query template of the server.",
    "scopes": "Fields each term is matched against (default: `_id`). A list of lists for compound terms.",
    "with_total": "Wrap the answer with the largest total of the terms.",
    "analyzer": "Analyzer of the match.",
    "dotfield": "Flatten documents to dotted keys.",
    "_sorted": "Sort the keys of each document.",
    "always_list": "Dotted fields always answered as a list.",
    "allow_null": "Dotted fields always present (null when absent).",
    "jmespath": "`parent.path|expression`: transform that node of each hit.",
    "jmespath_exclude_empty": "Drop the hits (and list items) whose jmespath result is empty.",
    "format": "Answer format.",
    "raw": "The engine's raw answer.",
    "rawquery": "The engine query that would run, without running it.",
    "id": "Document id(s).",
    "dev": "Add details for developers.",
    "search": "Keep field names containing this text.",
    "prefix": "Keep field names starting with this text.",
}

_FORMAT_TYPES = {"yaml": "text/x-yaml", "msgpack": "application/x-msgpack", "html": "text/html",
                 "ndjson": "application/x-ndjson", "tsv": "text/tab-separated-values", "csv": "text/csv"}
# formats whose answer has the JSON answer's structure (others: text, described by a string)
_STRUCTURED_FORMATS = ("yaml", "msgpack")


def _option_schema(option, body=False):
    kind = _TYPES.get(option.type, "string")
    if kind == "array":
        items = {}  # strings mostly; JSON bodies may send numbers, and lists for compound terms
        if option.enum:
            items = {"enum": list(option.enum)}
        schema = {"type": "array", "items": items}
        if option.max is not None:
            schema["maxItems"] = option.max
        if body:  # a JSON scalar counts as a one-element list
            schema = {"anyOf": [schema, {"type": _SCALAR}]}
    else:
        schema = {"type": kind}
        if kind in ("integer", "number"):
            if option.max is not None:
                schema["maximum"] = option.max
            if option.min is not None:
                schema["minimum"] = option.min
        if option.enum:
            schema["enum"] = list(option.enum)
    if option.default is not None and isinstance(option.default, (str, int, float, bool, list)):
        schema["default"] = option.default
    return schema


def _description(option):
    text = option.description or DESCRIPTIONS.get(option.name, "")
    if option.aliases:
        text = (text + " " if text else "") + "Aliases: " + ", ".join(option.aliases) + "."
    return text


def _parameter(option, location="query"):
    parameter = {"name": option.name, "in": location,
                 "required": True if location == "path" else bool(option.required)}
    parameter["schema"] = {"type": "string"} if location == "path" else _option_schema(option)
    description = _description(option)
    if description:
        parameter["description"] = description
    if location == "query" and _TYPES.get(option.type) == "array":
        parameter["style"] = "form"
        parameter["explode"] = False  # fields=a,b (a repeated key works too)
    return parameter


def _body_schema(options, body):
    properties = {}
    for name, option in options.items():
        schema = _option_schema(option, body=body)
        description = _description(option)
        if description:
            schema["description"] = description
        properties[name] = schema
    schema = {"type": "object", "properties": properties}
    required = [name for name, option in options.items() if option.required]
    if required:
        schema["required"] = required
    return schema


def _response(description, schema, formats):
    if schema is None:
        return {"description": description}
    content = {"application/json": {"schema": schema}}
    for fmt in formats:
        if fmt in _FORMAT_TYPES:
            content[_FORMAT_TYPES[fmt]] = {"schema": schema if fmt in _STRUCTURED_FORMATS else {"type": "string"}}
    return {"description": description, "content": content}


def _error_response(status):
    response = {"description": _ERRORS[status],
                "content": {"application/json": {"schema": _ref("Error")}}}
    if status in ("429", "503"):
        response["headers"] = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}
    return response


# ---------------------------------------------------------------- routes
_GROUP = re.compile(r"\((\?P<(\w+)>)?(?:[^()\\]|\\.)*\)")
_REGEX_LEFT = re.compile(r"(?<!\\)[\[\]()*+?|^$]")


def openapi_path(pattern, names=()):
    """``/v1/gene/([^/]+)/?$`` -> (``/v1/gene/{id}``, [``id``]); ``None`` for what can't be a path."""
    pattern = pattern.lstrip("^")
    if pattern.endswith("$"):
        pattern = pattern[:-1]
    if pattern.endswith("/?"):
        pattern = pattern[:-2]
    params = []

    def name_group(match):
        name = match.group(2) or (names[len(params)] if len(params) < len(names) else f"param{len(params) + 1}")
        params.append(name)
        return "{" + name + "}"

    path = _GROUP.sub(name_group, pattern)
    if _REGEX_LEFT.search(path):
        return None, []
    path = re.sub(r"\\(.)", r"\1", path) or "/"
    return path, params


def app_rules(application, web_settings):
    """``[(regex, handler class, kwargs)]`` of the running application serving ``web_settings``."""
    from tornado.routing import PathMatches
    rules = []
    for rule in application.wildcard_router.rules:
        if not isinstance(rule.matcher, PathMatches) or not isinstance(rule.target, type):
            continue
        kwargs = rule.target_kwargs or {}
        owner = kwargs.get("web_settings")
        if owner is not None and owner is not web_settings:
            continue  # another API of the same config package
        rules.append((rule.matcher.regex.pattern, rule.target, kwargs))
    return rules


def _implemented(handler):
    import tornado.web
    methods = [method.upper() for method in ("get", "post", "put", "patch", "delete", "head")
               if getattr(handler, method, None) is not getattr(tornado.web.RequestHandler, method)]
    return methods if "GET" in methods else [method for method in methods if method != "HEAD"]  # HEAD answers as GET


def _operations(handler):
    declared = getattr(handler, "openapi", None)
    if declared is not None:
        return declared
    known = OPERATIONS.get(getattr(handler, "name", None))
    if known is not None:
        return known
    return None  # undescribed: every implemented method, generically


def query_examples(web_settings):
    """``QUERY_EXAMPLES``, or generic ones from the mapping (``_exists_:FIELD``): the front
    page and the OpenAPI document never show another API's data."""
    examples = list(web_settings.QUERY_EXAMPLES or ())
    if examples:
        return examples
    found = web_settings.metadata.get()
    fields = [name for name, info in (found.fields if found is not None else {}).items()
              if isinstance(info, dict) and info.get("index") and info.get("type") != "object"]
    return ["__all__"] + [f"_exists_:{name}" for name in fields[:1]]


def _build_operation(web_settings, handler, method, info, path_params, biothing_type, operation_id):
    typ = biothing_type or ""
    group = info.get("group", getattr(handler, "kwargs_name", None))
    options = dict(web_settings.optionset(group, method).options) if group else {}
    operation = {
        "operationId": operation_id,
        "summary": info.get("summary", f"{method} {handler.__name__}").format(
            typ=typ or "documents", of_typ=f" of {typ}" if typ else ""),
        "tags": [info.get("tag") or typ or getattr(handler, "name", None) or "other"],
    }
    if info.get("description"):
        examples = ", ".join(f"`{example}`" for example in query_examples(web_settings))
        operation["description"] = info["description"].replace("{examples}", examples)
    parameters = []
    for name in path_params:
        option = options.pop(name, None)
        parameters.append(_parameter(option, "path") if option is not None else
                          {"name": name, "in": "path", "required": True, "schema": {"type": "string"}})
    if method in ("POST", "PUT", "PATCH") and options:
        operation["requestBody"] = {
            "required": any(option.required for option in options.values()),
            "description": "Parameters in a JSON (or YAML) body, or a form; the query string works too.",
            "content": {
                "application/json": {"schema": _body_schema(options, body=True)},
                "application/x-www-form-urlencoded": {
                    "schema": _body_schema(options, body=False),
                    "encoding": {name: {"style": "form", "explode": False} for name, option in options.items()
                                 if _TYPES.get(option.type) == "array"},
                },
            },
        }
        if not operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["encoding"]:
            del operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["encoding"]
        operation["requestBody"]["content"].update(info.get("request_content", {}))
    else:
        parameters += [_parameter(option) for option in options.values()]
    if parameters:
        operation["parameters"] = parameters
    formats = []
    if "format" in options and options["format"].enum:
        formats = [fmt for fmt in options["format"].enum if fmt != "json"]
    result = info.get("result", {})
    if "media_type" in info:  # not JSON: e.g. the Prometheus text of /metrics
        responses = {"200": {"description": info.get("result_description", "Success"),
                             "content": {info["media_type"]: {"schema": {"type": "string"}}}}}
    else:
        responses = {"200": _response("Success", result, formats)}
        if info.get("result_content"):
            responses["200"]["content"].update(info["result_content"])
    for status in ("400",) + tuple(info.get("errors", ())) + ("500",):
        responses.setdefault(status, _error_response(status))
    operation["responses"] = responses
    return operation


def generate_spec(web_settings, server_url=None, rules=None):
    """The OpenAPI document (a dict) of one API.

    ``rules``: ``[(path regex, handler class, kwargs)]`` of the running app
    (``app_rules``); by default the routes ``APP_LIST`` expands to.
    """
    if rules is None:
        from biothings.web.routing import expand_app_list
        rules = expand_app_list(web_settings)
    paths, operation_ids, tags = {}, set(), {}
    for pattern, handler, kwargs in rules:
        operations = _operations(handler)
        if operations is not None and not operations:
            continue  # a page, not an API operation
        if operations is None:
            described = [(method, None) for method in _implemented(handler)]
        else:
            described = list(operations.items())
        biothing_type = (kwargs or {}).get("biothing_type")
        for key, info in described:
            method = key if isinstance(key, str) else key[0]
            info = info or {}
            path, params = openapi_path(pattern, info.get("path_params", ()))
            if path is None or (not isinstance(key, str) and len(params) != key[1]):
                continue
            if method not in _implemented(handler):
                continue
            item = paths.setdefault(path, {})
            if method.lower() in item:
                continue
            base_id = re.sub(r"[^A-Za-z0-9]+", "_", f"{method.lower()}{path}").strip("_")
            operation_id, n = base_id, 1
            while operation_id in operation_ids:
                n += 1
                operation_id = f"{base_id}_{n}"
            operation_ids.add(operation_id)
            operation = _build_operation(web_settings, handler, method, info, params, biothing_type, operation_id)
            tags.setdefault(operation["tags"][0], None)
            item[method.lower()] = operation
    spec = {
        "openapi": "3.1.0",
        "info": {
            "title": str(web_settings.API_NAME),
            "description": str(web_settings.API_DESCRIPTION or ""),
            "version": str(web_settings.API_VERSION or biothings.__version__),
        },
        "tags": [{"name": tag} for tag in tags],
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }
    if server_url:
        spec["servers"] = [{"url": server_url}]
    return spec
