"""``/status``: engine health, JSON whatever happens."""

from biothings.web.engines.errors import EngineError
from biothings.web.handlers.base import APIError, BaseAPIHandler


class StatusHandler(BaseAPIHandler):
    """``{"success": true, "status": "green"}`` from cluster health; 503 when down."""

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
        result = {"success": True, "status": status}
        if options.dev:
            result["health"] = health
            try:
                result["engine"] = await engine.info()
            except EngineError as exc:
                result["engine"] = {"error": exc.reason}
            result["indices"] = dict(self.web_settings.ES_INDICES)
        self.finish_result(result)
