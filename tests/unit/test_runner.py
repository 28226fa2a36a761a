"""The bounded-frequency runner: immediate first run, coalescing, periodic runs, resilience."""

from __future__ import annotations

import asyncio

from ipvsd.reconcile.runner import BoundedFrequencyRunner


async def test_requests_within_the_min_interval_coalesce_into_one_run() -> None:
    kinds: list[bool] = []

    async def run(periodic: bool) -> None:
        kinds.append(periodic)

    runner = BoundedFrequencyRunner(run, min_interval=0.3, max_interval=60)
    task = asyncio.create_task(runner.loop())
    await asyncio.sleep(0.05)  # first run: immediate
    for _ in range(5):
        runner.request()
    await asyncio.sleep(0.6)
    task.cancel()
    assert kinds == [False, False]  # the initial run, then one run for all five requests


async def test_without_requests_it_runs_periodically() -> None:
    kinds: list[bool] = []

    async def run(periodic: bool) -> None:
        kinds.append(periodic)

    runner = BoundedFrequencyRunner(run, min_interval=0, max_interval=0.1)
    task = asyncio.create_task(runner.loop())
    await asyncio.sleep(0.35)
    task.cancel()
    assert kinds[0] is False
    assert len(kinds) >= 3
    assert all(kinds[1:])


async def test_a_failing_run_is_logged_and_the_loop_goes_on() -> None:
    calls = 0

    async def run(periodic: bool) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("kernel said no")

    runner = BoundedFrequencyRunner(run, min_interval=0, max_interval=60)
    task = asyncio.create_task(runner.loop())
    await asyncio.sleep(0.05)
    runner.request()
    await asyncio.sleep(0.05)
    task.cancel()
    assert calls == 2


async def test_a_steady_stream_of_requests_still_gets_periodic_runs() -> None:
    """Changes arriving faster than the max interval must not postpone the periodic check
    for ever: it corrects hand-made changes to the kernel."""
    kinds: list[bool] = []

    async def run(periodic: bool) -> None:
        kinds.append(periodic)

    runner = BoundedFrequencyRunner(run, min_interval=0, max_interval=0.2)
    task = asyncio.create_task(runner.loop())
    for _ in range(50):  # a request every 20 ms for 1 s
        runner.request()
        await asyncio.sleep(0.02)
    task.cancel()
    assert kinds[0] is False
    assert kinds.count(True) >= 2  # about one per 0.2 s (none before: each run reset the wait)
    assert kinds.count(False) > 20  # the requests are served as they come
