"""A bounded-frequency runner: syncs soon after changes, never too often, at least periodically.

kube-proxy's model (`--ipvs-min-sync-period`, `--ipvs-sync-period`): `request()` asks for a
run; a run starts at once unless the previous one started less than `min_interval` ago (then
it waits out the rest, collecting further requests into the same run), and a run happens at
least every `max_interval` even without requests (the periodic check). Runs never overlap.

A run is periodic when no request came for `max_interval`, and also when the last periodic
run is `max_interval` old although requests keep coming: under a steady stream of changes
(kube-proxy's runner never checks then) the periodic check still happens once per interval,
so a hand-made change to the kernel is corrected within its bound whatever the API does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class BoundedFrequencyRunner:
    def __init__(
        self,
        run: Callable[[bool], Awaitable[None]],
        *,
        min_interval: float,
        max_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`run(periodic)` is called with periodic=True when the max interval elapsed."""
        self._run = run
        self.min_interval = min_interval
        self.max_interval = max_interval
        self._clock = clock
        self._wake = asyncio.Event()
        self._last_start: float | None = None
        self._last_periodic: float | None = None  # the first run counts: it checks everything
        self.runs = 0

    def request(self) -> None:
        self._wake.set()

    async def loop(self) -> None:
        """Run until cancelled; an exception from `run` is logged and the loop goes on."""
        while True:
            requested = await self._wait_for_request()
            await self._respect_min_interval()
            self._wake.clear()
            self._last_start = now = self._clock()
            periodic = not requested or (
                self._last_periodic is not None and now - self._last_periodic >= self.max_interval
            )
            if periodic or self._last_periodic is None:
                self._last_periodic = now
            self.runs += 1
            try:
                await self._run(periodic)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sync failed; the next run will retry")

    async def _wait_for_request(self) -> bool:
        if self._last_start is None:
            return True  # the first run happens at once
        remaining = self._last_start + self.max_interval - self._clock()
        if remaining <= 0:
            return self._wake.is_set()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=remaining)
        except TimeoutError:
            return False
        return True

    async def _respect_min_interval(self) -> None:
        if self._last_start is None:
            return
        remaining = self._last_start + self.min_interval - self._clock()
        if remaining > 0:
            await asyncio.sleep(remaining)
