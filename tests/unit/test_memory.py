"""MemoryReturn's restart decision (MEMORY_RESTART_BYTES): at the budget, not a byte below,
and never while a request is in flight. The process's memory reading is the one input a
test cannot set, so it is replaced here; tests/server/test_memory_restart.py runs the real thing."""

import asyncio

import pytest

from biothings.web import memory

MIB = 1024 * 1024
BASELINE = 60 * MIB
BUDGET = 64 * MIB


class Application:
    inflight = 0


async def restarts_after_trim(monkeypatch, grown, application=None, wait=0.05):
    reading = [BASELINE]
    monkeypatch.setattr(memory, "resident_anonymous", lambda: reading[0])
    asked = []
    watcher = memory.MemoryReturn(application or Application(), threshold=1, restart_growth=BUDGET)
    assert watcher.watch_growth(lambda: asked.append(True))
    assert watcher.baseline == BASELINE
    reading[0] = BASELINE + grown
    watcher._trim()
    await asyncio.sleep(wait)
    return asked, watcher


@pytest.mark.skipif(memory._libc is None, reason="no glibc malloc_trim here")
@pytest.mark.parametrize("grown, restarted", [(BUDGET - 1, False), (BUDGET, True), (BUDGET + 1, True)])
def test_restart_is_asked_from_the_budget_on(monkeypatch, grown, restarted):
    asked, watcher = asyncio.run(restarts_after_trim(monkeypatch, grown))
    assert asked == ([True] if restarted else [])
    assert watcher.grown == grown


@pytest.mark.skipif(memory._libc is None, reason="no glibc malloc_trim here")
def test_restart_waits_until_no_request_is_in_flight(monkeypatch):
    async def scenario():
        application = Application()
        application.inflight = 1
        asked, watcher = await restarts_after_trim(monkeypatch, BUDGET, application, wait=1.2)
        assert asked == []  # busy: asked again every second
        application.inflight = 0
        await asyncio.sleep(1.2)
        assert asked == [True]
        watcher._trim()  # asked once only
        await asyncio.sleep(0.05)
        assert asked == [True]
    asyncio.run(scenario())


@pytest.mark.parametrize("settings", [dict(threshold=0, restart_growth=BUDGET), dict(threshold=1, restart_growth=0)])
def test_no_watch_without_trims_or_budget(settings):
    async def scenario():
        return memory.MemoryReturn(Application(), **settings).watch_growth(lambda: None)
    assert asyncio.run(scenario()) is False


def test_resident_anonymous_reads_this_process():
    size = memory.resident_anonymous()
    assert size is None or 1 * MIB < size < 64 * 1024 * MIB
