"""The address contract against the kernel (rtnetlink through pyroute2), plus kernel facts."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator

import pytest

from ipvsd.dataplane.addresses import RtnlAddresses
from tests.contract.addresses_contract import VIP4, AddressesContract

pytestmark = pytest.mark.kernel
DEVICE = "ipvsd-test0"


def delete_device() -> None:
    subprocess.run(["ip", "link", "del", DEVICE], check=False, capture_output=True)


class TestRtnlAddresses(AddressesContract):
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
