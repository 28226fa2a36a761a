"""An in-memory IPVS table that accepts and refuses exactly what the kernel does.

Everything above the dataplane is tested against `FakeIpvs` instead of a kernel, so the fake
must not be kinder than the kernel: each rule below was seen on Debian 12's 6.1 kernel over
netlink (errno in brackets), and the shared contract suite (tests/contract) runs the same
checks against both. Refusals come from `errors.error_for`, so they have the real adapter's
classes.

- Adding a service that exists [EEXIST]; changing, deleting or adding a real server to one
  that does not [ESRCH]. An unknown scheduler or persistence engine [ENOENT] (the name "none"
  means "no scheduler" and is always accepted). An IPv6 persistence prefix of 0 [EINVAL], and
  an engine name over 16 characters, before any other check [EINVAL]. A refused update
  changes nothing.
- Ports, protocols, service addresses and persistence settings are otherwise free: the kernel
  takes port 0 without persistence, one-packet scheduling on TCP and an engine without
  persistence (ipvsadm refuses some of these; the kernel does not).
- A real server of the other family is accepted only with tunnel forwarding [EINVAL], checked
  before anything else. Then a lower threshold above the upper one, even when the upper one is
  0 [ERANGE]; an existing real server [EEXIST]; a missing one to change or delete [ENOENT];
  and a new one whose address is not unicast [EINVAL]: 0.0.0.0 (but not the rest of 0/8),
  224.0.0.0/4, 255.255.255.255; ::, ff00::/8, fe80::/10, ::ffff:0:0/96. (The kernel lets a
  local address of those kinds through; a fake has no local addresses.)
- The kernel reports every service with the HASHED flag, the netmask explicitly (/32 or /128
  when none was asked for) and the persistence timeout as it stored it: in jiffies in 32 bits,
  so values beyond 2**32 / HZ wrap (HZ is 250 on Debian).
- Timeouts: the defaults are 900/120/300 s; 0 leaves a value alone; anything above
  INT_MAX / HZ refuses the whole request [EINVAL].

Not modelled: connections and traffic (set them with the `set_connections`, `add_traffic` and
`set_rates` helpers), the kernel's keeping a deleted real server's counters for a while, GUE
tunnels. `batches` and `calls` record what was asked, for tests that check what a sync touched.
"""

from __future__ import annotations

import errno
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from ipaddress import IPv4Network, IPv6Network
from typing import TYPE_CHECKING

from ipvsd.dataplane.errors import InvalidArgument, IpvsError, error_for
from ipvsd.dataplane.ipvs import BatchResult
from ipvsd.dataplane.ipvsadm_format import render_rules
from ipvsd.model.ipvs import (
    AddRealServer,
    AddService,
    DeleteRealServer,
    DeleteService,
    Family,
    Forward,
    IPAddress,
    ObservedRealServer,
    ObservedVirtualServer,
    Operation,
    RealServer,
    ServiceFlag,
    ServiceKey,
    Stats,
    Timeouts,
    UpdateRealServer,
    UpdateService,
    VirtualServer,
    parse_address,
)

if TYPE_CHECKING:
    from ipvsd.dataplane.ipvs import Ipvs

DEBIAN_SCHEDULERS = (
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
)  # fmt: skip
DEBIAN_PERSISTENCE_ENGINES = ("sip",)
KERNEL_DEFAULT_TIMEOUTS = Timeouts(tcp=900, tcp_fin=120, udp=300)
NO_SCHEDULER = "none"
DEBIAN_HZ = 250
# The netlink policy takes engine names of up to IP_VS_PENAME_MAXLEN (16) characters: a 16-
# character name is looked up [ENOENT], a longer one refused before anything else [EINVAL].
MAX_ENGINE_NAME = 16
INT_MAX = 2**31 - 1

_NOT_UNICAST = (
    IPv4Network("0.0.0.0/32"),
    IPv4Network("224.0.0.0/4"),
    IPv4Network("255.255.255.255/32"),
    IPv6Network("::/128"),
    IPv6Network("ff00::/8"),
    IPv6Network("fe80::/10"),
    IPv6Network("::ffff:0:0/96"),
)


@dataclass
class _RealServerEntry:
    server: RealServer
    active: int = 0
    inactive: int = 0
    persistent: int = 0
    stats: Stats = field(default_factory=Stats)

    def observed(self) -> ObservedRealServer:
        return ObservedRealServer(
            self.server, self.active, self.inactive, self.persistent, self.stats
        )


@dataclass
class _ServiceEntry:
    server: VirtualServer
    real_servers: dict[tuple[IPAddress, int], _RealServerEntry] = field(default_factory=dict)
    stats: Stats = field(default_factory=Stats)

    def observed(self) -> ObservedVirtualServer:
        reals = sorted(self.real_servers.values(), key=lambda entry: entry.server.sort_key())
        return ObservedVirtualServer(self.server, tuple(r.observed() for r in reals), self.stats)


class FakeIpvs:
    """`Ipvs` in memory, with the kernel's rules and test helpers for counters."""

    def __init__(
        self,
        *,
        schedulers: Iterable[str] = DEBIAN_SCHEDULERS,
        persistence_engines: Iterable[str] = DEBIAN_PERSISTENCE_ENGINES,
        timeouts: Timeouts = KERNEL_DEFAULT_TIMEOUTS,
        hz: int = DEBIAN_HZ,
    ) -> None:
        self.schedulers = frozenset(schedulers)
        self.persistence_engines = frozenset(persistence_engines)
        self._timeouts = timeouts
        self._hz = hz
        self._services: dict[ServiceKey, _ServiceEntry] = {}
        self.batches: list[BatchResult] = []
        self.calls: Counter[str] = Counter()
        self.closed = False

    # --- the Ipvs protocol -------------------------------------------------------------------

    async def dump(self) -> list[ObservedVirtualServer]:
        self._record("dump")
        return self.table()

    async def dump_services(self, keys: Sequence[ServiceKey]) -> list[ObservedVirtualServer | None]:
        return [await self.dump_service(key) for key in keys]

    async def dump_service(self, key: ServiceKey) -> ObservedVirtualServer | None:
        self._record("dump_service")
        entry = self._services.get(key)
        return entry.observed() if entry is not None else None

    async def apply(self, operations: Sequence[Operation]) -> BatchResult:
        self._record("apply")
        ops = tuple(operations)
        errors = tuple(self._apply_one(op) for op in ops)
        result = BatchResult(ops, errors)
        self.batches.append(result)
        return result

    async def get_timeouts(self) -> Timeouts:
        self._record("get_timeouts")
        return self._timeouts

    async def set_timeouts(self, timeouts: Timeouts) -> None:
        self._record("set_timeouts")
        values = (timeouts.tcp, timeouts.tcp_fin, timeouts.udp)
        if not all(0 <= value <= INT_MAX // self._hz for value in values):
            raise InvalidArgument(errno.EINVAL, f"set timeouts {timeouts}")
        current = self._timeouts
        self._timeouts = Timeouts(
            tcp=timeouts.tcp or current.tcp,
            tcp_fin=timeouts.tcp_fin or current.tcp_fin,
            udp=timeouts.udp or current.udp,
        )

    async def close(self) -> None:
        self.closed = True

    # --- test helpers ------------------------------------------------------------------------

    def table(self) -> list[ObservedVirtualServer]:
        """What `dump()` returns, without awaiting or counting a call."""
        return [
            self._services[key].observed()
            for key in sorted(self._services, key=ServiceKey.sort_key)
        ]

    def render(self) -> str:
        """The table as `ipvsadm -Sn` would print it (in `dump()` order)."""
        return render_rules(self.table())

    @property
    def operations(self) -> list[Operation]:
        """Every operation of every `apply()` so far, in order."""
        return [op for batch in self.batches for op in batch.operations]

    def clear_log(self) -> None:
        self.batches.clear()
        self.calls.clear()

    def set_connections(
        self,
        key: ServiceKey,
        address: str | IPAddress,
        port: int,
        *,
        active: int = 0,
        inactive: int = 0,
        persistent: int = 0,
    ) -> None:
        """Pretend a real server has these connections (e.g. to test draining)."""
        entry = self._real_server(key, address, port)
        entry.active, entry.inactive, entry.persistent = active, inactive, persistent

    def add_traffic(
        self,
        key: ServiceKey,
        address: str | IPAddress | None = None,
        port: int | None = None,
        *,
        connections: int = 0,
        packets_in: int = 0,
        packets_out: int = 0,
        bytes_in: int = 0,
        bytes_out: int = 0,
    ) -> None:
        """Add to the totals of a service and, given an address and port, of its real server.

        Like the kernel, traffic through a real server also counts for its service.
        """
        delta = Stats(connections, packets_in, packets_out, bytes_in, bytes_out)
        service = self._service(key)
        service.stats = _add(service.stats, delta)
        if address is not None or port is not None:
            real = self._real_server(key, address, port)
            real.stats = _add(real.stats, delta)

    def set_rates(
        self,
        key: ServiceKey,
        address: str | IPAddress | None = None,
        port: int | None = None,
        *,
        cps: int = 0,
        pps_in: int = 0,
        pps_out: int = 0,
        bps_in: int = 0,
        bps_out: int = 0,
    ) -> None:
        """Set the rate estimates of a service or, given an address and port, a real server."""
        target: _ServiceEntry | _RealServerEntry = (
            self._service(key)
            if address is None and port is None
            else self._real_server(key, address, port)
        )
        target.stats = replace(
            target.stats, cps=cps, pps_in=pps_in, pps_out=pps_out, bps_in=bps_in, bps_out=bps_out
        )

    # --- the kernel's rules ------------------------------------------------------------------

    def _record(self, call: str) -> None:
        if self.closed:
            raise RuntimeError("FakeIpvs is closed")
        self.calls[call] += 1

    def _apply_one(self, op: Operation) -> IpvsError | None:
        code = self._execute(op)
        return error_for(op, code) if code else None

    def _execute(self, op: Operation) -> int:
        """Carry out one operation; 0 or the errno the kernel answers with."""
        match op:
            case AddService(server=server):
                return self._add_service(server)
            case UpdateService(server=server):
                return self._update_service(server)
            case DeleteService(key=key):
                return 0 if self._services.pop(key, None) is not None else errno.ESRCH
            case AddRealServer(service=key, server=real):
                return self._add_real_server(key, real)
            case UpdateRealServer(service=key, server=real):
                return self._update_real_server(key, real)
            case DeleteRealServer(service=key, address=address, port=port):
                return self._delete_real_server(key, address, port)
        raise TypeError(f"not an IPVS operation: {op!r}")

    def _add_service(self, server: VirtualServer) -> int:
        if len(server.persistence_engine) > MAX_ENGINE_NAME:
            return errno.EINVAL
        if server.key in self._services:
            return errno.EEXIST
        if code := self._check_service(server):
            return code
        self._services[server.key] = _ServiceEntry(self._as_stored(server))
        return 0

    def _update_service(self, server: VirtualServer) -> int:
        if len(server.persistence_engine) > MAX_ENGINE_NAME:
            return errno.EINVAL
        entry = self._services.get(server.key)
        if entry is None:
            return errno.ESRCH
        if code := self._check_service(server):
            return code
        entry.server = self._as_stored(server)
        return 0

    def _check_service(self, server: VirtualServer) -> int:
        if server.scheduler != NO_SCHEDULER and server.scheduler not in self.schedulers:
            return errno.ENOENT
        engine = server.persistence_engine
        if engine and engine not in self.persistence_engines:
            return errno.ENOENT
        if server.key.family == Family.INET6 and server.effective_netmask == 0:
            return errno.EINVAL
        return 0

    def _as_stored(self, server: VirtualServer) -> VirtualServer:
        """The service as the kernel reports it back."""
        jiffies = server.timeout * self._hz % 2**32
        return replace(
            server,
            flags=server.flags | ServiceFlag.HASHED,
            timeout=jiffies // self._hz,
            netmask=server.effective_netmask,
        )

    def _add_real_server(self, key: ServiceKey, real: RealServer) -> int:
        entry = self._services.get(key)
        if entry is None:
            return errno.ESRCH
        if code := _check_real_server(key, real):
            return code
        if real.endpoint in entry.real_servers:
            return errno.EEXIST
        if any(real.address in network for network in _NOT_UNICAST):
            return errno.EINVAL
        entry.real_servers[real.endpoint] = _RealServerEntry(real)
        return 0

    def _update_real_server(self, key: ServiceKey, real: RealServer) -> int:
        entry = self._services.get(key)
        if entry is None:
            return errno.ESRCH
        if code := _check_real_server(key, real):
            return code
        existing = entry.real_servers.get(real.endpoint)
        if existing is None:
            return errno.ENOENT
        existing.server = real
        return 0

    def _delete_real_server(self, key: ServiceKey, address: IPAddress, port: int) -> int:
        entry = self._services.get(key)
        if entry is None:
            return errno.ESRCH
        return 0 if entry.real_servers.pop((address, port), None) is not None else errno.ENOENT

    def _service(self, key: ServiceKey) -> _ServiceEntry:
        try:
            return self._services[key]
        except KeyError:
            raise KeyError(f"no service {key}") from None

    def _real_server(
        self, key: ServiceKey, address: str | IPAddress | None, port: int | None
    ) -> _RealServerEntry:
        if address is None or port is None:
            raise TypeError("a real server needs both an address and a port")
        service = self._service(key)
        try:
            return service.real_servers[(parse_address(address), port)]
        except KeyError:
            raise KeyError(f"no real server {address}:{port} in {key}") from None


def _check_real_server(key: ServiceKey, real: RealServer) -> int:
    """The checks that come before the lookup, in the kernel's order."""
    if Family.of(real.address) != key.family and real.forward != Forward.TUNNEL:
        return errno.EINVAL
    if not 0 <= real.weight <= INT_MAX or real.lower_threshold > real.upper_threshold:
        return errno.ERANGE
    return 0


def _add(stats: Stats, delta: Stats) -> Stats:
    return Stats(*(getattr(stats, f.name) + getattr(delta, f.name) for f in fields(Stats)))


if TYPE_CHECKING:
    _conforms: Ipvs = FakeIpvs()
