"""Prometheus metrics of an API, served at ``METRICS_PATH`` (default ``/metrics``).

- ``biothings_http_requests_total{route, method, status}``: finished requests.
- ``biothings_http_request_duration_seconds{route, method, status}``: latency histogram.
- ``biothings_http_requests_in_flight``: requests being handled now.
- ``biothings_engine_duration_seconds{engine, operation}``: latency of the
  engine calls (search, msearch, scroll, get_mapping, count) as the server sees them.
- ``biothings_engine_errors_total{engine, operation}``: engine calls that raised.

``route`` is the URL pattern of the matched rule (``/v1/gene/([^/]+)/?``), or the
handler class for requests matching no rule: label values stay few whatever
paths clients send.

Who can read them: anyone who reaches the API, unless ``METRICS_ADDRESS`` serves
them on an address of their own (``127.0.0.1:9100``: reachable by a local scraper,
not from the internet; the API's port then answers 404 there), or
``AUTH_REQUIRED_ROUTES`` names ``metrics`` (or ``*``): a bearer token is needed.

Several processes (``--processes N``): ``index.py`` points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before forking (unless it is
set already), every worker writes its values there, and any worker's
``/metrics`` answers the sum over all workers (prometheus_client's multiprocess
mode; the in-flight gauge sums the live workers).
"""

import os
import shutil
import socket
import tempfile
import time

from biothings.web.accesslog import route_label
from biothings.web.handlers.base import BaseHandler

LATENCY_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1.0, 2.5, 5.0, 10.0)
ENGINE_OPERATIONS = ("search", "msearch", "scroll", "search_page", "get_mapping", "count")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_created_dir = None


def multiprocess_dir():
    return os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower()) or None


def prepare_multiprocess():
    """Before forking workers: a fresh shared directory for their metric files."""
    global _created_dir
    if multiprocess_dir() is None:
        _created_dir = tempfile.mkdtemp(prefix="biothings-metrics-")
        os.environ[MULTIPROC_ENV] = _created_dir
    import prometheus_client.values as values
    values.ValueClass = values.get_value_class()  # in case prometheus_client was imported already
    return multiprocess_dir()


def worker_exited(pid):
    """The supervisor saw worker ``pid`` exit: drop its live gauge values."""
    if multiprocess_dir() is not None:
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(pid)


def cleanup_multiprocess():
    """The supervisor is done: remove the directory it created."""
    if _created_dir is not None:
        shutil.rmtree(_created_dir, ignore_errors=True)


class Metrics:
    """The metrics of one application, in their own registry."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "biothings_http_requests", "HTTP requests finished, by route, method and status.",
            ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram(
            "biothings_http_request_duration_seconds", "HTTP request latency in seconds.",
            ["route", "method", "status"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.in_flight = Gauge(
            "biothings_http_requests_in_flight", "HTTP requests being handled.",
            registry=self.registry, multiprocess_mode="livesum")
        self.engine_latency = Histogram(
            "biothings_engine_duration_seconds", "Search engine call latency in seconds.",
            ["engine", "operation"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.engine_errors = Counter(
            "biothings_engine_errors", "Search engine calls that raised.",
            ["engine", "operation"], registry=self.registry)
        self._children = {}

    # ---------------------------------------------------------- requests
    def request_started(self, handler):
        self.in_flight.inc()
        handler._metrics_in_flight = True

    def observe_request(self, handler, status, seconds):
        """Once per finished request (from the application's ``log_function``)."""
        if handler.__dict__.pop("_metrics_in_flight", False):
            self.in_flight.dec()
        key = (route_label(handler), handler.request.method, status)
        children = self._children.get(key)
        if children is None:
            labels = (key[0], key[1], str(status))
            children = self._children[key] = (self.requests.labels(*labels), self.latency.labels(*labels))
        children[0].inc()
        children[1].observe(seconds)

    # ---------------------------------------------------------- engine
    def instrument_engine(self, engine):
        """Time the engine's calls (once per engine object)."""
        if engine is None or engine.__dict__.get("_metrics_instrumented"):
            return
        name = getattr(engine, "name", type(engine).__name__)
        for operation in ENGINE_OPERATIONS:
            method = getattr(engine, operation, None)
            if method is not None:
                setattr(engine, operation, self._timed(method, self.engine_latency.labels(name, operation),
                                                       self.engine_errors.labels(name, operation)))
        engine._metrics_instrumented = True

    @staticmethod
    def _timed(method, histogram, errors):
        perf_counter = time.perf_counter

        async def timed(*args, **kwargs):
            started = perf_counter()
            try:
                return await method(*args, **kwargs)
            except Exception:
                errors.inc()
                raise
            finally:
                histogram.observe(perf_counter() - started)

        timed.__wrapped__ = method
        return timed

    # ---------------------------------------------------------- exposition
    def exposition(self):
        """``(body, content type)`` of a scrape."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        if multiprocess_dir() is not None:
            from prometheus_client import multiprocess
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        else:
            registry = self.registry
        return generate_latest(registry), CONTENT_TYPE_LATEST


class MetricsHandler(BaseHandler):
    """``GET /metrics``: the Prometheus text exposition."""

    name = "metrics"
    openapi = {("GET", 0): {
        "summary": "Metrics (Prometheus)",
        "description": "Counters and histograms of requests, latency, engine calls and requests in "
                       "flight, in the Prometheus text exposition format (not JSON); sums over every "
                       "worker process.",
        "media_type": "text/plain; version=0.0.4",
        "result_description": "The Prometheus text exposition format.",
        "tag": "metrics",
    }}

    def get(self):
        metrics = getattr(self.application, "metrics", None)
        if metrics is None:
            raise_not_found()
        body, content_type = metrics.exposition()
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", "no-store")
        self.finish(body)

    def compute_etag(self):
        return None


def metrics_rules(web_settings):
    """The tornado rule serving ``METRICS_PATH`` (behind a token when AUTH_REQUIRED_ROUTES says so)."""
    from biothings.web.auth import protect
    path = web_settings.METRICS_PATH
    return [(path, protect(web_settings, MetricsHandler), {"web_settings": web_settings, "route": path})]


def serve_metrics(application, address):
    """Serve ``application``'s metrics on ``address`` (``host:port``), apart from the API:
    a tornado server of its own (several worker processes share the port)."""
    import tornado.httpserver
    import tornado.netutil
    import tornado.web
    from biothings.web.accesslog import make_log_function
    host, _, port = str(address).rpartition(":")
    host = host.strip("[]")  # [::1]:9100
    web_settings = application.biothings
    app = tornado.web.Application(metrics_rules(web_settings),
                                  log_function=make_log_function(web_settings, application.metrics))
    app.metrics = application.metrics
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(tornado.netutil.bind_sockets(int(port), host or None, reuse_port=hasattr(socket, "SO_REUSEPORT")))
    return server


def raise_not_found():
    import tornado.web
    raise tornado.web.HTTPError(404)
