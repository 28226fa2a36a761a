"""The proxy's dummy interface and the host addresses: where virtual IPs are bound.

IPVS only sees packets addressed to the host, so every ClusterIP, externalIP and load-balancer
IP must be a local address. They are bound as /32 (/128) host addresses on a dummy interface
(`kube-ipvs0`, the name kube-proxy used, so ipvsd takes over its addresses). The interface is
never set UP: a down dummy device still makes its addresses local, yet it answers no ARP and
installs no routes, so the VIPs do not leak onto the network.

`RtnlAddresses` talks rtnetlink on a worker thread; `FakeAddresses` keeps the same state in
memory. The shared contract suite holds both to the same behaviour.

A cold start binds one address per ClusterIP, 10,000 at scale; one pyroute2 round trip each made
that most of the first sync. So `bind` and `unbind` hand-pack their requests and send them in
batches over a raw rtnetlink socket (`genl.NetlinkSocket.send_batch`): a few system calls for
the lot, and still one result per address. Reading the host's addresses (every full sync) is a
raw dump too; only the device's creation, removal and lookup stay on pyroute2.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
from collections.abc import Iterable, Mapping, Sequence
from ipaddress import ip_address
from typing import Protocol

from pyroute2.netlink.exceptions import NetlinkError

from ipvsd.dataplane.faults import INJECTED_ERRNO, kernel_faults
from ipvsd.dataplane.genl import (
    NETLINK_ROUTE,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NetlinkSocket,
    attribute,
    parse_attributes,
)
from ipvsd.dataplane.rtnl_worker import RtnlWorker
from ipvsd.model.ipvs import IPAddress

log = logging.getLogger(__name__)

DEVICE = "kube-ipvs0"

RTM_NEWLINK = 16
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
IFLA_IFNAME = 3
IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change mask
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, interface index
SHOWN_PER_ERROR = 10  # failed addresses named in the exception; the log names them all


class Addresses(Protocol):
    """Bind and unbind virtual IPs; read which addresses the host has, and where."""

    async def ensure_device(self) -> None:
        """Create the dummy interface if it is missing (it stays down)."""
        ...

    async def bound(self) -> frozenset[IPAddress]:
        """Addresses currently on the dummy interface."""
        ...

    async def bind(self, addresses: Iterable[IPAddress]) -> None:
        """Add host addresses to the dummy interface; already-bound ones are fine."""
        ...

    async def unbind(self, addresses: Iterable[IPAddress]) -> None:
        """Remove addresses from the dummy interface; absent ones are fine."""
        ...

    async def host_addresses(self) -> list[tuple[IPAddress, str]]:
        """Every address of the host (this network namespace) with its interface name, sorted;
        an address configured on two interfaces appears twice."""
        ...

    async def remove_device(self) -> None:
        """Delete the dummy interface and with it every bound address (for --cleanup)."""
        ...

    async def close(self) -> None: ...


def _pair_order(pair: tuple[IPAddress, str]) -> tuple[int, int, str]:
    return (pair[0].version, int(pair[0]), pair[1])


def encode_address(address: IPAddress, index: int) -> bytes:
    """An RTM_NEWADDR/RTM_DELADDR body, byte for byte what pyroute2's `addr()` sent before:
    /32 or /128, no flags, scope universe; IPv4 carries IFA_LOCAL too (the kernel keys IPv4
    addresses on it), IPv6 only IFA_ADDRESS."""
    packed = address.packed
    if address.version == 4:
        header = IFADDRMSG.pack(socket.AF_INET, 32, 0, 0, index)
        return header + attribute(IFA_ADDRESS, packed) + attribute(IFA_LOCAL, packed)
    return IFADDRMSG.pack(socket.AF_INET6, 128, 0, 0, index) + attribute(IFA_ADDRESS, packed)


class AddressesRefused(OSError):
    """The kernel refused some addresses of a batch (the others were done): `refused` maps
    each to its errno. Who asked decides what to log, and how often."""

    def __init__(self, code: int, message: str, refused: Mapping[IPAddress, int]) -> None:
        super().__init__(code, message)
        self.refused = dict(refused)


def failure_report(
    verb: str, device: str, addresses: Sequence[IPAddress], codes: Sequence[int], ignore: int
) -> AddressesRefused | None:
    """Every address the kernel refused, grouped by errno and summed up in one error (carrying
    the first failure's errno and each refused address); None when all succeeded or failed
    with `ignore`."""
    by_code: dict[int, list[str]] = {}
    refused: dict[IPAddress, int] = {}
    for address, code in zip(addresses, codes, strict=True):
        if code and code != ignore:
            by_code.setdefault(code, []).append(str(address))
            refused[address] = code
    if not by_code:
        return None
    parts = []
    for code, failed in by_code.items():
        reason = os.strerror(code)
        more = f" and {len(failed) - SHOWN_PER_ERROR} more" if len(failed) > SHOWN_PER_ERROR else ""
        parts.append(f"{reason}: {', '.join(failed[:SHOWN_PER_ERROR])}{more}")
    count = sum(len(failed) for failed in by_code.values())
    summary = f"{verb} {count} of {len(addresses)} addresses on {device} failed: "
    return AddressesRefused(next(iter(by_code)), summary + "; ".join(parts), refused)


def refused_by_the_kernel(address: IPAddress) -> int:
    """The errno Linux gives for binding `address` as a host address (0: it takes it): IPv6
    multicast and the unspecified address are refused (EADDRNOTAVAIL; `ip addr add ff05::1/128`
    says so), IPv4 takes anything. The fake refuses the same."""
    if address.version == 6 and (address.is_multicast or address.is_unspecified):
        return errno.EADDRNOTAVAIL
    return 0


class RtnlAddresses(RtnlWorker):
    """`Addresses` of the current network namespace over rtnetlink: raw batched requests and
    dumps for addresses, pyroute2 for the device. Both sockets live on the one worker thread."""

    def __init__(self, *, device: str = DEVICE) -> None:
        super().__init__("rtnl")
        self.device = device
        self._sock: NetlinkSocket | None = None

    def _netlink(self) -> NetlinkSocket:
        if self._sock is None:
            self._sock = NetlinkSocket(NETLINK_ROUTE)
        return self._sock

    def _index(self) -> int | None:
        return self._link_index(self.device)

    async def ensure_device(self) -> None:
        def ensure() -> None:
            if self._index() is None:
                try:
                    self._rtnl().link("add", ifname=self.device, kind="dummy")
                except NetlinkError as exc:
                    if exc.code != errno.EEXIST:  # created meanwhile by someone else: fine
                        raise

        await self._run(ensure)

    async def remove_device(self) -> None:
        def remove() -> None:
            index = self._index()
            if index is not None:
                self._rtnl().link("del", index=index)

        await self._run(remove)

    async def bound(self) -> frozenset[IPAddress]:
        def read() -> frozenset[IPAddress]:
            index = self._index()
            if index is None:
                return frozenset()
            return frozenset(address for address, i in self._dump() if i == index)

        return await self._run(read)

    async def bind(self, addresses: Iterable[IPAddress]) -> None:
        wanted = tuple(addresses)
        await self._run(lambda: self._change("bind", wanted))

    async def unbind(self, addresses: Iterable[IPAddress]) -> None:
        unwanted = tuple(addresses)
        await self._run(lambda: self._change("unbind", unwanted))

    def _change(self, verb: str, addresses: tuple[IPAddress, ...]) -> None:
        """Send every request, whatever fails; then raise one error naming all failures.
        Binding a present address (EEXIST) and unbinding an absent one (EADDRNOTAVAIL) are
        fine. NLM_F_CREATE | NLM_F_EXCL on RTM_NEWADDR is what pyroute2 and `ip addr add` send."""
        index = self._index()
        if index is None:
            if verb == "unbind":
                return
            raise OSError(errno.ENODEV, f"interface {self.device} does not exist")
        bodies = [encode_address(address, index) for address in addresses]
        if verb == "bind":
            kind, flags, ignore = RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, errno.EEXIST
        else:
            kind, flags, ignore = RTM_DELADDR, 0, errno.EADDRNOTAVAIL
        codes = self._send(verb, kind, bodies, flags)
        error = failure_report(verb, self.device, addresses, codes, ignore)
        if error is not None:
            raise error

    def _send(self, verb: str, kind: int, bodies: list[bytes], flags: int) -> list[int]:
        """Each request's errno (0: done); those the test-only kernel fault switch fails
        (`faults.KernelFaults`) are not sent and answer ENOMEM."""
        faults = kernel_faults()
        if not faults.active:
            return list(self._netlink().send_batch(kind, bodies, flags))
        failing = [faults.fails(f"{verb} an address") for _ in bodies]
        sent = [body for body, fail in zip(bodies, failing, strict=True) if not fail]
        answers = iter(self._netlink().send_batch(kind, sent, flags) if sent else [])
        return [INJECTED_ERRNO if fail else next(answers) for fail in failing]

    async def host_addresses(self) -> list[tuple[IPAddress, str]]:
        def read() -> list[tuple[IPAddress, str]]:
            names = self._link_names()
            pairs = {(address, names.get(index, "?")) for address, index in self._dump()}
            return sorted(pairs, key=_pair_order)

        return await self._run(read)

    def _link_names(self) -> dict[int, str]:
        """Interface index -> name, from one raw RTM_GETLINK dump."""
        names = {}
        request = IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        for payload in self._netlink().request(RTM_GETLINK, request, dump=True, reply=RTM_NEWLINK):
            index = IFINFOMSG.unpack_from(payload)[2]
            name = parse_attributes(payload, IFINFOMSG.size).get(IFLA_IFNAME)
            if name is not None:
                names[index] = bytes(name).split(b"\0", 1)[0].decode(errors="replace")
        return names

    def _dump(self) -> list[tuple[IPAddress, int]]:
        """(address, interface index) of every address, from one raw RTM_GETADDR dump (every
        full sync reads 10,000 VIPs at scale). An IPv4 point-to-point address is its local end
        (IFA_LOCAL), not the peer (IFA_ADDRESS)."""
        found = []
        request = IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        for payload in self._netlink().request(RTM_GETADDR, request, dump=True, reply=RTM_NEWADDR):
            family, _, _, _, index = IFADDRMSG.unpack_from(payload)
            attributes = parse_attributes(payload, IFADDRMSG.size)
            packed = attributes.get(IFA_LOCAL) or attributes.get(IFA_ADDRESS)
            if packed is not None and family in (socket.AF_INET, socket.AF_INET6):
                found.append((ip_address(bytes(packed)), index))
        return found

    def _close_sockets(self) -> None:
        super()._close_sockets()
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class FakeAddresses:
    """`Addresses` in memory: a host with some interfaces and an optional dummy interface."""

    def __init__(self, *, host: Iterable[tuple[IPAddress, str]] = (), device: str = DEVICE) -> None:
        self.device = device
        self.device_exists = False
        self._host: set[tuple[IPAddress, str]] = set(host)

    async def ensure_device(self) -> None:
        self.device_exists = True

    async def bound(self) -> frozenset[IPAddress]:
        return frozenset(a for a, name in self._host if name == self.device)

    async def bind(self, addresses: Iterable[IPAddress]) -> None:
        if not self.device_exists:
            raise OSError(errno.ENODEV, f"interface {self.device} does not exist")
        wanted = list(addresses)
        codes = [refused_by_the_kernel(address) for address in wanted]
        self._host.update(
            (a, self.device) for a, code in zip(wanted, codes, strict=True) if not code
        )
        error = failure_report("bind", self.device, wanted, codes, errno.EEXIST)
        if error is not None:
            raise error

    async def unbind(self, addresses: Iterable[IPAddress]) -> None:
        self._host.difference_update((address, self.device) for address in addresses)

    async def host_addresses(self) -> list[tuple[IPAddress, str]]:
        return sorted(self._host, key=_pair_order)

    async def remove_device(self) -> None:
        self.device_exists = False
        self._host = {(address, name) for address, name in self._host if name != self.device}

    async def close(self) -> None:
        return None
