"""The IPVS generic-netlink message format: encode operations, decode dumps. No I/O here.

Layouts follow the kernel's `include/uapi/linux/ip_vs.h` and the parsing in
`net/netfilter/ipvs/ip_vs_ctl.c`. Every request states scheduler, flags (with a full mask),
timeout, netmask, forwarding method, weight and thresholds explicitly: nothing is left to a
default, the kernel's or a library's.

Encoding is on the hot path (a cold start programs tens of thousands of objects), so the fixed
part of each message is one precompiled `struct` and the attribute that identifies a service is
encoded once per service and reused for every real server of that service.
"""

from __future__ import annotations

import socket
import struct
from ipaddress import IPv4Address, IPv6Address
from typing import Final

from ipvsd.dataplane.genl import (
    GENL_HEADER,
    NLA_F_NESTED,
    attribute,
    nested,
    parse_attributes,
)
from ipvsd.model.ipvs import (
    AddRealServer,
    AddService,
    DeleteRealServer,
    DeleteService,
    Family,
    Forward,
    IPAddress,
    ObservedRealServer,
    ObservedVirtualServer,
    Operation,
    RealServer,
    ServiceFlag,
    ServiceKey,
    Stats,
    Timeouts,
    UpdateRealServer,
    UpdateService,
    VirtualServer,
)

FAMILY_NAME: Final = "IPVS"
GENL_VERSION: Final = 1

# Commands (enum IPVS_CMD_*)
CMD_NEW_SERVICE, CMD_SET_SERVICE, CMD_DEL_SERVICE, CMD_GET_SERVICE = 1, 2, 3, 4
CMD_NEW_DEST, CMD_SET_DEST, CMD_DEL_DEST, CMD_GET_DEST = 5, 6, 7, 8
CMD_SET_CONFIG, CMD_GET_CONFIG, CMD_GET_INFO, CMD_FLUSH = 12, 13, 15, 17

# Top-level attributes (IPVS_CMD_ATTR_*)
ATTR_SERVICE, ATTR_DEST = 1, 2
ATTR_TIMEOUT_TCP, ATTR_TIMEOUT_TCP_FIN, ATTR_TIMEOUT_UDP = 4, 5, 6

# Service attributes (IPVS_SVC_ATTR_*)
SVC_AF, SVC_PROTOCOL, SVC_ADDR, SVC_PORT, SVC_FWMARK = 1, 2, 3, 4, 5
SVC_SCHED_NAME, SVC_FLAGS, SVC_TIMEOUT, SVC_NETMASK, SVC_STATS = 6, 7, 8, 9, 10
SVC_PE_NAME, SVC_STATS64 = 11, 12

# Destination attributes (IPVS_DEST_ATTR_*)
DEST_ADDR, DEST_PORT, DEST_FWD_METHOD, DEST_WEIGHT = 1, 2, 3, 4
DEST_U_THRESH, DEST_L_THRESH, DEST_ACTIVE, DEST_INACTIVE, DEST_PERSIST = 5, 6, 7, 8, 9
DEST_STATS, DEST_ADDR_FAMILY, DEST_STATS64 = 10, 11, 12

# Statistics attributes (IPVS_STATS_ATTR_*), in the order of `Stats`' fields.
STATS_FIELDS: Final = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)

FORWARD_MASK: Final = 0x7
ALL_FLAGS_MASK: Final = 0xFFFFFFFF

U16 = struct.Struct("=H")
U32 = struct.Struct("=I")
U64 = struct.Struct("=Q")
BE16 = struct.Struct("!H")

# A real server's nested DEST attribute in one go: nest header, address (IPv4 as a
# network-order u32 plus padding to 16 bytes), port (network order), forwarding method, weight,
# thresholds and address family. Lengths and types are constants; only the values vary.
_DEST_V4 = struct.Struct("=HH HHI12x HHH2x HHI HHI HHI HHI HHH2x")
_DEST_V6 = struct.Struct("=HH HH16s HHH2x HHI HHI HHI HHI HHH2x")
_DEST_NEST_LEN: Final = _DEST_V4.size
assert _DEST_V6.size == _DEST_NEST_LEN


def _genl(command: int) -> bytes:
    return GENL_HEADER.pack(command, GENL_VERSION, 0)


_GENL = {
    command: _genl(command)
    for command in (
        CMD_NEW_SERVICE,
        CMD_SET_SERVICE,
        CMD_DEL_SERVICE,
        CMD_GET_SERVICE,
        CMD_NEW_DEST,
        CMD_SET_DEST,
        CMD_DEL_DEST,
        CMD_GET_DEST,
        CMD_SET_CONFIG,
        CMD_GET_CONFIG,
        CMD_GET_INFO,
        CMD_FLUSH,
    )
}


_GENL_NEW_DEST = _GENL[CMD_NEW_DEST]
_GENL_SET_DEST = _GENL[CMD_SET_DEST]


def _address16(address: IPAddress) -> bytes:
    """The kernel's `union nf_inet_addr`: 16 bytes, IPv4 in the first four."""
    packed = address.packed
    return packed + b"\0" * (16 - len(packed))


def _service_key_attributes(key: ServiceKey) -> bytes:
    parts = [attribute(SVC_AF, U16.pack(key.family))]
    if key.fwmark:
        parts.append(attribute(SVC_FWMARK, U32.pack(key.fwmark)))
    else:
        assert key.address is not None  # guaranteed by ServiceKey's validation
        parts += [
            attribute(SVC_PROTOCOL, U16.pack(key.protocol)),
            attribute(SVC_ADDR, _address16(key.address)),
            attribute(SVC_PORT, BE16.pack(key.port)),
        ]
    return b"".join(parts)


def _netmask_bytes(server: VirtualServer) -> bytes:
    """IPv4: the mask's raw network-order bits; IPv6: the prefix length as a host u32."""
    prefix = server.effective_netmask
    if server.key.family == Family.INET:
        mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
        return mask.to_bytes(4, "big")
    return U32.pack(prefix)


def _service_attributes(server: VirtualServer) -> bytes:
    parts = [
        _service_key_attributes(server.key),
        attribute(SVC_SCHED_NAME, server.scheduler.encode() + b"\0"),
        attribute(SVC_FLAGS, struct.pack("=II", server.requested_flags, ALL_FLAGS_MASK)),
        attribute(SVC_TIMEOUT, U32.pack(server.timeout)),
        attribute(SVC_NETMASK, _netmask_bytes(server)),
    ]
    if server.persistence_engine:
        parts.append(attribute(SVC_PE_NAME, server.persistence_engine.encode() + b"\0"))
    return b"".join(parts)


def _dest_nest(server: RealServer) -> bytes:
    """The nested DEST attribute of a full real server, in one `struct` call."""
    address = server.address
    if address.version == 4:
        return _DEST_V4.pack(
            _DEST_NEST_LEN, ATTR_DEST | NLA_F_NESTED,
            20, DEST_ADDR, socket.htonl(int(address)),
            6, DEST_PORT, socket.htons(server.port),
            8, DEST_FWD_METHOD, server.forward,
            8, DEST_WEIGHT, server.weight,
            8, DEST_U_THRESH, server.upper_threshold,
            8, DEST_L_THRESH, server.lower_threshold,
            6, DEST_ADDR_FAMILY, Family.INET,
        )  # fmt: skip
    return _DEST_V6.pack(
        _DEST_NEST_LEN, ATTR_DEST | NLA_F_NESTED,
        20, DEST_ADDR, address.packed,
        6, DEST_PORT, socket.htons(server.port),
        8, DEST_FWD_METHOD, server.forward,
        8, DEST_WEIGHT, server.weight,
        8, DEST_U_THRESH, server.upper_threshold,
        8, DEST_L_THRESH, server.lower_threshold,
        6, DEST_ADDR_FAMILY, Family.INET6,
    )  # fmt: skip


def _dest_key_attributes(address: IPAddress, port: int) -> bytes:
    """Address, port and family: without the family the kernel assumes the service's, and a
    real server of the other family (a tunnel backend) could not be deleted."""
    return (
        attribute(DEST_ADDR, _address16(address))
        + attribute(DEST_PORT, BE16.pack(port))
        + attribute(DEST_ADDR_FAMILY, U16.pack(Family.of(address)))
    )


class Encoder:
    """Turns operations into generic-netlink request bodies (genl header + attributes).

    Real-server operations come in runs for one service, so the encoded identity of the last
    service seen is kept and reused while the next key is the same object or an equal one
    (checking identity first: hashing a key with its address costs more than encoding it).
    """

    def __init__(self) -> None:
        self._last_key: ServiceKey | None = None
        self._last_id = b""

    def service_id(self, key: ServiceKey) -> bytes:
        """The nested SERVICE attribute holding only what identifies `key`."""
        last = self._last_key
        if key is not last:
            if last is None or key != last:
                self._last_id = nested(ATTR_SERVICE, _service_key_attributes(key))
            self._last_key = key
        return self._last_id

    def encode(self, op: Operation) -> bytes:
        kind = type(op)
        if kind is AddRealServer:
            assert isinstance(op, AddRealServer)
            return _GENL_NEW_DEST + self.service_id(op.service) + _dest_nest(op.server)
        if kind is UpdateRealServer:
            assert isinstance(op, UpdateRealServer)
            return _GENL_SET_DEST + self.service_id(op.service) + _dest_nest(op.server)
        if isinstance(op, DeleteRealServer):
            return (
                _GENL[CMD_DEL_DEST]
                + self.service_id(op.service)
                + nested(ATTR_DEST, _dest_key_attributes(op.address, op.port))
            )
        if isinstance(op, AddService):
            return _GENL[CMD_NEW_SERVICE] + nested(ATTR_SERVICE, _service_attributes(op.server))
        if isinstance(op, UpdateService):
            return _GENL[CMD_SET_SERVICE] + nested(ATTR_SERVICE, _service_attributes(op.server))
        if isinstance(op, DeleteService):
            return _GENL[CMD_DEL_SERVICE] + self.service_id(op.key)
        raise TypeError(f"not an IPVS operation: {op!r}")


def encode_get_service(key: ServiceKey) -> bytes:
    return _GENL[CMD_GET_SERVICE] + nested(ATTR_SERVICE, _service_key_attributes(key))


def encode_dump_services() -> bytes:
    return _GENL[CMD_GET_SERVICE]


def encode_dump_dests(key: ServiceKey) -> bytes:
    return _GENL[CMD_GET_DEST] + nested(ATTR_SERVICE, _service_key_attributes(key))


def encode_get_config() -> bytes:
    return _GENL[CMD_GET_CONFIG]


def encode_flush() -> bytes:
    """FLUSH deletes every virtual server of the namespace: for tests only (ipvsd never owns
    the whole table)."""
    return _GENL[CMD_FLUSH]


def encode_get_info() -> bytes:
    return _GENL[CMD_GET_INFO]


def encode_set_config(timeouts: Timeouts) -> bytes:
    """SET_CONFIG with every timeout; the kernel treats 0 as "leave unchanged"."""
    return (
        _GENL[CMD_SET_CONFIG]
        + attribute(ATTR_TIMEOUT_TCP, U32.pack(timeouts.tcp))
        + attribute(ATTR_TIMEOUT_TCP_FIN, U32.pack(timeouts.tcp_fin))
        + attribute(ATTR_TIMEOUT_UDP, U32.pack(timeouts.udp))
    )


# --- decoding ---------------------------------------------------------------------------------


def _u16(value: memoryview) -> int:
    result: int = U16.unpack_from(value)[0]
    return result


def _u32(value: memoryview) -> int:
    result: int = U32.unpack_from(value)[0]
    return result


def _address(family: int, raw: memoryview) -> IPAddress:
    if family == Family.INET:
        return IPv4Address(bytes(raw[:4]))
    return IPv6Address(bytes(raw[:16]))


def _string(raw: memoryview) -> str:
    return bytes(raw).split(b"\0", 1)[0].decode()


def decode_stats(attrs: dict[int, memoryview]) -> Stats:
    """Prefer the 64-bit statistics; fall back to the legacy ones (32-bit packet counters)."""
    raw = attrs.get(SVC_STATS64)  # same attribute number for services and destinations
    wide = raw is not None
    if raw is None:
        raw = attrs.get(SVC_STATS)
    if raw is None:
        return Stats()
    fields = parse_attributes(raw)
    values = []
    for kind in STATS_FIELDS:
        value = fields.get(kind)
        if value is None:
            values.append(0)
        elif wide or len(value) == 8:
            values.append(U64.unpack_from(value)[0])
        else:
            values.append(_u32(value))
    return Stats(*values)


def _decode_netmask(family: int, raw: memoryview) -> int:
    if family == Family.INET:
        return bin(int.from_bytes(bytes(raw[:4]), "big")).count("1")
    return _u32(raw)


def decode_service(payload: memoryview) -> tuple[VirtualServer, Stats]:
    """A GET_SERVICE reply (after the genl header) as a virtual server and its statistics."""
    top = parse_attributes(payload, GENL_HEADER.size)
    attrs = parse_attributes(top[ATTR_SERVICE])
    family = _u16(attrs[SVC_AF])
    if SVC_FWMARK in attrs:
        key = ServiceKey.for_fwmark(_u32(attrs[SVC_FWMARK]), Family(family))
    else:
        key = ServiceKey(
            Family(family),
            _u16(attrs[SVC_PROTOCOL]),
            _address(family, attrs[SVC_ADDR]),
            BE16.unpack_from(attrs[SVC_PORT])[0],
        )
    flags = struct.unpack_from("=I", attrs[SVC_FLAGS])[0]
    engine = attrs.get(SVC_PE_NAME)
    server = VirtualServer(
        key=key,
        scheduler=_string(attrs[SVC_SCHED_NAME]),
        flags=ServiceFlag(flags),
        timeout=_u32(attrs[SVC_TIMEOUT]),
        netmask=_decode_netmask(family, attrs[SVC_NETMASK]),
        persistence_engine=_string(engine) if engine is not None else "",
    )
    return server, decode_stats(attrs)


def decode_dest(payload: memoryview, service_family: int) -> ObservedRealServer:
    """A GET_DEST dump message (after the genl header) as an observed real server."""
    top = parse_attributes(payload, GENL_HEADER.size)
    attrs = parse_attributes(top[ATTR_DEST])
    family_raw = attrs.get(DEST_ADDR_FAMILY)
    family = _u16(family_raw) if family_raw is not None else service_family
    server = RealServer(
        address=_address(family, attrs[DEST_ADDR]),
        port=BE16.unpack_from(attrs[DEST_PORT])[0],
        weight=_u32(attrs[DEST_WEIGHT]),
        forward=Forward(_u32(attrs[DEST_FWD_METHOD]) & FORWARD_MASK),
        upper_threshold=_u32(attrs[DEST_U_THRESH]),
        lower_threshold=_u32(attrs[DEST_L_THRESH]),
    )
    return ObservedRealServer(
        server=server,
        active_connections=_u32(attrs[DEST_ACTIVE]),
        inactive_connections=_u32(attrs[DEST_INACTIVE]),
        persistent_connections=_u32(attrs[DEST_PERSIST]),
        stats=decode_stats(attrs),
    )


def decode_timeouts(payload: memoryview) -> Timeouts:
    attrs = parse_attributes(payload, GENL_HEADER.size)
    return Timeouts(
        tcp=_u32(attrs[ATTR_TIMEOUT_TCP]),
        tcp_fin=_u32(attrs[ATTR_TIMEOUT_TCP_FIN]),
        udp=_u32(attrs[ATTR_TIMEOUT_UDP]),
    )


def observed(
    server: VirtualServer, stats: Stats, dests: list[ObservedRealServer]
) -> ObservedVirtualServer:
    """Assemble a dumped service with its destinations in the contract's sorted order."""
    dests.sort(key=lambda d: d.server.sort_key())
    return ObservedVirtualServer(server=server, real_servers=tuple(dests), stats=stats)
