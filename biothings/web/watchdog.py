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

Arming takes no lock (see ``Watchdog``): a set operation in and one out. The watchdog's thread sleeps until the
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
import queue
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
    """Interrupts armed blocks that outlive their deadline (one per process is enough).

    The armed thread takes no lock: an interruption can land between any two bytecodes of
    it (a late one from a block that just ended, or this block's own), and one landing just
    after a lock is taken, before the ``with`` or ``try`` that releases it, would leave the
    lock held and every later block waiting for it (seen under coverage's tracer, whose
    line events let pending exceptions land at every line). Each step the two threads share
    is one operation of a built-in type instead, atomic under the GIL: blocks join and leave
    the ``_armed`` set, and whichever thread removes a block first decides (the watchdog:
    it fires; the block: it ends unfired); wake-ups go through a ``SimpleQueue``.
    """

    def __init__(self, resolution=RESOLUTION):
        self.resolution = resolution
        self._armed = set()
        self._wakeups = queue.SimpleQueue()
        self._alarm = None  # when the thread wakes next; None: once a block is armed
        # started now, not at the first arming: starting it there would take locks
        # (threading's) where an interruption may land
        self._thread = threading.Thread(target=self._watch, name="biothings-watchdog", daemon=True)
        self._thread.start()

    def limit(self, seconds):
        """A context manager raising ``BudgetExceeded`` in the block after ``seconds``
        (``0`` or ``None``: no limit, or off CPython where threads cannot be interrupted)."""
        if not seconds or seconds <= 0 or _set_async_exc is None:
            return _UNARMED
        return Armed(self, seconds)

    def arm(self, armed):
        self._armed.add(armed)
        alarm = self._alarm  # read after the add: see _watch
        if alarm is None or armed.deadline < alarm:  # else the thread wakes in time
            # the thread keeps this alarm while nothing is armed (blocks shorter than its
            # wake-up): the next blocks, with later deadlines, then need not wake it
            self._alarm = armed.deadline
            self._wakeups.put(None)

    def expire(self, armed):
        """End ``armed``'s budget now."""
        armed.deadline = 0.0
        if armed in self._armed:
            self._wakeups.put(None)

    def disarm(self, armed):
        """Forget an armed block; True when it fired (its exception then lands at the
        latest in the caller's next bytecodes)."""
        try:
            self._armed.remove(armed)
            return False  # removed before the watchdog could: it will not fire
        except KeyError:  # the watchdog removed it: its exception is set, or about to be
            while not armed.fired:
                time.sleep(0)
            return True

    def _watch(self):
        while True:
            now = time.monotonic()
            earliest = self._fire_due(now)
            if earliest is None and self._alarm is not None and self._alarm > now:
                # nothing armed right now (between two requests): sleep until the alarm set
                # already, which blocks armed meanwhile (later deadlines) need not move
                earliest = self._alarm
            self._alarm = earliest
            # a block armed after the look above read the old alarm, maybe too late to
            # wake this thread: look once more now that the new alarm is set (a block armed
            # after this look reads the new one and wakes the thread if it must)
            again = self._fire_due(time.monotonic())
            if again is not None and (earliest is None or again < earliest):
                self._alarm = earliest = again
            timeout = None if earliest is None else max(earliest - time.monotonic(), self.resolution)
            try:
                self._wakeups.get(timeout=timeout)
                while True:  # one wake for all the wake-ups queued meanwhile
                    self._wakeups.get_nowait()
            except queue.Empty:
                pass

    def _fire_due(self, now):
        """Interrupt the blocks past their deadline; the earliest deadline of the others."""
        earliest = None
        for armed in list(self._armed):
            if armed.deadline <= now:
                try:
                    self._armed.remove(armed)
                except KeyError:
                    continue  # the block ended meanwhile: it did not fire
                _set_async_exc(armed.thread_id, id(BudgetExceeded))
                armed.fired = True  # after the exception is set: disarm waits for this
            elif earliest is None or armed.deadline < earliest:
                earliest = armed.deadline
        return earliest


_watchdog = Watchdog()


def _reset_after_fork():  # a forked worker has no watchdog thread, whatever its parent had
    global _watchdog
    _watchdog = Watchdog(_watchdog.resolution)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def limit(seconds):
    """``with limit(seconds): ...`` on the process's watchdog."""
    return _watchdog.limit(seconds)
