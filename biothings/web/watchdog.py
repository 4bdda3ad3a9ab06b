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

Arming costs two uncontended lock round trips. The watchdog's thread sleeps until the
earliest deadline armed (or until a block is armed while nothing is): a block armed with a
later deadline than the one it waits for does not wake it, and when it wakes it looks
again at what is armed then. So under steady load it wakes about once per budget, not at
every arming nor every few milliseconds: each wake is a thread switch and a turn of the GIL
on the event loop's core (8% of a server's samples when it woke at each arming; when it
looked every 50 ms, 330 wakes and 480 preemptions of the loop's thread in 5 s of load, 6
and 37 now: docs/benchmarks.md).
"""

import ctypes
import os
import threading
import time

# the shortest sleep of the watchdog's thread (seconds): a deadline is acted on at most
# this late, and a thread never spins on deadlines that are due
RESOLUTION = 0.0005


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
        """End the budget now: the watchdog interrupts the block at once (a cancelled
        request's work, see ``engines.embedded.lanes``)."""
        self.watchdog.expire(self)

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
        self._alarm = None  # when the thread wakes next; None: once a block is armed

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
            self._armed.add(armed)
            if self._alarm is None or armed.deadline < self._alarm:  # else it wakes in time
                self._alarm = armed.deadline
                self._wake.notify()
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="biothings-watchdog", daemon=True)
                self._thread.start()

    def expire(self, armed):
        """End ``armed``'s budget now."""
        with self._lock:
            armed.deadline = 0.0
            if armed in self._armed:
                self._alarm = 0.0
                self._wake.notify()

    def disarm(self, armed):
        """Forget an armed block; True when it fired (its exception may still be pending)."""
        with self._lock:
            self._armed.discard(armed)
            return armed.fired

    def _watch(self):
        with self._wake:
            while True:
                now = time.monotonic()
                earliest = None
                for armed in list(self._armed):
                    if armed.deadline <= now:
                        self._armed.discard(armed)  # fired once; nothing of it stays behind
                        armed.fired = True
                        _set_async_exc(armed.thread_id, id(BudgetExceeded))
                    elif earliest is None or armed.deadline < earliest:
                        earliest = armed.deadline
                if earliest is None and self._alarm is not None and self._alarm > now:
                    # nothing armed right now (between two requests): sleep until the alarm set
                    # already, which blocks armed meanwhile (later deadlines) need not move
                    earliest = self._alarm
                self._alarm = earliest
                self._wake.wait(None if earliest is None else max(earliest - now, self.resolution))


_watchdog = Watchdog()


def _reset_after_fork():  # a forked worker has no watchdog thread, whatever its parent had
    global _watchdog
    _watchdog = Watchdog(_watchdog.resolution)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def limit(seconds):
    """``with limit(seconds): ...`` on the process's watchdog."""
    return _watchdog.limit(seconds)
