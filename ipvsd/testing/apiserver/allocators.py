"""Cluster IP and node port allocation from configured ranges.

Allocation is sequential (the next free value after the last one handed out, wrapping), not
random as in the real API server: tests and benchmarks get the same addresses on every run.
Specific requests ("I want 10.96.0.10") are honoured when free and in range. The ranges are
rebuilt from stored Services on restore, so they carry no state of their own to persist.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Literal

IPFamily = Literal["IPv4", "IPv6"]


class AllocationError(Exception):
    """A requested value is unusable or the range is exhausted; `str()` says why, as upstream."""


class _Sequential:
    """Free/used bookkeeping over the integers [first, last] with a wrapping cursor."""

    def __init__(self, first: int, last: int) -> None:
        self.first = first
        self.last = last
        self._used: set[int] = set()
        self._cursor = first

    def contains(self, value: int) -> bool:
        return self.first <= value <= self.last

    def is_used(self, value: int) -> bool:
        return value in self._used

    def take(self, value: int) -> None:
        self._used.add(value)

    def release(self, value: int) -> None:
        self._used.discard(value)

    def take_next(self) -> int | None:
        size = self.last - self.first + 1
        if len(self._used) >= size:
            return None
        value = self._cursor
        while value in self._used:
            value = value + 1 if value < self.last else self.first
        self._used.add(value)
        self._cursor = value + 1 if value < self.last else self.first
        return value


class IPRange:
    """Service addresses of one family from a CIDR (network address excluded, and broadcast
    for IPv4), like the API server's `--service-cluster-ip-range`."""

    def __init__(self, cidr: str) -> None:
        self.network: IPv4Network | IPv6Network = ip_network(cidr, strict=True)
        self.family: IPFamily = "IPv4" if self.network.version == 4 else "IPv6"
        first = int(self.network.network_address) + 1
        last = int(self.network.broadcast_address) - (1 if self.network.version == 4 else 0)
        if last < first:
            raise ValueError(f"service CIDR {cidr} has no usable addresses")
        self._values = _Sequential(first, last)

    def _parse(self, ip: str) -> int:
        address: IPv4Address | IPv6Address = ip_address(ip)
        if address.version != self.network.version or not self._values.contains(int(address)):
            raise AllocationError(
                f"failed to allocate IP {ip}: provided IP is not in the valid range. "
                f"The range of valid IPs is {self.network}"
            )
        return int(address)

    def allocate(self, ip: str | None = None) -> str:
        """Take `ip`, or the next free address when None."""
        if ip is None:
            value = self._values.take_next()
            if value is None:
                raise AllocationError(
                    f"failed to allocate a serviceIP: range {self.network} is full"
                )
            return str(ip_address(value))
        value = self._parse(ip)
        if self._values.is_used(value):
            raise AllocationError(f"failed to allocate IP {ip}: provided IP is already allocated")
        self._values.take(value)
        return str(ip_address(value))

    def reserve(self, ip: str) -> None:
        """Mark an address used without checks (restoring stored Services)."""
        address = ip_address(ip)
        if address.version == self.network.version and self._values.contains(int(address)):
            self._values.take(int(address))

    def release(self, ip: str) -> None:
        address = ip_address(ip)
        if address.version == self.network.version:
            self._values.release(int(address))


class PortRange:
    """Node ports from `--service-node-port-range` (default 30000-32767)."""

    def __init__(self, first: int, last: int) -> None:
        if not 0 < first <= last <= 65535:
            raise ValueError(f"invalid node port range {first}-{last}")
        self._values = _Sequential(first, last)

    @staticmethod
    def parse(text: str) -> PortRange:
        low, _, high = text.partition("-")
        return PortRange(int(low), int(high or low))

    @property
    def text(self) -> str:
        return f"{self._values.first}-{self._values.last}"

    def allocate(self, port: int | None = None) -> int:
        if port is None:
            value = self._values.take_next()
            if value is None:
                raise AllocationError(f"failed to allocate a nodePort: range {self.text} is full")
            return value
        if not self._values.contains(port):
            raise AllocationError(
                f"provided port is not in the valid range. The range of valid ports is {self.text}"
            )
        if self._values.is_used(port):
            raise AllocationError("provided port is already allocated")
        self._values.take(port)
        return port

    def reserve(self, port: int) -> None:
        if self._values.contains(port):
            self._values.take(port)

    def release(self, port: int) -> None:
        self._values.release(port)
