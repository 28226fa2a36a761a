"""Test-only fault switches and hold points at the dataplane's seams, read from the environment.

The disruption harness (`ipvsd.testing.disruption`) needs the real daemon on the real code
path to misbehave on purpose, or to stop at a known step so that it can be killed there
(Principle 16, as Cilium's `FaultyLBMaps`). Nothing here is set in production: with none of
these variables set, `IpvsFaults.from_environment()` is inert and costs one dictionary lookup
per adapter call.

- `IPVSD_FAULT_FLUSH_ON_START=1`: when the adapter opens (process start, before the informers
  have listed), every virtual server in the namespace's table is deleted. This is the harness's
  negative control, a build that flushes its table on start: established connections through
  the deleted real servers break (`vs/expire_nodest_conn=1`), and the harness must count them.
- `IPVSD_HOLD_AT=<step>[:<n>]` with `<step>` `dump` (a full sync's read of the whole table) or
  `apply` (a sync's batch of changes), `<n>` the call to stop at (default 1): when the adapter
  reaches that call it writes `IPVSD_HOLD_FILE` (`<pid> <step>:<n>`) and blocks its netlink
  worker (the event loop keeps running, the sync waits) until that file is removed, or for at
  most `IPVSD_HOLD_SECONDS` (default 60). The harness SIGKILLs the daemon there: mid full sync.
- `IPVSD_FAULT_KERNEL_RATE=<fraction>` (with `IPVSD_FAULT_KERNEL_SEED=<n>`, default 1, for a
  reproducible sequence): that fraction of kernel operations fails as if the kernel refused
  them, and is not sent: each IPVS operation of a batch (ENOMEM), each IPVS dump (whole table
  or one virtual server), each address bound or unbound on the dummy device (ENOMEM), each
  nftables transaction (nft's error). The disruption harness's `kernel-faults` scenario runs
  the daemons with 0.1: they must converge, not crash, and retry.
- `IPVSD_FAULT_NFT_REFUSE=<address>`: every nftables table or element change that holds this
  VIP gets one more element, for a set that does not exist, so nft refuses the whole
  transaction, as it would refuse an element the kernel rejects. The failure-isolation tests
  give one Service that address (`tests/kernel/test_isolation.py`).
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path

from ipvsd.model.ipvs import IPAddress

log = logging.getLogger(__name__)

INJECTED_ERRNO = errno.ENOMEM  # what a kernel short of memory answers any of these requests


@dataclass(slots=True)
class IpvsFaults:
    """The switches read at the adapter's seam (see the module docstring); inert by default."""

    flush_on_start: bool = False
    hold_step: str | None = None
    hold_call: int = 1
    hold_file: Path | None = None
    hold_seconds: float = 60.0
    _calls: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> IpvsFaults:
        hold = environ.get("IPVSD_HOLD_AT", "")
        step, _, call = hold.partition(":")
        hold_file = environ.get("IPVSD_HOLD_FILE")
        return cls(
            flush_on_start=environ.get("IPVSD_FAULT_FLUSH_ON_START", "") == "1",
            hold_step=step if step in ("dump", "apply") and hold_file else None,
            hold_call=int(call) if call.isdigit() else 1,
            hold_file=Path(hold_file) if hold_file else None,
            hold_seconds=float(environ.get("IPVSD_HOLD_SECONDS", "60")),
        )

    def reached(self, step: str) -> None:
        """Called by the adapter's worker thread at each `step`: hold there if switched on."""
        if self.hold_step != step or self.hold_file is None:
            return
        count = self._calls[step] = self._calls.get(step, 0) + 1
        if count != self.hold_call:
            return
        # Written whole, then renamed into place: a harness polling for the file never reads
        # it empty.
        partial = self.hold_file.with_name(f".{self.hold_file.name}.partial")
        partial.write_text(f"{os.getpid()} {step}:{count}\n")
        partial.replace(self.hold_file)
        deadline = time.monotonic() + self.hold_seconds
        while self.hold_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)


@dataclass(frozen=True, slots=True)
class NftFaults:
    """The nftables adapter's switch (see the module docstring); inert by default."""

    refuse: IPAddress | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> NftFaults:
        text = environ.get("IPVSD_FAULT_NFT_REFUSE", "").strip()
        return cls(refuse=ip_address(text) if text else None)


class KernelFaults:
    """`IPVSD_FAULT_KERNEL_RATE` (see the module docstring): one seeded sequence per process,
    shared by the IPVS, address and nftables adapters (`kernel_faults()`); inert at rate 0."""

    def __init__(self, rate: float = 0.0, seed: int = 1) -> None:
        self.rate = rate
        self.injected = 0
        self._random = random.Random(seed)
        self._lock = threading.Lock()  # the adapters call from their own worker threads

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> KernelFaults:
        rate = float(environ.get("IPVSD_FAULT_KERNEL_RATE", "0") or "0")
        seed = int(environ.get("IPVSD_FAULT_KERNEL_SEED", "1") or "1")
        return cls(min(max(rate, 0.0), 1.0), seed)

    @property
    def active(self) -> bool:
        return self.rate > 0.0

    def fails(self, what: str) -> bool:
        """Whether this operation fails (drawn from the seeded sequence); logged when it does."""
        if not self.active:
            return False
        with self._lock:
            failed = self._random.random() < self.rate
            if failed:
                self.injected += 1
        if failed:
            log.warning("injected kernel fault (IPVSD_FAULT_KERNEL_RATE): %s", what)
        return failed


@functools.cache
def kernel_faults() -> KernelFaults:
    """The process's kernel fault switch, read from the environment once."""
    return KernelFaults.from_environment()
