"""ctnetlink messages byte for byte: the filtered dump, one entry decoded, an exact deletion."""

from __future__ import annotations

import socket
import struct

from ipvsd.dataplane import conntrack_wire as wire
from ipvsd.dataplane.genl import attribute, nested
from ipvsd.model.ipvs import Family, Protocol, parse_address
from ipvsd.model.tracked_flow import FlowEnd, FlowTuple, TrackedFlow


def ip(address: str) -> bytes:
    return parse_address(address).packed


def tuple_attr(kind: int, src: str, dst: str, sport: int, dport: int, *, v6: bool = False) -> bytes:
    first = wire.CTA_IP_V6_SRC if v6 else wire.CTA_IP_V4_SRC
    return nested(
        kind,
        nested(wire.CTA_TUPLE_IP, attribute(first, ip(src)), attribute(first + 1, ip(dst))),
        nested(
            wire.CTA_TUPLE_PROTO,
            attribute(wire.CTA_PROTO_NUM, bytes([17])),
            attribute(wire.CTA_PROTO_SRC_PORT, struct.pack(">H", sport)),
            attribute(wire.CTA_PROTO_DST_PORT, struct.pack(">H", dport)),
        ),
    )


ENTRY = TrackedFlow(
    Family.INET,
    int(Protocol.UDP),
    FlowTuple(FlowEnd(parse_address("10.0.0.2"), 40053), FlowEnd(parse_address("10.96.0.10"), 53)),
    FlowTuple(
        FlowEnd(parse_address("10.244.1.5"), 5353), FlowEnd(parse_address("10.0.0.2"), 40053)
    ),
    zone=0,
    entry_id=0xDEADBEEF,
)


def test_the_dump_asks_the_kernel_for_one_protocol_of_one_family() -> None:
    assert wire.CT_GET == 0x101
    assert wire.dump_request(Family.INET6, Protocol.UDP) == (
        bytes([socket.AF_INET6, 0, 0, 0])
        # CTA_TUPLE_ORIG { CTA_TUPLE_PROTO { CTA_PROTO_NUM 17 } }
        + bytes.fromhex("1000 0180 0c00 0280 0500 0100 11 000000")
        # CTA_FILTER { CTA_FILTER_ORIG_FLAGS = CTA_FILTER_FLAG(CTA_PROTO_NUM) }
        + bytes.fromhex("0c00 1980 0800 0100 08000000")
    )


def test_an_entry_decodes_with_both_tuples_zone_and_id() -> None:
    payload = (
        bytes([socket.AF_INET, 0, 0, 0])
        + tuple_attr(wire.CTA_TUPLE_ORIG, "10.0.0.2", "10.96.0.10", 40053, 53)
        + tuple_attr(wire.CTA_TUPLE_REPLY, "10.244.1.5", "10.0.0.2", 5353, 40053)
        + attribute(3, struct.pack(">I", 0x18E))  # CTA_STATUS, ignored
        + attribute(wire.CTA_ID, struct.pack(">I", 0xDEADBEEF))
    )
    assert wire.decode_entry(payload) == ENTRY
    assert wire.decode_entry(payload + attribute(wire.CTA_ZONE, b"\x00\x07")) == ENTRY._replace(
        zone=7
    )


def test_ipv6_entries_decode() -> None:
    payload = (
        bytes([socket.AF_INET6, 0, 0, 0])
        + tuple_attr(wire.CTA_TUPLE_ORIG, "fd00::2", "fd00:96::a", 40053, 53, v6=True)
        + tuple_attr(wire.CTA_TUPLE_REPLY, "fd00:244::5", "fd00::2", 5353, 40053, v6=True)
    )
    flow = wire.decode_entry(payload)
    assert flow is not None
    assert (flow.family, str(flow.original.destination), str(flow.reply.source)) == (
        Family.INET6,
        "[fd00:96::a]:53",
        "[fd00:244::5]:5353",
    )
    assert flow.entry_id is None


def test_entries_without_ports_are_skipped() -> None:
    icmp = nested(
        wire.CTA_TUPLE_ORIG,
        nested(wire.CTA_TUPLE_IP, attribute(1, ip("10.0.0.2")), attribute(2, ip("10.0.0.1"))),
        nested(wire.CTA_TUPLE_PROTO, attribute(wire.CTA_PROTO_NUM, bytes([1]))),
    )
    assert wire.decode_entry(bytes([socket.AF_INET, 0, 0, 0]) + icmp) is None


def test_a_deletion_names_the_original_tuple_zone_and_id() -> None:
    assert wire.CT_DELETE == 0x102
    body = wire.delete_request(ENTRY._replace(zone=7))
    assert body == (
        bytes([socket.AF_INET, 0, 0, 0])
        + tuple_attr(wire.CTA_TUPLE_ORIG, "10.0.0.2", "10.96.0.10", 40053, 53)
        + attribute(wire.CTA_ZONE, b"\x00\x07")
        + attribute(wire.CTA_ID, bytes.fromhex("deadbeef"))
    )
    assert wire.decode_entry(body[:4] + body[4:]) is None  # a request has no reply tuple
