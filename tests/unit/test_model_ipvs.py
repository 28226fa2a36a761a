"""The IPVS value types: what they accept, what they refuse, and how they order."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest

from ipvsd.model.ipvs import (
    Family,
    Forward,
    Protocol,
    RealServer,
    ServiceFlag,
    ServiceKey,
    VirtualServer,
    format_endpoint,
    full_prefix,
    parse_address,
)

# --- addresses and keys ------------------------------------------------------------------------


def test_family_follows_the_address_version() -> None:
    assert Family.of(IPv4Address("10.0.0.1")) is Family.INET
    assert Family.of(IPv6Address("fd00::1")) is Family.INET6
    assert (Family.INET, Family.INET6) == (2, 10)  # AF_INET, AF_INET6 as the kernel numbers them


def test_parse_address_accepts_text_and_address_objects() -> None:
    address = IPv6Address("fd00::1")

    assert parse_address("10.0.0.1") == IPv4Address("10.0.0.1")
    assert parse_address(address) is address
    with pytest.raises(ValueError, match="not-an-ip"):
        parse_address("not-an-ip")


def test_protocol_constructors_derive_the_family() -> None:
    assert ServiceKey.tcp("10.0.0.1", 80) == ServiceKey(
        Family.INET, Protocol.TCP, IPv4Address("10.0.0.1"), 80
    )
    assert ServiceKey.udp("fd00::1", 53).family is Family.INET6
    assert ServiceKey.sctp("10.0.0.1", 9).protocol == 132


def test_fwmark_key_has_no_protocol_address_or_port() -> None:
    key = ServiceKey.for_fwmark(7, Family.INET6)

    assert (key.family, key.protocol, key.address, key.port, key.fwmark) == (
        Family.INET6,
        0,
        None,
        0,
        7,
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((Family.INET, 6, IPv4Address("10.0.0.1"), 0, 7), "fwmark service has no"),
        ((Family.INET, 0, None, 80, 7), "fwmark service has no"),
        ((Family.INET, 0, None, 0, 2**32), "fwmark 4294967296 out of range"),
        ((Family.INET, 0, None, 0, -1), "out of range"),
        ((Family.INET, 6, None, 80), "needs an address or a fwmark"),
        ((Family.INET6, 6, IPv4Address("10.0.0.1"), 80), "not of family INET6"),
        ((Family.INET, 1, IPv4Address("10.0.0.1"), 80), "unknown protocol 1"),
        ((Family.INET, 0, IPv4Address("10.0.0.1"), 80), "unknown protocol 0"),
        ((Family.INET, 6, IPv4Address("10.0.0.1"), 65536), "port 65536 out of range"),
        ((Family.INET, 6, IPv4Address("10.0.0.1"), -1), "port -1 out of range"),
    ],
)
def test_service_key_refuses_impossible_combinations(
    arguments: tuple[object, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ServiceKey(*arguments)  # type: ignore[arg-type]


def test_service_key_accepts_the_edges_of_its_ranges() -> None:
    assert ServiceKey.tcp("10.0.0.1", 0).port == 0
    assert ServiceKey.tcp("10.0.0.1", 65535).port == 65535
    assert ServiceKey.for_fwmark(2**32 - 1).fwmark == 2**32 - 1


def test_service_keys_sort_by_family_protocol_address_port_with_fwmarks_last() -> None:
    keys = [
        ServiceKey.for_fwmark(2),
        ServiceKey.for_fwmark(1, Family.INET6),
        ServiceKey.for_fwmark(1),
        ServiceKey.tcp("fd00::1", 80),
        ServiceKey.sctp("10.0.0.1", 80),
        ServiceKey.udp("10.0.0.1", 80),
        ServiceKey.tcp("200.0.0.1", 80),
        ServiceKey.tcp("10.0.0.2", 80),
        ServiceKey.tcp("10.0.0.1", 8080),
        ServiceKey.tcp("10.0.0.1", 80),
    ]

    assert sorted(keys, key=ServiceKey.sort_key) == list(reversed(keys))


def test_service_keys_read_as_ipvsadm_would_list_them() -> None:
    assert str(ServiceKey.tcp("10.0.0.1", 80)) == "TCP 10.0.0.1:80"
    assert str(ServiceKey.udp("fd00::1", 53)) == "UDP [fd00::1]:53"
    assert str(ServiceKey.for_fwmark(7, Family.INET6)) == "FWM 7 (INET6)"


def test_endpoints_bracket_ipv6_addresses() -> None:
    assert format_endpoint(IPv4Address("10.0.0.1"), 80) == "10.0.0.1:80"
    assert format_endpoint(IPv6Address("fd00::1"), 443) == "[fd00::1]:443"
    assert format_endpoint(None, 0) == "*:0"


# --- virtual servers ---------------------------------------------------------------------------

WEB = ServiceKey.tcp("10.0.0.1", 80)
WEB6 = ServiceKey.tcp("fd00::1", 80)


def test_virtual_server_defaults_are_no_flags_no_persistence_and_full_netmask() -> None:
    server = VirtualServer(WEB, "rr")

    assert (server.flags, server.timeout, server.netmask, server.persistence_engine) == (
        ServiceFlag(0),
        0,
        None,
        "",
    )
    assert server.effective_netmask == 32
    assert VirtualServer(WEB6, "rr").effective_netmask == 128
    assert (full_prefix(Family.INET), full_prefix(Family.INET6)) == (32, 128)


@pytest.mark.parametrize("scheduler", ["", "a" * 16])
def test_virtual_server_refuses_scheduler_names_the_kernel_cannot_hold(scheduler: str) -> None:
    with pytest.raises(ValueError, match="invalid scheduler name"):
        VirtualServer(WEB, scheduler)


def test_virtual_server_takes_the_longest_scheduler_name_the_kernel_holds() -> None:
    assert VirtualServer(WEB, "a" * 15).scheduler == "a" * 15


@pytest.mark.parametrize("timeout", [-1, 2**32])
def test_virtual_server_refuses_timeouts_beyond_32_bits(timeout: int) -> None:
    with pytest.raises(ValueError, match="timeout"):
        VirtualServer(WEB, "rr", timeout=timeout)


@pytest.mark.parametrize(("key", "netmask"), [(WEB, 33), (WEB, -1), (WEB6, 129)])
def test_virtual_server_refuses_prefixes_longer_than_the_address(
    key: ServiceKey, netmask: int
) -> None:
    with pytest.raises(ValueError, match="netmask"):
        VirtualServer(key, "rr", netmask=netmask)


def test_virtual_server_takes_every_prefix_length_of_its_family() -> None:
    assert VirtualServer(WEB, "rr", netmask=0).effective_netmask == 0
    assert VirtualServer(WEB6, "rr", netmask=128).effective_netmask == 128


def test_hashed_is_not_part_of_what_was_requested() -> None:
    server = VirtualServer(WEB, "rr", ServiceFlag.HASHED | ServiceFlag.PERSISTENT, 60)

    assert server.requested_flags == ServiceFlag.PERSISTENT


def test_same_attributes_ignores_kernel_flags_and_an_implicit_full_netmask() -> None:
    desired = VirtualServer(WEB, "rr", ServiceFlag.PERSISTENT, 60)
    observed = VirtualServer(WEB, "rr", ServiceFlag.HASHED | ServiceFlag.PERSISTENT, 60, 32)

    assert desired.same_attributes(observed)
    assert observed.same_attributes(desired)


@pytest.mark.parametrize(
    "changed",
    [
        VirtualServer(WEB, "wrr", ServiceFlag.PERSISTENT, 60),
        VirtualServer(WEB, "rr", ServiceFlag.PERSISTENT | ServiceFlag.SCHED1, 60),
        VirtualServer(WEB, "rr", ServiceFlag.PERSISTENT, 61),
        VirtualServer(WEB, "rr", ServiceFlag.PERSISTENT, 60, 24),
        VirtualServer(WEB, "rr", ServiceFlag.PERSISTENT, 60, persistence_engine="sip"),
    ],
)
def test_same_attributes_notices_every_attribute_an_update_can_change(
    changed: VirtualServer,
) -> None:
    assert not VirtualServer(WEB, "rr", ServiceFlag.PERSISTENT, 60).same_attributes(changed)


# --- real servers ------------------------------------------------------------------------------


def test_real_server_defaults_to_nat_with_weight_one() -> None:
    server = RealServer.of("10.1.0.1", 8080)

    assert server == RealServer(IPv4Address("10.1.0.1"), 8080, 1, forward=Forward.MASQ)
    assert server.endpoint == (IPv4Address("10.1.0.1"), 8080)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"port": -1}, "port -1 out of range"),
        ({"port": 65536}, "port 65536 out of range"),
        ({"weight": -1}, "weight -1 out of range"),
        ({"weight": 2**31}, "weight 2147483648 out of range"),
        ({"upper_threshold": 5, "lower_threshold": 10}, "lower threshold above upper"),
        # The kernel answers ERANGE here too, although 0 means "no upper threshold".
        ({"upper_threshold": 0, "lower_threshold": 10}, "lower threshold above upper"),
        ({"upper_threshold": 2**32}, "thresholds must be"),
    ],
)
def test_real_server_refuses_values_the_kernel_refuses(
    kwargs: dict[str, int], message: str
) -> None:
    fields: dict[str, int] = {"port": 80, **kwargs}
    with pytest.raises(ValueError, match=message):
        RealServer(IPv4Address("10.1.0.1"), **fields)  # type: ignore[arg-type]


def test_real_server_takes_the_edges_of_its_ranges() -> None:
    assert RealServer.of("10.1.0.1", 0, 0).weight == 0
    assert RealServer.of("10.1.0.1", 65535, 2**31 - 1).weight == 2**31 - 1
    assert RealServer(IPv4Address("10.1.0.1"), 80, upper_threshold=10, lower_threshold=10)


def test_real_servers_sort_ipv4_first_then_by_numeric_address_and_port() -> None:
    servers = [
        RealServer.of("fd00::1", 80),
        RealServer.of("200.0.0.1", 80),
        RealServer.of("10.0.0.2", 80),
        RealServer.of("10.0.0.1", 8080),
        RealServer.of("10.0.0.1", 80),
    ]

    assert sorted(servers, key=RealServer.sort_key) == list(reversed(servers))
