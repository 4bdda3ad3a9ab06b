"""The tornado ``Application`` of a BioThings API, with start-up and shutdown."""

import asyncio
import logging
import os

import tornado.ioloop
import tornado.web

from biothings.web.accesslog import make_log_function
from biothings.web.handlers.base import NotFoundHandler
from biothings.web.proxies import TrustedProxies

logger = logging.getLogger("biothings.web")


def prepare_embedded_data(web_settings):
    """Build each embedded index named in ``EMBEDDED_DATA_FILES`` that is absent.

    Runs before serving (and before forking workers), so the first start of
    ``python index.py`` on a fresh machine has data to serve.
    """
    for settings in web_settings.all_settings():
        if settings.es_hosts:
            continue
        from biothings.web.engines.embedded import ensure_index
        data_dir = os.path.abspath(settings.EMBEDDED_DATA_DIR)
        for index, files in (settings.EMBEDDED_DATA_FILES or {}).items():
            ensure_index(data_dir, index, files["documents"], files.get("mapping"), files.get("metadata"))


class BiothingsApplication(tornado.web.Application):
    """A tornado application that knows its API settings (``self.biothings``)."""

    def __init__(self, web_settings, handlers, **settings):
        self.metrics = None
        self.metrics_server = None
        metrics_path = web_settings.get("METRICS_PATH")
        if metrics_path:
            from biothings.web.metrics import Metrics, metrics_rules
            self.metrics = Metrics()
            if not web_settings.get("METRICS_ADDRESS"):  # else on its own address (startup)
                handlers = metrics_rules(web_settings) + list(handlers)
        settings.setdefault("log_function", make_log_function(web_settings, self.metrics))
        settings.setdefault("default_handler_class", NotFoundHandler)
        settings.setdefault("default_handler_args", {"web_settings": web_settings})
        settings.setdefault("static_hash_cache", True)
        from biothings.web import compression
        super().__init__(handlers, transforms=[compression.transform(web_settings)], **settings)
        self.biothings = web_settings
        self.specs = {}  # id(API settings) -> its OpenAPI document, built at the first /spec or /
        self._refreshers = []
        self.inflight = 0  # requests being served (see biothings.web.limits)
        self.streams = 0  # streams being served (MAX_CONCURRENT_STREAMS, biothings.web.handlers.streams)
        self.trusted_proxies = TrustedProxies(web_settings.HTTP_TRUSTED_PROXIES)
        from biothings.web.memory import MemoryReturn
        self.memory = MemoryReturn(self, web_settings.get("MEMORY_TRIM_BYTES") or 0,
                                   web_settings.get("MEMORY_RESTART_BYTES") or 0)

    def start_request(self, server_conn, request_conn):
        from biothings.web.limits import RequestGuard
        return RequestGuard(self, super().start_request(server_conn, request_conn), request_conn)

    def find_handler(self, request, **kwargs):
        # the client's address and scheme, as a trusted proxy gives them (biothings.web.proxies);
        # most deployments trust none: then not even a call per request
        if self.trusted_proxies.networks:
            self.trusted_proxies.apply(request)
        return super().find_handler(request, **kwargs)

    async def drain(self, timeout):
        """Wait (at most ``timeout`` seconds) until no request is in flight; True if none is."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.inflight > 0 and loop.time() < deadline:
            await asyncio.sleep(0.02)
        return self.inflight <= 0

    async def startup(self):
        """Load metadata now and keep it fresh in the background."""
        if self.metrics is not None and self.biothings.get("METRICS_ADDRESS") and self.metrics_server is None:
            from biothings.web.metrics import serve_metrics
            self.metrics_server = serve_metrics(self, self.biothings.METRICS_ADDRESS)
        for settings in self.biothings.all_settings():
            if self.metrics is not None:
                self.metrics.instrument_engine(settings.engine)
            await settings.metadata.refresh()
            for callback, interval in ((settings.metadata.refresh, settings.METADATA_REFRESH_INTERVAL),
                                       (settings.metadata.check_versions, settings.METADATA_CHECK_INTERVAL)):
                if interval and interval > 0:
                    refresher = tornado.ioloop.PeriodicCallback(callback, interval * 1000)
                    refresher.start()
                    self._refreshers.append(refresher)

    async def shutdown(self):
        """Stop background work and close engine clients."""
        if self.metrics_server is not None:
            self.metrics_server.stop()
            self.metrics_server = None
        for refresher in self._refreshers:
            refresher.stop()
        self._refreshers.clear()
        closed = set()
        for settings in self.biothings.all_settings() + [self.biothings]:
            engine = settings._engine
            if engine is not None and id(engine) not in closed:
                closed.add(id(engine))
                try:
                    await engine.close()
                    logger.info("closed the %s engine client", engine.name)
                except Exception:  # closing is best effort
                    logger.exception("closing %s", engine)
        await asyncio.sleep(0)
