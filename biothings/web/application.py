"""The tornado ``Application`` of a BioThings API, with start-up and shutdown."""

import asyncio
import logging
import os

import tornado.ioloop
import tornado.log
import tornado.web

from biothings.web.handlers.base import NotFoundHandler

logger = logging.getLogger("biothings.web")


def prepare_embedded_data(web_settings):
    """Build each embedded index named in ``EMBEDDED_DATA_FILES`` that is absent.

    Runs before serving (and before forking workers), so the first start of
    ``python index.py`` on a fresh machine has data to serve.
    """
    for settings in web_settings.all_settings():
        if settings.ES_HOST:
            continue
        from biothings.web.engines.embedded import ensure_index
        data_dir = os.path.abspath(settings.EMBEDDED_DATA_DIR)
        for index, files in (settings.EMBEDDED_DATA_FILES or {}).items():
            ensure_index(data_dir, index, files["documents"], files.get("mapping"), files.get("metadata"))


class BiothingsApplication(tornado.web.Application):
    """A tornado application that knows its API settings (``self.biothings``)."""

    def __init__(self, web_settings, handlers, **settings):
        settings.setdefault("default_handler_class", NotFoundHandler)
        settings.setdefault("default_handler_args", {"web_settings": web_settings})
        settings.setdefault("static_hash_cache", True)
        super().__init__(handlers, **settings)
        self.biothings = web_settings
        self._refreshers = []
        mode = str(web_settings.get("ACCESS_LOG", "all")).lower()
        if mode not in ("all", "errors", "none"):
            raise ValueError(f"ACCESS_LOG={mode!r}: expected all, errors or none")
        self._access_log_mode = mode
        self._access_log_slow = (web_settings.get("ACCESS_LOG_SLOW_MS") or 0) / 1000

    def log_request(self, handler):
        """The access log, as ``ACCESS_LOG`` says (tornado's format)."""
        if "log_function" in self.settings or self._access_log_mode == "all":
            return super().log_request(handler)
        if self._access_log_mode == "none":
            return
        status = handler.get_status()
        elapsed = handler.request.request_time()
        if status < 400 and (not self._access_log_slow or elapsed < self._access_log_slow):
            return
        log = tornado.log.access_log.error if status >= 500 else tornado.log.access_log.warning
        log("%d %s %.2fms", status, handler._request_summary(), 1000.0 * elapsed)

    async def startup(self):
        """Load metadata now and keep it fresh in the background."""
        for settings in self.biothings.all_settings():
            await settings.metadata.refresh()
            interval = settings.METADATA_REFRESH_INTERVAL
            if interval and interval > 0:
                refresher = tornado.ioloop.PeriodicCallback(settings.metadata.refresh, interval * 1000)
                refresher.start()
                self._refreshers.append(refresher)

    async def shutdown(self):
        """Stop background work and close engine clients."""
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
                except Exception:  # closing is best effort
                    logger.exception("closing %s", engine)
        await asyncio.sleep(0)
