"""Compressed answers: content codings negotiated from ``Accept-Encoding``.

Decisions, and why (measured in docs/benchmarks.md, "Compression"):

- Codings: ``gzip`` (every HTTP client decodes it: requests, httpx, curl
  ``--compressed``, R's httr, browsers) and ``zstd`` (``zstandard``, a well-kept binding
  of the reference library with wheels for every platform; browsers and httpx or
  urllib3 with ``zstandard`` installed ask for it): on a 1 MB ``size=1000`` answer zstd
  level 3 compresses as well as gzip level 6 (18.8% vs 18.0% of the size) for about a
  fifth of the CPU. Streams take gzip at level 1 (``STREAM_GZIP_LEVEL``: gzip 6 made an
  export three times slower), answers at 6. Brotli is left out: at the speeds that matter for dynamic
  answers it compresses no better than zstd, and zstd covers the clients that ask
  for brotli (browsers) already. ``COMPRESSION`` lists the codings offered, in the
  server's order of preference; a client's q-values come first (``gzip;q=1,
  zstd;q=0.5`` gets gzip), ``identity`` and ``*`` are honoured, ``q=0`` refuses.
- What: answers of at least ``COMPRESS_MIN_BYTES`` bytes, of a textual type (JSON,
  YAML, HTML, NDJSON, TSV, CSV, text) or msgpack, and every stream (written page by
  page, each page flushed so it can be decoded at once). Every answer that passes
  here says ``Vary: Accept-Encoding``, compressed or not, so a cache keeps the
  representations apart.
- ETags: a compressed representation is another representation: its ETag is the
  identity ETag with ``-<coding>`` inside the quotes (``"abc"`` -> ``"abc-gzip"``).
  ``If-None-Match`` matches either tag a request could be answered with, and the 304
  carries the tag that matched.
- HEAD answers with the GET's headers: the body is compressed, then dropped, so
  ``Content-Length`` is the compressed length the GET would send. Static files (written in
  pieces after their ``Content-Length``, and whose HEAD has no body to compress) are not
  compressed: a proxy in front compresses them (docs/deployment.md).
- Where: ``CompressedAnswers`` (a tornado output transform: every handler, both HTTP
  servers) compresses on the event loop; answers large enough to cost (more than
  ``OFF_LOOP_BYTES``) and streams are compressed by their handler in a thread, where
  zlib and zstd release the GIL.
"""

import functools
import re
import zlib

import tornado.web
import zstandard

# levels: zstd 3 (its default) and gzip 6 (zlib's default, what tornado and most servers use)
GZIP_LEVEL = 6
ZSTD_LEVEL = 3
# gzip level of streams: a stream is bounded by the CPU of the process serving it, and gzip 6
# makes the export three times slower (docs/benchmarks.md); level 1 (nginx's default) is about
# four times faster than 6 for a third more bytes (24% of the size instead of 18%)
STREAM_GZIP_LEVEL = 1
# bodies larger than this are compressed off the event loop by the handler (gzip 6: ~1.5 ms)
OFF_LOOP_BYTES = 64 * 1024
_COMPRESSIBLE = frozenset({"application/json", "application/x-ndjson", "application/x-msgpack",
                           "application/javascript", "application/xml", "application/yaml",
                           "image/svg+xml", "application/openmetrics-text"})
_CODING = re.compile(r"\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*(?:;\s*q\s*=\s*([0-9.]+))?\s*(?:;[^,]*)?")


class GzipEncoder:
    """A gzip stream: ``compress`` data, ``flush`` what was given so far, ``finish``."""

    name = "gzip"

    def __init__(self, level=GZIP_LEVEL):
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def compress(self, data):
        return self._compressor.compress(data)

    def flush(self):
        return self._compressor.flush(zlib.Z_SYNC_FLUSH)

    def finish(self):
        return self._compressor.flush(zlib.Z_FINISH)


class ZstdEncoder:
    """A zstd frame: ``compress`` data, ``flush`` a block of what was given, ``finish``."""

    name = "zstd"

    def __init__(self, level=ZSTD_LEVEL):
        self._compressor = zstandard.ZstdCompressor(level=level).compressobj()

    def compress(self, data):
        return self._compressor.compress(data)

    def flush(self):
        return self._compressor.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)

    def finish(self):
        return self._compressor.flush(zstandard.COMPRESSOBJ_FLUSH_FINISH)


ENCODERS = {"gzip": GzipEncoder, "zstd": ZstdEncoder}


def encoder(coding, stream=False):
    """A new encoder of ``coding`` (``stream``: at the streams' level)."""
    if stream and coding == "gzip":
        return GzipEncoder(STREAM_GZIP_LEVEL)
    return ENCODERS[coding]()


def compress(body, coding):
    """``body`` compressed whole with ``coding``."""
    if coding == "zstd":
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(body)
    return zlib.compress(body, GZIP_LEVEL, 16 + zlib.MAX_WBITS)


def accepted(header):
    """``{coding: q}`` of an ``Accept-Encoding`` value (names lower-cased, ``x-gzip`` as gzip)."""
    weights = {}
    for part in (header or "").split(","):
        match = _CODING.fullmatch(part)
        if not match:
            continue
        name = match.group(1).lower()
        name = "gzip" if name == "x-gzip" else name
        try:
            q = float(match.group(2)) if match.group(2) is not None else 1.0
        except ValueError:
            continue
        weights[name] = max(0.0, min(q, 1.0))
    return weights


@functools.lru_cache(maxsize=64)
def negotiate(header, offered):
    """The coding of ``offered`` (server order) that ``Accept-Encoding: header`` prefers;
    ``None`` for identity (no header, nothing acceptable, or identity preferred). A client
    sends the same header with every request: the answer is kept for the last 64."""
    if not header or not offered:
        return None
    weights = accepted(header)
    star = weights.get("*")
    best, best_q = None, 0.0
    for coding in offered:
        q = weights.get(coding, star if star is not None else 0.0)
        if q > best_q:
            best, best_q = coding, q
    if best is None:
        return None
    identity = weights.get("identity", star if star is not None and "identity" not in weights else 1.0)
    return best if best_q >= identity or identity == 0 else None


def compressible(content_type):
    """Whether answers of this ``Content-Type`` gain from compression."""
    kind = (content_type or "").split(";")[0].strip().lower()
    return kind.startswith("text/") or kind in _COMPRESSIBLE


def etag_for(etag, coding):
    """The ETag of the ``coding`` representation of the answer whose identity ETag is ``etag``."""
    if not etag or not coding:
        return etag
    weak = etag.startswith("W/")
    tag = etag[2:] if weak else etag
    if len(tag) < 2 or not tag.endswith('"'):
        return etag
    return f'{"W/" if weak else ""}{tag[:-1]}-{coding}"'


def add_vary(headers):
    """``Vary: Accept-Encoding`` on ``headers`` (kept beside what it already names)."""
    vary = headers.get("Vary")
    if not vary:
        headers["Vary"] = "Accept-Encoding"
    elif "accept-encoding" not in vary.lower():
        headers["Vary"] = vary + ", Accept-Encoding"


class CompressedAnswers(tornado.web.OutputTransform):
    """The output transform of the application (see the module docstring): answers
    compressed as negotiated, ``Vary`` on all. An answer whose handler set
    ``Content-Encoding`` (compressed already, off the event loop) passes as it is."""

    offered = ()
    min_bytes = 1024

    def __init__(self, request):
        header = request.headers.get("Accept-Encoding")
        self.coding = negotiate(header, self.offered) if header else None
        self.encoder = None

    def transform_first_chunk(self, status_code, headers, chunk, finishing):
        add_vary(headers)
        # an answer written in pieces with its Content-Length announced (a static file) passes as
        # it is: its HEAD, written without the body, could not give the compressed length
        pieces_of_known_length = not finishing and "Content-Length" in headers
        if (self.coding is not None and "Content-Encoding" not in headers and status_code not in (204, 304)
                and not pieces_of_known_length and compressible(headers.get("Content-Type"))
                and (not finishing or len(chunk) >= self.min_bytes)):
            self.encoder = encoder(self.coding)
            headers["Content-Encoding"] = self.coding
            if "Etag" in headers:
                headers["Etag"] = etag_for(headers["Etag"], self.coding)
            chunk = self.transform_chunk(chunk, finishing)
            if finishing:
                headers["Content-Length"] = str(len(chunk))
        return status_code, headers, chunk

    def transform_chunk(self, chunk, finishing):
        if self.encoder is None:
            return chunk
        data = self.encoder.compress(chunk)
        return data + (self.encoder.finish() if finishing else self.encoder.flush())


def offered(web_settings):
    """The codings ``COMPRESSION`` offers (``SettingsError`` for one this server does not have),
    worked out once per ``COMPRESSION`` value: handlers read it per request."""
    return _offered_codings(tuple(web_settings.COMPRESSION or ()))


@functools.lru_cache(maxsize=16)
def _offered_codings(names):
    codings = tuple(str(coding).lower() for coding in names)
    unknown = [coding for coding in codings if coding not in ENCODERS]
    if unknown:
        from biothings.web.settings import SettingsError
        raise SettingsError(f"COMPRESSION: unknown content coding {unknown[0]!r} (known: {', '.join(ENCODERS)})")
    return codings


def transform(web_settings):
    """The ``CompressedAnswers`` class of an API's settings (``COMPRESSION``, ``COMPRESS_MIN_BYTES``)."""
    return type("CompressedAnswers", (CompressedAnswers,), {
        "offered": offered(web_settings), "min_bytes": web_settings.COMPRESS_MIN_BYTES})
