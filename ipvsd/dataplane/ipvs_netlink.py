"""The IPVS port over generic netlink: the real kernel.

Netlink calls are synchronous (the kernel does the work inside `sendmsg`), and a cold-start
batch can keep the kernel busy for a second. They therefore run on one dedicated worker thread,
which keeps the event loop free (health probes keep answering) and serialises access to the
socket without a lock.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ipvsd.dataplane import ipvs_wire as wire
from ipvsd.dataplane.errors import IpvsError, IpvsUnavailable, error_for, error_from_code
from ipvsd.dataplane.faults import INJECTED_ERRNO, IpvsFaults, kernel_faults
from ipvsd.dataplane.genl import Chunk, GenlSocket, NetlinkError, pack_chunks
from ipvsd.dataplane.ipvs import BatchResult
from ipvsd.dataplane.ipvs_layout import DestDecoder
from ipvsd.model.ipvs import (
    DeleteService,
    ObservedVirtualServer,
    Operation,
    ServiceKey,
    Stats,
    Timeouts,
    VirtualServer,
)

T = TypeVar("T")

# Operations encoded per step of the encode/send pipeline: about one 256 KiB chunk of real
# servers, so the first send starts early and each later one finds its slice ready.
PIPELINE_SLICE = 1024


class NetlinkIpvs:
    """`Ipvs` backed by the kernel of the current network namespace."""

    def __init__(self, sock: GenlSocket, family_id: int) -> None:
        self._sock = sock
        self._family = family_id
        self._encoder = wire.Encoder()
        self._dests = DestDecoder()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ipvs-netlink")
        self._encoder_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ipvs-encode")
        self._closed = False
        self._faults = IpvsFaults.from_environment()  # test-only switches (`faults`)
        self._kernel_faults = kernel_faults()

    @classmethod
    async def open(cls) -> NetlinkIpvs:
        """Connect to the kernel's IPVS family; IpvsUnavailable when the kernel has none."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, cls.open_sync)

    @classmethod
    def open_sync(cls) -> NetlinkIpvs:
        sock = GenlSocket()
        try:
            family_id = sock.resolve_family(wire.FAMILY_NAME)
        except NetlinkError as exc:
            sock.close()
            if exc.errno == errno.ENOENT:
                raise IpvsUnavailable(
                    exc.errno, "IPVS is not available in this kernel (try: modprobe ip_vs)"
                ) from exc
            raise
        ipvs = cls(sock, family_id)
        if ipvs._faults.flush_on_start:  # the harness's negative control, never in production
            ipvs.apply_sync([DeleteService(server.key) for server in ipvs.dump_sync()])
        return ipvs

    async def _run(self, function: Callable[[], T]) -> T:
        if self._closed:
            raise RuntimeError("IPVS adapter is closed")
        return await asyncio.get_running_loop().run_in_executor(self._worker, function)

    async def dump(self) -> list[ObservedVirtualServer]:
        return await self._run(lambda: self._held("dump", self.dump_sync()))

    async def dump_service(self, key: ServiceKey) -> ObservedVirtualServer | None:
        return await self._run(lambda: self.dump_service_sync(key))

    async def dump_services(self, keys: Sequence[ServiceKey]) -> list[ObservedVirtualServer | None]:
        wanted = tuple(keys)
        return await self._run(lambda: [self.dump_service_sync(key) for key in wanted])

    async def apply(self, operations: Sequence[Operation]) -> BatchResult:
        ops = tuple(operations)
        return await self._run(lambda: self.apply_sync(self._held("apply", ops)))

    async def get_timeouts(self) -> Timeouts:
        return await self._run(self.get_timeouts_sync)

    async def set_timeouts(self, timeouts: Timeouts) -> None:
        await self._run(lambda: self.set_timeouts_sync(timeouts))

    async def close(self) -> None:
        self.close_sync()

    def close_sync(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._worker.shutdown(wait=True)
        self._encoder_thread.shutdown(wait=True)
        self._sock.close()

    def _held(self, step: str, value: T) -> T:
        """`value`, once a test-only hold point at `step` (`faults`) has let go."""
        self._faults.reached(step)
        return value

    # --- synchronous core (also used directly by the benchmark) ----------------------------

    def _injected(self, what: str) -> None:
        """Fail here if the test-only kernel fault switch says so (`faults.KernelFaults`)."""
        if self._kernel_faults.fails(what):
            raise error_from_code(INJECTED_ERRNO, f"{what} (injected fault)")

    def dump_sync(self) -> list[ObservedVirtualServer]:
        self._injected("IPVS dump")
        services = [
            wire.decode_service(reply)
            for reply in self._sock.request(self._family, wire.encode_dump_services(), dump=True)
        ]
        result = [self._with_dests(server, stats) for server, stats in services]
        result.sort(key=lambda s: s.key.sort_key())
        return result

    def dump_service_sync(self, key: ServiceKey) -> ObservedVirtualServer | None:
        self._injected(f"IPVS get service {key}")
        try:
            (reply,) = self._sock.request(self._family, wire.encode_get_service(key))
        except NetlinkError as exc:
            if exc.errno == errno.ESRCH:
                return None
            raise
        return self._with_dests(*wire.decode_service(reply))

    def _with_dests(self, server: VirtualServer, stats: Stats) -> ObservedVirtualServer:
        replies = self._sock.request(self._family, wire.encode_dump_dests(server.key), dump=True)
        family = server.key.family
        fast = self._dests.read
        dests = []
        for reply in replies:
            dest = fast(reply, family)
            dests.append(dest if dest is not None else wire.decode_dest(reply, family))
        return wire.observed(server, stats, dests)

    def apply_sync(self, operations: Sequence[Operation]) -> BatchResult:
        """`operations` sent (`_send_sync`), except those the test-only kernel fault switch
        fails (`faults.KernelFaults`): those are not sent and answer ENOMEM."""
        ops = tuple(operations)
        faults = self._kernel_faults
        if not faults.active:
            return self._send_sync(ops)
        failing = [faults.fails(f"IPVS {type(op).__name__}") for op in ops]
        sent = self._send_sync(tuple(op for op, fail in zip(ops, failing, strict=True) if not fail))
        answers = iter(sent.errors)
        errors = [
            error_for(op, INJECTED_ERRNO) if fail else next(answers)
            for op, fail in zip(ops, failing, strict=True)
        ]
        return BatchResult(ops, tuple(errors))

    def _send_sync(self, operations: Sequence[Operation]) -> BatchResult:
        """Encode and send `operations`, overlapping the two for large batches.

        While the kernel works through one slice (inside `sendmsg`, with the GIL released),
        the encoder thread prepares the next: on a cold start that hides most of the Python
        encoding time behind the kernel's.
        """
        ops = tuple(operations)
        codes = [0] * len(ops)
        base_seq = self._sock.next_seq(len(ops))
        slices = range(0, len(ops), PIPELINE_SLICE)
        pending = self._encoder_thread.submit(self._prepare, ops, 0, base_seq)
        for start in slices:
            chunks = pending.result()
            if start + PIPELINE_SLICE < len(ops):
                following = start + PIPELINE_SLICE
                pending = self._encoder_thread.submit(self._prepare, ops, following, base_seq)
            for chunk in chunks:
                self._sock.send_chunk(chunk, base_seq, codes)
        errors: list[IpvsError | None] = [
            error_for(op, code) if code else None for op, code in zip(ops, codes, strict=True)
        ]
        return BatchResult(ops, tuple(errors))

    def _prepare(self, ops: tuple[Operation, ...], start: int, base_seq: int) -> list[Chunk]:
        encode = self._encoder.encode
        bodies = [encode(op) for op in ops[start : start + PIPELINE_SLICE]]
        return pack_chunks(self._family, bodies, base_seq + start)

    def get_timeouts_sync(self) -> Timeouts:
        (reply,) = self._sock.request(self._family, wire.encode_get_config())
        return wire.decode_timeouts(reply)

    def set_timeouts_sync(self, timeouts: Timeouts) -> None:
        try:
            self._sock.request(self._family, wire.encode_set_config(timeouts))
        except NetlinkError as exc:
            raise error_from_code(exc.errno or errno.EIO, f"set timeouts {timeouts}") from exc
