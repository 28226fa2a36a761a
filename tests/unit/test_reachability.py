"""The shared reachability probe: it cuts a backoff short only when the server answers after
not answering, and one loop serves every waiting watch."""

from __future__ import annotations

import asyncio
import time

import pytest

from ipvsd.kube.reachability import Reachability

pytestmark = pytest.mark.timeout(10)


class ScriptedProbe:
    """Answers from a script (the last answer repeats); counts the probes."""

    def __init__(self, *answers: bool) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def __call__(self) -> bool:
        self.calls += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


async def test_a_server_that_comes_back_wakes_the_waiter_before_its_backoff() -> None:
    probe = ScriptedProbe(False, False, True)
    reachability = Reachability(probe, interval=0.05)
    started = time.monotonic()

    cut_short = await reachability.wait(30.0, asyncio.sleep)

    assert cut_short
    assert time.monotonic() - started < 1.0
    assert probe.calls == 3


async def test_a_server_that_answers_all_along_leaves_the_backoff_alone() -> None:
    """A watch that fails while the server answers (a watch closed at once) keeps its backoff:
    otherwise it would retry at the probe's rate forever."""
    probe = ScriptedProbe(True)
    reachability = Reachability(probe, interval=0.05)
    started = time.monotonic()

    cut_short = await reachability.wait(0.4, asyncio.sleep)

    assert not cut_short
    assert time.monotonic() - started >= 0.4


async def test_every_waiting_watch_shares_one_probe_loop_which_stops_with_the_last() -> None:
    probe = ScriptedProbe(False)
    reachability = Reachability(probe, interval=0.1, random=lambda: 0.5)

    results = await asyncio.gather(*(reachability.wait(0.55, asyncio.sleep) for _ in range(5)))

    assert results == [False] * 5
    assert 5 <= probe.calls <= 7  # one per interval for the five waiters, not one each
    calls = probe.calls
    await asyncio.sleep(0.3)
    assert probe.calls == calls  # nobody waits: no probing


async def test_a_loop_started_again_remembers_the_server_was_down() -> None:
    """Every watch's backoff ended and the loop stopped; a watch fails again just as the
    server returns and starts the loop again: its first answer must still wake it."""
    probe = ScriptedProbe(False)
    reachability = Reachability(probe, interval=0.05)
    assert not await reachability.wait(0.12, asyncio.sleep)  # down all along: no wake
    probe.answers = [True]
    started = time.monotonic()

    assert await reachability.wait(30.0, asyncio.sleep)
    assert time.monotonic() - started < 1.0
