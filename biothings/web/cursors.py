"""Cursor paging of ``/query``: ``cursor=true`` answers a ``next`` cursor, ``after=CURSOR``
the page after it.

Decisions, and why:

- Opt-in (``cursor=true`` on the first page). A cursor pins its result set from the
  first page on (``Engine.search_page``): on a cluster that is a point in time, held by
  the cluster for ``CURSOR_KEEP_ALIVE`` after each page. Opening one for every query
  would cost every query a round trip and leave a point in time behind for each
  (OpenSearch caps them at 300 per node by default); a client that means to read on
  says so once.
- What a cursor holds: the request's parameters (so each page is built by the
  builder, its hooks and checks included, never taken from the client as engine
  DSL), the engine's state of the read (the embedded index version and offset, or the
  cluster's point in time and the ``search_after`` values of the last hit), the hits
  served so far and an expiry time. Deep pages never use ``from``: the first page may
  start at ``from`` (within ``MAX_RESULT_WINDOW``), the others go on from the state.
- Opaque and signed: compressed JSON, base64url, with an HMAC-SHA256 (16 bytes) of it.
  A cursor altered by one byte, or signed with another key, is a 400 that says so;
  an expired one (``CURSOR_KEEP_ALIVE`` after its page) is a 400 that says that.
- The key: ``CURSOR_SECRET`` when set (the same secret on every host of a deployment
  behind one name: any of them continues any cursor); otherwise a random key kept in
  a file beside the embedded data (``EMBEDDED_DATA_DIR/.cursor-key``, made by the first
  process that needs it), shared by every process of the machine that serves that
  directory. Where that file cannot be written, a key of the process: its cursors are
  refused by the other processes (logged once as a warning).
- The parameters of a cursor's request are kept; a request with ``after`` may change
  how the hits are shown (``size``, ``fields``, ``format``, ``dotfield``, ...), but not
  which hits they are: ``q``, ``sort``, ``filter``, ``post_filter`` or ``userquery`` given
  with another value is a 400. ``facets`` are answered on the first page only.
"""

import base64
import hashlib
import hmac
import logging
import os
import time
import weakref
import zlib

import orjson

from biothings.web.pipeline.errors import BadRequest

logger = logging.getLogger("biothings.web.cursors")

KEY_FILE = ".cursor-key"
# parameters that decide which hits a read holds, and in which order: fixed by its cursor
RESULT_SET_OPTIONS = ("q", "sort", "filter", "post_filter", "userquery")
# parameters of the first page only: not carried on
FIRST_PAGE_OPTIONS = ("after", "cursor", "from", "facets", "facet_size", "rawquery")
_SIGNATURE_BYTES = 16
_codecs = weakref.WeakKeyDictionary()


class CursorError(BadRequest):
    """A cursor that cannot be followed: a 400 naming ``after``."""

    def __init__(self, reason):
        super().__init__(reason, keyword="after")


def cursor_key(web_settings):
    """The key that signs this API's cursors (see the module docstring)."""
    secret = web_settings.CURSOR_SECRET
    if not secret:
        from biothings.web.engines.embedded.engine import load_scroll_key
        directory = os.fspath(web_settings.EMBEDDED_DATA_DIR)
        try:
            secret = load_scroll_key(directory, KEY_FILE)
        except OSError:
            secret = None
        if secret is None or not os.path.exists(os.path.join(directory, KEY_FILE)):
            logger.warning("cursors are signed with a key of this process (no CURSOR_SECRET, and %s cannot be "
                           "written): other processes refuse them", os.path.join(directory, KEY_FILE))
            secret = secret or os.urandom(32)
    if isinstance(secret, str):
        secret = secret.encode()
    return hmac.new(secret, b"biothings.web cursors", hashlib.sha256).digest()


class Paging:
    """A read page after page, as the backend runs it: the engine's state (``None`` for the
    first page, and again after the last), how long the engine keeps the read between two
    pages, and the hits served so far."""

    __slots__ = ("state", "keep_alive", "served")

    def __init__(self, state=None, keep_alive="1m", served=0):
        self.state = state
        self.keep_alive = keep_alive
        self.served = served


class CursorCodec:
    """Turns the payload of a cursor into its text and back, signed and timed."""

    def __init__(self, key, keep_alive_seconds):
        self.key = key
        self.keep_alive_seconds = keep_alive_seconds

    def _signature(self, payload):
        return hmac.new(self.key, payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]

    def encode(self, payload):
        """The cursor text of ``payload`` (a JSON-able dict), valid ``keep_alive_seconds`` from now."""
        data = dict(payload, e=round(time.time() + self.keep_alive_seconds, 3))
        body = base64.urlsafe_b64encode(zlib.compress(orjson.dumps(data), 6)).rstrip(b"=")
        return (body + b"." + base64.urlsafe_b64encode(self._signature(body)).rstrip(b"=")).decode()

    def decode(self, text):
        """The payload of a cursor; ``CursorError`` when it was altered, is not ours, or expired."""
        try:
            body, dot, signature = text.strip().encode("ascii").rpartition(b".")
        except UnicodeEncodeError:
            body, dot, signature = b"", b"", b""
        # the signature's text is compared, not its decoded bytes: base64 leaves bits unused
        # in its last character, and a cursor differing there is another cursor
        expected = base64.urlsafe_b64encode(self._signature(body)).rstrip(b"=")
        valid = bool(dot) and hmac.compare_digest(expected, signature)
        if not valid:
            raise CursorError("Invalid cursor in 'after': it was altered, or made by another deployment "
                              "(CURSOR_SECRET). Start again from the first page (cursor=true).")
        try:
            data = orjson.loads(zlib.decompress(base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4))))
            expires = float(data["e"])
        except (ValueError, KeyError, TypeError, zlib.error, orjson.JSONDecodeError):
            raise CursorError("Invalid cursor in 'after': it was made by another version of this API. "
                              "Start again from the first page (cursor=true).") from None
        if time.time() > expires:
            raise CursorError(f"The cursor in 'after' has expired: a cursor lives {self.keep_alive_seconds:g} s "
                              f"after its page (CURSOR_KEEP_ALIVE). Start again from the first page (cursor=true).")
        return data


def codec(web_settings):
    """The ``CursorCodec`` of an API (made once: its key may come from a file)."""
    found = _codecs.get(web_settings)
    if found is None:
        found = _codecs[web_settings] = CursorCodec(cursor_key(web_settings), web_settings.CURSOR_KEEP_ALIVE)
    return found


def keep_alive(web_settings):
    """``CURSOR_KEEP_ALIVE`` as an Elasticsearch time value."""
    return f"{max(1, int(round(web_settings.CURSOR_KEEP_ALIVE)))}s"


def carried(options, defaults):
    """The parameters a cursor carries: those the request gave (other than their default),
    but for the first page's own."""
    return {name: value for name, value in options.items()
            if name in defaults and name not in FIRST_PAGE_OPTIONS and value != defaults[name]}


def resume(options, payload, defaults):
    """``options`` of a request with ``after``, completed with the parameters its cursor
    carries; a parameter that would change the result set is a ``CursorError``."""
    kept = payload.get("o") or {}
    for name in RESULT_SET_OPTIONS:
        if name in options and options[name] != defaults.get(name) and options[name] != kept.get(name):
            raise CursorError(f"'{name}' is fixed by the cursor in 'after': start again without 'after' "
                              f"to read another result set.")
    for name, value in kept.items():
        if name in defaults and options.get(name) == defaults[name]:
            options[name] = value
    return options
