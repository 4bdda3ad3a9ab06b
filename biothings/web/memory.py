"""Memory given back to the system after large answers (glibc; elsewhere nothing happens).

A large answer (thousands of hits) allocates and frees hundreds of megabytes in a
second. glibc keeps what was freed inside its heaps (and raises its mmap threshold
once a large block is freed, so later large blocks stay in the heap too): the
process would keep its peak size for good.

``MemoryReturn``: after answers of ``MEMORY_TRIM_BYTES`` bytes in all (or a search
abandoned halfway), ``malloc_trim`` gives the free pages inside the heaps back, from
a thread, once no request is in flight (or ``MAX_WAIT`` seconds later under
continuous load), at most every ``MIN_INTERVAL`` seconds: a trim holds the heap
locks for up to ~100 ms on a heap of hundreds of megabytes. (Fixed low mmap and trim
thresholds would return memory at each free instead, but cost every request
mmap/munmap and brk calls: +0.5 ms on an id lookup, measured.)

Python's own allocator keeps an arena (1 MiB) while one object in it lives, which
no trim can return: after a burst of large answers a few hundred long-lived objects
(a thread started, a cache entry, a dict that grew) pin a hundred arenas whose other
pools are free, and the process stays at about three times its start-up size.
``MEMORY_RESTART_BYTES``: a process that, trimmed and idle, still holds that much
more anonymous memory than at start-up asks to start again in place (``index.py``
re-executes itself with the same process id and listening sockets; connections
wait in the kernel's backlog meanwhile). ``PYTHONMALLOC=malloc`` would avoid the
arenas, for ~14% more CPU per request (docs/limits.md).
"""

import ctypes
import ctypes.util
import logging
import threading
import time

logger = logging.getLogger("biothings.web.memory")

MIN_INTERVAL = 10.0
MAX_WAIT = 30.0


def _glibc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:  # pragma: no cover - no C library to load
        return None
    return libc if hasattr(libc, "malloc_trim") else None


_libc = _glibc()


def trim():
    """Give the free pages of every heap back to the system; True if some were."""
    return bool(_libc.malloc_trim(0)) if _libc is not None else False


def resident_anonymous():
    """Bytes of this process's memory that no file backs (``RssAnon``; Linux), else None."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class MemoryReturn:
    """Counts the bytes of answers written; trims the heaps after enough of them."""

    def __init__(self, application, threshold, restart_growth=0):
        self.application = application
        self.threshold = threshold
        self.restart_growth = restart_growth  # MEMORY_RESTART_BYTES
        self.baseline = None  # anonymous memory at start-up (watch_growth)
        self.grown = None  # anonymous memory over the baseline after the last trim
        self._restart = None
        self._loop = None
        self.pending = 0  # answer bytes written since the last trim
        self.since = None  # when pending first passed the threshold
        self.last = 0.0
        self.trims = 0
        self.running = False
        self._timer = None

    def watch_growth(self, restart):
        """From now on (start-up done), call ``restart()`` once the process, trimmed and idle,
        holds ``restart_growth`` bytes more anonymous memory than now. False if it cannot tell."""
        if not self.restart_growth or not self.threshold or _libc is None:
            return False
        self.baseline = resident_anonymous()
        if self.baseline is None:
            return False
        import asyncio
        self._loop = asyncio.get_running_loop()
        self._restart = restart
        return True

    def answered(self, size):
        """An answer of ``size`` bytes was written (a large number for an abandoned search)."""
        if not self.threshold or _libc is None:
            return
        self.pending += size
        if self.pending >= self.threshold and self._timer is None and not self.running:
            import tornado.ioloop
            self.since = self.since or time.monotonic()
            self._timer = tornado.ioloop.IOLoop.current().call_later(1.0, self._maybe_trim)

    def abandoned(self):
        """A search was abandoned halfway: what it had built is free now."""
        self.answered(self.threshold)

    def _maybe_trim(self):
        self._timer = None
        now = time.monotonic()
        idle = self.application.inflight <= 0
        if (idle or now - self.since >= MAX_WAIT) and now - self.last >= MIN_INTERVAL:
            self.running = True
            self.pending, self.since, self.last = 0, None, now
            threading.Thread(target=self._trim, name="biothings-memory-trim", daemon=True).start()
        else:
            import tornado.ioloop
            self._timer = tornado.ioloop.IOLoop.current().call_later(1.0, self._maybe_trim)

    def _trim(self):
        started = time.perf_counter()
        try:
            trim()
        finally:
            self.trims += 1
            self.running = False
        logger.debug("heaps trimmed in %.1f ms", (time.perf_counter() - started) * 1000)
        if self._restart is not None:
            now = resident_anonymous()
            self.grown = None if now is None else now - self.baseline
            if self.grown is not None and self.grown >= self.restart_growth:
                self._loop.call_soon_threadsafe(self._restart_when_idle)

    def _restart_when_idle(self):
        """Restart once no request is in flight (the trim may have run under load)."""
        if self._restart is None:
            return
        if self.application.inflight > 0:
            self._loop.call_later(1.0, self._restart_when_idle)
            return
        restart, self._restart = self._restart, None
        logger.warning("%.0f MiB more memory than at start-up after trimming (MEMORY_RESTART_BYTES %.0f MiB): "
                       "starting again in place", self.grown / 2**20, self.restart_growth / 2**20)
        restart()
