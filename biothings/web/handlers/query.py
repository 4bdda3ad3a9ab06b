"""Handlers running the builder -> backend -> transform pipeline."""

import asyncio
import re

import orjson

from biothings.web import cursors
from biothings.web.engines.errors import SearchCancelled, SearchTimeout
from biothings.web.handlers.base import OFF_LOOP_ENTRIES, APIError, BaseAPIHandler
from biothings.web.handlers.streams import StreamEnded, Streaming
from biothings.web.pipeline.errors import BadRequest


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
        if options.paging is not None:
            self.page_served(options.paging, res)
        # a large answer is shaped in a thread (its hooks too), the event loop serving meanwhile
        res = await self.off_loop(hit_count(res) >= OFF_LOOP_ENTRIES, self.shape, transform, options, res)
        await give_loop_a_turn()
        return await self.finish_answer(res)

    def page_served(self, paging, res):
        """Count the hits of a page of a paged read; past the last hit the read ends."""
        paging.served += hit_count(res)
        hits = res.get("hits") if isinstance(res, dict) else None
        total = hits.get("total") if isinstance(hits, dict) else None
        total = total.get("value") if isinstance(total, dict) else total
        if paging.state is not None and isinstance(total, int) and paging.served >= total:
            state, paging.state = paging.state, None
            asyncio.ensure_future(self.web_settings.engine.close_pages(state))

    def next_cursor(self, options):
        """The cursor of the page after this one (``cursors``)."""
        return cursors.codec(self.web_settings).encode({
            "r": self.cursor_route(), "s": options.paging.state, "n": options.paging.served,
            "o": cursors.carried(options, self.web_settings.optionset(self.kwargs_name, "GET").defaults)})

    def cursor_route(self):
        """What a cursor is bound to: the handler and its biothing type (another route's index differs)."""
        return f"{self.name}:{self.biothing_type or ''}"

    def shape(self, transform, options, res):
        """The engine's answer through the hooks and the transform (and the next cursor of a
        paged read), within ``TRANSFORM_TIMEOUT`` (no request holds the worker)."""
        with self.shaping_budget():
            res = self.pre_transform_hook(options, res)
            res = transform.transform(res, options)
            if options.paging is not None and options.paging.state is not None and isinstance(res, dict):
                res["next"] = self.next_cursor(options)
            return self.pre_finish_hook(options, res)

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


# Content-Types of a streamed batch's body: one term a line
LINE_BODY_TYPES = ("application/x-ndjson", "application/ndjson", "text/plain")
# a form body (name=value&...) on one line
_FORM_BODY = re.compile(rb"(\w+)=[^\n]*\s*")
# terms of a streamed batch searched at once (one msearch), and most hits held at once
BATCH_CHUNK_TERMS = 1000
BATCH_CHUNK_HITS = 10000


class BadLine:
    """A line of a streamed batch that is no term: answered with an error line."""

    __slots__ = ("text", "reason")

    def __init__(self, text, reason):
        self.text = text
        self.reason = reason


class QueryHandler(Streaming, ESRequestHandler):
    """``GET /{ver}/query?q=``: search; ``POST``: batch of terms over scopes.

    A ``POST`` whose body is one term a line (``Content-Type: application/x-ndjson``:
    a JSON string, number or list, for a compound term, per line; ``text/plain``: the
    line is the term) is a streamed batch: up to ``MAX_BATCH_STREAM_TERMS`` terms, the
    other parameters in the query string, answered with one NDJSON line per term in
    their order: ``{"query": t, "total": n, "hits": [...]}``, ``{"query": t, "notfound":
    true}`` or ``{"query": t, "error": reason}``. The terms go through the batch path
    ``BATCH_CHUNK_TERMS`` at a time (fewer when ``size`` is large: at most
    ``BATCH_CHUNK_HITS`` hits held), each chunk written while the next one runs.
    """

    name = "query"
    kwargs_name = "query"

    async def get(self):
        await self.run_pipeline()

    async def post(self):
        content_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type in LINE_BODY_TYPES and self.is_line_body(content_type):
            return await self.stream_batch(content_type == "text/plain")
        await self.run_pipeline()

    def is_line_body(self, content_type):
        """Whether the body is one term a line: not a body that starts like JSON (read as JSON
        whatever its Content-Type), nor a text body that reads as a form of this route's
        parameters (``q=cdk2&scopes=symbol`` sent as text: its 400 names the Content-Type)."""
        body = self.request.body.lstrip()
        if not body or body[:1] == b"{":
            return False
        if content_type == "text/plain":
            form = _FORM_BODY.fullmatch(body)
            lookup = self.web_settings.optionset(self.kwargs_name, "POST").lookup
            if form is not None and form.group(1).decode() in lookup:
                return False
        return True

    # ---------------------------------------------------------- streamed batches
    def body_terms(self, plain):
        """The terms of a line-per-term body, in order (a ``BadLine`` for a line that is none)."""
        terms = []
        for raw in self.request.body.split(b"\n"):
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            if plain:
                terms.append(line)
                continue
            try:
                term = orjson.loads(line)
            except orjson.JSONDecodeError:
                terms.append(BadLine(line, "Invalid JSON line."))
                continue
            parts = term if isinstance(term, list) else [term]
            if not parts or not all(isinstance(part, (str, int, float)) and not isinstance(part, bool)
                                    for part in parts):
                terms.append(BadLine(line, "A term must be a string, a number, or a list of them."))
            else:
                terms.append(term)
        return terms

    def parse_stream_options(self):
        """The options of a streamed batch: from the query string (the body is the terms)."""
        if "q" in self.request.query_arguments:
            raise APIError(400, "The terms of a batch sent one a line are its body: 'q' cannot be given too.",
                           keyword="q")
        optionset = self.web_settings.optionset(self.kwargs_name, "POST")
        self.args = options = optionset.parse(query=self._decoded(self.request.query_arguments),
                                              json_body={"q": [""]})  # the terms come per chunk
        if options.get("format", "json") != "json":
            raise APIError(400, "A batch sent one term a line is answered in NDJSON: leave 'format' out.",
                           keyword="format")
        options.biothing_type = self.biothing_type
        options.streaming = True
        return options

    async def stream_batch(self, plain):
        settings = self.web_settings
        options = self.parse_stream_options()
        terms = self.body_terms(plain)
        limit = settings.MAX_BATCH_STREAM_TERMS
        if not terms:
            raise APIError(400, "The body holds no term (one a line).", keyword="q", missing="q")
        if limit and len(terms) > limit:
            raise APIError(400, f"Too many terms: {len(terms)}, the maximum of a streamed batch is {limit} "
                                f"(MAX_BATCH_STREAM_TERMS).", keyword="q", max=limit, num=len(terms))
        if options.rawquery or options.raw:
            raise APIError(400, "raw and rawquery are not answered for a streamed batch.", keyword="raw")
        await self.ensure_metadata()
        self.web_settings.pipeline[0].extras(options)  # a bad parameter (filter, fields, sort): a 400 now
        size = options.size if options.size is not None else 10
        per_chunk = max(1, min(BATCH_CHUNK_TERMS, BATCH_CHUNK_HITS // max(size, 1)))
        chunks = [terms[start:start + per_chunk] for start in range(0, len(terms), per_chunk)]
        chunks.reverse()  # popped from the end: the first one first
        async with self.stream_slot():
            first = await self.batch_lines(options, chunks.pop())  # its errors are the usual answers
            await self.start_stream("application/x-ndjson")
            if self.request.method == "HEAD":
                return self.finish()
            pending = [first]

            async def produce():
                if pending:
                    return pending.pop()
                return await self.batch_lines(options, chunks.pop()) if chunks else None

            try:
                await self.stream_pieces(produce)
                await self.end_stream()
            except StreamEnded as ended:
                self.cut_stream(str(ended))
            except Exception as exc:  # noqa: BLE001 - the head is out: the only signal left is the cut
                self.cut_stream(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}")

    async def batch_lines(self, options, chunk):
        """The NDJSON lines of a chunk of terms: searched as one batch (msearch)."""
        builder, backend, transform = self.web_settings.pipeline
        valid = [term for term in chunk if not isinstance(term, BadLine)]
        bodies = {}
        if valid:
            options.q = valid
            options.templates = [{"query": term} for term in valid]
            try:
                built = self.pre_query_hook(options, builder.build(valid, options))
                bodies = dict(zip(range(len(valid)), built))
            except BadRequest:  # one bad term: the others still run
                for position, term in enumerate(valid):
                    try:
                        bodies[position] = self.pre_query_hook(options, builder.build([term], options))[0]
                    except BadRequest as exc:
                        bodies[position] = exc
        runnable = [body for body in bodies.values() if not isinstance(body, BadRequest)]
        answers = iter(await self.call_engine(backend, runnable, options) if runnable else ())
        results = [(term, next(answers) if not isinstance(bodies[position], BadRequest) else bodies[position])
                   for position, term in enumerate(valid)]
        return await self.off_loop(len(chunk) >= OFF_LOOP_ENTRIES, self._batch_lines_bytes,
                                   transform, options, chunk, results)

    def _batch_lines_bytes(self, transform, options, chunk, results):
        self.shaping_deadline = None  # each chunk has TRANSFORM_TIMEOUT
        lines = []
        found = iter(results)
        dumps, option = orjson.dumps, orjson.OPT_NON_STR_KEYS | (orjson.OPT_SORT_KEYS if options["_sorted"] else 0)
        with self.shaping_budget():
            for term in chunk:
                if isinstance(term, BadLine):
                    line = {"query": term.text, "error": term.reason}
                else:
                    line = self.batch_line(transform, options, *next(found))
                lines.append(dumps(line, option=option) + b"\n")
        return b"".join(lines)

    def batch_line(self, transform, options, term, answer):
        """The answer line of one term: its hits, ``notfound``, or its error."""
        if isinstance(answer, BadRequest):
            return {"query": term, "error": answer.reason}
        if "error" in answer:
            error = answer["error"]
            reason = error.get("reason") if isinstance(error, dict) else str(error)
            return {"query": term, "error": reason or "Query failed."}
        hits = answer.get("hits") or {}
        docs = [doc for doc in (transform.transform_hit(hit, options) for hit in hits.get("hits") or ())
                if doc is not None]
        if not docs:
            return {"query": term, "notfound": True}
        total = hits.get("total")
        return {"query": term, "total": total.get("value") if isinstance(total, dict) else total, "hits": docs}

    def pre_query_builder_hook(self, options):
        if self.request.method == "POST":
            options.templates = [{"query": term} for term in options.q]
            return options
        if options.after is not None or options.cursor:
            self.start_paging(options)
        if options.q is None and not options.scroll_id:
            raise APIError(400, "Missing required parameter 'q'.", keyword="q", alias=[], missing="q")
        if options.fetch_all or options.scroll_id or options.q == "__any__":
            self.cacheable = False
        return options

    def start_paging(self, options):
        """Cursor paging (``cursors``): the first page (``cursor``), or the one after a cursor
        (``after``, its parameters restored). Cursor pages are never cached: each holds a
        new cursor, which expires."""
        if options.fetch_all or options.scroll_id:
            raise APIError(400, "Cursor paging (cursor, after) and scrolling (fetch_all, scroll_id) are two ways "
                                "to read on: use one.", keyword="after" if options.after is not None else "cursor")
        settings = self.web_settings
        paging = cursors.Paging(keep_alive=cursors.keep_alive(settings))
        if options.after is not None:
            payload = cursors.codec(settings).decode(options.after)
            if payload.get("r") != self.cursor_route():
                raise cursors.CursorError("The cursor in 'after' belongs to another route: follow it where "
                                          "its page came from.")
            cursors.resume(options, payload, settings.optionset(self.kwargs_name, "GET").defaults)
            options["from"], options["facets"] = 0, None  # deep pages go on from the state; facets: page one
            paging.state, paging.served = payload.get("s"), int(payload.get("n") or 0)
        if options.q == "__any__":
            raise APIError(400, "A random document (q=__any__) has no next page.", keyword="cursor")
        options.paging = paging
        self.cacheable = False
