"""Firewall set contents from desired services: who is masqueraded, what is filtered."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_network

import pytest

from ipvsd.model.endpoint import Endpoint, EndpointPort, EndpointSlice
from ipvsd.model.firewall import Firewall, FirewallConfig
from ipvsd.model.ipvs import Family, Protocol, parse_address
from ipvsd.model.service import (
    Service,
    ServicePort,
    ServiceRef,
    ServiceType,
    TrafficPolicy,
)
from ipvsd.plan.desired import NodeContext, desired_service
from ipvsd.plan.firewall import firewall_for, masquerade_decision

REF = ServiceRef("default", "web")
NODE = NodeContext("node-a", node_port_addresses=(parse_address("192.168.1.10"),))
TCP = int(Protocol.TCP)
CIP, EIP, LBIP = (
    parse_address("10.96.0.10"),
    parse_address("203.0.113.5"),
    parse_address("198.51.100.7"),
)
POD = parse_address("10.244.1.5")
SLICES = [
    EndpointSlice(
        "default", "web-1", REF, Family.INET, (EndpointPort("http", Protocol.TCP, 8080),),
        (Endpoint(POD, node_name="node-a"),),
    )
]  # fmt: skip
BASE = Service(
    REF, "u", ServiceType.LOAD_BALANCER, (CIP,), (ServicePort("http", Protocol.TCP, 80, 30080),),
    external_ips=(EIP,), load_balancer_ips=(LBIP,), health_check_node_port=0,
)  # fmt: skip


def firewall(service: Service) -> Firewall:
    return firewall_for([(service, desired_service(service, SLICES, NODE))], FirewallConfig())


def test_etp_cluster_masquerades_external_vips_and_node_ports() -> None:
    got = firewall(BASE)
    assert got.masquerade_ports == {(EIP, TCP, 80), (LBIP, TCP, 80)}
    assert got.node_ports == {(TCP, 30080)}
    assert got.cluster_ip_ports == {(CIP, TCP, 80)}


def test_etp_local_frontends_are_redirected_to_the_cluster_ip_for_this_nodes_pods() -> None:
    """Every eTP=Local frontend (LB IP, externalIP, NodePort address) maps to the Service's
    ClusterIP and port: pods of this node reach the cluster set there (the nft rule)."""
    local = replace(BASE, external_traffic_policy=TrafficPolicy.LOCAL, health_check_node_port=1)
    assert firewall(local).local_redirects == {
        (EIP, TCP, 80, CIP, 80),
        (LBIP, TCP, 80, CIP, 80),
        (parse_address("192.168.1.10"), TCP, 30080, CIP, 80),
    }
    assert firewall(BASE).local_redirects == frozenset()  # eTP=Cluster: the cluster set anyway
    both_local = replace(local, internal_traffic_policy=TrafficPolicy.LOCAL)
    assert firewall(both_local).local_redirects == frozenset()  # the ClusterIP is local too


def test_etp_local_preserves_client_addresses_no_external_masquerade() -> None:
    got = firewall(
        replace(BASE, external_traffic_policy=TrafficPolicy.LOCAL, health_check_node_port=31000)
    )
    assert got.masquerade_ports == frozenset()
    assert got.node_ports == frozenset()
    assert got.health_check_ports == {31000}


def test_every_vip_and_service_port_is_known_for_rejecting_other_ports() -> None:
    got = firewall(BASE)
    assert got.vips == {CIP, EIP, LBIP}
    assert got.vip_ports == {(CIP, TCP, 80), (EIP, TCP, 80), (LBIP, TCP, 80)}


def test_a_cluster_ip_in_a_routed_service_cidr_is_covered_by_the_range_not_listed() -> None:
    """The range-wide reject covers it (nft: `service_cidrs4`); its ports stay service ports.
    An externalIP or LB IP in the range would still be listed (only ClusterIPs live there)."""
    config = FirewallConfig(service_cidrs=(ip_network("10.96.0.0/12"),))
    got = firewall_for([(BASE, desired_service(BASE, SLICES, NODE))], config)
    assert got.vips == {EIP, LBIP}
    assert got.vip_ports == {(CIP, TCP, 80), (EIP, TCP, 80), (LBIP, TCP, 80)}
    assert got.cluster_ip_ports == {(CIP, TCP, 80)}


def test_real_servers_on_this_node_or_of_unknown_node_are_in_the_hairpin_set() -> None:
    remote, unplaced = parse_address("10.244.2.5"), parse_address("10.244.3.5")
    endpoints = (
        Endpoint(POD, node_name="node-a"),
        Endpoint(remote, node_name="node-b"),
        Endpoint(unplaced),
    )
    slices = [replace(SLICES[0], endpoints=endpoints)]
    got = firewall_for([(BASE, desired_service(BASE, slices, NODE))], FirewallConfig())
    # A pod on node-b sends through node-b's IPVS: it can never hairpin through this node.
    assert got.hairpin == {(POD, TCP, 8080), (unplaced, TCP, 8080)}


def test_a_loopback_real_server_is_never_masqueraded_as_a_hairpin() -> None:
    """An API server advertised on 127.0.0.1 (the test emulator's `default/kubernetes`):
    masquerading this node's loopback connections to it would hang each new one."""
    loopback = parse_address("127.0.0.1")
    endpoints = (Endpoint(POD, node_name="node-a"), Endpoint(loopback))
    slices = [replace(SLICES[0], endpoints=endpoints)]
    got = firewall_for([(BASE, desired_service(BASE, slices, NODE))], FirewallConfig())
    assert got.hairpin == {(POD, TCP, 8080)}


def test_load_balancer_source_ranges_restrict_only_the_lb_vip_of_their_family() -> None:
    ranges = (ip_network("192.0.2.0/24"), ip_network("2001:db8::/64"))
    got = firewall(replace(BASE, load_balancer_source_ranges=ranges))
    assert got.lb_restricted == {(LBIP, TCP, 80)}
    assert got.lb_allowed == {(LBIP, TCP, 80, ip_network("192.0.2.0/24"))}


def test_no_source_ranges_no_restriction() -> None:
    got = firewall(BASE)
    assert got.lb_restricted == frozenset()
    assert got.lb_allowed == frozenset()


@pytest.mark.parametrize(
    ("policy", "config", "decisions"),
    [
        (TrafficPolicy.CLUSTER, FirewallConfig(), {
            "ClusterIP": "masqueraded only from the node itself (its source is a Service "
                         "address; no detect-local of this family tells pods from other "
                         "sources)",
            "NodePort": "masqueraded (externalTrafficPolicy Cluster: replies must come back "
                        "through here)",
        }),
        (TrafficPolicy.LOCAL, FirewallConfig(pod_cidrs=(ip_network("10.244.0.0/16"),)), {
            "ClusterIP": "masqueraded unless the source is a pod (10.244.0.0/16)",
            "LoadBalancer": "not masqueraded: clients keep their address "
                            "(externalTrafficPolicy Local)",
        }),
        (TrafficPolicy.LOCAL, FirewallConfig(pod_cidrs=(ip_network("fd00::/56"),)), {
            "ClusterIP": "masqueraded only from the node itself (its source is a Service "
                         "address; no detect-local of this family tells pods from other "
                         "sources)",
        }),
        (TrafficPolicy.LOCAL, FirewallConfig(masquerade_all=True), {
            "ClusterIP": "masqueraded (--masquerade-all)",
            "ExternalIP": "not masqueraded: clients keep their address "
                          "(externalTrafficPolicy Local)",
        }),
    ],
)  # fmt: skip
def test_the_masquerade_decision_in_words_follows_the_sets(
    policy: TrafficPolicy, config: FirewallConfig, decisions: dict[str, str]
) -> None:
    service = replace(BASE, external_traffic_policy=policy)
    desired = desired_service(service, SLICES, NODE)
    said = {d.kind.value: masquerade_decision(service, d, config) for d in desired.virtual_servers}
    assert {kind: said[kind] for kind in decisions} == decisions
    sets = firewall_for([(service, desired)], config)
    for entry in desired.virtual_servers:
        key = entry.server.key
        assert key.address is not None
        element = (key.address, int(key.protocol), key.port)
        in_sets = (
            element in sets.masquerade_ports
            or (int(key.protocol), key.port) in sets.node_ports
            or element in sets.cluster_ip_ports  # from non-pods, or from the node itself
        )
        assert in_sets == said[entry.kind.value].startswith("masqueraded"), entry.kind
