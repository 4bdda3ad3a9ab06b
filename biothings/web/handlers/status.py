"""``/status``: engine health, every configured index present and, with ``STATUS_CHECK``,
one known document; JSON whatever happens."""

from biothings.web.engines.errors import EngineError, IndexNotFound
from biothings.web.handlers.base import APIError, BaseAPIHandler


class StatusHandler(BaseAPIHandler):
    """``{"success": true, "status": "green"}`` from cluster health; 503 when the engine is
    down, when a configured index does not exist (every data route would answer 404), or
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
        await self.check_indices(options.dev)
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

    async def check_indices(self, dev=False):
        """Every configured index exists: a 503 naming the missing ones otherwise."""
        missing = {}
        for settings in self.web_settings.all_settings():
            for biothing_type in settings.biothing_types:
                index = settings.index(biothing_type)
                if index in missing.values():
                    continue
                try:
                    await settings.engine.count(index)
                except IndexNotFound:
                    missing[biothing_type] = index
                except EngineError:
                    continue  # health answered above: a passing fault is not a missing index
        if missing:
            names = ", ".join(f"{index!r} (type {kind})" for kind, index in missing.items())
            detail = {"indices": {"missing": missing}} if dev else {}
            raise APIError(503, f"Index not found: {names}; load it (python -m biothings.web.load).",
                           status="unavailable", headers={"Retry-After": "10"}, **detail)

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
