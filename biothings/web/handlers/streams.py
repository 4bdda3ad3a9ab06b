"""Streams: answers written page by page while they are fetched (exports, streamed batches).

What a stream does, and why:

- Memory: a stream holds one page of hits being written and the next one being
  fetched, whatever the size of the result set. Each page is shaped (transform,
  serialization, compression) in a thread, written, and its flush awaited: the
  flush completes once the server's send buffer drained (back-pressure), so a client
  reading slowly slows the stream down instead of filling memory. A client that
  reads nothing for ``HTTP_WRITE_TIMEOUT`` seconds loses its connection.
- First bytes early: the first page is written and flushed before the second one is
  fetched (chunked transfer: no ``Content-Length``).
- Errors: one found before the first byte (a bad query) is the usual JSON error. One
  after it (the engine failed, ``STREAM_TIMEOUT`` passed) cannot change the status
  sent already: the connection is closed without the chunked terminator, so the
  client sees a truncated transfer (curl: exit 18, requests: ``ChunkedEncodingError``),
  never a stream that looks complete; it is logged with the request id.
- A client that goes away: the page being fetched is cancelled (the engine stops
  its work), nothing more is fetched, and the stream's slot is free again.
- Budgets: ``MAX_ANSWER_HITS`` and ``MAX_ANSWER_BYTES`` bound one answer; a stream is
  how a client reads past them, so they do not apply to it. ``SEARCH_TIMEOUT``
  applies to each page's engine call, ``TRANSFORM_TIMEOUT`` to each page's shaping,
  ``STREAM_TIMEOUT`` to the whole stream.
- Concurrency: at most ``MAX_CONCURRENT_STREAMS`` streams per process; one more is a
  429 with ``Retry-After`` before any work.
"""

import asyncio
import logging
import time

from biothings.web import compression
from biothings.web.handlers.base import APIError

logger = logging.getLogger("biothings.web.handlers")

# seconds a client refused with 429 is asked to wait
RETRY_AFTER = 5


class StreamEnded(Exception):
    """The stream cannot go on (the client left, a write or the whole stream took too long)."""


class Streaming:
    """The writing side of a stream, mixed into an ``ESRequestHandler``.

    ``await self.start_stream(content_type)`` sends the head (status, headers);
    ``await self.send(chunk_bytes)`` writes and flushes a piece (compressed as
    negotiated); ``await self.end_stream()`` finishes. ``async with self.stream_slot():``
    holds one of the process's ``MAX_CONCURRENT_STREAMS`` slots.
    """

    encoder = None
    stream_deadline = None

    def stream_slot(self):
        return _StreamSlot(self)

    async def start_stream(self, content_type):
        """Headers of the stream, then (HEAD: only them) its first flush."""
        self.set_header("Content-Type", content_type)
        self.set_header("X-Accel-Buffering", "no")  # nginx passes each piece on as it comes
        coding = self.content_coding()
        compression.add_vary(self._headers)
        if coding is not None:
            self.encoder = compression.encoder(coding, stream=True)
            self.set_header("Content-Encoding", coding)
            if "Etag" in self._headers:
                self.set_header("Etag", compression.etag_for(self._headers["Etag"], coding))
        if self.cacheable and self.request.method in ("GET", "HEAD") and "Cache-Control" not in self._headers:
            max_age = self.cache_max_age()
            if max_age:
                self.set_header("Cache-Control", f"max-age={max_age}, public")
        seconds = self.web_settings.STREAM_TIMEOUT
        self.stream_deadline = time.monotonic() + seconds if seconds else None
        await self._flush()

    async def stream_pieces(self, produce):
        """Write the pieces ``await produce()`` gives (bytes; ``None`` after the last), each one
        while the next is made (fetched and shaped): one piece written, one in the making."""
        following = asyncio.ensure_future(produce())
        try:
            while True:
                piece = await following
                if piece is None:
                    return
                following = asyncio.ensure_future(produce())
                await self.send(piece)
        finally:
            if not following.done():
                following.cancel()  # its engine call too: the engine stops

    async def send(self, data):
        """Write ``data`` (uncompressed bytes) and wait until it drained."""
        if self.encoder is not None:
            data = await self.off_loop(len(data) >= compression.OFF_LOOP_BYTES, self._compressed, data)
        if data:
            self.write(data)
            await self._flush()

    def _compressed(self, data):
        return self.encoder.compress(data) + self.encoder.flush()

    async def end_stream(self, data=b""):
        """Write the last bytes and finish the answer (the chunked terminator)."""
        if self.encoder is not None:
            data = self.encoder.compress(data) + self.encoder.finish()
        if data:
            self.write(data)
        self.finish()

    async def _flush(self):
        """Flush, waiting for the client to read it (at most ``HTTP_WRITE_TIMEOUT``)."""
        if self.client_gone:
            raise StreamEnded()
        if self.stream_deadline is not None and time.monotonic() > self.stream_deadline:
            raise StreamEnded(f"the stream ran past STREAM_TIMEOUT ({self.web_settings.STREAM_TIMEOUT:g} s)")
        seconds = self.web_settings.HTTP_WRITE_TIMEOUT or None
        try:
            await asyncio.wait_for(self.flush(), seconds)
        except asyncio.TimeoutError:
            raise StreamEnded(f"the client read nothing for {seconds:g} s (HTTP_WRITE_TIMEOUT)") from None
        except Exception:  # the connection closed under the write (tornado's StreamClosedError)
            raise StreamEnded() from None
        if self.client_gone:
            raise StreamEnded()

    def cut_stream(self, why):
        """End a stream whose head is sent: close the connection without the chunked
        terminator (a truncated transfer for the client)."""
        if why and not self.client_gone:
            logger.warning("%s %s: stream cut: %s [request %s]", self.request.method, self.request.uri, why,
                           self.request_id)
        if not self.client_gone:
            self.request.connection.close()  # then finish() writes nothing more
        self.client_gone = True


class _StreamSlot:
    """One of the process's ``MAX_CONCURRENT_STREAMS``: 429 with Retry-After when none is free."""

    def __init__(self, handler):
        self.handler = handler

    async def __aenter__(self):
        application = self.handler.application
        limit = self.handler.web_settings.MAX_CONCURRENT_STREAMS
        if limit and application.streams >= limit:
            raise APIError(429, f"Too many streams at once: this server streams {limit} at a time "
                                f"(MAX_CONCURRENT_STREAMS). Retry later.",
                           headers={"Retry-After": str(RETRY_AFTER)}, max=limit)
        application.streams += 1
        return self

    async def __aexit__(self, *exc):
        self.handler.application.streams -= 1
        return False
