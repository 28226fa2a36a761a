"""Golden scenarios against the real kernel: the same expected files as on the fake.

Each (scenario, node) replay starts from an empty table; the node's own address sits on a
dummy interface so NodePorts have somewhere to listen. The table is read with `ipvsadm -Sn`.
"""

from __future__ import annotations

import subprocess

import pytest

from ipvsd.dataplane.addresses import RtnlAddresses
from ipvsd.dataplane.ipvs_netlink import NetlinkIpvs
from ipvsd.dataplane.ipvsadm_format import canonical_rules
from tests.scenarios.runner import NodeKernel, check, nodes_of, run_scenario, scenario_names

pytestmark = pytest.mark.kernel
CASES = [(name, node) for name in scenario_names() for node in nodes_of(name)]
HOST_DEVICE = "scenario0"


def reset() -> None:
    subprocess.run(["modprobe", "ip_vs"], check=True)
    subprocess.run(["ipvsadm", "-C"], check=True)
    for device in ("kube-ipvs0", HOST_DEVICE):
        subprocess.run(["ip", "link", "del", device], check=False, capture_output=True)


async def read_table() -> list[str]:
    out = subprocess.run(["ipvsadm", "-Sn"], check=True, capture_output=True, text=True).stdout
    return canonical_rules(out)


@pytest.mark.parametrize(("scenario", "node"), CASES, ids=[f"{s}/{n}" for s, n in CASES])
async def test_scenario(scenario: str, node: str) -> None:
    reset()
    subprocess.run(["ip", "link", "add", HOST_DEVICE, "type", "dummy"], check=True)
    address = nodes_of(scenario)[node]
    subprocess.run(["ip", "addr", "add", f"{address}/24", "dev", HOST_DEVICE], check=True)
    ipvs = await NetlinkIpvs.open()
    addresses = RtnlAddresses()
    try:
        results = await run_scenario(scenario, node, NodeKernel(ipvs, addresses, read_table))
    finally:
        await addresses.close()
        await ipvs.close()
        reset()
    check(results)
