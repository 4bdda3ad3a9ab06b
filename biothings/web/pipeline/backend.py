"""``ESQueryBackend``: run built queries on the engine of the settings."""

from biothings.web.pipeline.errors import BadRequest


class ESQueryBackend:
    """Execute a search, a batch (one msearch) or a scroll continuation."""

    def __init__(self, web_settings):
        self.web_settings = web_settings

    @property
    def engine(self):
        return self.web_settings.engine

    def index_of(self, options):
        """The index (or indices) a request searches."""
        try:
            return self.web_settings.index(options.biothing_type)
        except KeyError:
            raise BadRequest(f"Unknown biothing type {options.biothing_type!r}.") from None

    async def execute(self, query, options):
        """The engine's answer: a response dict, or a list for a batch."""
        if isinstance(query, list):
            if not query:
                return []
            return await self.engine.msearch(self.index_of(options), query)
        if "scroll_id" in query and len(query) == 1:
            return await self.engine.scroll(query["scroll_id"], self.web_settings.ES_SCROLL_TIME)
        scroll = self.web_settings.ES_SCROLL_TIME if options.fetch_all else None
        return await self.engine.search(self.index_of(options), query, scroll=scroll)
