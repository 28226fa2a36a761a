"""The address contract against the kernel (rtnetlink), plus kernel facts."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator

import pytest

from ipvsd.dataplane.addresses import Addresses, RtnlAddresses
from ipvsd.model.ipvs import IPAddress, parse_address
from tests.contract.addresses_contract import VIP4, VIP6, AddressesContract

pytestmark = pytest.mark.kernel
DEVICE = "ipvsd-test0"


def delete_device() -> None:
    subprocess.run(["ip", "link", "del", DEVICE], check=False, capture_output=True)


def shown() -> list[dict[str, object]]:
    """`ip -j addr show` of the device: its address entries."""
    (link,) = json.loads(subprocess.check_output(["ip", "-j", "addr", "show", DEVICE]))
    entries: list[dict[str, object]] = link["addr_info"]
    return entries


class TestRtnlAddresses(AddressesContract):
    async def on_device(self, addresses: Addresses, device: str) -> frozenset[IPAddress]:
        return frozenset(parse_address(str(entry["local"])) for entry in shown())

    @pytest.fixture
    def device(self) -> str:
        return DEVICE

    @pytest.fixture
    async def addresses(self) -> AsyncIterator[RtnlAddresses]:
        delete_device()
        real = RtnlAddresses(device=DEVICE)
        yield real
        await real.close()
        delete_device()


async def test_the_device_is_a_dummy_left_down_and_its_addresses_are_local() -> None:
    delete_device()
    addresses = RtnlAddresses(device=DEVICE)
    try:
        await addresses.ensure_device()
        await addresses.bind([VIP4])
        (link,) = json.loads(subprocess.check_output(["ip", "-j", "-d", "link", "show", DEVICE]))
        assert link["linkinfo"]["info_kind"] == "dummy"
        assert "UP" not in link["flags"]
        route = subprocess.check_output(["ip", "route", "get", str(VIP4)], text=True)
        assert route.startswith(f"local {VIP4} dev lo")
        shown = subprocess.check_output(["ip", "-j", "addr", "show", DEVICE], text=True)
        assert {"local": str(VIP4), "prefixlen": 32} in [
            {"local": a["local"], "prefixlen": a["prefixlen"]}
            for a in json.loads(shown)[0]["addr_info"]
        ]
    finally:
        await addresses.close()
        delete_device()


async def test_addresses_are_bound_as_iproute2_and_pyroute2_bind_them() -> None:
    """Host prefixes, scope global, permanent, no flags: exactly what pyroute2 left before."""
    delete_device()
    addresses = RtnlAddresses(device=DEVICE)
    try:
        await addresses.ensure_device()
        await addresses.bind([VIP4, VIP6])
        entries = {str(entry["local"]): entry for entry in shown()}
        v4, v6 = entries[str(VIP4)], entries[str(VIP6)]
        assert (v4["family"], v4["prefixlen"], v4["scope"]) == ("inet", 32, "global")
        assert (v6["family"], v6["prefixlen"], v6["scope"]) == ("inet6", 128, "global")
        assert v4.get("valid_life_time") == v6.get("valid_life_time") == 4294967295
        assert "address" not in v4  # IFA_ADDRESS equals IFA_LOCAL: not a peer address
        assert not {"nodad", "noprefixroute", "deprecated"} & set(v6)
    finally:
        await addresses.close()
        delete_device()


async def test_a_refused_address_is_named_and_the_others_still_bind() -> None:
    delete_device()
    addresses = RtnlAddresses(device=DEVICE)
    multicast = parse_address("ff02::1")  # the kernel refuses a multicast address
    try:
        await addresses.ensure_device()
        with pytest.raises(OSError, match=f"bind 1 of 3 addresses on {DEVICE} failed.*ff02::1"):
            await addresses.bind([VIP4, multicast, VIP6])
        assert await addresses.bound() == {VIP4, VIP6}
    finally:
        await addresses.close()
        delete_device()


async def test_host_addresses_match_iproute2_and_a_point_to_point_address_is_its_local_end() -> (
    None
):
    """The raw dump reads what `ip -j addr` shows: every address with its interface name, and
    for an IPv4 point-to-point address the host's own end, not the peer's."""
    other = "ipvsd-test1"
    subprocess.run(["ip", "link", "del", other], check=False, capture_output=True)
    subprocess.run(["ip", "link", "add", other, "type", "dummy"], check=True)
    subprocess.run(
        ["ip", "addr", "add", "10.255.7.1", "peer", "10.255.7.2", "dev", other], check=True
    )
    addresses = RtnlAddresses(device=DEVICE)
    try:
        found = await addresses.host_addresses()
        assert (parse_address("10.255.7.1"), other) in found
        assert all(address != parse_address("10.255.7.2") for address, _ in found)
        listed = json.loads(subprocess.check_output(["ip", "-j", "addr", "show"]))
        expected = {
            (parse_address(str(entry["local"]).split("%")[0]), str(link["ifname"]))
            for link in listed
            for entry in link["addr_info"]
        }
        assert set(found) == expected
    finally:
        await addresses.close()
        subprocess.run(["ip", "link", "del", other], check=False, capture_output=True)
