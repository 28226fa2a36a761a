"""Rendered nftables scripts are accepted by the real `nft` (check mode, host kernel).

The rules' behaviour with packets is checked in the VM (tests/kernel); here every shape of
table the renderer can produce must at least parse and validate. `hack/test.sh` installs
`nft`; without it these fail rather than skip.
"""

from __future__ import annotations

import subprocess
from dataclasses import replace
from ipaddress import ip_network

import pytest

from ipvsd.dataplane.nft import check_support, cleanup_script, render, render_changes
from ipvsd.model.firewall import Firewall, FirewallChanges, FirewallConfig
from ipvsd.model.ipvs import Protocol, parse_address

TCP, UDP, SCTP = int(Protocol.TCP), int(Protocol.UDP), int(Protocol.SCTP)


V4, V6 = parse_address("10.96.0.10"), parse_address("fd00:96::10")
FULL = Firewall(
    config=FirewallConfig(
        pod_cidrs=(ip_network("10.244.0.0/16"), ip_network("fd00:244::/56")),
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
    local_redirects=frozenset(
        {(parse_address("203.0.113.5"), TCP, 80, V4, 80), (V6, SCTP, 31900, V6, 9000)}
    ),
)

ROUTED = (ip_network("10.96.0.0/12"), ip_network("fd00:96::/108"))


@pytest.mark.parametrize(
    "firewall",
    [
        Firewall(),
        FULL,
        Firewall(config=FirewallConfig(masquerade_all=True)),
        replace(FULL, config=replace(FULL.config, service_cidrs=ROUTED)),
    ],
    ids=["empty", "every-set-used", "masquerade-all", "routed-service-cidrs"],
)
def test_nft_accepts_the_rendered_table(firewall: Firewall) -> None:
    assert check_support(firewall) is None


def test_new_connections_to_a_routed_service_cidr_off_service_ports_are_rejected() -> None:
    """The route makes every address of the range local, with a Service or without one: the
    reject covers the range whole (packets: tests/kernel/test_service_routes.py)."""
    script = render(replace(FULL, config=replace(FULL.config, service_cidrs=ROUTED)))
    assert "\t\tflags interval\n\t\telements = { 10.96.0.0/12 }" in script
    assert "\t\tflags interval\n\t\telements = { fd00:96::/108 }" in script
    assert (
        "ct state new ip daddr @service_cidrs4 ip daddr . meta l4proto . th dport "
        "!= @vip_ports4 reject" in script
    )
    assert (
        "ct state new ip6 daddr @service_cidrs6 ip6 daddr . meta l4proto . th dport "
        "!= @vip_ports6 reject" in script
    )


def test_nft_accepts_the_cleanup_script() -> None:
    check = subprocess.run(
        ["nft", "-c", "-f", "-"],
        input=cleanup_script(),
        text=True,
        capture_output=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr


def test_without_detect_local_only_node_traffic_from_a_cluster_ip_is_marked() -> None:
    """kube-proxy's `src,dst` KUBE-CLUSTER-IP match: with no way to tell pods apart, traffic
    whose source is a ClusterIP (the node's own, leaving from kube-ipvs0) to that Service's
    port is masqueraded, so a pod on another node answers the node, not its own kube-ipvs0."""
    rules = mark_chain(FULL_WITHOUT_DETECTION)
    assert (
        "ip saddr . meta l4proto . th dport @cluster_ip_ports4 meta mark set meta mark | "
        "0x4000" in rules
    )
    assert (
        "ip6 saddr . meta l4proto . th dport @cluster_ip_ports6 meta mark set meta mark | "
        "0x4000" in rules
    )
    assert not any("daddr . meta l4proto . th dport @cluster_ip_ports" in r for r in rules)
    assert check_support(FULL_WITHOUT_DETECTION) is None
    all_marked = mark_chain(Firewall(config=FirewallConfig(masquerade_all=True)))
    assert (
        "ip daddr . meta l4proto . th dport @cluster_ip_ports4 meta mark set meta mark | "
        "0x4000" in all_marked
    )


FULL_WITHOUT_DETECTION = replace(FULL, config=FirewallConfig())


def mark_chain(firewall: Firewall) -> list[str]:
    """The rules of chain mark_for_masquerade, as rendered."""
    chain = render(firewall).split("chain mark_for_masquerade {")[1].split("}")[0]
    return [line.strip() for line in chain.strip().splitlines()]


@pytest.mark.parametrize(
    ("config", "not_from_pods"),
    [
        (FirewallConfig(pod_cidrs=(ip_network("10.244.0.0/16"),)),
         "ip saddr != @pod_cidrs4"),
        (FirewallConfig(pod_interface="cni0"), 'iifname != "cni0"'),
        (FirewallConfig(pod_interface_prefix="veth"), 'iifname != "veth*"'),
    ],
    ids=["ClusterCIDR-or-NodeCIDR", "BridgeInterface", "InterfaceNamePrefix"],
)  # fmt: skip
def test_cluster_ip_traffic_not_from_pods_is_marked_per_detect_local_mode(
    config: FirewallConfig, not_from_pods: str
) -> None:
    firewall = replace(FULL, config=config)
    rule = "ip daddr . meta l4proto . th dport @cluster_ip_ports4 "
    assert f"{rule}{not_from_pods} meta mark set meta mark | 0x4000" in mark_chain(firewall)
    assert check_support(firewall) is None


def test_the_masquerade_bit_moves_every_mark_and_match() -> None:
    """A CNI that moved kube-proxy's bit (--iptables-masquerade-bit=5): ipvsd marks, accepts,
    masquerades and clears that bit, and never touches 0x4000."""
    table = render(replace(FULL, config=replace(FULL.config, masquerade_bit=5)))
    assert "0x4000" not in table
    assert "meta mark set meta mark | 0x20" in table
    assert "meta mark & 0x20 == 0x20 accept" in table
    assert "meta mark & 0x20 == 0x20 meta mark set meta mark & 0xffffffdf masquerade" in table
    for bit in (0, 31):
        assert check_support(replace(FULL, config=FirewallConfig(masquerade_bit=bit))) is None


def test_pods_reaching_etp_local_frontends_are_sent_to_the_cluster_ip() -> None:
    """After loadBalancerSourceRanges, traffic from pods (per detect-local) to a frontend in
    local_redirects is DNATed to the Service's ClusterIP, in the nat prerouting hook."""
    table = render(FULL)
    chain = table.split("chain pods_to_cluster_set {")[1].split("}")[0]
    assert [line.strip() for line in chain.strip().splitlines()] == [
        "type nat hook prerouting priority dstnat; policy accept;",
        "ip daddr . meta l4proto . th dport @lb_restricted4 "
        "ip daddr . meta l4proto . th dport . ip saddr != @lb_allowed4 return",
        "ip saddr @pod_cidrs4 dnat ip to ip daddr . meta l4proto . th dport map @local_redirects4",
        "ip6 daddr . meta l4proto . th dport @lb_restricted6 "
        "ip6 daddr . meta l4proto . th dport . ip6 saddr != @lb_allowed6 return",
        "ip6 saddr @pod_cidrs6 dnat ip6 to ip6 daddr . meta l4proto . th dport "
        "map @local_redirects6",
    ]
    assert "elements = { 203.0.113.5 . tcp . 80 : 10.96.0.10 . 80 }" in table
    bridge = render(replace(FULL, config=FirewallConfig(pod_interface="cni0")))
    assert 'iifname "cni0" dnat ip to ip daddr' in bridge
    undetected = render(replace(FULL, config=FirewallConfig()))  # pods not told: no redirect
    assert "dnat" not in undetected


def nft_check(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nft", "-c", "-f", "-"], input=script, text=True, capture_output=True, check=False
    )


POD = parse_address("10.244.1.9")
# Every element of FULL goes and a new one comes in every set, both families.
EVERY_SET_CHANGED = FirewallChanges(
    removed=replace(FULL, config=FirewallConfig()),
    added=Firewall(
        vips=frozenset({parse_address("10.96.0.11"), parse_address("fd00:96::11")}),
        vip_ports=frozenset({(parse_address("10.96.0.11"), TCP, 80)}),
        cluster_ip_ports=frozenset({(parse_address("fd00:96::11"), UDP, 53)}),
        masquerade_ports=frozenset({(parse_address("10.96.0.11"), SCTP, 9000)}),
        node_ports=frozenset({(TCP, 30081)}),
        hairpin=frozenset({(POD, TCP, 8080)}),
        lb_restricted=frozenset({(parse_address("10.96.0.11"), TCP, 80)}),
        lb_allowed=frozenset(
            {(parse_address("10.96.0.11"), TCP, 80, ip_network("198.51.100.0/24"))}
        ),
        health_check_ports=frozenset({31001}),
        local_redirects=frozenset({(parse_address("192.0.2.9"), UDP, 30053, V4, 53)}),
    ),
)


def test_changes_are_element_deletions_then_additions_in_one_script() -> None:
    changes = FirewallChanges(
        removed=Firewall(hairpin=frozenset({(parse_address("10.244.1.5"), TCP, 8080)})),
        added=Firewall(
            hairpin=frozenset({(POD, TCP, 8080)}), vips=frozenset({parse_address("fd00:96::11")})
        ),
    )
    assert render_changes(changes) == (
        "delete element inet ipvsd hairpin4 { 10.244.1.5 . tcp . 8080 . 10.244.1.5 }\n"
        "add element inet ipvsd vips6 { fd00:96::11 }\n"
        "add element inet ipvsd hairpin4 { 10.244.1.9 . tcp . 8080 . 10.244.1.9 }\n"
    )
    assert render_changes(FirewallChanges()) == ""


def test_nft_accepts_changes_to_every_set_of_an_existing_table() -> None:
    check = nft_check(render(FULL) + render_changes(EVERY_SET_CHANGED))
    assert check.returncode == 0, check.stderr


def test_nft_refuses_to_delete_an_element_the_table_does_not_have() -> None:
    """What makes the syncer fall back to replacing the table whole."""
    missing = FirewallChanges(removed=Firewall(hairpin=frozenset({(POD, TCP, 8080)})))
    check = nft_check(render(FULL) + render_changes(missing))
    assert check.returncode != 0
