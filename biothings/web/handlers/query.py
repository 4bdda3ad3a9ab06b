"""Handlers running the builder -> backend -> transform pipeline."""

import asyncio

from biothings.web.handlers.base import APIError, BaseAPIHandler


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
        res = await backend.execute(query, options)
        with self.shaping_budget():  # no request holds the worker (TRANSFORM_TIMEOUT)
            res = self.pre_transform_hook(options, res)
            res = transform.transform(res, options)
            res = self.pre_finish_hook(options, res)
        await give_loop_a_turn()
        return self.finish_result(res)

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
