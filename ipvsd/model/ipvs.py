"""IPVS table values: virtual servers, real servers, their statistics and batch operations.

These are the nouns that the planner produces and the dataplane consumes. They carry no
behaviour beyond validation and ordering, so they can be compared, hashed and diffed freely.
Addresses are `ipaddress` objects: the family is never ambiguous and the packed form for
netlink is one attribute access away.

Defaults here are IPVS's own rules, never a library's: masquerading (NAT) forwarding, weight 1,
scheduler chosen by the caller (there is deliberately no default scheduler).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Final, NamedTuple

IPAddress = IPv4Address | IPv6Address


class Family(enum.IntEnum):
    """Address families as the kernel numbers them (AF_INET, AF_INET6)."""

    INET = 2
    INET6 = 10

    @staticmethod
    def of(address: IPAddress) -> Family:
        return Family.INET if address.version == 4 else Family.INET6


class Protocol(enum.IntEnum):
    """Transport protocols IPVS balances (IPPROTO numbers); fwmark services carry none."""

    TCP = 6
    UDP = 17
    SCTP = 132


class Forward(enum.IntEnum):
    """Forwarding methods (IP_VS_CONN_F_*): ipvsd only ever programs MASQ (NAT)."""

    MASQ = 0
    LOCAL = 1
    TUNNEL = 2
    ROUTE = 3
    BYPASS = 4  # the kernel's cache-bypass method; reported, never programmed by ipvsd


class ServiceFlag(enum.IntFlag):
    """Virtual-server flags (IP_VS_SVC_F_*). SCHED1..3 mean different things per scheduler."""

    PERSISTENT = 0x1
    HASHED = 0x2  # set by the kernel on every hashed service; never requested
    ONEPACKET = 0x4
    SCHED1 = 0x8
    SCHED2 = 0x10
    SCHED3 = 0x20


# Scheduler flag names as ipvsadm's `-b` option spells them, per scheduler.
SCHEDULER_FLAG_NAMES: dict[str, dict[str, ServiceFlag]] = {
    "sh": {"sh-fallback": ServiceFlag.SCHED1, "sh-port": ServiceFlag.SCHED2},
    "mh": {"mh-fallback": ServiceFlag.SCHED1, "mh-port": ServiceFlag.SCHED2},
}

NO_FLAGS: Final = ServiceFlag(0)

# Flags that the kernel reports but that a caller cannot meaningfully request.
KERNEL_OWNED_FLAGS = ServiceFlag.HASHED

MAX_WEIGHT = 2**31 - 1
MAX_SCHEDULER_NAME = 15  # IP_VS_SCHEDNAME_MAXLEN - 1
# The schedulers of the stock 6.1 kernel; the daemon narrows this to what the node has.
KNOWN_SCHEDULERS = frozenset(
    {"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh"}
)


def parse_address(text: str | IPAddress) -> IPAddress:
    """An address value from text, raising ValueError with the offending text on garbage."""
    if isinstance(text, IPv4Address | IPv6Address):
        return text
    return ip_address(text)


@dataclass(frozen=True, slots=True)
class ServiceKey:
    """What identifies a virtual server: protocol+address+port, or a firewall mark.

    A fwmark service has `fwmark > 0`, `protocol == 0`, `address is None` and `port == 0`.
    """

    family: Family
    protocol: int
    address: IPAddress | None
    port: int
    fwmark: int = 0

    def __post_init__(self) -> None:
        if self.fwmark:
            if self.address is not None or self.port or self.protocol:
                raise ValueError("a fwmark service has no protocol, address or port")
            if not 0 < self.fwmark < 2**32:
                raise ValueError(f"fwmark {self.fwmark} out of range")
            return
        if self.address is None:
            raise ValueError("a service needs an address or a fwmark")
        if Family.of(self.address) != self.family:
            raise ValueError(f"address {self.address} is not of family {self.family.name}")
        if self.protocol not in Protocol.__members__.values():
            raise ValueError(f"unknown protocol {self.protocol}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} out of range")

    @staticmethod
    def tcp(address: str | IPAddress, port: int) -> ServiceKey:
        return ServiceKey.for_protocol(Protocol.TCP, address, port)

    @staticmethod
    def udp(address: str | IPAddress, port: int) -> ServiceKey:
        return ServiceKey.for_protocol(Protocol.UDP, address, port)

    @staticmethod
    def sctp(address: str | IPAddress, port: int) -> ServiceKey:
        return ServiceKey.for_protocol(Protocol.SCTP, address, port)

    @staticmethod
    def for_protocol(protocol: Protocol, address: str | IPAddress, port: int) -> ServiceKey:
        addr = parse_address(address)
        return ServiceKey(Family.of(addr), int(protocol), addr, port)

    @staticmethod
    def for_fwmark(fwmark: int, family: Family = Family.INET) -> ServiceKey:
        return ServiceKey(family, 0, None, 0, fwmark)

    def sort_key(self) -> tuple[int, int, int, int, int]:
        """Stable order: fwmark services last, then family, protocol, numeric address, port."""
        number = int(self.address) if self.address is not None else 0
        return (self.fwmark, self.family, self.protocol, number, self.port)

    def __str__(self) -> str:
        if self.fwmark:
            return f"FWM {self.fwmark} ({self.family.name})"
        proto = Protocol(self.protocol).name
        return f"{proto} {format_endpoint(self.address, self.port)}"


def format_endpoint(address: IPAddress | None, port: int) -> str:
    """`10.0.0.1:80` or `[fd00::1]:80`, as ipvsadm prints endpoints."""
    if address is None:
        return f"*:{port}"
    if address.version == 6:
        return f"[{address}]:{port}"
    return f"{address}:{port}"


def full_prefix(family: Family) -> int:
    """The persistence prefix length meaning "one client address" (/32 or /128)."""
    return 32 if family == Family.INET else 128


@dataclass(frozen=True, slots=True)
class VirtualServer:
    """A virtual server as programmed: its key plus every attribute that can change in place.

    `netmask` is the persistence granularity as a prefix length (`24` groups clients by /24);
    `None` means the family's full length (/32 or /128). On the wire the kernel wants an IPv4
    mask as raw network-order bits and an IPv6 one as a prefix length; that difference stays in
    the netlink codec.
    """

    key: ServiceKey
    scheduler: str
    flags: ServiceFlag = NO_FLAGS
    timeout: int = 0
    netmask: int | None = None
    persistence_engine: str = ""

    def __post_init__(self) -> None:
        if not self.scheduler or len(self.scheduler) > MAX_SCHEDULER_NAME:
            raise ValueError(f"invalid scheduler name {self.scheduler!r}")
        if not 0 <= self.timeout < 2**32:
            raise ValueError(f"timeout {self.timeout} out of range")
        if self.netmask is not None and not 0 <= self.netmask <= full_prefix(self.key.family):
            raise ValueError(f"netmask /{self.netmask} out of range for {self.key.family.name}")

    @property
    def effective_netmask(self) -> int:
        """The persistence prefix length actually in force."""
        return full_prefix(self.key.family) if self.netmask is None else self.netmask

    @property
    def requested_flags(self) -> ServiceFlag:
        """The flags that describe intent (the kernel adds HASHED on its own)."""
        return self.flags & ~KERNEL_OWNED_FLAGS

    def same_attributes(self, other: VirtualServer) -> bool:
        """Whether `other` (e.g. as observed) needs no update to become `self`."""
        return (
            self.scheduler == other.scheduler
            and self.requested_flags == other.requested_flags
            and self.timeout == other.timeout
            and self.effective_netmask == other.effective_netmask
            and self.persistence_engine == other.persistence_engine
        )


class _RealServerFields(NamedTuple):
    address: IPAddress
    port: int
    weight: int = 1
    forward: Forward = Forward.MASQ
    upper_threshold: int = 0
    lower_threshold: int = 0


class RealServer(_RealServerFields):
    """A destination of a virtual server. NAT forwarding and weight 1 unless told otherwise.

    A validated NamedTuple rather than a frozen dataclass: every sync builds one per endpoint
    (100,000 in a large cluster) and a tuple is built without an `object.__setattr__` per
    field. `_replace` skips the checks; only the planner's own weight changes use it.
    """

    __slots__ = ()

    def __new__(
        cls,
        address: IPAddress,
        port: int,
        weight: int = 1,
        *,
        forward: Forward = Forward.MASQ,
        upper_threshold: int = 0,
        lower_threshold: int = 0,
    ) -> RealServer:
        if not 0 <= port <= 65535:
            raise ValueError(f"port {port} out of range")
        if not 0 <= weight <= MAX_WEIGHT:
            raise ValueError(f"weight {weight} out of range")
        if not 0 <= upper_threshold < 2**32 or not 0 <= lower_threshold < 2**32:
            raise ValueError("connection thresholds must be 0..2^32-1")
        if lower_threshold > upper_threshold:  # the kernel refuses it even for upper 0
            raise ValueError("lower threshold above upper threshold")
        fields = (address, port, weight, forward, upper_threshold, lower_threshold)
        return tuple.__new__(cls, fields)

    @staticmethod
    def of(address: str | IPAddress, port: int, weight: int = 1) -> RealServer:
        return RealServer(parse_address(address), port, weight)

    @property
    def endpoint(self) -> tuple[IPAddress, int]:
        return (self.address, self.port)

    def sort_key(self) -> tuple[int, int, int]:
        return (self.address.version, int(self.address), self.port)


@dataclass(frozen=True, slots=True)
class Stats:
    """Traffic counters (totals since creation) and rate estimates (per second)."""

    connections: int = 0
    packets_in: int = 0
    packets_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    cps: int = 0
    pps_in: int = 0
    pps_out: int = 0
    bps_in: int = 0
    bps_out: int = 0


@dataclass(frozen=True, slots=True)
class ObservedRealServer:
    """A destination as the kernel reports it, with its connection counts."""

    server: RealServer
    active_connections: int = 0
    inactive_connections: int = 0
    persistent_connections: int = 0
    stats: Stats = field(default_factory=Stats)


@dataclass(frozen=True, slots=True)
class ObservedVirtualServer:
    """A virtual server as the kernel reports it, with its destinations sorted by address."""

    server: VirtualServer
    real_servers: tuple[ObservedRealServer, ...] = ()
    stats: Stats = field(default_factory=Stats)

    @property
    def key(self) -> ServiceKey:
        return self.server.key


@dataclass(frozen=True, slots=True)
class Timeouts:
    """IPVS connection timeouts in seconds; 0 in a request means "leave the kernel's value"."""

    tcp: int = 0
    tcp_fin: int = 0
    udp: int = 0


# --- batch operations -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddService:
    server: VirtualServer


@dataclass(frozen=True, slots=True)
class UpdateService:
    """Change scheduler, flags, timeout, netmask or engine in place: the VIP never goes down."""

    server: VirtualServer


@dataclass(frozen=True, slots=True)
class DeleteService:
    key: ServiceKey


@dataclass(frozen=True, slots=True)
class AddRealServer:
    service: ServiceKey
    server: RealServer


@dataclass(frozen=True, slots=True)
class UpdateRealServer:
    """Change weight, forwarding or thresholds in place: connections are kept."""

    service: ServiceKey
    server: RealServer


@dataclass(frozen=True, slots=True)
class DeleteRealServer:
    service: ServiceKey
    address: IPAddress
    port: int


Operation = (
    AddService | UpdateService | DeleteService | AddRealServer | UpdateRealServer | DeleteRealServer
)
