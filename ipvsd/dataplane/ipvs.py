"""The IPVS port: the narrow interface through which ipvsd reads and changes the IPVS table.

Two implementations exist: `ipvs_netlink.NetlinkIpvs` (the kernel, over generic netlink) and
`ipvs_fake.FakeIpvs` (in memory, enforcing the kernel's rules). One contract test suite runs
against both, so code tested against the fake behaves the same on a real node.

Contracts shared by every implementation:
- `dump()` returns every virtual server sorted by `ServiceKey.sort_key()`, each with its real
  servers sorted by `RealServer.sort_key()`.
- `apply()` executes the operations in order, never stops at a failure, and reports one result
  per operation: `None` for success or the `IpvsError` subclass that explains the failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ipvsd.dataplane.errors import IpvsError
from ipvsd.model.ipvs import ObservedVirtualServer, Operation, ServiceKey, Timeouts


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The outcome of `apply()`: `errors[i]` belongs to `operations[i]` (None = success)."""

    operations: tuple[Operation, ...]
    errors: tuple[IpvsError | None, ...]

    @property
    def ok(self) -> bool:
        return all(e is None for e in self.errors)

    @property
    def failures(self) -> list[tuple[Operation, IpvsError]]:
        return [
            (op, e) for op, e in zip(self.operations, self.errors, strict=True) if e is not None
        ]

    def raise_first(self) -> None:
        """Raise the first failure, if any (for callers that treat a batch as all-or-nothing)."""
        for error in self.errors:
            if error is not None:
                raise error


class Ipvs(Protocol):
    """Read and change the IPVS table of one network namespace."""

    async def dump(self) -> list[ObservedVirtualServer]:
        """Every virtual server with its real servers, counters and statistics (sorted)."""
        ...

    async def dump_service(self, key: ServiceKey) -> ObservedVirtualServer | None:
        """One virtual server with its real servers, or None when it does not exist."""
        ...

    async def dump_services(self, keys: Sequence[ServiceKey]) -> list[ObservedVirtualServer | None]:
        """`dump_service` of each key, in order, as one job (the periodic check reads a few
        hundred virtual servers at a time: one hand-over to the netlink thread, not one each,
        which in the test VM cost ten times the reading itself)."""
        ...

    async def apply(self, operations: Sequence[Operation]) -> BatchResult:
        """Execute `operations` in order, in as few system calls as the implementation can."""
        ...

    async def get_timeouts(self) -> Timeouts:
        """The kernel's current TCP, TCP-FIN and UDP timeouts."""
        ...

    async def set_timeouts(self, timeouts: Timeouts) -> None:
        """Set the timeouts; a field of 0 leaves that timeout unchanged."""
        ...

    async def close(self) -> None:
        """Release the kernel handle (idempotent)."""
        ...
