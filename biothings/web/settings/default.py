"""Default settings of a BioThings API.

A config module overrides any of these by defining the same name; the
environment overrides both (``ES_HOST=http://es:9200``, ``ALLOW_RANDOM_QUERY=1``,
``ES_INDICES='{"gene": "genes"}'``): values are parsed to the type of the
default (str, int, float, bool, or list/dict as JSON).

Settings are checked when an API starts: a name that is not one of these (a typo
such as ``ES_QUERY_BUILDR``) is an error with a did-you-mean, unless the config lists
it in ``APP_SETTINGS`` (settings of its own) or it names option declarations
(``*_KWARGS``); a value of another type than its default's (or the annotation's,
where more than one type is accepted) is an error naming the expected type.

Reading a dict or list default from this module gives a new copy each time, so a
config may write ``QUERY_KWARGS["GET"]["species"] = {...}`` after importing it:
only that config's API changes.
"""

import os

# ---------------------------------------------------------------- engine
# Elasticsearch (7, 8, 9) or OpenSearch (1-3) URL(s), comma separated; the client
# is chosen from the cluster's GET / at start-up. Empty: the embedded engine serves
# the indexes found in EMBEDDED_DATA_DIR.
ES_HOST: str | list = ""
# Extra keyword arguments of the cluster's client (``AsyncElasticsearch``, or
# ``AsyncOpenSearch`` for OpenSearch): api_key, basic_auth, ca_certs, ...
ES_ARGS = {}
# biothing type -> index (or alias) name. The first type is the default.
ES_INDICES = {"doc": "biothings"}
# Seconds before a request to the engine is abandoned (answered with 503).
ES_REQUEST_TIMEOUT: float = 10
# HTTP connections kept per cluster node (the clients' default of 10
# queues requests under load).
ES_CONNECTIONS = 64
# fetch_all: hits per page.
ES_SCROLL_SIZE = 1000
# fetch_all: how long a scroll context lives between two pages.
ES_SCROLL_TIME = "1m"
# The loader refuses to replace a live index by a build with no document, or with
# fewer documents than this fraction of the live index's (a file that lost its
# data): exit code 1, the live index untouched; --allow-shrink loads it anyway.
LOAD_SHRINK_LIMIT = 0.5
# Where the embedded engine keeps its indexes (a relative path is relative to the
# config file's folder, not to the working directory).
EMBEDDED_DATA_DIR: str | os.PathLike = ".biothings_data"
# index name -> {"documents": path, "mapping": path, "metadata": path}: built
# into the embedded engine at start-up when the index is absent.
EMBEDDED_DATA_FILES = {}

# ---------------------------------------------------------------- routes
# Path prefix of every route but the front page (e.g. "mygene").
API_PREFIX = ""
# Version segment of the API routes ({ver}).
API_VERSION = "v1"
# (pattern, handler class or dotted name[, initialize kwargs]). Patterns may use
# {pre} (API_PREFIX), {ver} (API_VERSION) and {typ} (each key of ES_INDICES).
# Order matters: the first match wins.
APP_LIST = [
    (r"/", "biothings.web.handlers.FrontPageHandler"),
    (r"/{pre}/status", "biothings.web.handlers.StatusHandler"),
    (r"/{pre}/{ver}/spec/?", "biothings.web.handlers.SpecHandler"),
    (r"/{pre}/{ver}/docs/?", "biothings.web.handlers.DocsHandler"),
    (r"/{pre}/_static/(.*)", "biothings.web.handlers.StaticHandler"),
    (r"/{pre}/{ver}/{typ}/query/?", "biothings.web.handlers.QueryHandler"),
    (r"/{pre}/{ver}/{typ}/export/?", "biothings.web.handlers.ExportHandler"),
    (r"/{pre}/{ver}/{typ}/metadata/fields/?", "biothings.web.handlers.MetadataFieldHandler"),
    (r"/{pre}/{ver}/{typ}/metadata/?", "biothings.web.handlers.MetadataSourceHandler"),
    (r"/{pre}/{ver}/{typ}/([^/]+)/?", "biothings.web.handlers.BiothingHandler"),
    (r"/{pre}/{ver}/{typ}/?", "biothings.web.handlers.BiothingHandler"),
    (r"/{pre}/{ver}/query/?", "biothings.web.handlers.QueryHandler"),
    (r"/{pre}/{ver}/export/?", "biothings.web.handlers.ExportHandler"),
    (r"/{pre}/{ver}/metadata/fields/?", "biothings.web.handlers.MetadataFieldHandler"),
    (r"/{pre}/{ver}/metadata/?", "biothings.web.handlers.MetadataSourceHandler"),
    (r"/{pre}/metadata/fields/?", "biothings.web.handlers.MetadataFieldHandler"),
    (r"/{pre}/metadata/?", "biothings.web.handlers.MetadataSourceHandler"),
]

# ---------------------------------------------------------------- API
# Names of settings of the app's own (read by its builder or handlers), e.g.
# ["SPECIES_TAXIDS"]: any other name this file does not define is an error.
APP_SETTINGS = []
# Shown on the front page and in the OpenAPI document.
API_NAME = "BioThings API"
# One line about the API (front page, OpenAPI document).
API_DESCRIPTION = "A BioThings query API."
# Example query strings of this API's data, shown on the front page and in the
# OpenAPI document (e.g. ["cdk2", "symbol:CDK2"]). Empty: generic ones made from
# the mapping (__all__, _exists_:FIELD).
QUERY_EXAMPLES = []
# Fields an annotation id is matched against when nothing else applies.
ANNOTATION_DEFAULT_SCOPES = ["_id"]
# [(regex, scopes)]: an id fully matching regex is looked up in scopes,
# e.g. [("rs[0-9]+", ["dbsnp.rsid"])]. A regex with a named group "term"
# searches only that part; a group "scope" names the field itself.
ANNOTATION_ID_REGEX_LIST = []
# Most documents one annotation id may return.
ANNOTATION_MAX_MATCH = 1000
# q=__any__ answers a random document.
ALLOW_RANDOM_QUERY = False
# facets=a(b) nests facet b inside each bucket of a.
ALLOW_NESTED_AGGS = False
# Deepest facet nesting allowed.
MAX_AGGS_DEPTH = 3
# Most facet buckets one query may ask for (facet_size per facet, multiplied
# through nesting); Elasticsearch's own search.max_buckets is 65,536.
MAX_FACET_BUCKETS = 65536
# Named query templates: USERQUERY_DIR/NAME/query*.txt (+ filter*.txt).
USERQUERY_DIR = ""
# {field path: source}: the objects at that path of each document carry the license of
# that source of the metadata (e.g. {"snpeff.ann": "snpeff"}), as a source's own path does.
LICENSE_TRANSFORM = {}
# Allow the raw engine answer (raw) and the engine query (rawquery) to clients.
ALLOW_RAW = True
# Lucene leading wildcards (*abc) force a scan of every term: off by default.
ALLOW_LEADING_WILDCARD = False
# Longest accepted q string (characters).
MAX_QUERY_LENGTH = 10000
# Deepest page reachable with from + size (Elasticsearch's max_result_window).
MAX_RESULT_WINDOW = 10000

# ---------------------------------------------------------------- answer shaping
# Seconds the shaping of one answer (transform, hooks, serialization) may take on
# the event loop; past it the work is interrupted and the client gets a JSON 503
# (logged with its request id), so no request can hold a worker. 0: no limit.
TRANSFORM_TIMEOUT = 5.0
# Longest jmespath parameter (characters); longer: 400.
JMESPATH_MAX_LENGTH = 2000
# Most values (objects, lists and scalars) a jmespath result may have per hit;
# more: 400. Results whose parts repeat (`{a: @, b: @}`) count every copy.
JMESPATH_MAX_VALUES = 100000

# ---------------------------------------------------------------- request budgets
# Seconds the engine work of one request (searches, aggregations, sorting) may
# take, on every engine: past it the work is abandoned (Elasticsearch gets it as
# each search's "timeout" too) and the client gets a JSON 503 with Retry-After.
# Work for a client that has gone is abandoned as well. 0: no limit.
SEARCH_TIMEOUT: float = 10
# Most hits one request may ask for: size times the number of terms of a batch
# (checked before searching), and most hits one answer may hold (annotation
# batches: an id can match several documents). More: 400 naming it, with max and num.
MAX_ANSWER_HITS = 10000
# Largest answer, in bytes as serialized; larger: 400 naming it, with max.
MAX_ANSWER_BYTES = 50 * 1024 * 1024
# After answers of this many bytes in all (or an abandoned search), the process
# gives the memory it freed back to the system (glibc's malloc_trim, from a
# thread, once no request is in flight, at most every 10 s). 0: never.
MEMORY_TRIM_BYTES = 64 * 1024 * 1024
# A worker process that, after such a trim and with no request in flight, still
# holds this many bytes more memory than at start-up (Python keeps a 1 MiB arena
# while one object in it lives) starts again in place: same process id and
# listening sockets, new connections wait in the backlog for its start-up (half a
# second for the demo API), idle keep-alive connections are closed. Only under index.py, on
# Linux, with MEMORY_TRIM_BYTES set. 0: never.
MEMORY_RESTART_BYTES = 64 * 1024 * 1024

# ---------------------------------------------------------------- whole result sets
# Secret that signs the cursors of cursor paging (next / after=): the same on every
# host behind one name, so any of them continues any cursor. Empty: a random key
# kept in EMBEDDED_DATA_DIR/.cursor-key, shared by the processes of one machine.
CURSOR_SECRET = ""
# Seconds a cursor stays valid after its page (a cluster keeps the point in time
# of its result set that long); an older cursor: 400 saying it expired.
CURSOR_KEEP_ALIVE: float = 300
# Hits fetched from the engine per page of an export stream (memory held per
# stream: about one page, plus the next one being fetched).
EXPORT_PAGE_SIZE = 1000
# Most streams (exports and streamed batches) one process serves at once; one
# more: 429 with Retry-After. 0: no limit.
MAX_CONCURRENT_STREAMS = 4
# Seconds one stream may last; past it the connection is closed before the end
# of the stream (the client sees a truncated transfer). 0: no limit.
STREAM_TIMEOUT: float = 3600
# Most terms of a streamed batch (POST /query with an NDJSON or text body, one
# term a line); more: 400 before any answer line.
MAX_BATCH_STREAM_TERMS = 100000
# Content codings offered to clients, in the server's order of preference among
# those a client accepts equally (Accept-Encoding): "zstd", "gzip". []: never compressed.
COMPRESSION = ["zstd", "gzip"]
# Answers of at least this many bytes are compressed when the client accepts it
# (streams always are); smaller ones gain too little for the CPU.
COMPRESS_MIN_BYTES = 1024

# ---------------------------------------------------------------- query strings
# Expensive queries, as Elasticsearch's search.allow_expensive_queries: regular
# expressions (/.../), leading wildcards (*abc), ranges over text fields and more
# than MAX_FUZZY_TERMS fuzzy terms (abc~) in one query string. Off: such a query
# (q, filter, post_filter, a userquery template) is a 400 naming this setting.
ALLOW_EXPENSIVE_QUERIES = False
# Fuzzy terms (abc~) one query string may hold while expensive queries are off.
MAX_FUZZY_TERMS = 5
# Most terms, phrases, ranges and wildcards one query string may hold
# (Elasticsearch's max_clause_count); more: 400.
MAX_QUERY_CLAUSES = 1024
# Deepest nesting of parentheses in a query string; deeper: 400.
MAX_QUERY_DEPTH = 30
# Longest regular expression (/.../) in characters (Elasticsearch's
# index.max_regex_length); longer: 400.
MAX_REGEX_LENGTH = 1000

# ---------------------------------------------------------------- HTTP
# Cache-Control max-age of successful GET responses; 0 disables the header.
CACHE_MAX_AGE = 604800
# Per handler name (annotation, query, metadata, fields, status, frontpage).
CACHE_MAX_AGE_BY_HANDLER = {}
# CORS: Access-Control-Allow-Origin of every API response (empty: none).
ACCESS_CONTROL_ALLOW_ORIGIN = "*"
# CORS: request headers allowed by OPTIONS preflight answers.
ACCESS_CONTROL_ALLOW_HEADERS = "Content-Type, Depth, User-Agent, X-File-Size, X-Requested-With, If-Modified-Since, X-File-Name, Cache-Control, Authorization"
# Largest request body accepted, in bytes (more: a JSON 413, see docs/limits.md).
MAX_BODY_SIZE = 10 * 1024 * 1024
# Longest request URI (path and query string), in characters (more: a JSON 414).
MAX_URL_LENGTH = 16384
# /status also fetches this document: {"id": "1017", "index": "genes"} (index:
# the first type's when absent); 503 naming it when it cannot be fetched. {}: off.
STATUS_CHECK = {}
# Seconds between background refreshes of /metadata and field lists.
METADATA_REFRESH_INTERVAL: float = 300
# Seconds between checks that an index was reloaded (the loader swapped in a new
# build, or moved the alias); a reload refreshes /metadata, field lists and ETags
# at once. One cheap engine call per type. 0: only the refresh above.
METADATA_CHECK_INTERVAL: float = 1
# ETag on successful GET/HEAD answers, derived from the index build (the
# _meta of the type's index: build_version, build_date, ...) and the request;
# If-None-Match with it answers 304 without running the query.
ETAG = True

# ---------------------------------------------------------------- HTTP server
# The HTTP/1.1 server: "biothings" (biothings.web.httpserver: asyncio and
# llhttp, the fast one) or "tornado" (tornado's own HTTPServer, the fallback).
# `python index.py --http=tornado` overrides it. Differences: docs/limits.md.
HTTP_SERVER = "biothings"
# Largest request head (request line and headers), in bytes; more: a JSON 431,
# then the connection closes (tornado's server closes without an answer).
HTTP_MAX_HEADER_SIZE = 65536
# Seconds a client has to send a whole request head, counted from its first
# byte (and to start its first request on a new connection); later: a JSON
# 408, then the connection closes. 0: no timeout (as for the three below).
HTTP_HEADER_TIMEOUT = 20.0
# Seconds a client has to send a request body once its head arrived; later: a
# JSON 408 (or the answer already sent), then the connection closes.
HTTP_BODY_TIMEOUT = 60.0
# Seconds a keep-alive connection may stay idle between two requests; then it
# is closed. Keep it above the keep-alive timeout of a proxy in front (nginx's
# upstream keepalive_timeout: 60 s).
HTTP_IDLE_TIMEOUT = 75.0
# Seconds a client that does not read its answers (the send buffer stays full)
# keeps its connection; then the connection is dropped and its buffer freed.
HTTP_WRITE_TIMEOUT = 30.0
# Direct peers (addresses or networks) whose X-Forwarded-For, X-Real-Ip and
# X-Forwarded-Proto / X-Scheme headers are trusted for the client's address and
# scheme (access log, the OpenAPI document's server URL); from any
# other peer these headers are ignored. Default: loopback (a proxy on the same
# machine); [] trusts no one.
HTTP_TRUSTED_PROXIES = ["127.0.0.0/8", "::1"]

# ---------------------------------------------------------------- observability
# Prometheus metrics (requests, latency, engine calls, in-flight) served at
# this path of the application; empty: no metrics collected or served.
METRICS_PATH = "/metrics"
# "host:port" serving METRICS_PATH apart from the API (e.g. "127.0.0.1:9100",
# reachable by the scraper only; the API's own port then answers 404 there).
# Empty: served on the API's port, to anyone unless AUTH_REQUIRED_ROUTES names
# "metrics" (a bearer token is then needed).
METRICS_ADDRESS = ""
# Access log of every request (logger "biothings.access"): "text" (one
# human-readable line), "json" (one JSON object a line: time, method, path,
# status, duration_ms, request_id, remote_ip, user_agent, ...) or "off".
ACCESS_LOG_FORMAT = "text"
# Lowest level of access log lines written: WARNING (the default: 4xx, 5xx and
# slow requests), INFO (every request: about 30 us of CPU each, 7-12% of a fast
# request; nginx in front usually logs them already, /metrics counts them all)
# or ERROR (5xx only).
ACCESS_LOG_LEVEL: str | int = "WARNING"
# A successful request slower than this many milliseconds is logged at
# WARNING (0: never).
ACCESS_LOG_SLOW_MS: float = 1000

# ---------------------------------------------------------------- authentication
# Off by default. Handler names whose requests need "Authorization: Bearer <token>"
# (annotation, query, metadata, fields, status, spec, docs, frontpage, metrics), or ["*"] for all.
# Missing or bad token: 401 with WWW-Authenticate; provider unreachable: 503.
AUTH_REQUIRED_ROUTES: list | str = []
# Tokens accepted as they are: a list, or {token: subject}.
AUTH_STATIC_TOKENS: list | dict | str = []
# OpenID Connect issuer URL: JWTs are checked against its JWKS, found through
# {issuer}/.well-known/openid-configuration (needs PyJWT[crypto]).
AUTH_OIDC_ISSUER = ""
# Required "aud" claim of tokens: this API's name at the provider. Required when
# AUTH_OIDC_ISSUER or AUTH_INTROSPECTION_URL is set (empty: a start-up error, since
# tokens minted for the provider's other clients would be accepted).
AUTH_OIDC_AUDIENCE = ""
# JWT signature algorithms accepted (never "none" or HMAC with a public key).
AUTH_OIDC_ALGORITHMS = ["RS256", "ES256", "PS256"]
# JWKS URL when the issuer has no discovery document.
AUTH_OIDC_JWKS_URL = ""
# Token introspection endpoint (RFC 7662), the fallback for opaque tokens
# (default: the issuer's introspection_endpoint).
AUTH_INTROSPECTION_URL = ""
# This API's client id at the introspection endpoint.
AUTH_INTROSPECTION_CLIENT_ID = ""
# This API's client secret at the introspection endpoint.
AUTH_INTROSPECTION_CLIENT_SECRET = ""
# Seconds the discovery document and keys are cached.
AUTH_JWKS_CACHE_SECONDS: float = 300
# Seconds before a call to the identity provider counts as failed (a 503).
AUTH_PROVIDER_TIMEOUT: float = 5
# Seconds of clock skew tolerated on "exp" and "nbf".
AUTH_LEEWAY: float = 30
# Seconds an introspection answer is reused, active (never past the token's
# "exp") or not: a token sent again in that time costs no call. 0: no cache.
AUTH_INTROSPECTION_CACHE_SECONDS: float = 60
# Most calls a second to the identity provider (introspection, keys, discovery),
# whatever tokens clients send; past it: 503 with Retry-After. 0: no cap.
AUTH_PROVIDER_CALLS_PER_SECOND: float = 10

# ---------------------------------------------------------------- options
# Every request parameter, declared once: type (str, int, float, bool or list),
# default, alias, max, min, enum, required, description. Apps extend these
# (e.g. QUERY_KWARGS["GET"]["species"] = {...}: a copy, see the top of this file)
# and declare options of their own handlers as NAME_KWARGS.
COMMON_KWARGS = {
    "fields": {"type": list, "default": None, "alias": ["field", "_source"], "max": 1000},
    "dotfield": {"type": bool, "default": False},
    "_sorted": {"type": bool, "default": True},
    "always_list": {"type": list, "default": None, "max": 1000},
    "allow_null": {"type": list, "default": None, "max": 1000},
    "jmespath": {"type": str, "default": None},
    "jmespath_exclude_empty": {"type": bool, "default": False},
    "format": {"type": str, "default": "json", "enum": ["json", "yaml", "html", "msgpack"]},
    "raw": {"type": bool, "default": False},
    "rawquery": {"type": bool, "default": False},
}
_QUERY_COMMON = {
    **COMMON_KWARGS,
    "size": {"type": int, "default": 10, "alias": ["limit"], "max": 1000, "min": 0},
    "from": {"type": int, "default": 0, "alias": ["skip"], "max": 10000, "min": 0},
    "sort": {"type": list, "default": None, "max": 10},
    "filter": {"type": str, "default": None},
    "post_filter": {"type": str, "default": None},
}
# Parameters of /query, per method (GET: search, POST: batch).
QUERY_KWARGS = {
    "GET": {
        **_QUERY_COMMON,
        "q": {"type": str, "default": None},
        "facets": {"type": list, "default": None, "alias": ["aggs"], "max": 1000},
        "facet_size": {"type": int, "default": 10, "max": 1000, "min": 0},
        "fetch_all": {"type": bool, "default": False},
        "scroll_id": {"type": str, "default": None},
        "explain": {"type": bool, "default": False},
        "userquery": {"type": str, "default": None, "alias": ["userfilter"]},
        "cursor": {"type": bool, "default": False},
        "after": {"type": str, "default": None},
    },
    "POST": {
        **_QUERY_COMMON,
        "q": {"type": list, "required": True, "max": 1000},
        "scopes": {"type": list, "default": None, "max": 1000},
        "with_total": {"type": bool, "default": False},
        "analyzer": {"type": str, "default": None},
    },
}
# Parameters of /export: every hit of a query, streamed.
EXPORT_KWARGS = {
    "GET": {
        **COMMON_KWARGS,
        "q": {"type": str, "required": True},
        "sort": _QUERY_COMMON["sort"],
        "filter": _QUERY_COMMON["filter"],
        "post_filter": _QUERY_COMMON["post_filter"],
        "userquery": {"type": str, "default": None, "alias": ["userfilter"]},
        "format": {"type": str, "default": "ndjson", "enum": ["ndjson", "tsv", "csv", "json"]},
    },
}
# Parameters of /{typ}/<id> (GET) and /{typ} (POST: batch of ids).
ANNOTATION_KWARGS = {
    "GET": {**COMMON_KWARGS, "id": {"type": str, "required": True}},
    "POST": {**COMMON_KWARGS, "id": {"type": list, "required": True, "alias": ["ids"], "max": 1000}},
}
# Parameters of /metadata.
METADATA_KWARGS = {
    "GET": {
        "dev": {"type": bool, "default": False},
        "raw": {"type": bool, "default": False},
        "format": COMMON_KWARGS["format"],
        "_sorted": COMMON_KWARGS["_sorted"],
    },
}
# Parameters of /metadata/fields.
FIELDS_KWARGS = {
    "GET": {
        **METADATA_KWARGS["GET"],
        "search": {"type": str, "default": None},
        "prefix": {"type": str, "default": None},
    },
}
# Parameters of /status (GET and HEAD).
STATUS_KWARGS = {"GET": {"dev": {"type": bool, "default": False}, "format": COMMON_KWARGS["format"]}}
STATUS_KWARGS["HEAD"] = STATUS_KWARGS["GET"]

# ---------------------------------------------------------------- pipeline
# Classes (or dotted names) of the pipeline stages; subclass to customise.
ES_QUERY_BUILDER: str | type = "biothings.web.pipeline.ESQueryBuilder"
# Runs the built query on the engine.
ES_QUERY_BACKEND: str | type = "biothings.web.pipeline.ESQueryBackend"
# Turns engine answers into API answers.
ES_RESULT_TRANSFORM: str | type = "biothings.web.pipeline.ESResultTransform"

# ---------------------------------------------------------------- logging
# Level of the "biothings" loggers (DEBUG, INFO, WARNING, ...).
LOGGING_LEVEL: str | int = "INFO"
# Parameters of /{ver}/spec (the OpenAPI document).
SPEC_KWARGS = {"GET": {"format": COMMON_KWARGS["format"], "_sorted": {"type": bool, "default": False}}}


# ---------------------------------------------------------------- (not settings)
# A dict or list default is handed out as a new deep copy at every read (see the top
# of this file): the module keeps them out of its namespace, behind __getattr__.
import copy as _copy  # noqa: E402

_MUTABLE = {_name: _value for _name, _value in list(globals().items())
            if _name.isupper() and not _name.startswith("_") and isinstance(_value, (dict, list))}
for _name in _MUTABLE:
    del globals()[_name]


def __getattr__(name):
    if name in _MUTABLE:
        return _copy.deepcopy(_MUTABLE[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_MUTABLE))


def settings():
    """Every default setting, ``{name: value}``, dicts and lists as new copies."""
    found = {name: value for name, value in globals().items() if name.isupper() and not name.startswith("_")}
    found.update(_copy.deepcopy(_MUTABLE))
    return found


def types():
    """The types each setting accepts: its annotation's, else its default's (an int
    setting annotated float accepts both)."""
    declared = {name: getattr(hint, "__args__", (hint,)) for name, hint in __annotations__.items()}
    return {name: declared.get(name, (type(value),)) for name, value in settings().items()}
