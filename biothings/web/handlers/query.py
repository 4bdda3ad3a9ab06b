"""Handlers running the builder -> backend -> transform pipeline."""

import asyncio

from biothings.web.engines.errors import SearchCancelled, SearchTimeout
from biothings.web.handlers.base import OFF_LOOP_ENTRIES, APIError, BaseAPIHandler


async def give_loop_a_turn():
    """Let the event loop poll its sockets before the pipeline's next CPU-heavy step.

    One loop iteration runs the ready step of every request in flight before it
    polls again, and a request whose engine answer lands just after a poll waits
    out that whole iteration. Steps cut at the pipeline's seams (build | engine
    call | transform | serialize and write) make iterations short, so that wait,
    the latency tail under load, is short too (docs/benchmarks.md: the 20-id batch
    at 32 connections, p99 -19% for about 3% more CPU).
    """
    await asyncio.sleep(0)


def hit_count(res):
    """Hits in an engine answer (a search response, or a batch's list of them)."""
    if isinstance(res, list):
        count = 0
        for response in res:  # a loop, not sum() of a generator: a batch has up to 1,000
            if "hits" in response:
                count += len(response["hits"]["hits"])
        return count
    hits = res.get("hits") if isinstance(res, dict) else None
    return len(hits.get("hits") or ()) if isinstance(hits, dict) else 0


class BaseESRequestHandler(BaseAPIHandler):
    """An API handler bound to one biothing type (or all of them)."""

    def initialize(self, web_settings=None, biothing_type=None, **kwargs):
        super().initialize(web_settings, biothing_type, **kwargs)

    def prepare(self):
        super().prepare()
        if self.biothing_type is not None and self.biothing_type not in self.web_settings.ES_INDICES:
            raise APIError(404, "Not Found.")

    async def ensure_metadata(self):
        """Load the metadata cache on first use (engine down at start-up)."""
        metadata = self.web_settings.metadata
        if not metadata.types:
            await metadata.refresh()
        return metadata


class ESRequestHandler(BaseESRequestHandler):
    """The pipeline with hooks: subclass and override the ``*_hook`` methods."""

    engine_call = None  # the engine's work for this request, while it runs
    abandoned = None  # why it was cancelled: (SearchTimeout or SearchCancelled, its arguments)
    client_gone = False  # the client closed the connection

    async def call_engine(self, backend, query, options):
        """``backend.execute(query, options)``, abandoned past ``SEARCH_TIMEOUT`` (a 503) or
        when the client goes (nothing is answered). Abandoning cancels the call: the
        embedded engine stops the search, the Elasticsearch client closes its
        connection, which makes Elasticsearch cancel the search."""
        if self.client_gone:
            raise SearchCancelled()
        # the request's own task is cancelled, not a task of the call's (one per request
        # costs a task and two turns of the loop): only while it awaits the call
        task = self.engine_call = asyncio.current_task()
        seconds = self.web_settings.SEARCH_TIMEOUT
        timer = asyncio.get_running_loop().call_later(
            seconds, self._abandon_engine_call, SearchTimeout, seconds) if seconds else None
        try:
            return await backend.execute(query, options)
        except asyncio.CancelledError:
            if self.abandoned is None:
                raise  # this request itself was cancelled
            uncancel = getattr(task, "uncancel", None)  # Python 3.11+: the cancellation is handled
            if uncancel is not None:
                uncancel()
        finally:
            self.engine_call = None
            if timer is not None:
                timer.cancel()
        error, arguments = self.abandoned
        memory = getattr(self.application, "memory", None)
        if memory is not None:
            memory.abandoned()
        raise error(*arguments) from None  # bound to no name: no cycle keeps this frame alive

    def _abandon_engine_call(self, error, *arguments):
        """Cancel the engine call; the request fails with ``error(*arguments)``."""
        call = self.engine_call
        if call is not None and not call.done():
            self.abandoned = (error, arguments)
            call.cancel()

    def on_connection_close(self):
        super().on_connection_close()
        self.client_gone = True
        self._abandon_engine_call(SearchCancelled)

    def pre_query_builder_hook(self, options):
        """Adjust options before the query is built; returns them."""
        return options

    def pre_query_hook(self, options, query):
        """Inspect or replace the built query; returns it."""
        return query

    def pre_transform_hook(self, options, res):
        """Inspect the engine answer before it is transformed; returns it."""
        return res

    def pre_finish_hook(self, options, res):
        """Last chance to change the answer; returns it."""
        return res

    def query_term(self, options):
        """What the builder receives as ``q`` (a string, or a list for batches)."""
        return options.q

    async def run_pipeline(self, path_kwargs=None):
        options = self.parse_options(path_kwargs)
        await self.ensure_metadata()
        options = self.pre_query_builder_hook(options)
        builder, backend, transform = self.web_settings.pipeline
        q = self.query_term(options)
        query = builder.build(q, options)
        query = self.pre_query_hook(options, query)
        if options.rawquery:
            if not self.web_settings.ALLOW_RAW:
                raise APIError(403, "rawquery is disabled on this API.", keyword="rawquery")
            self.cacheable = False
            return self.finish_result(query)
        if options.raw and not self.web_settings.ALLOW_RAW:
            raise APIError(403, "raw is disabled on this API.", keyword="raw")
        if self.check_not_modified():  # If-None-Match: the client has this answer
            return
        await give_loop_a_turn()
        res = await self.call_engine(backend, query, options)
        with self.shaping_budget():  # no request holds the worker (TRANSFORM_TIMEOUT)
            res = self.pre_transform_hook(options, res)
            large = hit_count(res) >= OFF_LOOP_ENTRIES
            if not large:  # shaped here: the three steps in one budget
                res = self.pre_finish_hook(options, transform.transform(res, options))
        if large:  # shaped in a thread: the event loop serves the other requests meanwhile
            res = await self.off_loop(True, self._transformed, transform, res, options)
            with self.shaping_budget():
                res = self.pre_finish_hook(options, res)
        await give_loop_a_turn()
        return await self.finish_answer(res)

    def _transformed(self, transform, res, options):
        """The transform's answer, within the shaping budget."""
        with self.shaping_budget():
            return transform.transform(res, options)

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        # end of scroll: HTTP 200 with {"success": false, "error": ...} (contract)
        if status_code == 200 and isinstance(exc, APIError):
            self.clear_header("Cache-Control")
            return self.finish({"success": False, "error": exc.error})
        return super().write_error(status_code, **kwargs)


class BiothingHandler(ESRequestHandler):
    """``GET /{ver}/{typ}/<id>``: one document; ``POST /{ver}/{typ}``: a batch."""

    name = "annotation"
    kwargs_name = "annotation"

    async def get(self, biothing_id=None):
        if biothing_id is None:
            raise APIError(405, "Use GET /{type}/<id>, or POST a list of ids.")
        await self.run_pipeline({"id": biothing_id})

    async def post(self, biothing_id=None):
        if biothing_id is not None:
            raise APIError(405, "POST a list of ids to the type's route.")
        await self.run_pipeline()

    def pre_query_builder_hook(self, options):
        options.annotation = True
        if self.request.method != "POST":  # GET and HEAD
            options.annotation_single = True
        else:
            options.templates = [{"query": term} for term in options.id]
        return options

    def query_term(self, options):
        return options.id

    def pre_finish_hook(self, options, res):
        if options.raw or not options.annotation_single:
            return res
        hits = res["hits"]
        if not hits:
            raise APIError(404, "Not Found.")
        return hits[0] if len(hits) == 1 else hits


class QueryHandler(ESRequestHandler):
    """``GET /{ver}/query?q=``: search; ``POST``: batch of terms over scopes."""

    name = "query"
    kwargs_name = "query"

    async def get(self):
        await self.run_pipeline()

    async def post(self):
        await self.run_pipeline()

    def pre_query_builder_hook(self, options):
        if self.request.method == "POST":
            options.templates = [{"query": term} for term in options.q]
            return options
        if options.q is None and not options.scroll_id:
            raise APIError(400, "Missing required parameter 'q'.", keyword="q", alias=[], missing="q")
        if options.fetch_all or options.scroll_id or options.q == "__any__":
            self.cacheable = False
        return options
