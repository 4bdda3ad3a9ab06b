"""OpenAPI 3.1 document of a running API, generated from its declared options."""

import biothings

_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string", list: "array", dict: "object"}

_ERROR = {
    "type": "object",
    "required": ["code", "success", "error"],
    "properties": {
        "code": {"type": "integer"},
        "success": {"type": "boolean", "const": False},
        "error": {"type": "string"},
    },
}


def _schema(option):
    kind = _TYPES.get(option.type, "string")
    if kind == "array":
        schema = {"type": "array", "items": {"type": ["string", "integer", "number", "boolean", "array"]}}
        if option.max is not None:
            schema["maxItems"] = option.max
    else:
        schema = {"type": kind}
        if option.max is not None:
            schema["maximum"] = option.max
        if option.min is not None:
            schema["minimum"] = option.min
    if option.enum:
        target = schema["items"] if kind == "array" else schema
        target["enum"] = list(option.enum)
    if option.default is not None:
        schema["default"] = option.default
    return schema


def _query_parameter(option, location="query"):
    parameter = {
        "name": option.name,
        "in": location,
        "required": bool(option.required) or location == "path",
        "schema": {"type": "string"} if location == "path" else _schema(option),
    }
    description = option.description or ""
    if option.aliases:
        description = (description + " " if description else "") + "Aliases: " + ", ".join(option.aliases) + "."
    if description:
        parameter["description"] = description
    if _TYPES.get(option.type) == "array" and location == "query":
        parameter["style"] = "form"
        parameter["explode"] = False
    return parameter


def _operation(web_settings, group, method, summary, path_params=()):
    optionset = web_settings.optionset(group, method)
    parameters = [_query_parameter(optionset.options[name], "path") for name in path_params
                  if name in optionset.options]
    responses = {
        "200": {"description": "Success", "content": {"application/json": {"schema": {}}}},
        "400": {"description": "Bad request", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "503": {"description": "Search engine unavailable", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
    }
    operation = {"summary": summary, "responses": responses}
    if method == "GET":
        parameters += [_query_parameter(option) for name, option in optionset.options.items()
                       if name not in path_params]
        if group == "annotation":
            responses["404"] = {"description": "Not found", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    else:
        properties = {name: _schema(option) for name, option in optionset.options.items()}
        required = [name for name, option in optionset.options.items() if option.required]
        body_schema = {"type": "object", "properties": properties}
        if required:
            body_schema["required"] = required
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": body_schema},
                "application/x-www-form-urlencoded": {"schema": body_schema},
            },
        }
    if parameters:
        operation["parameters"] = parameters
    return operation


def generate_spec(web_settings, server_url=None):
    """The OpenAPI document (a dict) of one API's standard routes."""
    prefix = "/" + web_settings.API_PREFIX.strip("/") if web_settings.API_PREFIX.strip("/") else ""
    version = "/" + web_settings.API_VERSION.strip("/") if web_settings.API_VERSION.strip("/") else ""
    base = prefix + version
    paths = {
        f"{base}/query": {
            "get": _operation(web_settings, "query", "GET", "Full-text query (Lucene syntax)"),
            "post": _operation(web_settings, "query", "POST", "Batch query: terms matched against scopes"),
        },
        f"{base}/metadata": {"get": _operation(web_settings, "metadata", "GET", "Build and source metadata")},
        f"{base}/metadata/fields": {"get": _operation(web_settings, "fields", "GET", "Fields of the mapping")},
        f"{prefix}/status": {"get": _operation(web_settings, "status", "GET", "Engine health")},
    }
    for biothing_type in web_settings.biothing_types:
        paths[f"{base}/{biothing_type}/{{id}}"] = {
            "get": _operation(web_settings, "annotation", "GET", f"One {biothing_type} by id", ("id",)),
        }
        paths[f"{base}/{biothing_type}"] = {
            "post": _operation(web_settings, "annotation", "POST", f"Several {biothing_type} documents by id"),
        }
        paths[f"{base}/{biothing_type}/query"] = paths[f"{base}/query"]
    spec = {
        "openapi": "3.1.0",
        "info": {
            "title": web_settings.API_NAME,
            "description": web_settings.API_DESCRIPTION,
            "version": str(web_settings.API_VERSION or biothings.__version__),
        },
        "paths": paths,
        "components": {"schemas": {"Error": _ERROR}},
    }
    if server_url:
        spec["servers"] = [{"url": server_url}]
    return spec
