"""The netlink adapter against the shared IPVS contract, checked with the real ipvsadm binary.

The same suite runs against the in-memory fake (tests/component), so passing both keeps the
fake's rules and its `ipvsadm -Sn` rendering equal to the kernel's.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from ipvsd.dataplane.ipvs_netlink import NetlinkIpvs
from ipvsd.dataplane.ipvsadm_format import canonical_rules
from tests.contract.ipvs_contract import IpvsContract

pytestmark = pytest.mark.kernel


def ipvsadm(*args: str) -> str:
    return subprocess.run(
        ["ipvsadm", *args], check=True, capture_output=True, text=True, timeout=60
    ).stdout


async def read_kernel_rules() -> list[str]:
    process = await asyncio.create_subprocess_exec(
        "ipvsadm", "-Sn", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return canonical_rules(out.decode())


class TestNetlinkIpvs(IpvsContract):
    @pytest.fixture
    async def ipvs(self) -> AsyncIterator[NetlinkIpvs]:
        subprocess.run(["modprobe", "ip_vs"], check=True)
        ipvsadm("-C")
        ipvsadm("--set", "900", "120", "300")  # the kernel's defaults
        adapter = await NetlinkIpvs.open()
        yield adapter
        await adapter.close()
        ipvsadm("-C")
        ipvsadm("--set", "900", "120", "300")

    @pytest.fixture
    def ipvsadm_rules(self) -> Callable[[], Awaitable[list[str]]]:
        return read_kernel_rules
