"""Rendered nftables scripts are accepted by the real `nft` (check mode, host kernel).

The rules' behaviour with packets is checked in the VM (tests/kernel); here every shape of
table the renderer can produce must at least parse and validate.
"""

from __future__ import annotations

import shutil
import subprocess
from ipaddress import ip_network

import pytest

from ipvsd.dataplane.nft import cleanup_script, render
from ipvsd.model.ipvs import Protocol, parse_address
from ipvsd.plan.firewall import Firewall, FirewallConfig

TCP, UDP, SCTP = int(Protocol.TCP), int(Protocol.UDP), int(Protocol.SCTP)


def nft_can_check() -> bool:
    if shutil.which("nft") is None:
        return False
    probe = subprocess.run(
        ["nft", "-c", "-f", "-"], input="table inet probe\n", text=True, capture_output=True,
        check=False,
    )  # fmt: skip
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not nft_can_check(), reason="nft or nf_tables not available")

V4, V6 = parse_address("10.96.0.10"), parse_address("fd00:96::10")
FULL = Firewall(
    config=FirewallConfig(
        cluster_cidrs=(ip_network("10.244.0.0/16"), ip_network("fd00:244::/56")),
    ),
    vips=frozenset({V4, V6}),
    vip_ports=frozenset({(V4, TCP, 80), (V4, UDP, 53), (V6, SCTP, 9000)}),
    cluster_ip_ports=frozenset({(V4, TCP, 80), (V6, SCTP, 9000)}),
    masquerade_ports=frozenset({(V4, UDP, 53)}),
    node_ports=frozenset({(TCP, 30080), (UDP, 30053)}),
    hairpin=frozenset(
        {(parse_address("10.244.1.5"), TCP, 8080), (parse_address("fd00:244::5"), TCP, 8080)}
    ),
    lb_restricted=frozenset({(V4, TCP, 80)}),
    lb_allowed=frozenset({(V4, TCP, 80, ip_network("192.0.2.0/24"))}),
    health_check_ports=frozenset({31000}),
)


@pytest.mark.parametrize(
    "firewall",
    [Firewall(), FULL, Firewall(config=FirewallConfig(masquerade_all=True))],
    ids=["empty", "every-set-used", "masquerade-all"],
)
def test_nft_accepts_the_rendered_table(firewall: Firewall) -> None:
    check = subprocess.run(
        ["nft", "-c", "-f", "-"],
        input=render(firewall),
        text=True,
        capture_output=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr


def test_nft_accepts_the_cleanup_script() -> None:
    check = subprocess.run(
        ["nft", "-c", "-f", "-"],
        input=cleanup_script(),
        text=True,
        capture_output=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr


def test_without_cluster_cidrs_cluster_ip_traffic_is_not_marked_unless_masquerade_all() -> None:
    plain = render(Firewall())
    assert "@cluster_ip_ports4" not in plain.split("chain mark_for_masquerade")[1].split("}")[0]
    marked = render(Firewall(config=FirewallConfig(masquerade_all=True)))
    assert "@cluster_ip_ports4 meta mark set" in marked
