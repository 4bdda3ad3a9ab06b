"""Request ids and the access log.

- Every response carries ``X-Request-Id``: the client's own when it is sane
  (at most 128 characters of ``A-Z a-z 0-9 . _ : = / + -``), otherwise a new
  one (a per-process random prefix and a counter: unique, and cheap).
- ``log_function`` (tornado's application setting of that name) runs once per
  finished request: it records the request's metrics and writes one access log
  line to the ``biothings.access`` logger, as text or as a JSON object
  (``ACCESS_LOG_FORMAT``), at INFO (< 400), WARNING (4xx, and successes slower
  than ``ACCESS_LOG_SLOW_MS``) or ERROR (5xx). ``ACCESS_LOG_LEVEL`` (WARNING
  by default) chooses what is written: a line for every request (INFO) costs
  about a tenth of the CPU of a fast request.
"""

import datetime
import itertools
import logging
import os
import re
import secrets
import sys

import orjson

access_logger = logging.getLogger("biothings.access")

_SANE_ID = re.compile(r"[A-Za-z0-9._:=/+\-]{1,128}")
_prefix = secrets.token_hex(6)
_counter = itertools.count(1)


def _reseed():
    """A forked worker must not hand out its parent's ids."""
    global _prefix, _counter
    _prefix = secrets.token_hex(6)
    _counter = itertools.count(1)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed)


def new_request_id():
    return f"{_prefix}{next(_counter):08x}"


def request_id(request):
    """The request's id: its sane ``X-Request-Id`` header, else a new one."""
    given = request.headers.get("X-Request-Id")
    if given and _SANE_ID.fullmatch(given):
        return given
    return new_request_id()


def _level(status, seconds, slow):
    if status >= 500:
        return logging.ERROR
    if status >= 400 or (slow and seconds >= slow):
        return logging.WARNING
    return logging.INFO


def access_record(handler, status, seconds):
    """The fields of a JSON access log line."""
    request = handler.request
    record = {
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
        "method": request.method,
        "path": request.path,
        "status": status,
        "duration_ms": round(seconds * 1000.0, 3),
        "request_id": getattr(handler, "request_id", None),
        "remote_ip": request.remote_ip,
        "user_agent": request.headers.get("User-Agent"),
        "route": route_label(handler),
    }
    if request.query:
        record["query"] = request.query[:2048]
    return record


def route_label(handler):
    """The route (URL pattern) a handler serves: bounded, unlike raw paths."""
    return getattr(handler, "route", None) or type(handler).__name__


def make_log_function(web_settings, metrics=None):
    """tornado's ``log_function``: metrics, then one access log line."""
    fmt = str(web_settings.get("ACCESS_LOG_FORMAT", "text") or "off").lower()
    if fmt not in ("text", "json", "off"):
        raise ValueError(f"ACCESS_LOG_FORMAT must be text, json or off, not {fmt!r}")
    observe = metrics.observe_request if metrics is not None else None
    logger = access_logger
    slow = (web_settings.get("ACCESS_LOG_SLOW_MS") or 0) / 1000.0

    def log_function(handler):
        status = handler.get_status()
        seconds = handler.request.request_time()
        if observe is not None:
            observe(handler, status, seconds)
        if fmt == "off":
            return
        level = _level(status, seconds, slow)
        if not logger.isEnabledFor(level):
            return
        if fmt == "json":
            logger.log(level, orjson.dumps(access_record(handler, status, seconds)).decode())
        else:
            logger.log(level, "%d %s %.2fms [%s]", status, handler._request_summary(), seconds * 1000.0,
                       getattr(handler, "request_id", None) or "-")

    return log_function


def configure(web_settings):
    """For a served API: JSON lines go out bare (no level/time prefix), on stdout."""
    fmt = str(web_settings.get("ACCESS_LOG_FORMAT", "text") or "off").lower()
    if fmt == "json" and not access_logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access_logger.addHandler(handler)
        access_logger.propagate = False
    if fmt != "off" and access_logger.level == logging.NOTSET:
        level = str(web_settings.get("ACCESS_LOG_LEVEL") or "WARNING").upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError(f"ACCESS_LOG_LEVEL must be INFO, WARNING or ERROR, not {level!r}")
        access_logger.setLevel(level)
    return access_logger
