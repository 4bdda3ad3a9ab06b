"""``/status``: engine health and, with ``STATUS_CHECK``, one known document; JSON whatever happens."""

from biothings.web.engines.errors import EngineError
from biothings.web.handlers.base import APIError, BaseAPIHandler


class StatusHandler(BaseAPIHandler):
    """``{"success": true, "status": "green"}`` from cluster health; 503 when down, or
    when the ``STATUS_CHECK`` document (``{"id": "1017", "index": ...}``) cannot be fetched."""

    name = "status"
    kwargs_name = "status"
    use_etag = False  # health, not the index build

    def cache_max_age(self):
        return 0

    async def get(self):
        options = self.parse_options()
        engine = self.web_settings.engine
        try:
            health = await engine.health()
        except EngineError as exc:
            raise APIError(503, f"Search engine unavailable: {exc.reason}", status="unavailable",
                           headers={"Retry-After": "10"}) from None
        status = health.get("status", "unknown")
        if status == "red":
            raise APIError(503, "Search engine cluster is red.", status=status)
        document = await self.check_document()
        result = {"success": True, "status": status}
        if options.dev:
            result["health"] = health
            try:
                result["engine"] = await engine.info()
            except EngineError as exc:
                result["engine"] = {"error": exc.reason}
            result["indices"] = dict(self.web_settings.ES_INDICES)
            if document is not None:
                result["document"] = document
        self.finish_result(result)

    async def check_document(self):
        """Fetch the ``STATUS_CHECK`` document: ``{"id", "index", "found": True}``, ``None``
        without the setting; a 503 (naming the document) when it cannot be fetched."""
        check = self.web_settings.STATUS_CHECK
        if not check:
            return None
        doc_id = str(check["id"])
        index = check.get("index") or self.web_settings.index(self.web_settings.default_type)
        try:
            response = await self.web_settings.engine.search(
                index, {"query": {"ids": {"values": [doc_id]}}, "size": 1, "_source": False})
            found = bool(response["hits"]["hits"])
            reason = f"document {doc_id!r} not found in index {index!r}"
        except EngineError as exc:
            found, reason = False, f"document {doc_id!r} of index {index!r} cannot be fetched: {exc.reason}"
        if not found:
            raise APIError(503, f"Status check failed: {reason}.", status="unavailable",
                           headers={"Retry-After": "10"},
                           document={"id": doc_id, "index": index, "found": False})
        return {"id": doc_id, "index": index, "found": True}
