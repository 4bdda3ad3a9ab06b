"""``ExportHandler``: every hit of a query as one stream (NDJSON, TSV, CSV, a JSON array).

Route: ``GET /{ver}/export`` (and ``/{ver}/{typ}/export``), a route of its own rather
than a flag of ``/query``: its answer is not a page (no ``total``, ``took``, ``hits``
wrapper), its formats are not those of ``/query``, its parameters are a query's
without paging (``size``, ``from``, ``facets``), and it has a concurrency limit of its
own; a client names what it wants in the URL (``curl .../export?q=...&format=tsv``).
How the stream is written: ``handlers.streams``; the row formats: ``records``.
"""

import asyncio

from biothings.web import cursors, records
from biothings.web.handlers.base import APIError
from biothings.web.handlers.query import ESRequestHandler, give_loop_a_turn
from biothings.web.handlers.streams import StreamEnded, Streaming


class ExportHandler(Streaming, ESRequestHandler):
    """``GET /{ver}/export?q=``: every hit of a query, one stream (``records`` formats).

    The hits are read as cursor paging reads them (``Engine.search_page``: pinned to
    the index as the first page saw it, ``EXPORT_PAGE_SIZE`` hits a page), so an export
    holds the same hits as following every cursor of the same query.
    """

    name = "export"
    kwargs_name = "export"

    async def get(self):
        options = self.parse_options()
        await self.ensure_metadata()
        settings = self.web_settings
        options["size"] = settings.EXPORT_PAGE_SIZE
        options.streaming = True
        options.paging = cursors.Paging(keep_alive=cursors.keep_alive(settings))
        if options.q == "__any__":
            raise APIError(400, "A random document (q=__any__) cannot be exported.", keyword="q")
        options = self.pre_query_builder_hook(options)
        builder, backend, transform = settings.pipeline
        query = self.pre_query_hook(options, builder.build(options.q, options))
        if self.check_not_modified():
            return
        writer = records.records(self.format, self.columns(options), bool(options["_sorted"]))
        async with self.stream_slot():
            pages = [await self.fetch_page(backend, query, options)]  # its errors are the usual answers
            await self.start_stream(writer.content_type)
            if self.request.method == "HEAD":  # the GET's status and headers: all a HEAD answers
                return self.finish()

            async def produce():
                if not pages:
                    if options.paging.state is None:
                        return None
                    pages.append(await self.fetch_page(backend, query, options))
                return await self.off_loop(True, self.page_bytes, transform, pages.pop(), options, writer)

            try:
                await self.send(writer.head())
                await self.stream_pieces(produce)
                await self.end_stream(writer.tail())
            except StreamEnded as ended:
                self.cut_stream(str(ended))
            except Exception as exc:  # noqa: BLE001 - the head is out: the only signal left is the cut
                self.cut_stream(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}")
            finally:
                if options.paging.state is not None:
                    state, options.paging.state = options.paging.state, None
                    asyncio.ensure_future(settings.engine.close_pages(state))

    async def fetch_page(self, backend, query, options):
        """The engine's next page (``SEARCH_TIMEOUT``; cancelled when the client goes)."""
        await give_loop_a_turn()
        return await self.call_engine(backend, query, options)

    def page_bytes(self, transform, page, options, writer):
        """A page of hits as the bytes of the stream's format (in a shaping thread)."""
        self.shaping_deadline = None  # each page has TRANSFORM_TIMEOUT
        with self.shaping_budget():
            docs = transform.transform(page, options)["hits"]
            return writer.page(docs)

    def columns(self, options):
        """TSV/CSV columns: ``fields`` (not its exclusions), else ``_id`` and the mapping's fields in
        alphabetical order (as ``/metadata/fields`` lists them; clusters answer mappings sorted)."""
        if self.format not in ("tsv", "csv"):
            return ()
        asked = [str(field) for field in options.fields or () if not str(field).startswith("-")]
        if asked and "all" not in asked and "*" not in asked:
            return asked
        metadata = self.web_settings.metadata
        names = [self.biothing_type] if self.biothing_type else self.web_settings.biothing_types
        columns = ["_id"]
        for name in names:
            found = metadata.types.get(name)
            if found is not None:
                columns += [field for field in sorted(records.value_fields(found.mapping)) if field not in columns]
        return columns
