"""Local routes that make whole Service CIDRs host addresses, instead of one address per VIP.

IPVS only sees packets addressed to the host. Binding each ClusterIP on `kube-ipvs0` does that,
but the kernel walks the device's address list for every address added: 10,000 addresses took
about 19 s and 50,000 about 218 s in the test VM. One route of type `local` per Service CIDR in
table `local` (`ip route add local 10.96.0.0/12 dev lo table local`) makes every address of the
range local at once, whatever the number of ClusterIPs.

The route goes on `lo`, not on `kube-ipvs0`: the kernel flushes every IPv4 route of a device
when the device's last IPv4 address goes (seen in the VM: removing the only /32 of
`kube-ipvs0` removed a local route on it), which would drop the whole range the moment
the last externalIP, or kube-proxy's last leftover /32, is unbound. `lo` is always up and always
keeps 127.0.0.1. The routes are ipvsd's by their protocol number (`PROTOCOL`, shown by
`ip route` as `proto 125`): only those are read, replaced or removed.

IPv4 only. An IPv6 local route on `lo` works for packets from elsewhere, but the host's own
connections to an address of it leave from ::1 (`ip -6 route get` says `src ::1`), which no
pod can answer; an IPv6 local route on the down `kube-ipvs0` is refused ("Nexthop device is
not up"). IPv6 ClusterIPs stay bound one by one (`routable`).

`RtnlServiceRoutes` talks rtnetlink (pyroute2: a few routes, never on the hot path) on a worker
thread; `FakeServiceRoutes` keeps the same state in memory.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable
from ipaddress import IPv4Network, ip_network
from typing import Protocol

from pyroute2.netlink.exceptions import NetlinkError

from ipvsd.dataplane.rtnl_worker import RtnlWorker
from ipvsd.model.service import IPNetwork

PROTOCOL = 125  # rtm_protocol of ipvsd's routes (unassigned in iproute2's rt_protos)
DEVICE = "lo"
TABLE_LOCAL = 255
RTN_LOCAL = 2
SCOPE_HOST = 254


def routable(networks: Iterable[IPNetwork]) -> tuple[IPv4Network, ...]:
    """The Service CIDRs a local route serves (IPv4 ones; see the module docstring), sorted."""
    found = {net for net in networks if isinstance(net, IPv4Network)}
    return tuple(sorted(found, key=lambda net: (int(net.network_address), net.prefixlen)))


class ServiceRoutes(Protocol):
    """Read, add and remove ipvsd's local routes (table local, on `lo`, protocol `PROTOCOL`)."""

    async def present(self) -> frozenset[IPNetwork]:
        """ipvsd's local routes now in the kernel."""
        ...

    async def add(self, networks: Iterable[IPNetwork]) -> None:
        """Add local routes; present ones are fine."""
        ...

    async def remove(self, networks: Iterable[IPNetwork]) -> None:
        """Remove ipvsd's local routes; absent ones are fine."""
        ...

    async def close(self) -> None: ...


class RtnlServiceRoutes(RtnlWorker):
    """`ServiceRoutes` of the current network namespace over rtnetlink (pyroute2)."""

    def __init__(self) -> None:
        super().__init__("rtnl-routes")

    def _device(self) -> int:
        index = self._link_index(DEVICE)
        if index is None:
            raise OSError(errno.ENODEV, f"interface {DEVICE} does not exist")
        return index

    async def present(self) -> frozenset[IPNetwork]:
        def read() -> frozenset[IPNetwork]:
            found = set()
            for family in (socket.AF_INET, socket.AF_INET6):
                for route in self._rtnl().get_routes(family=family, table=TABLE_LOCAL):
                    if route["type"] != RTN_LOCAL or route["proto"] != PROTOCOL:
                        continue
                    destination = route.get_attr("RTA_DST")
                    if destination is not None:
                        found.add(ip_network(f"{destination}/{route['dst_len']}"))
            return frozenset(found)

        return await self._run(read)

    async def add(self, networks: Iterable[IPNetwork]) -> None:
        wanted = tuple(networks)
        await self._run(lambda: self._change("add", wanted, errno.EEXIST))

    async def remove(self, networks: Iterable[IPNetwork]) -> None:
        unwanted = tuple(networks)
        await self._run(lambda: self._change("del", unwanted, errno.ESRCH))

    def _change(self, verb: str, networks: tuple[IPNetwork, ...], ignore: int) -> None:
        if not networks:
            return
        index = self._device()
        for network in networks:
            try:
                self._rtnl().route(
                    verb,
                    dst=str(network),
                    type="local",
                    table=TABLE_LOCAL,
                    oif=index,
                    proto=PROTOCOL,
                    scope=SCOPE_HOST,
                    family=socket.AF_INET if network.version == 4 else socket.AF_INET6,
                )
            except NetlinkError as error:
                if error.code != ignore:
                    raise OSError(error.code, f"{verb} local route {network}: {error}") from None


class FakeServiceRoutes:
    """`ServiceRoutes` in memory; `changes` counts the routes added and removed."""

    def __init__(self, present: Iterable[IPNetwork] = ()) -> None:
        self.routes: set[IPNetwork] = set(present)
        self.changes = 0

    async def present(self) -> frozenset[IPNetwork]:
        return frozenset(self.routes)

    async def add(self, networks: Iterable[IPNetwork]) -> None:
        for network in networks:
            self.changes += network not in self.routes
            self.routes.add(network)

    async def remove(self, networks: Iterable[IPNetwork]) -> None:
        for network in networks:
            self.changes += network in self.routes
            self.routes.discard(network)

    async def close(self) -> None:
        return None
