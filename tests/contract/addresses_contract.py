"""The contract of `dataplane.addresses.Addresses`, run against the fake and the kernel.

Subclasses provide `addresses` (an implementation whose device does not exist yet and is
cleaned up afterwards) and `device` (its dummy interface's name), and may override
`on_device` to read the device from outside the implementation (the kernel suite asks `ip`).
"""

from __future__ import annotations

import errno
from ipaddress import IPv4Address, IPv6Address

import pytest

from ipvsd.dataplane.addresses import Addresses, AddressesRefused
from ipvsd.model.ipvs import IPAddress, parse_address

VIP4, VIP6 = parse_address("10.96.0.10"), parse_address("fd00:96::10")

# Large enough to span several netlink chunks (about 6,000 IPv4 requests fit one), like a
# cold start at scale; the IPv6 ones ride in the same batch.
MANY = [IPv4Address("10.100.0.0") + i for i in range(9_000)] + [
    IPv6Address("fd00:100::") + i for i in range(500)
]


class AddressesContract:
    async def on_device(self, addresses: Addresses, device: str) -> frozenset[IPAddress]:
        """The addresses on the device, as an outside observer sees them."""
        return await addresses.bound()

    async def test_device_is_created_once_and_starts_empty(
        self, addresses: Addresses, device: str
    ) -> None:
        await addresses.ensure_device()
        await addresses.ensure_device()
        assert await addresses.bound() == frozenset()

    async def test_bound_addresses_are_host_addresses_on_the_device(
        self, addresses: Addresses, device: str
    ) -> None:
        await addresses.ensure_device()
        await addresses.bind([VIP4, VIP6])
        assert await addresses.bound() == {VIP4, VIP6}
        host = await addresses.host_addresses()
        assert (VIP4, device) in host
        assert (VIP6, device) in host

    async def test_binding_twice_and_unbinding_absent_addresses_are_fine(
        self, addresses: Addresses, device: str
    ) -> None:
        await addresses.ensure_device()
        await addresses.bind([VIP4])
        await addresses.bind([VIP4])
        await addresses.unbind([VIP6])
        assert await addresses.bound() == {VIP4}

    async def test_unbind_removes_only_what_it_names(
        self, addresses: Addresses, device: str
    ) -> None:
        await addresses.ensure_device()
        await addresses.bind([VIP4, VIP6])
        await addresses.unbind([VIP4])
        assert await addresses.bound() == {VIP6}
        assert (VIP4, device) not in await addresses.host_addresses()

    async def test_binding_without_the_device_fails_clearly(
        self, addresses: Addresses, device: str
    ) -> None:
        with pytest.raises(OSError, match=device) as caught:
            await addresses.bind([VIP4])
        assert caught.value.errno == errno.ENODEV

    async def test_an_address_the_kernel_refuses_is_named_and_the_others_are_bound(
        self, addresses: Addresses, device: str
    ) -> None:
        multicast = parse_address("ff05::1")  # Linux takes no IPv6 multicast host address
        await addresses.ensure_device()
        with pytest.raises(AddressesRefused) as caught:
            await addresses.bind([VIP4, multicast, VIP6])
        assert caught.value.refused == {multicast: errno.EADDRNOTAVAIL}
        assert await self.on_device(addresses, device) == {VIP4, VIP6}

    async def test_removing_the_device_removes_its_addresses_and_is_idempotent(
        self, addresses: Addresses, device: str
    ) -> None:
        await addresses.ensure_device()
        await addresses.bind([VIP4])
        await addresses.remove_device()
        await addresses.remove_device()
        assert await addresses.bound() == frozenset()
        assert all(name != device for _, name in await addresses.host_addresses())

    async def test_a_large_batch_binds_and_unbinds_every_address(
        self, addresses: Addresses, device: str
    ) -> None:
        await addresses.ensure_device()
        await addresses.bind([VIP4])
        await addresses.bind([*MANY, VIP4])  # one already bound: fine, the others still go on
        assert await self.on_device(addresses, device) == {VIP4, *MANY}
        assert await addresses.bound() == {VIP4, *MANY}
        await addresses.unbind(MANY[::2])
        await addresses.unbind(MANY[::2])  # all absent now: fine
        assert await self.on_device(addresses, device) == {VIP4, *MANY[1::2]}
        await addresses.unbind([*MANY, VIP4])
        assert await self.on_device(addresses, device) == frozenset()
