"""Process-wide threads after a fork: the worker processes (``PROCESSES``) are forked
from a parent that may have made them, and a child has none of its parent's threads."""

import os
import time

import pytest

from biothings.web import watchdog
from biothings.web.handlers import base

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def in_child(check):
    """Runs ``check()`` in a forked child; its exit status: 0 when it returned true."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if check() else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_the_answer_shaping_pool_works_in_a_forked_child():
    assert base.shaping_pool().submit(lambda: 1).result(timeout=5) == 1  # the parent's pool has threads

    def shapes():
        return base.shaping_pool().submit(lambda: 2).result(timeout=5) == 2
    assert in_child(shapes) == 0


def test_the_watchdog_interrupts_in_a_forked_child():
    with watchdog.limit(5):  # the parent's watchdog thread is running
        pass

    def interrupted():
        try:
            with watchdog.limit(0.2):
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    pass
        except watchdog.BudgetExceeded:
            return True
        return False
    assert in_child(interrupted) == 0
