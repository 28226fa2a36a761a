"""One worker thread that owns a pyroute2 `IPRoute`: what the rtnetlink adapters share.

pyroute2's sockets are blocking and not thread-safe, so each adapter keeps its socket on a
thread of its own and hands every call to it (`_run`); the socket opens on first use
(`_rtnl`) and closes on that same thread (`close`). `RtnlAddresses` and `RtnlServiceRoutes`
build on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from pyroute2 import IPRoute

T = TypeVar("T")


class RtnlWorker:
    """A worker thread and the `IPRoute` that lives on it."""

    def __init__(self, thread_name: str) -> None:
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._ipr: Any = None

    async def _run(self, function: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, function)

    def _rtnl(self) -> Any:
        if self._ipr is None:
            self._ipr = IPRoute()
        return self._ipr

    def _link_index(self, name: str) -> int | None:
        found = self._rtnl().link_lookup(ifname=name)
        return int(found[0]) if found else None

    def _close_sockets(self) -> None:
        """On the worker: close what is open (subclasses add their own sockets)."""
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    async def close(self) -> None:
        await self._run(self._close_sockets)
        self._worker.shutdown(wait=True)
