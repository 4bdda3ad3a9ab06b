"""``ESQueryBackend``: run built queries on the engine of the settings."""

from biothings.web.engines.errors import SearchTimeout
from biothings.web.pipeline.errors import BadRequest


class ESQueryBackend:
    """Execute a search, a batch (one msearch) or a scroll continuation, within the
    request's budgets: every search body carries ``SEARCH_TIMEOUT`` as its ``timeout``
    (Elasticsearch stops the search there; so does the embedded engine), and an answer
    is refused when it timed out (Elasticsearch's partial results) or holds more than
    ``MAX_ANSWER_HITS`` hits."""

    def __init__(self, web_settings):
        self.web_settings = web_settings
        seconds = web_settings.SEARCH_TIMEOUT
        self.timeout = f"{max(1, int(seconds * 1000))}ms" if seconds else None

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
            answer = await self.engine.msearch(self.index_of(options), self.timed(query))
        elif "scroll_id" in query and len(query) == 1:
            answer = await self.engine.scroll(query["scroll_id"], self.web_settings.ES_SCROLL_TIME)
        elif options.paging is not None:  # a page of a cursor or an export (Engine.search_page)
            paging = options.paging
            answer, paging.state = await self.engine.search_page(
                self.index_of(options), self.timed([query])[0], paging.state, paging.keep_alive)
        else:
            scroll = self.web_settings.ES_SCROLL_TIME if options.fetch_all else None
            answer = await self.engine.search(self.index_of(options), self.timed([query])[0], scroll=scroll)
        self.check_answer(answer, bool(options.streaming))
        return answer

    def timed(self, bodies):
        """The search bodies, each with the request's ``timeout`` (unless it has its own)."""
        timeout = self.timeout
        if timeout:
            for body in bodies:
                if isinstance(body, dict) and "timeout" not in body:
                    body["timeout"] = timeout
        return bodies

    def check_answer(self, answer, streaming=False):
        """Refuse an answer that timed out, or one holding more hits than ``MAX_ANSWER_HITS``
        (not a page of a stream: a stream is how a client reads past that budget)."""
        settings = self.web_settings
        hits = 0
        for response in answer if isinstance(answer, list) else (answer,):
            if response.get("timed_out"):
                raise SearchTimeout(settings.SEARCH_TIMEOUT)
            found = response.get("hits")
            if found:
                hits += len(found.get("hits") or ())
        limit = settings.MAX_ANSWER_HITS
        if limit and hits > limit and not streaming:
            raise BadRequest(f"The answer holds {hits} hits, the maximum is {limit} (MAX_ANSWER_HITS): "
                             f"ask for fewer terms or ids, or a smaller size.", keyword="size", max=limit, num=hits)
