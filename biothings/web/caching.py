"""ETags from the index build and the request; ``If-None-Match`` -> 304.

An answer of a BioThings API only changes when its index is rebuilt (or the
API's configuration or software changes), so its ETag is computed from

- a *build token* per biothing type: a hash of the index name, the engine's
  ``index_version`` (the build behind it), its ``_meta`` (``build_version``,
  ``build_date``, sources...) and its document count, taken from the metadata cache
  and computed once per metadata refresh;
- a *config token* per API: the software version and every setting value,
  computed once;
- the request: method, path, query arguments (sorted by name) and format.

The body is never hashed, so a handler can answer ``304 Not Modified`` before
running the query (``check_not_modified``). Only successful, cacheable GET and
HEAD answers get one: never errors, ``fetch_all``/``scroll_id``, ``__any__``,
``rawquery``, ``/status`` or POST batches (HTTP revalidation is for GET/HEAD).
A rebuilt index changes the ETags of its API once the metadata cache has
noticed it (``METADATA_CHECK_INTERVAL``, 1 s by default).
"""

import hashlib
import weakref

import orjson

import biothings

_config_tokens = weakref.WeakKeyDictionary()


def _stable(value):
    """A JSON-able stand-in for a setting value (classes by name, not address)."""
    name = getattr(value, "__qualname__", None)
    module = getattr(value, "__module__", None)
    if name is not None:
        return f"{module}.{name}"
    return type(value).__qualname__


def config_token(web_settings):
    """A hash of the software version and the API's settings (computed once)."""
    token = _config_tokens.get(web_settings)
    if token is None:
        try:
            data = orjson.dumps([biothings.__version__, web_settings._values], default=_stable,
                                option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
        except TypeError:  # keys orjson cannot sort: the settings' names only
            data = orjson.dumps([biothings.__version__, sorted(web_settings._values)])
        token = _config_tokens[web_settings] = hashlib.blake2b(data, digest_size=8).hexdigest()
    return token


def builds_of(web_settings, biothing_type):
    """Build tokens of the index(es) an answer comes from; ``None`` when unknown."""
    types = web_settings.metadata.types
    if biothing_type is not None:
        found = types.get(biothing_type)
        return found.build_token if found is not None else None
    if not types:
        return None
    return "+".join(types[name].build_token for name in sorted(types))


def request_etag(handler):
    """The ETag (quoted) of a handler's answer, or ``None`` when it gets none."""
    settings = handler.web_settings
    builds = builds_of(settings, handler.biothing_type)
    if builds is None:
        return None
    request = handler.request
    digest = hashlib.blake2b(digest_size=12)
    # GET and HEAD (the only methods here) share an ETag: a HEAD answers with the GET's headers
    digest.update(f"{config_token(settings)}|{builds}|GET|{request.path}|{handler.format}".encode())
    for key in sorted(request.query_arguments):
        digest.update(b"\x00" + key.encode())
        for value in request.query_arguments[key]:
            digest.update(b"\x01" + value)
    return f'"{digest.hexdigest()}"'


def etag_of(handler):
    """``request_etag`` once per request; ``None`` for uncacheable answers."""
    if not handler.cacheable or not handler.use_etag or handler.request.method not in ("GET", "HEAD"):
        return None
    if not handler.web_settings.ETAG:
        return None
    if handler._etag is False:
        handler._etag = request_etag(handler)
    return handler._etag


def check_not_modified(handler):
    """Set the ETag of a cacheable answer; True (and a 304 finished) when the
    client already has it (``If-None-Match``)."""
    etag = etag_of(handler)
    if etag is None:
        return False
    handler.set_header("Etag", etag)
    if "If-None-Match" not in handler.request.headers or not handler.check_etag_header():
        return False
    max_age = handler.cache_max_age()
    if max_age:
        handler.set_header("Cache-Control", f"max-age={max_age}, public")
    handler.set_status(304)
    handler.finish()
    return True
