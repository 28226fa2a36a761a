"""The proxy's dummy interface and the host addresses: where virtual IPs are bound.

IPVS only sees packets addressed to the host, so every ClusterIP, externalIP and load-balancer
IP must be a local address. They are bound as /32 (/128) host addresses on a dummy interface
(`kube-ipvs0`, the name kube-proxy used, so ipvsd takes over its addresses). The interface is
never set UP: a down dummy device still makes its addresses local, yet it answers no ARP and
installs no routes, so the VIPs do not leak onto the network.

`RtnlAddresses` talks rtnetlink through pyroute2 on a worker thread; `FakeAddresses` keeps the
same state in memory. The shared contract suite holds both to the same behaviour.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ipvsd.model.ipvs import IPAddress, parse_address

DEVICE = "kube-ipvs0"
T = TypeVar("T")


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


def _prefix(address: IPAddress) -> int:
    return 32 if address.version == 4 else 128


def _pair_order(pair: tuple[IPAddress, str]) -> tuple[int, int, str]:
    return (pair[0].version, int(pair[0]), pair[1])


class RtnlAddresses:
    """`Addresses` of the current network namespace over rtnetlink (pyroute2)."""

    def __init__(self, *, device: str = DEVICE) -> None:
        self.device = device
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rtnl")
        self._ipr: Any = None

    async def _run(self, function: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, function)

    def _rtnl(self) -> Any:
        if self._ipr is None:
            self._ipr = IPRoute()
        return self._ipr

    def _index(self) -> int | None:
        found = self._rtnl().link_lookup(ifname=self.device)
        return int(found[0]) if found else None

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
        await self._run(lambda: self._change("add", wanted, ignore=errno.EEXIST))

    async def unbind(self, addresses: Iterable[IPAddress]) -> None:
        unwanted = tuple(addresses)
        await self._run(lambda: self._change("del", unwanted, ignore=errno.EADDRNOTAVAIL))

    def _change(self, verb: str, addresses: tuple[IPAddress, ...], *, ignore: int) -> None:
        index = self._index()
        if index is None:
            if verb == "del":
                return
            raise OSError(errno.ENODEV, f"interface {self.device} does not exist")
        for address in addresses:
            try:
                self._rtnl().addr(
                    verb, index=index, address=str(address), prefixlen=_prefix(address)
                )
            except NetlinkError as exc:
                if exc.code != ignore:
                    raise OSError(exc.code, f"{verb} {address} on {self.device}: {exc}") from exc

    async def host_addresses(self) -> list[tuple[IPAddress, str]]:
        def read() -> list[tuple[IPAddress, str]]:
            links = self._rtnl().get_links()
            names = {int(link["index"]): str(link.get_attr("IFLA_IFNAME")) for link in links}
            pairs = {(address, names.get(index, "?")) for address, index in self._dump()}
            return sorted(pairs, key=_pair_order)

        return await self._run(read)

    def _dump(self) -> list[tuple[IPAddress, int]]:
        found = []
        for message in self._rtnl().get_addr():
            text = message.get_attr("IFA_ADDRESS") or message.get_attr("IFA_LOCAL")
            if text:
                found.append((parse_address(text.split("%")[0]), int(message["index"])))
        return found

    async def close(self) -> None:
        def close() -> None:
            if self._ipr is not None:
                self._ipr.close()
                self._ipr = None

        await self._run(close)
        self._worker.shutdown(wait=True)


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
        self._host.update((address, self.device) for address in addresses)

    async def unbind(self, addresses: Iterable[IPAddress]) -> None:
        self._host.difference_update((address, self.device) for address in addresses)

    async def host_addresses(self) -> list[tuple[IPAddress, str]]:
        return sorted(self._host, key=_pair_order)

    async def remove_device(self) -> None:
        self.device_exists = False
        self._host = {(address, name) for address, name in self._host if name != self.device}

    async def close(self) -> None:
        return None
