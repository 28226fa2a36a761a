"""Ownership: ipvsd may delete only virtual servers on its own addresses (never foreign ones)."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from ipvsd.model.ipvs import ServiceKey, parse_address
from ipvsd.plan.ownership import Ownership

OWNERSHIP = Ownership.of(
    bound=[parse_address("10.96.0.10"), parse_address("fd00:96::10")],
    node_port_addresses=[parse_address("192.168.1.10")],
    excluded=[ip_network("10.96.100.0/24")],
)


@pytest.mark.parametrize(
    ("key", "owned"),
    [
        (ServiceKey.tcp("10.96.0.10", 80), True),
        (ServiceKey.udp("fd00:96::10", 53), True),
        (ServiceKey.tcp("192.168.1.10", 30080), True),
        (ServiceKey.tcp("192.168.1.10", 443), False),
        (ServiceKey.tcp("192.168.1.11", 30080), False),
        (ServiceKey.tcp("10.0.0.1", 80), False),
        (ServiceKey.for_fwmark(7), False),
    ],
    ids=[
        "cluster-ip-on-the-dummy-interface", "ipv6-vip-on-the-dummy-interface",
        "node-port-in-range-on-a-node-address", "keepalived-style-port-on-a-node-address",
        "node-port-on-another-address", "hand-made-service-elsewhere", "fwmark-service",
    ],
)  # fmt: skip
def test_owns(key: ServiceKey, owned: bool) -> None:
    assert OWNERSHIP.owns(key) is owned


def test_excluded_cidr_is_never_owned_even_when_bound() -> None:
    bound = Ownership.of(
        bound=[parse_address("10.96.100.5")],
        node_port_addresses=[],
        excluded=[ip_network("10.96.100.0/24")],
    )
    assert not bound.owns(ServiceKey.tcp("10.96.100.5", 80))


def test_a_virtual_server_in_a_routed_service_cidr_is_owned_without_a_bound_address() -> None:
    routed = Ownership.of(
        bound=[],
        node_port_addresses=[],
        excluded=[ip_network("10.96.100.0/24")],
        routed=[ip_network("10.96.0.0/12")],
    )
    assert routed.owns(ServiceKey.tcp("10.96.0.10", 80))
    assert not routed.owns(ServiceKey.tcp("10.96.100.5", 80)), "excluded wins"
    assert not routed.owns(ServiceKey.tcp("10.112.0.1", 80)), "just outside the range"
