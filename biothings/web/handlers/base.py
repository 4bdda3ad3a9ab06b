"""Base handlers: settings access, options, formats, CORS, caching, JSON errors."""

import asyncio
import concurrent.futures
import logging
import os
import time

import orjson
import tornado.web
import yaml

from biothings.web import caching, compression, formats, watchdog
from biothings.web.accesslog import request_id as _request_id
from biothings.web.engines.errors import EngineError, EngineUnavailable, ResultSetGone
from biothings.web.options import OptionError
from biothings.web.pipeline.errors import PipelineError

logger = logging.getLogger("biothings.web.handlers")

# answers with this many entries (hits) or more are shaped in a thread, off the event loop
OFF_LOOP_ENTRIES = 64
_shaping_pool = None


def shaping_pool():
    """The threads that shape large answers (made on first use, in the serving process)."""
    global _shaping_pool
    if _shaping_pool is None:
        _shaping_pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="answer-shaping")
    return _shaping_pool


def _forget_shaping_pool():
    """A forked process has none of its parent's threads: a pool made before the fork
    would queue work that never runs, so the child makes its own."""
    global _shaping_pool
    _shaping_pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_shaping_pool)


class APIError(tornado.web.HTTPError):
    """An HTTP error with the extra keys of the contract's JSON body; logged at ``log_level``."""

    def __init__(self, code, reason, headers=None, log_level=logging.WARNING, **body):
        super().__init__(code, reason=None, log_message=reason if code >= 500 else None)
        self.error = reason
        self.body = body
        self.headers = headers or {}
        self.log_level = log_level


def as_api_error(exc):
    """Our library exceptions -> ``APIError``; anything else -> ``None`` (a 500)."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, OptionError):
        return APIError(400, exc.reason, **exc.body)
    if isinstance(exc, PipelineError):
        return APIError(exc.status, exc.reason, **exc.body)
    if isinstance(exc, EngineUnavailable):
        return APIError(503, exc.reason, headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, ResultSetGone):  # the next page of a cursor: the client starts again
        return APIError(400, exc.reason + " Start again from the first page (cursor=true).", keyword="after")
    if isinstance(exc, EngineError):
        return APIError(exc.status, exc.reason)
    return None


class BaseHandler(tornado.web.RequestHandler):
    """Knows its API's settings; answers every error as JSON."""

    # routing passes ``web_settings`` (and ``biothing_type``) to handlers that say so
    accepts_web_settings = True
    # settings group and cache key of this handler ("query", "annotation", ...)
    name = "base"
    # the request's id (X-Request-Id), set with the default headers
    request_id = None

    def __init__(self, application, request, route=None, **kwargs):
        self.route = route  # the URL pattern of the matched rule (a metrics label)
        super().__init__(application, request, **kwargs)

    def initialize(self, web_settings=None, biothing_type=None, **kwargs):
        self.web_settings = web_settings or self.application.biothings
        self.biothing_type = biothing_type

    def set_default_headers(self):
        # also runs when an error clears the headers: keep the configured origin
        settings = self.__dict__.get("web_settings")
        origin = settings.ACCESS_CONTROL_ALLOW_ORIGIN if settings is not None else "*"
        if origin:
            self._headers["Access-Control-Allow-Origin"] = origin
        # a JSON error echoing a hostile string is never sniffed into HTML
        self._headers["X-Content-Type-Options"] = "nosniff"
        if self.request_id is None:
            self.request_id = _request_id(self.request)
        self._headers["X-Request-Id"] = self.request_id

    def prepare(self):
        metrics = getattr(self.application, "metrics", None)
        if metrics is not None:
            metrics.request_started(self)
        settings = self.web_settings
        origin = settings.ACCESS_CONTROL_ALLOW_ORIGIN
        if origin:
            self.set_header("Access-Control-Allow-Origin", origin)
        else:
            self.clear_header("Access-Control-Allow-Origin")

    def head(self, *args, **kwargs):
        """The GET's status and headers (Content-Length, ETag, Cache-Control); the server sends no body."""
        if type(self).get is tornado.web.RequestHandler.get:
            raise tornado.web.HTTPError(405)
        return self.get(*args, **kwargs)

    def allowed_methods(self):
        """The methods this route answers (the ``Allow`` header of a 405)."""
        implemented = [method for method in self.SUPPORTED_METHODS
                       if getattr(type(self), method.lower()) is not getattr(tornado.web.RequestHandler, method.lower())]
        if "GET" not in implemented:
            implemented = [method for method in implemented if method != "HEAD"]
        return implemented

    def options(self, *args, **kwargs):
        """CORS preflight."""
        self.set_header("Access-Control-Allow-Methods", "GET, POST, HEAD, OPTIONS")
        self.set_header("Access-Control-Allow-Headers", self.web_settings.ACCESS_CONTROL_ALLOW_HEADERS)
        self.set_header("Access-Control-Max-Age", "86400")
        self.set_status(204)
        self.finish()

    def content_coding(self):
        """The content coding this request's answer may take (``compression.negotiate``), or None."""
        header = self.request.headers.get("Accept-Encoding")
        if not header:
            return None
        settings = self.__dict__.get("web_settings") or self.application.biothings
        return compression.negotiate(header, compression.offered(settings))

    def check_etag_header(self):
        """tornado's ``If-None-Match`` check, knowing compressed representations: the tag of
        the coding this request negotiates matches too (``compression.etag_for``), and the
        answer (a 304) then carries that tag."""
        if "If-None-Match" not in self.request.headers:  # most requests: nothing to compare
            return False
        if super().check_etag_header():
            return True
        identity = self._headers.get("Etag")
        coding = self.content_coding() if identity else None
        if coding is None:
            return False
        self._headers["Etag"] = compression.etag_for(identity, coding)
        if super().check_etag_header():
            return True
        self._headers["Etag"] = identity
        return False

    def _handle_request_exception(self, e):
        # our exceptions carry their status: hand them to tornado as HTTP errors
        mapped = as_api_error(e)
        if mapped is not None and mapped is not e:
            try:
                raise mapped from e
            except APIError as api_error:
                # its traceback holds this frame: a name of it here would make a reference
                # cycle keeping the request's data (the failed pipeline's frames) until a full GC
                del mapped
                return super()._handle_request_exception(api_error)
        return super()._handle_request_exception(e)

    def log_exception(self, typ, value, tb):
        if isinstance(value, tornado.web.HTTPError) and value.status_code < 500:
            return
        if isinstance(value, APIError):
            logger.log(value.log_level, "%s %s -> %s: %s [request %s]", self.request.method, self.request.uri,
                       value.status_code, value.error, self.request_id)
            return
        logger.error("%s %s failed [request %s]", self.request.method, self.request.uri,
                     self.request_id, exc_info=(typ, value, tb))

    def write_error(self, status_code, **kwargs):
        """The contract's JSON error body, never a stack trace."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        self.clear_header("Cache-Control")
        self.clear_header("Etag")
        extra = {}
        if isinstance(exc, APIError):
            reason, extra = exc.error, exc.body
            for name, value in exc.headers.items():
                self.set_header(name, value)
        elif status_code == 404:
            reason = "Not Found."
        elif isinstance(exc, tornado.web.HTTPError) and status_code < 500:
            reason = exc.reason or self._reason
        elif status_code < 500:
            reason = self._reason
        else:
            reason, extra = "Internal server error.", {"request_id": self.request_id}
        if self.request_id:
            self.set_header("X-Request-Id", self.request_id)
        if status_code == 405 and "Allow" not in self._headers:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        self.set_header("Content-Type", formats.CONTENT_TYPES["json"])
        self.finish(formats.error_json(status_code, reason, **extra))


class NotFoundHandler(BaseHandler):
    """Unknown routes: a JSON 404 (tornado's default is an HTML page)."""

    def prepare(self):
        super().prepare()
        raise tornado.web.HTTPError(404)


class ShapingBudget:
    """The context manager of ``BaseAPIHandler.shaping_budget``: the watchdog armed for the
    rest of the handler's ``TRANSFORM_TIMEOUT``, a 503 when it cuts. (A class rather than a
    generator-based context manager: it runs twice per request.)"""

    __slots__ = ("handler", "armed")

    def __init__(self, handler):
        self.handler = handler
        self.armed = None

    def __enter__(self):
        handler = self.handler
        seconds = handler.web_settings.TRANSFORM_TIMEOUT
        if seconds:
            now = time.monotonic()
            if handler.shaping_deadline is None:
                handler.shaping_deadline = now + seconds
            self.armed = watchdog.limit(max(handler.shaping_deadline - now, 0.001))
            self.armed.__enter__()
        return self

    def __exit__(self, kind, value, traceback):
        armed, self.armed = self.armed, None
        if armed is not None:
            try:
                armed.__exit__(kind, value, traceback)
            except watchdog.BudgetExceeded:  # it fired as the block ended
                kind = watchdog.BudgetExceeded
        if kind is watchdog.BudgetExceeded:
            seconds = self.handler.web_settings.TRANSFORM_TIMEOUT
            raise APIError(503, f"Preparing this answer took longer than {seconds} s and was abandoned: "
                                f"ask for fewer hits or fields.", log_level=logging.ERROR) from None
        return False


class BaseAPIHandler(BaseHandler):
    """Parses declared options, serializes answers in the requested format.

    Custom handlers subclass it (``APP_LIST`` routes): ``self.finish(a_dict)`` answers
    in the requested ``format`` with the API's ``Cache-Control``. The max-age of a
    route's successful GET answers: its route argument ``cache`` (``{"cache": 999}`` in
    ``APP_LIST``), else the class attribute ``cache``, else
    ``CACHE_MAX_AGE_BY_HANDLER[name]``, else ``CACHE_MAX_AGE`` (0: no header).
    """

    # the settings key of the declared options: f"{kwargs_name.upper()}_KWARGS"
    kwargs_name = None
    # max-age (seconds) of this handler's successful GET answers; None: the settings'
    cache = None

    def initialize(self, web_settings=None, biothing_type=None, cache=None, **kwargs):
        super().initialize(web_settings, biothing_type, **kwargs)
        self.args = None
        self.format = "json"
        self.cacheable = True
        self._etag = False  # not computed yet
        self.route_cache = cache
        self.shaping_deadline = None  # set when the shaping of the answer starts

    # answers derive from the index build: ETag from build + request (caching.py)
    use_etag = True

    def compute_etag(self):
        return caching.etag_of(self)

    def check_not_modified(self):
        """Answer 304 now when the client's ``If-None-Match`` is this answer's ETag."""
        return caching.check_not_modified(self)

    # ---------------------------------------------------------- input
    def parse_json_body(self):
        """The decoded JSON (or YAML) body; ``None`` without one, or for a form.

        A body that starts like JSON (``{`` or ``[``) is read as JSON whatever its
        Content-Type says (``curl -d '{...}'`` sends it as a form); with
        ``Content-Type: application/json`` (or none) a body that does not parse is a 400.
        """
        body = self.request.body
        if not body:
            return None
        content_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type in ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"):
            try:
                return yaml.safe_load(body)
            except yaml.YAMLError:
                raise APIError(400, "Invalid YAML body.") from None
        if content_type == "application/json" or body.lstrip()[:1] in (b"{", b"["):
            try:
                return orjson.loads(body)
            except orjson.JSONDecodeError:
                if content_type in ("application/json", ""):
                    raise APIError(400, "Invalid JSON body.") from None
        return None

    @staticmethod
    def _decoded(arguments):
        return {key: [value.decode("utf-8", "replace") for value in values]
                for key, values in arguments.items()}

    def parse_options(self, path_kwargs=None):
        """The request's declared options (``self.args``), validated."""
        method = "GET" if self.request.method == "HEAD" else self.request.method  # HEAD answers as GET
        optionset = self.web_settings.optionset(self.kwargs_name, method)
        json_body = self.parse_json_body() if self.request.method in ("POST", "PUT") else None
        try:
            self.args = optionset.parse(
                path_kwargs=path_kwargs,
                query=self._decoded(self.request.query_arguments),
                # a body is a form or JSON: a JSON body sent as a form is not also read as one
                form=self._decoded(self.request.body_arguments) if json_body is None else None,
                json_body=json_body,
            )
        except OptionError as exc:
            if "missing" in exc.body and self.request.body and json_body is None:
                raise APIError(400, f"{exc.reason} The request body was not read as parameters: send a form "
                                    f"(Content-Type: application/x-www-form-urlencoded) or JSON "
                                    f"(Content-Type: application/json).", **exc.body) from None
            raise
        self.format = dict.get(self.args, "format") or "json"
        self.args.biothing_type = self.biothing_type
        return self.args

    # ---------------------------------------------------------- output
    def cache_max_age(self):
        """Seconds a successful GET answer may be cached (see the class docstring)."""
        if self.route_cache is not None:
            return self.route_cache
        if self.cache is not None:
            return self.cache
        per_handler = self.web_settings.CACHE_MAX_AGE_BY_HANDLER or {}
        return per_handler.get(self.name, self.web_settings.CACHE_MAX_AGE)

    def shaping_budget(self):
        """Shape an answer (transform, hooks, serialization) within ``TRANSFORM_TIMEOUT``,
        counted from the first step: past it the work is interrupted and the request
        answered 503, so the worker goes on serving the others (``with
        self.shaping_budget(): ...``)."""
        return ShapingBudget(self)

    def serialize(self, data, title=None):
        """``(body, content type)`` of ``data`` in the requested format, within the shaping budget."""
        sort_keys = bool(dict.get(self.args, "_sorted", True)) if self.args else False
        html_args = {"title": title or self.web_settings.API_NAME, "json_url": self._json_url()} \
            if self.format == "html" else {}
        with self.shaping_budget():
            return formats.serialize(data, self.format, sort_keys, self.web_settings.MAX_ANSWER_BYTES,
                                     **html_args)

    async def off_loop(self, large, func, *args):
        """``func(*args)``, in a shaping thread when ``large``: the event loop serves the
        other requests meanwhile (``func`` arms its own shaping budget)."""
        if not large:
            return func(*args)
        return await asyncio.get_running_loop().run_in_executor(shaping_pool(), func, *args)

    async def finish_answer(self, data, title=None):
        """``finish_result``, serialized off the event loop when the answer is large or in a
        format slower than JSON (YAML, HTML, msgpack)."""
        large = self.format != "json" or formats.entries(data) >= OFF_LOOP_ENTRIES
        body, content_type = await self.off_loop(large, self.serialize, data, title)
        size = len(body)
        self.set_header("Content-Type", content_type)
        coding = self.content_coding() if size >= compression.OFF_LOOP_BYTES else None
        if coding is not None and compression.compressible(content_type):
            # large enough for compressing to cost: in a thread (the output transform would do it on the loop)
            body = await self.off_loop(True, compression.compress, body, coding)
            self.set_header("Content-Encoding", coding)
            if "Etag" in self._headers:
                self.set_header("Etag", compression.etag_for(self._headers["Etag"], coding))
        self.finish(body)
        memory = getattr(self.application, "memory", None)
        if memory is not None:
            memory.answered(size)

    def finish_result(self, data, title=None):
        """Serialize ``data`` in the requested format and finish."""
        body, content_type = self.serialize(data, title)
        self.set_header("Content-Type", content_type)
        self.finish(body)

    def write(self, chunk):
        """A dict or list is serialized in the requested format (what ``finish(a_dict)``
        of a custom handler gets); bytes and str are written as they are."""
        if isinstance(chunk, (dict, list)):
            chunk, content_type = self.serialize(chunk)
            self.set_header("Content-Type", content_type)
        return super().write(chunk)

    def finish(self, chunk=None):
        """Successful GET/HEAD answers get the route's ``Cache-Control`` unless the handler
        set one (or made the answer uncacheable)."""
        if (self.cacheable and self.get_status() == 200 and self.request.method in ("GET", "HEAD")
                and "Cache-Control" not in self._headers):
            max_age = self.cache_max_age()
            if max_age:
                self.set_header("Cache-Control", f"max-age={max_age}, public")
        return super().finish(chunk)

    def _json_url(self):
        arguments = [(key, value) for key, values in self._decoded(self.request.query_arguments).items()
                     if key != "format" for value in values]
        from urllib.parse import urlencode
        query = urlencode(arguments)
        return self.request.path + ("?" + query if query else "")
