"""Time budgets for Python work on a thread that must not be held: a watchdog interrupts it.

The answer of a request is shaped (transform, serialization) on the event loop's
thread. A bug or an odd document that makes that work loop would hold the worker
for good: every other request waits, and SIGTERM too, since the loop never gets
back to its signal handler. ``Watchdog.limit(seconds)`` arms a deadline around such
work; once it passes, the watchdog's thread raises ``BudgetExceeded`` in the armed
thread (CPython's ``PyThreadState_SetAsyncExc``: the exception arrives at the next
bytecode boundary of that thread), and the block ends like any failing block.

What it cannot cut: a call into C code (orjson, tantivy) is interrupted only once it
returns to Python; such calls are bounded by size budgets instead. The exception
derives from ``BaseException`` so that no ``except Exception`` inside the block
swallows it; catch it where the block is armed (see ``handlers.query``).

Arming costs two uncontended lock round trips; the watchdog thread starts with the
first armed block and sleeps once a look (every ``RESOLUTION``) finds that nothing
was armed since the one before. Arming wakes it only from that sleep: while it
watches, it finds new blocks at its next look. (Waking it at every
arming, several times per request, cost a thread switch and a turn of the GIL each:
8% of a server's samples under load, docs/benchmarks.md.)
"""

import ctypes
import os
import threading
import time

# how often the watchdog looks at the armed deadlines while one is armed (seconds)
RESOLUTION = 0.05


class BudgetExceeded(BaseException):
    """The armed block ran past its deadline and was interrupted."""


def _async_exc_setter():
    """``PyThreadState_SetAsyncExc`` taking the exception class as a pointer, or None off CPython.

    It is only ever called to raise, never to clear (NULL): clearing still flags the
    interpreter as having an exception pending, which no thread then takes down, and every
    thread then runs the slow path of the eval loop for good."""
    try:
        function = ctypes.pythonapi.PyThreadState_SetAsyncExc
    except AttributeError:  # pragma: no cover - not CPython
        return None
    prototype = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)
    return prototype(ctypes.cast(function, ctypes.c_void_p).value)


_set_async_exc = _async_exc_setter()


class Armed:
    """One armed block: ``with watchdog.limit(seconds): ...``."""

    __slots__ = ("watchdog", "thread_id", "deadline", "seconds", "fired")

    def __init__(self, watchdog, seconds):
        self.watchdog = watchdog
        self.seconds = seconds
        self.thread_id = None
        self.deadline = None
        self.fired = False

    def expire(self):
        """End the budget now: the watchdog interrupts the block at its next look
        (a cancelled request's work, see ``engines.embedded.lanes``)."""
        self.deadline = 0.0

    def __enter__(self):
        self.thread_id = threading.get_ident()
        self.deadline = time.monotonic() + self.seconds
        self.watchdog.arm(self)
        return self

    def __exit__(self, kind, value, traceback):
        try:
            if self.watchdog.disarm(self):
                # fired: its exception landed in the block, or is pending here and lands at
                # the next bytecode check (a backward jump): never after the block
                for _ in range(100):
                    pass
        except BudgetExceeded:
            if kind is None:  # the block ended just as it fired: it still ran past the deadline
                raise
        return False


class _Unarmed:
    """``limit(0)``: no budget."""

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        return False


_UNARMED = _Unarmed()


class Watchdog:
    """Interrupts armed blocks that outlive their deadline (one per process is enough)."""

    def __init__(self, resolution=RESOLUTION):
        self.resolution = resolution
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._armed = set()
        self._thread = None
        self._idle = True  # waiting with nothing armed: an arming must wake it
        self._armings = 0  # blocks armed so far: the thread goes idle after a look that saw none armed

    def limit(self, seconds):
        """A context manager raising ``BudgetExceeded`` in the block after ``seconds``
        (``0`` or ``None``: no limit, or off CPython where threads cannot be interrupted)."""
        if not seconds or seconds <= 0 or _set_async_exc is None:
            return _UNARMED
        return Armed(self, seconds)

    def arm(self, armed):
        # the plain lock, not the Condition: Condition.__enter__ is Python code, and a late
        # interruption landing in it after the lock is taken would leave the lock held for good
        with self._lock:
            self._armings += 1
            if self._idle:  # else it looks again within its resolution: no wake-up per arming
                self._idle = False
                self._wake.notify()
            self._armed.add(armed)
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="biothings-watchdog", daemon=True)
                self._thread.start()

    def disarm(self, armed):
        """Forget an armed block; True when it fired (its exception may still be pending)."""
        with self._lock:
            self._armed.discard(armed)
            return armed.fired

    def _watch(self):
        with self._wake:
            seen = self._armings
            while True:
                if not self._armed and self._armings == seen:  # nothing armed since the last look
                    self._idle = True
                    self._wake.wait()
                seen = self._armings
                self._wake.wait(self.resolution)
                now = time.monotonic()
                for armed in [armed for armed in self._armed if armed.deadline <= now]:
                    self._armed.discard(armed)  # fired once; nothing of it stays behind
                    armed.fired = True
                    _set_async_exc(armed.thread_id, id(BudgetExceeded))


_watchdog = Watchdog()


def _reset_after_fork():  # a forked worker has no watchdog thread, whatever its parent had
    global _watchdog
    _watchdog = Watchdog(_watchdog.resolution)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def limit(seconds):
    """``with limit(seconds): ...`` on the process's watchdog."""
    return _watchdog.limit(seconds)
