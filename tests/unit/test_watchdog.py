"""The watchdog cuts Python work that outlives its budget, and only inside the armed block."""

import os
import random
import threading
import time

import pytest

from biothings.web.watchdog import BudgetExceeded, Watchdog, limit


def spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_a_loop_that_never_ends_is_interrupted():
    with pytest.raises(BudgetExceeded):
        with limit(0.2):
            while True:
                pass


def test_no_budget_means_no_interruption():
    for unlimited in (0, None, -1):
        with limit(unlimited):
            spin(0.01)


def test_blocks_in_other_threads_are_interrupted_and_the_thread_goes_on():
    outcome = []

    def work():
        try:
            with limit(0.1):
                while True:
                    pass
        except BudgetExceeded:
            outcome.append("interrupted")
        with limit(5):
            outcome.append(sum(range(1000)))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(10)
    assert outcome == ["interrupted", 499500]


def test_an_interruption_never_lands_outside_its_block():
    """Blocks ending just before, at and after their deadline: each BudgetExceeded is raised
    by its with statement; none reaches the code after it; nothing stays armed."""
    watchdog = Watchdog(resolution=0.0005)
    rng = random.Random(7)
    interrupted = finished = 0
    for _ in range(400):
        try:
            with watchdog.limit(0.002):
                spin(rng.random() * 0.004)
            finished += 1
        except BudgetExceeded:
            interrupted += 1
        spin(0.0005)  # a stray exception would land here and fail the test
    assert interrupted and finished
    assert not watchdog._armed


BLOCKS_UNDER_A_TRACER = """
import random, threading, time
from biothings.web.watchdog import BudgetExceeded, Watchdog

def spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass

watchdog = Watchdog(resolution=0.0005)
done = []

def blocks(seed):
    rng = random.Random(seed)
    for _ in range(500):
        try:
            with watchdog.limit(0.001):
                spin(rng.random() * 0.002)
        except BudgetExceeded:
            pass
    done.append(seed)

threads = [threading.Thread(target=blocks, args=(seed,), daemon=True) for seed in range(3)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join(30)
print(len(done), flush=True)
"""


def test_interruptions_under_a_tracer_leave_no_lock_held(tmp_path):
    """Under coverage's tracer a pending interruption lands at any line, also just after a
    lock is taken and before the ``with`` that releases it: when arming and disarming took
    the watchdog's lock, one such landing left it held and the next block waited for good
    (the suite's own run under coverage hung there). Three threads arm 500 short blocks
    each, about half of them cut, in a process run by coverage: all finish."""
    import subprocess
    import sys
    from tests import data
    script = tmp_path / "blocks.py"
    script.write_text(BLOCKS_UNDER_A_TRACER)
    env = {**os.environ, "PYTHONPATH": data.ROOT}
    try:
        result = subprocess.run([sys.executable, "-m", "coverage", "run", f"--data-file={tmp_path / 'cov'}",
                                 str(script)], cwd=data.ROOT, env=env, capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:  # killed: coverage's SIGTERM handler never ran either
        pytest.fail("a block waited for good for the watchdog")
    assert result.stdout.strip() == "3", result.stderr[-2000:]


def test_arming_wakes_the_watchdog_thread_only_from_its_sleep():
    """Blocks armed one after another (a request arms several) do not wake the watching
    thread each time: it finds them at its next look. Counted in its context switches."""
    watchdog = Watchdog(resolution=0.05)
    with watchdog.limit(1):
        pass
    time.sleep(0.3)  # the thread started, looked a few times and went to sleep: nothing armed
    with open(f"/proc/self/task/{watchdog._thread.native_id}/status") as handle:
        before = int(handle.read().split("voluntary_ctxt_switches:")[1].split()[0])
    for _ in range(200):
        with watchdog.limit(1):
            pass
        time.sleep(0.001)  # the GIL free between blocks, as between a server's steps
    with open(f"/proc/self/task/{watchdog._thread.native_id}/status") as handle:
        after = int(handle.read().split("voluntary_ctxt_switches:")[1].split()[0])
    assert after - before < 50  # a wake per look (about 5 here), not one per block
    with pytest.raises(BudgetExceeded):  # and it still cuts
        with watchdog.limit(0.1):
            while True:
                pass


def test_an_expired_budget_is_cut_at_once_and_a_later_one_does_not_wake_the_thread():
    """The thread sleeps until the earliest deadline armed: ``expire`` (a cancelled search)
    wakes it at once; blocks armed with later deadlines than its alarm do not wake it."""
    watchdog = Watchdog()
    outcome = []
    started = threading.Event()

    def work():
        try:
            with watchdog.limit(60) as armed:
                outcome.append(armed)
                started.set()
                spin(30)
        except BudgetExceeded:
            outcome.append(time.monotonic())
    thread = threading.Thread(target=work)
    thread.start()
    started.wait(5)
    time.sleep(0.05)
    with open(f"/proc/self/task/{watchdog._thread.native_id}/status") as handle:
        before = int(handle.read().split("voluntary_ctxt_switches:")[1].split()[0])
    for _ in range(100):  # later deadlines than the 60 s one armed first: the thread sleeps on
        with watchdog.limit(120):
            pass
        time.sleep(0.005)  # half a second in all: a thread looking every 50 ms would wake 10 times
    with open(f"/proc/self/task/{watchdog._thread.native_id}/status") as handle:
        after = int(handle.read().split("voluntary_ctxt_switches:")[1].split()[0])
    assert after - before <= 2
    expired = time.monotonic()
    outcome[0].expire()
    thread.join(5)
    assert not thread.is_alive() and len(outcome) == 2 and outcome[1] - expired < 0.5
    assert not watchdog._armed
