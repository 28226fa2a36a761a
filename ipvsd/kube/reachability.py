"""Whether the API server answers again: one cheap probe loop shared by every watch of a client.

After an outage a watch's exponential backoff (up to 30 s, plus jitter) would leave the proxy
blind for up to a minute after the server is back. Instead, while any watch waits out a backoff
because the server did not answer, one loop per client asks `GET /readyz` (public to every
client, a few bytes; kube-proxy's client-go has no such probe and waits its backoff) every
`interval` seconds with jitter, and wakes every waiting watch as soon as a probe that follows an
unanswered one is answered. A watch's own retries still follow its backoff, so during an outage
each watch sends its few backoff retries and the client one probe per `interval`, whatever the
number of watches.

A server that answers probes but fails the watch (a watch closed at once, a credential
failure) does not wake anyone early: only an answer after no answer does, so the backoff still
bounds the retry rate there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random as _random
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[bool]]
Sleep = Callable[[float], Awaitable[None]]

DEFAULT_INTERVAL = 2.0
JITTER = 0.25  # each pause is interval * (1 +- JITTER): proxies of a cluster do not probe in step


class Reachability:
    """The shared probe loop (see the module docstring); runs only while someone waits."""

    def __init__(
        self,
        probe: Probe,
        *,
        interval: float = DEFAULT_INTERVAL,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self._probe = probe
        self.interval = interval
        self._random = random
        self._waiters = 0
        self._back = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Whether the last probe went unanswered: kept while nobody waits (the loop stops), so
        # a watch that fails again and restarts the loop just as the server returns is still
        # woken by the first answer.
        self._unanswered = False
        self.probes = 0  # sent so far (tests and the harness count them)

    async def wait(self, delay: float, sleep: Sleep) -> bool:
        """`sleep(delay)`, cut short once the server answers a probe after one it did not
        answer; True if cut short."""
        back = self._back
        self._waiters += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="api-reachability-probe")
        napping = asyncio.ensure_future(sleep(delay))
        returned = asyncio.ensure_future(back.wait())
        try:
            await asyncio.wait((napping, returned), return_when=asyncio.FIRST_COMPLETED)
            return returned.done() and not napping.done()
        finally:
            for pending in (napping, returned):
                pending.cancel()
            self._waiters -= 1
            if not self._waiters and self._task is not None:
                self._task.cancel()
                self._task = None

    async def _run(self) -> None:
        while True:
            self.probes += 1
            try:
                answered = await self._probe()
            except Exception:  # a probe must never end the loop
                log.exception("API reachability probe failed")
                answered = False
            if not answered:
                self._unanswered = True
            elif self._unanswered:
                log.info("the API server answers again: watches retry now")
                self._unanswered = False
                self._back.set()
                self._back = asyncio.Event()
            pause = self.interval * (1.0 + JITTER * (2.0 * self._random() - 1.0))
            await asyncio.sleep(pause)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
