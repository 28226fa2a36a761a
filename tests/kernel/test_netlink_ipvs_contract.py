"""The netlink adapter against the shared IPVS contract, checked with the real ipvsadm binary.

The same suite runs against the in-memory fake (tests/component), so passing both keeps the
fake's rules and its `ipvsadm -Sn` rendering equal to the kernel's.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from ipvsd.dataplane import ipvs_wire as wire
from ipvsd.dataplane.genl import GenlSocket
from ipvsd.dataplane.ipvs_fake import KERNEL_DEFAULT_TIMEOUTS
from ipvsd.dataplane.ipvs_netlink import NetlinkIpvs
from ipvsd.dataplane.ipvsadm_format import canonical_rules
from tests.contract.ipvs_contract import IpvsContract

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module", autouse=True)
def ipvs_module() -> None:
    subprocess.run(["modprobe", "ip_vs"], check=True)


def reset_kernel() -> None:
    """Empty table and default timeouts, in-process (an ipvsadm start costs seconds in the VM)."""
    sock = GenlSocket()
    try:
        family = sock.resolve_family(wire.FAMILY_NAME)
        sock.request(family, wire.encode_flush())
        sock.request(family, wire.encode_set_config(KERNEL_DEFAULT_TIMEOUTS))
    finally:
        sock.close()


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
        reset_kernel()
        adapter = await NetlinkIpvs.open()
        yield adapter
        await adapter.close()
        reset_kernel()

    @pytest.fixture
    def ipvsadm_rules(self) -> Callable[[], Awaitable[list[str]]]:
        return read_kernel_rules
