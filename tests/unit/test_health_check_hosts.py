"""Where healthCheckNodePort listeners listen, by `--nodeport-addresses`, kube-proxy's rule
(`service_health.go`: every address unless the family is narrowed, then the host's matching
addresses; `primary` is the Node's primary address of each family)."""

from __future__ import annotations

import pytest

from ipvsd.config.values import NodePortAddresses, parse_nodeport_addresses
from ipvsd.model.ipvs import Family, parse_address
from ipvsd.plan.health_check_hosts import health_check_hosts

HOST = [
    parse_address(a) for a in ("127.0.0.1", "10.0.0.5", "192.168.1.10", "::1", "fd00::5", "fe80::1")
]


def hosts(*items: str, primary: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    return health_check_hosts(
        parse_nodeport_addresses(items, "--nodeport-addresses"),
        HOST,
        primary_addresses=[parse_address(a) for a in primary],
    )


@pytest.mark.parametrize(
    ("items", "primary", "expected"),
    [
        ((), (), None),
        (("0.0.0.0/0",), (), None),
        (("all",), (), None),
        (("10.0.0.0/8",), (), ("10.0.0.5", "::")),
        (("10.0.0.0/8", "192.168.0.0/16"), (), ("10.0.0.5", "192.168.1.10", "::")),
        (("fd00::/8",), (), ("0.0.0.0", "fd00::5")),
        (("127.0.0.0/8",), (), ("127.0.0.1", "::")),
        (("172.16.0.0/12",), (), ("::",)),
        (("primary",), ("192.168.1.10",), ("192.168.1.10", "::")),
        (("primary",), ("192.168.1.10", "fd00::5"), ("192.168.1.10", "fd00::5")),
        (("primary",), (), None),
    ],
    ids=[
        "unset-every-address",
        "zero-cidr-matches-all",
        "all-keyword",
        "ipv4-narrowed-ipv6-everywhere",
        "two-cidrs",
        "ipv6-narrowed-ipv4-everywhere",
        "loopback-when-a-cidr-takes-it",
        "no-address-matches-no-ipv4-listener",
        "primary-ipv4",
        "primary-both-families",
        "primary-without-a-node-address-is-every-address",
    ],
)
def test_listeners_follow_nodeport_addresses(
    items: tuple[str, ...], primary: tuple[str, ...], expected: tuple[str, ...] | None
) -> None:
    assert hosts(*items, primary=primary) == expected


def test_a_node_without_ipv6_gets_no_ipv6_wildcard() -> None:
    narrowed = NodePortAddresses(cidrs=(parse_nodeport_addresses(["10.0.0.0/8"], "x").cidrs))
    assert health_check_hosts(narrowed, HOST, families=(Family.INET,)) == ("10.0.0.5",)
