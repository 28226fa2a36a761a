"""The IPVS netlink codec: requests carry every attribute explicitly; dumps decode exactly.

Dump messages here are built the way the kernel's `ip_vs_genl_fill_dest` lays them out (the
real kernel's messages are decoded by the kernel-tier contract suite); the property test pins
the compiled fast path to the generic attribute walker for any destination.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipvsd.dataplane import ipvs_wire as wire
from ipvsd.dataplane.genl import GENL_HEADER, attribute, nested, parse_attributes
from ipvsd.dataplane.ipvs_layout import DestDecoder, learn_dest_layout
from ipvsd.model.ipvs import (
    AddRealServer,
    AddService,
    DeleteRealServer,
    DeleteService,
    Forward,
    ObservedRealServer,
    RealServer,
    ServiceFlag,
    ServiceKey,
    Stats,
    Timeouts,
    UpdateRealServer,
    UpdateService,
    VirtualServer,
)


def u16(v: int) -> bytes:
    return struct.pack("=H", v)


def u32(v: int) -> bytes:
    return struct.pack("=I", v)


def u64(v: int) -> bytes:
    return struct.pack("=Q", v)


def decode_request(body: bytes) -> tuple[int, dict[int, dict[int, bytes]]]:
    """(command, {top attribute: {nested attribute: raw value}}) of an encoded request."""
    command = body[0]
    top = parse_attributes(body, GENL_HEADER.size)
    return command, {
        k: {ik: bytes(iv) for ik, iv in parse_attributes(v).items()} for k, v in top.items()
    }


def kernel_dest_message(
    server: RealServer,
    *,
    active: int = 0,
    inactive: int = 0,
    persistent: int = 0,
    counters: tuple[int, ...] = (0,) * 10,
    with_family: bool = True,
    with_tunnel: bool = True,
) -> bytes:
    """A GET_DEST dump message in the kernel's attribute order."""
    addr = server.address.packed.ljust(16, b"\0")
    attrs = [
        attribute(wire.DEST_ADDR, addr),
        attribute(wire.DEST_PORT, struct.pack("!H", server.port)),
        attribute(wire.DEST_FWD_METHOD, u32(server.forward)),
        attribute(wire.DEST_WEIGHT, u32(server.weight)),
    ]
    if with_tunnel:
        attrs += [attribute(13, b"\0"), attribute(14, b"\0\0"), attribute(15, b"\0\0")]
    attrs += [
        attribute(wire.DEST_U_THRESH, u32(server.upper_threshold)),
        attribute(wire.DEST_L_THRESH, u32(server.lower_threshold)),
        attribute(wire.DEST_ACTIVE, u32(active)),
        attribute(wire.DEST_INACTIVE, u32(inactive)),
        attribute(wire.DEST_PERSIST, u32(persistent)),
    ]
    if with_family:
        attrs.append(
            attribute(wire.DEST_ADDR_FAMILY, u16(2 if server.address.version == 4 else 10))
        )
    legacy = [u32(c) for c in counters[:3]] + [u64(counters[3]), u64(counters[4])]
    legacy += [u32(c & 0xFFFFFFFF) for c in counters[5:]]
    attrs.append(nested(wire.DEST_STATS, *(attribute(i + 1, v) for i, v in enumerate(legacy))))
    attrs.append(
        nested(wire.DEST_STATS64, *(attribute(i + 1, u64(c)) for i, c in enumerate(counters)))
    )
    return GENL_HEADER.pack(wire.CMD_NEW_DEST, 1, 0) + nested(wire.ATTR_DEST, *attrs)


def kernel_service_message(server: VirtualServer, *, flags: int) -> bytes:
    key = server.key
    attrs = [attribute(wire.SVC_AF, u16(key.family))]
    if key.fwmark:
        attrs.append(attribute(wire.SVC_FWMARK, u32(key.fwmark)))
    else:
        assert key.address is not None
        attrs += [
            attribute(wire.SVC_PROTOCOL, u16(key.protocol)),
            attribute(wire.SVC_ADDR, key.address.packed.ljust(16, b"\0")),
            attribute(wire.SVC_PORT, struct.pack("!H", key.port)),
        ]
    netmask = (
        ((0xFFFFFFFF << (32 - server.effective_netmask)) & 0xFFFFFFFF).to_bytes(4, "big")
        if key.family == 2
        else u32(server.effective_netmask)
    )
    attrs += [
        attribute(wire.SVC_SCHED_NAME, server.scheduler.encode() + b"\0"),
        attribute(wire.SVC_FLAGS, struct.pack("=II", flags, 0xFFFFFFFF)),
        attribute(wire.SVC_TIMEOUT, u32(server.timeout)),
        attribute(wire.SVC_NETMASK, netmask),
        nested(wire.SVC_STATS64, *(attribute(i + 1, u64(i)) for i in range(10))),
    ]
    return GENL_HEADER.pack(wire.CMD_NEW_SERVICE, 1, 0) + nested(wire.ATTR_SERVICE, *attrs)


KEY = ServiceKey.tcp("10.96.0.10", 53)


def test_add_service_states_scheduler_flags_with_full_mask_timeout_and_netmask() -> None:
    server = VirtualServer(KEY, "mh", ServiceFlag.PERSISTENT | ServiceFlag.SCHED2, 600, netmask=24)
    command, attrs = decode_request(wire.Encoder().encode(AddService(server)))
    svc = attrs[wire.ATTR_SERVICE]
    assert command == wire.CMD_NEW_SERVICE
    assert svc[wire.SVC_AF] == u16(2)
    assert svc[wire.SVC_PROTOCOL] == u16(6)
    assert svc[wire.SVC_ADDR] == IPv4Address("10.96.0.10").packed + b"\0" * 12
    assert svc[wire.SVC_PORT] == b"\x00\x35"
    assert svc[wire.SVC_SCHED_NAME] == b"mh\0"
    assert svc[wire.SVC_FLAGS] == struct.pack("=II", 0x11, 0xFFFFFFFF)
    assert svc[wire.SVC_TIMEOUT] == u32(600)
    assert svc[wire.SVC_NETMASK] == b"\xff\xff\xff\x00"  # IPv4: raw network-order mask bits


def test_ipv6_netmask_is_a_prefix_length_and_hashed_flag_is_never_requested() -> None:
    key = ServiceKey.udp("fd00::a", 53)
    server = VirtualServer(key, "rr", ServiceFlag.PERSISTENT | ServiceFlag.HASHED, 10)
    _, attrs = decode_request(wire.Encoder().encode(UpdateService(server)))
    svc = attrs[wire.ATTR_SERVICE]
    assert svc[wire.SVC_NETMASK] == u32(128)
    assert svc[wire.SVC_FLAGS] == struct.pack("=II", 0x1, 0xFFFFFFFF)
    assert svc[wire.SVC_ADDR] == IPv6Address("fd00::a").packed


def test_fwmark_service_is_identified_by_mark_and_family_only() -> None:
    _, attrs = decode_request(wire.Encoder().encode(DeleteService(ServiceKey.for_fwmark(42))))
    assert attrs[wire.ATTR_SERVICE] == {wire.SVC_AF: u16(2), wire.SVC_FWMARK: u32(42)}


@pytest.mark.parametrize(("op_class", "command"), [(AddRealServer, 5), (UpdateRealServer, 6)])
def test_real_server_requests_state_masquerading_weight_and_thresholds(
    op_class: type[AddRealServer] | type[UpdateRealServer], command: int
) -> None:
    dest = RealServer(
        IPv4Address("10.244.1.7"), 8053, weight=0, upper_threshold=9, lower_threshold=3
    )
    got_command, attrs = decode_request(wire.Encoder().encode(op_class(KEY, dest)))
    assert got_command == command
    assert attrs[wire.ATTR_SERVICE][wire.SVC_PORT] == b"\x00\x35"
    assert attrs[wire.ATTR_DEST] == {
        wire.DEST_ADDR: IPv4Address("10.244.1.7").packed + b"\0" * 12,
        wire.DEST_PORT: struct.pack("!H", 8053),
        wire.DEST_FWD_METHOD: u32(0),
        wire.DEST_WEIGHT: u32(0),
        wire.DEST_U_THRESH: u32(9),
        wire.DEST_L_THRESH: u32(3),
        wire.DEST_ADDR_FAMILY: u16(2),
    }


def test_delete_real_server_names_only_address_port_and_family() -> None:
    op = DeleteRealServer(KEY, IPv4Address("10.244.1.7"), 8053)
    _, attrs = decode_request(wire.Encoder().encode(op))
    assert set(attrs[wire.ATTR_DEST]) == {wire.DEST_ADDR, wire.DEST_PORT, wire.DEST_ADDR_FAMILY}


def test_set_config_sends_all_three_timeouts() -> None:
    _, attrs = decode_request(wire.encode_set_config(Timeouts(tcp=900, tcp_fin=0, udp=30)))
    assert set(attrs) == {wire.ATTR_TIMEOUT_TCP, wire.ATTR_TIMEOUT_TCP_FIN, wire.ATTR_TIMEOUT_UDP}


@pytest.mark.parametrize(
    ("server", "flags"),
    [
        (VirtualServer(KEY, "rr"), 0x2),
        (VirtualServer(ServiceKey.sctp("fd00::1", 80), "sh", ServiceFlag.SCHED1, 0, 64), 0xA),
        (VirtualServer(ServiceKey.for_fwmark(9), "wlc", ServiceFlag.PERSISTENT, 300, 16), 0x3),
    ],
)
def test_dumped_service_decodes_to_the_programmed_value(server: VirtualServer, flags: int) -> None:
    decoded, stats = wire.decode_service(memoryview(kernel_service_message(server, flags=flags)))
    assert decoded.same_attributes(server)
    assert decoded.key == server.key
    assert decoded.flags == ServiceFlag(flags)
    assert stats == Stats(*range(10))


addresses = st.one_of(
    st.integers(0, 2**32 - 1).map(IPv4Address), st.integers(0, 2**128 - 1).map(IPv6Address)
)
real_servers = st.builds(
    RealServer,
    address=addresses,
    port=st.integers(0, 65535),
    weight=st.integers(0, 2**31 - 1),
    forward=st.sampled_from(Forward),
    upper_threshold=st.integers(0, 2**32 - 1),
    lower_threshold=st.just(0),
)


@given(
    server=real_servers,
    counts=st.tuples(*[st.integers(0, 2**32 - 1)] * 3),
    counters=st.tuples(*[st.integers(0, 2**32 - 1)] * 10),
    with_family=st.booleans(),
    with_tunnel=st.booleans(),
)
def test_compiled_layout_agrees_with_the_generic_walker(
    server: RealServer,
    counts: tuple[int, int, int],
    counters: tuple[int, ...],
    with_family: bool,
    with_tunnel: bool,
) -> None:
    message = kernel_dest_message(
        server, active=counts[0], inactive=counts[1], persistent=counts[2],
        counters=counters, with_family=with_family, with_tunnel=with_tunnel,
    )  # fmt: skip
    family = 2 if server.address.version == 4 else 10
    generic = wire.decode_dest(memoryview(message), family)
    assert generic == ObservedRealServer(server, *counts, Stats(*counters))
    assert DestDecoder().read(message, family) == generic


def test_layout_learned_from_one_message_decodes_the_next_of_the_same_shape() -> None:
    decoder = DestDecoder()
    first = kernel_dest_message(RealServer.of("10.0.0.1", 80))
    second = kernel_dest_message(RealServer.of("10.0.0.2", 81, 7), active=3, counters=(5,) * 10)
    assert decoder.read(first, 2) is not None
    decoded = decoder.read(second, 2)
    assert decoded == ObservedRealServer(
        RealServer.of("10.0.0.2", 81, 7), 3, 0, 0, Stats(*(5,) * 10)
    )


def test_same_size_message_with_other_attribute_order_is_refused_not_misread() -> None:
    layout = learn_dest_layout(kernel_dest_message(RealServer.of("10.0.0.1", 80)))
    assert layout is not None
    # Swap the first two attributes' places (ADDR 20 bytes, PORT 8 bytes): same total size.
    message = bytearray(kernel_dest_message(RealServer.of("10.0.0.1", 80)))
    start = GENL_HEADER.size + 4
    addr, port = bytes(message[start : start + 20]), bytes(message[start + 20 : start + 28])
    message[start : start + 28] = port + addr
    assert layout.read(bytes(message), 2) is None
    assert wire.decode_dest(memoryview(bytes(message)), 2).server.address == ip_address("10.0.0.1")


def test_message_without_64bit_stats_falls_back_to_the_generic_walker() -> None:
    full = kernel_dest_message(RealServer.of("10.0.0.1", 80), counters=(1,) * 10)
    nest_start = full.rindex(struct.pack("=HH", 124, wire.DEST_STATS64 | 0x8000))
    trimmed = bytearray(full[:nest_start])
    struct.pack_into("=H", trimmed, GENL_HEADER.size, len(trimmed) - GENL_HEADER.size)
    assert DestDecoder().read(bytes(trimmed), 2) is None
    generic = wire.decode_dest(memoryview(bytes(trimmed)), 2)
    assert generic.stats.connections == 1  # from the legacy 32-bit block
