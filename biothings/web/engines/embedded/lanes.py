"""Thread pools of the embedded engine, and the budget of each piece of work run there.

tantivy searches without holding the GIL, so searches run in threads, never on the
event loop. Work goes to one of two lanes, each a pool with its own queue: cheap
id lookups never wait behind expensive searches (facets over every document, sorts
on many keys), however many of those are queued.

Each piece of work is a ``Job`` with a deadline (the search body's ``timeout``) that
is cancelled when the coroutine awaiting it is (the client went away, or the
handler's own deadline passed). The search steps call ``checkpoint()`` between
their tantivy calls and stop there; Python-level loops between two checkpoints
(a sort in Python) are cut by the watchdog (``biothings.web.watchdog``), armed
for the job's remaining time and fired at once on cancellation. A tantivy call
itself runs to its end: the work stops when it returns.
"""

import asyncio
import concurrent.futures
import threading
import time

from biothings.web import watchdog
from biothings.web.engines.errors import SearchCancelled, SearchTimeout

# arming the watchdog for a job without a deadline: it can still be cancelled
_NO_DEADLINE = 365 * 86400.0

_local = threading.local()


def checkpoint():
    """Raise ``SearchTimeout`` or ``SearchCancelled`` when the job of this thread is over
    budget or cancelled (nothing outside a lane's threads)."""
    job = getattr(_local, "job", None)
    if job is not None:
        job.check()


class Job:
    """One piece of engine work: its deadline and whether it was cancelled."""

    __slots__ = ("seconds", "deadline", "cancelled", "armed")

    def __init__(self, seconds=None):
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds if seconds else None
        self.cancelled = False
        self.armed = None

    def remaining(self):
        return None if self.deadline is None else self.deadline - time.monotonic()

    def check(self):
        if self.cancelled:
            raise SearchCancelled()
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise SearchTimeout(self.seconds)

    def cancel(self):
        """Stop the work: at its next checkpoint, or at once in a Python loop."""
        self.cancelled = True
        armed = self.armed
        if armed is not None and hasattr(armed, "expire"):
            armed.expire()


class Lane:
    """A thread pool with its own queue; ``queued`` and ``running`` count its jobs."""

    def __init__(self, name, threads):
        self.name = name
        self.threads = threads
        self.queued = 0
        self.running = 0
        self._lock = threading.Lock()
        self._executor = None

    @property
    def executor(self):
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.threads, thread_name_prefix=f"embedded-{self.name}")
        return self._executor

    async def run(self, seconds, func, *args):
        """``func(*args)`` in a thread of this lane within ``seconds`` (None: no deadline)."""
        job = Job(seconds)
        with self._lock:
            self.queued += 1
        future = self.executor.submit(self._work, job, func, args)
        future.add_done_callback(self._dropped)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            job.cancel()  # a job not started yet never starts; a running one stops
            raise

    def _dropped(self, future):
        if future.cancelled():  # cancelled while queued: _work never ran
            with self._lock:
                self.queued -= 1

    def _work(self, job, func, args):
        with self._lock:
            self.queued -= 1
            self.running += 1
        _local.job = job
        try:
            job.check()  # queued past its deadline: nothing to do
            remaining = job.remaining()
            try:
                with watchdog.limit(_NO_DEADLINE if remaining is None else max(remaining, 0.001)) as armed:
                    job.armed = armed
                    job.check()  # cancelled before the watchdog knew of it
                    return func(*args)
            except watchdog.BudgetExceeded:
                pass  # cut in a Python loop: past the deadline, or cancelled
            # raised outside the except block: not chained to the interruption, whose frames
            # (the abandoned work's lists of matches) can go at once
            raise SearchCancelled() if job.cancelled else SearchTimeout(job.seconds)
        finally:
            job.armed = None
            _local.job = None
            with self._lock:
                self.running -= 1

    def close(self):
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
