"""The conntrack port: read a protocol's entries, delete exact entries (for the UDP cleanup).

`NetlinkConntrack` speaks ctnetlink (`conntrack_wire`) over a raw netfilter netlink socket on
one worker thread, as the IPVS adapter does: one dump request per family, and every deletion
of a cleanup in one batched `sendmsg` (`genl.NetlinkSocket.send_batch`), never a `conntrack`
process per flow. `conntrack_fake.FakeConntrack` keeps a table in memory; the contract suite
(`tests/contract/conntrack_contract.py`, run on the fake in tests/component and on the kernel
in tests/kernel) holds both to the same behaviour:

- `flows(family, protocol)` returns the entries of that family and protocol (nothing else);
- `delete(flows)` deletes exactly those entries and returns how many it deleted; an entry that
  is already gone (expired, or replaced by a new flow with the same tuple) is skipped, not an
  error. Any other refusal raises `ConntrackError` after the rest were tried.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

from ipvsd.dataplane import conntrack_wire as wire
from ipvsd.dataplane.genl import NetlinkSocket
from ipvsd.model.ipvs import Family
from ipvsd.model.tracked_flow import TrackedFlow

T = TypeVar("T")


class ConntrackError(OSError):
    """The kernel refused to list or delete conntrack entries."""


class Conntrack(Protocol):
    """Read and delete the conntrack entries of one network namespace."""

    async def flows(self, family: Family, protocol: int) -> list[TrackedFlow]:
        """Every entry of `family` whose original direction is of layer-4 `protocol`."""
        ...

    async def delete(self, flows: Sequence[TrackedFlow]) -> int:
        """Delete exactly these entries; how many were deleted (gone ones are skipped)."""
        ...

    async def close(self) -> None: ...


class NetlinkConntrack:
    """`Conntrack` over ctnetlink in the current network namespace. The socket is opened on
    first use, so a node whose kernel lacks ctnetlink fails only its cleanups (logged)."""

    def __init__(self) -> None:
        self._sock: NetlinkSocket | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="conntrack")

    async def flows(self, family: Family, protocol: int) -> list[TrackedFlow]:
        return await self._run(lambda: self._dump(family, protocol))

    async def delete(self, flows: Sequence[TrackedFlow]) -> int:
        if not flows:
            return 0
        return await self._run(lambda: self._delete(flows))

    async def close(self) -> None:
        await self._run(self._close)
        self._worker.shutdown(wait=False)

    async def _run(self, job: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, job)

    def _socket(self) -> NetlinkSocket:
        if self._sock is None:
            self._sock = NetlinkSocket(wire.NETLINK_NETFILTER)
        return self._sock

    def _dump(self, family: Family, protocol: int) -> list[TrackedFlow]:
        try:
            payloads = self._socket().request(
                wire.CT_GET, wire.dump_request(family, protocol), dump=True, reply=wire.CT_ENTRY
            )
        except OSError as error:
            raise ConntrackError(error.errno, f"conntrack dump: {error.strerror}") from error
        flows = []
        for payload in payloads:
            flow = wire.decode_entry(payload)
            if flow is not None and flow.family == family and flow.protocol == protocol:
                flows.append(flow)
        return flows

    def _delete(self, flows: Sequence[TrackedFlow]) -> int:
        bodies = [wire.delete_request(flow) for flow in flows]
        try:
            codes = self._socket().send_batch(wire.CT_DELETE, bodies)
        except OSError as error:
            raise ConntrackError(error.errno, f"conntrack delete: {error.strerror}") from error
        refused = [(flow, code) for flow, code in zip(flows, codes, strict=True) if code]
        real = [(flow, code) for flow, code in refused if code != errno.ENOENT]
        if real:
            flow, code = real[0]
            raise ConntrackError(
                code,
                f"conntrack refused to delete {len(real)} of {len(flows)} entries "
                f"(first: {flow}: {os.strerror(code)})",
            )
        return len(flows) - len(refused)

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
