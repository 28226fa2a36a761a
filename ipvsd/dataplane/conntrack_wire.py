"""ctnetlink messages, hand-packed: a protocol-filtered dump of the table and exact deletions.

Pure (no I/O) so that the host tests check every byte. Only what the UDP cleanup needs:

- `dump_request(family, protocol)`: IPCTNL_MSG_CT_GET with NLM_F_DUMP, filtered in the kernel
  (CTA_FILTER, Linux 5.9+) to one layer-4 protocol; older kernels ignore the filter and send
  every entry of the family, which `plan.udp_conntrack` filters again.
- `decode_entry(payload)`: one dumped entry as a `TrackedFlow` (None for an entry without
  ports or addresses ipvsd understands).
- `delete_request(flow)`: IPCTNL_MSG_CT_DELETE of one entry by its original tuple, zone and
  id: the kernel deletes nothing when the entry under the tuple has another id (it was
  replaced by a new flow after the dump). The id hashes the entry's address and original
  tuple, so a replacement that reuses the freed memory can share it; deleting that one costs
  it only a fresh entry at its next datagram.

The numbers are those of `include/uapi/linux/netfilter/nfnetlink_conntrack.h`.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

from ipvsd.dataplane.genl import attribute, nested, parse_attributes
from ipvsd.model.ipvs import Family, IPAddress
from ipvsd.model.tracked_flow import FlowEnd, FlowTuple, TrackedFlow

NETLINK_NETFILTER = 12
NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_NEW = 0
IPCTNL_MSG_CT_GET = 1
IPCTNL_MSG_CT_DELETE = 2
# nfnetlink message types carry the subsystem in the high byte.
CT_GET = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET
CT_DELETE = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE
CT_ENTRY = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW  # how dumped entries arrive

CTA_TUPLE_ORIG = 1
CTA_TUPLE_REPLY = 2
CTA_ID = 12
CTA_ZONE = 18
CTA_FILTER = 25
CTA_TUPLE_IP = 1
CTA_TUPLE_PROTO = 2
CTA_IP_V4_SRC, CTA_IP_V4_DST, CTA_IP_V6_SRC, CTA_IP_V6_DST = 1, 2, 3, 4
CTA_PROTO_NUM = 1
CTA_PROTO_SRC_PORT = 2
CTA_PROTO_DST_PORT = 3
CTA_FILTER_ORIG_FLAGS = 1
CTA_FILTER_FLAG_PROTO_NUM = 1 << 3

NFGENMSG = struct.Struct("=BBH")  # family, version (0), resource id (big endian, 0)
BE16 = struct.Struct(">H")
BE32 = struct.Struct(">I")


def dump_request(family: Family, protocol: int) -> bytes:
    """A dump of the entries of `family` whose original tuple has layer-4 `protocol`."""
    wanted = nested(CTA_TUPLE_PROTO, attribute(CTA_PROTO_NUM, bytes([protocol])))
    flags = attribute(CTA_FILTER_ORIG_FLAGS, struct.pack("=I", CTA_FILTER_FLAG_PROTO_NUM))
    return NFGENMSG.pack(family, 0, 0) + nested(CTA_TUPLE_ORIG, wanted) + nested(CTA_FILTER, flags)


def delete_request(flow: TrackedFlow) -> bytes:
    """The deletion of exactly `flow`'s entry (by original tuple, zone and id)."""
    body = NFGENMSG.pack(flow.family, 0, 0) + _encode_tuple(CTA_TUPLE_ORIG, flow)
    if flow.zone:
        body += attribute(CTA_ZONE, BE16.pack(flow.zone))
    if flow.entry_id is not None:
        body += attribute(CTA_ID, BE32.pack(flow.entry_id))
    return body


def _encode_tuple(kind: int, flow: TrackedFlow) -> bytes:
    source, destination = flow.original
    if flow.family is Family.INET:
        ips = attribute(CTA_IP_V4_SRC, source.address.packed) + attribute(
            CTA_IP_V4_DST, destination.address.packed
        )
    else:
        ips = attribute(CTA_IP_V6_SRC, source.address.packed) + attribute(
            CTA_IP_V6_DST, destination.address.packed
        )
    proto = (
        attribute(CTA_PROTO_NUM, bytes([flow.protocol]))
        + attribute(CTA_PROTO_SRC_PORT, BE16.pack(source.port))
        + attribute(CTA_PROTO_DST_PORT, BE16.pack(destination.port))
    )
    return nested(kind, nested(CTA_TUPLE_IP, ips), nested(CTA_TUPLE_PROTO, proto))


def decode_entry(payload: bytes | memoryview) -> TrackedFlow | None:
    """One dumped entry (the payload after the netlink header), or None when it lacks a tuple
    with addresses and ports (ICMP, a protocol without ports)."""
    view = payload if isinstance(payload, memoryview) else memoryview(payload)
    family_number = view[0]
    if family_number not in (Family.INET, Family.INET6):
        return None
    attrs = parse_attributes(view, NFGENMSG.size)
    original = _decode_tuple(attrs.get(CTA_TUPLE_ORIG))
    reply = _decode_tuple(attrs.get(CTA_TUPLE_REPLY))
    if original is None or reply is None:
        return None
    zone = attrs.get(CTA_ZONE)
    entry_id = attrs.get(CTA_ID)
    return TrackedFlow(
        family=Family(family_number),
        protocol=original[0],
        original=original[1],
        reply=reply[1],
        zone=BE16.unpack(zone)[0] if zone is not None else 0,
        entry_id=BE32.unpack(entry_id)[0] if entry_id is not None else None,
    )


def _decode_tuple(data: memoryview | None) -> tuple[int, FlowTuple] | None:
    if data is None:
        return None
    parts = parse_attributes(data)
    ip, proto = parts.get(CTA_TUPLE_IP), parts.get(CTA_TUPLE_PROTO)
    if ip is None or proto is None:
        return None
    addresses = parse_attributes(ip)
    ports = parse_attributes(proto)
    number = ports.get(CTA_PROTO_NUM)
    sport, dport = ports.get(CTA_PROTO_SRC_PORT), ports.get(CTA_PROTO_DST_PORT)
    if number is None or sport is None or dport is None:
        return None
    if CTA_IP_V4_SRC in addresses and CTA_IP_V4_DST in addresses:
        source: IPAddress = IPv4Address(bytes(addresses[CTA_IP_V4_SRC]))
        destination: IPAddress = IPv4Address(bytes(addresses[CTA_IP_V4_DST]))
    elif CTA_IP_V6_SRC in addresses and CTA_IP_V6_DST in addresses:
        source = IPv6Address(bytes(addresses[CTA_IP_V6_SRC]))
        destination = IPv6Address(bytes(addresses[CTA_IP_V6_DST]))
    else:
        return None
    return number[0], FlowTuple(
        FlowEnd(source, BE16.unpack(sport)[0]), FlowEnd(destination, BE16.unpack(dport)[0])
    )
