"""Blocking netlink sockets: requests, dumps, batched sends, and generic-netlink family lookup.

This module knows netlink framing and nothing about IPVS or addresses; the IPVS adapter speaks
generic netlink through it and the address adapter rtnetlink. Its one trick is `send_batch`:
many requests are concatenated into a few large `sendmsg` calls and only the last message of
each chunk asks for an acknowledgement. The kernel processes every message of a chunk in order,
answers each failure with an error carrying the failed message's sequence number, and keeps
going; so one chunk costs one system call plus one reply, whatever its size. The kernel does the
work synchronously inside `sendmsg`, which is why all replies for a chunk are queued by the time
the acknowledgement arrives.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

NETLINK_ROUTE = 0
NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33

NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400

NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3

GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
CTRL_ATTR_VERSION = 3

NLA_TYPE_MASK = 0x3FFF
NLA_F_NESTED = 0x8000

NLMSG_HEADER = struct.Struct("=IHHII")
GENL_HEADER = struct.Struct("=BBH")
NLA_HEADER = struct.Struct("=HH")
ERROR_CODE = struct.Struct("=i")

# One chunk must fit the socket's send buffer; 256 KiB keeps a 10k-object table to a handful
# of system calls while the worst case of queued error replies (one per message) still fits
# the receive buffer requested below.
CHUNK_BYTES = 256 * 1024
SEND_BUFFER = 1024 * 1024
RECEIVE_BUFFER = 32 * 1024 * 1024
RECEIVE_SIZE = 1024 * 1024
TIMEOUT_S = 30.0


class NetlinkError(OSError):
    """A netlink request failed as a whole (not a per-message failure inside a batch)."""


def align(length: int) -> int:
    return (length + 3) & ~3


def attribute(kind: int, payload: bytes) -> bytes:
    """One netlink attribute with its padding."""
    length = NLA_HEADER.size + len(payload)
    return NLA_HEADER.pack(length, kind) + payload + b"\0" * (align(length) - length)


def nested(kind: int, *children: bytes) -> bytes:
    body = b"".join(children)
    return NLA_HEADER.pack(NLA_HEADER.size + len(body), kind | NLA_F_NESTED) + body


def parse_attributes(data: bytes | memoryview, offset: int = 0) -> dict[int, memoryview]:
    """Attributes from `offset` to the end of `data`, by type (the last of a repeated type wins)."""
    view = data if isinstance(data, memoryview) else memoryview(data)
    result: dict[int, memoryview] = {}
    end = len(view)
    unpack = NLA_HEADER.unpack_from
    while offset + 4 <= end:
        length, kind = unpack(view, offset)
        if length < 4:
            break
        result[kind & NLA_TYPE_MASK] = view[offset + 4 : offset + length]
        offset += align(length)
    return result


def split_messages(data: memoryview) -> Iterator[tuple[int, int, int, memoryview]]:
    """(type, flags, seq, payload) of every netlink message in one received datagram."""
    offset = 0
    end = len(data)
    while offset + NLMSG_HEADER.size <= end:
        length, kind, flags, seq, _pid = NLMSG_HEADER.unpack_from(data, offset)
        if length < NLMSG_HEADER.size:
            break
        yield kind, flags, seq, data[offset + NLMSG_HEADER.size : offset + length]
        offset += align(length)


@dataclass(frozen=True, slots=True)
class Chunk:
    """Requests packed for one `sendmsg`; only the last one asks for an acknowledgement."""

    data: bytes
    last_seq: int


def pack_chunks(kind: int, bodies: Iterable[bytes], first_seq: int, flags: int = 0) -> list[Chunk]:
    """Frame request bodies of message type `kind` (the family id, for generic netlink) with
    consecutive sequence numbers into chunks of <= CHUNK_BYTES; `flags` go on every request.

    Bodies are 4-byte aligned by construction (attributes are padded), so messages follow each
    other without gaps. Pure (no I/O), so it can run on another thread while the kernel works.
    """
    chunks: list[Chunk] = []
    chunk = bytearray()
    last_offset = 0
    seq = first_seq
    pack_header = NLMSG_HEADER.pack
    flags |= NLM_F_REQUEST
    for body in bodies:
        length = NLMSG_HEADER.size + len(body)
        if chunk and len(chunk) + length > CHUNK_BYTES:
            chunks.append(_close_chunk(chunk, last_offset, seq - 1, flags))
            chunk = bytearray()
        last_offset = len(chunk)
        chunk += pack_header(length, kind, flags, seq, 0)
        chunk += body
        seq += 1
    if chunk:
        chunks.append(_close_chunk(chunk, last_offset, seq - 1, flags))
    return chunks


def _close_chunk(chunk: bytearray, last_offset: int, last_seq: int, flags: int) -> Chunk:
    struct.pack_into("=H", chunk, last_offset + 6, flags | NLM_F_ACK)
    return Chunk(bytes(chunk), last_seq)


class NetlinkSocket:
    """A netlink socket of one protocol, owned by one thread at a time (callers serialise
    access)."""

    def __init__(self, protocol: int) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol)
        self._sock.settimeout(TIMEOUT_S)
        for option in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
            # Older kernels lack these: errors then carry full message copies; still correct.
            with contextlib.suppress(OSError):
                self._sock.setsockopt(SOL_NETLINK, option, 1)
        self._set_buffer(SO_SNDBUFFORCE, socket.SO_SNDBUF, SEND_BUFFER)
        self._set_buffer(SO_RCVBUFFORCE, socket.SO_RCVBUF, RECEIVE_BUFFER)
        self._sock.bind((0, 0))
        self._seq = int.from_bytes(os.urandom(2), "little") << 8
        self._buffer = bytearray(RECEIVE_SIZE)

    def _set_buffer(self, forced: int, plain: int, size: int) -> None:
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, forced, size)
        except PermissionError:  # without CAP_NET_ADMIN the sysctl limit applies
            self._sock.setsockopt(socket.SOL_SOCKET, plain, size)

    def close(self) -> None:
        self._sock.close()

    def next_seq(self, count: int = 1) -> int:
        """Reserve `count` consecutive sequence numbers and return the first."""
        first = self._seq
        self._seq = (self._seq + count) & 0xFFFFFFFF
        if self._seq < first:  # wrapped: restart so a batch never straddles the wrap
            first, self._seq = 1, 1 + count
        return first

    def request(
        self, family: int, body: bytes, *, dump: bool = False, reply: int | None = None
    ) -> list[memoryview]:
        """Send one request and return the payloads of its replies (all parts of a dump).
        `reply` is the replies' message type where it differs from the request's (rtnetlink
        answers RTM_GETADDR with RTM_NEWADDR messages)."""
        wanted = family if reply is None else reply
        seq = self.next_seq()
        flags = NLM_F_REQUEST | NLM_F_ACK | (NLM_F_DUMP if dump else 0)
        self._sock.send(
            NLMSG_HEADER.pack(NLMSG_HEADER.size + len(body), family, flags, seq, 0) + body
        )
        replies: list[memoryview] = []
        while True:
            for kind, msg_flags, msg_seq, payload in self._receive():
                if msg_seq != seq:
                    continue  # a late reply to an earlier, abandoned request
                if kind == NLMSG_ERROR:
                    code = -ERROR_CODE.unpack_from(payload)[0]
                    if code:
                        raise NetlinkError(code, os.strerror(code))
                    return replies
                if kind == NLMSG_DONE:
                    code = -ERROR_CODE.unpack_from(payload)[0] if len(payload) >= 4 else 0
                    if code:  # the dump itself failed part-way
                        raise NetlinkError(code, os.strerror(code))
                    return replies
                if kind == wanted:
                    replies.append(payload)
                    if not dump and not msg_flags & NLM_F_MULTI:
                        # A plain request answered with data still gets the ACK; keep reading.
                        continue

    def send_batch(self, kind: int, bodies: Sequence[bytes], flags: int = 0) -> list[int]:
        """Send every request body (message type `kind`, extra `flags`) and return each one's
        errno (0 = success), in order."""
        results = [0] * len(bodies)
        base_seq = self.next_seq(len(bodies))
        for chunk in pack_chunks(kind, bodies, base_seq, flags):
            self.send_chunk(chunk, base_seq, results)
        return results

    def send_chunk(self, chunk: Chunk, base_seq: int, results: list[int]) -> None:
        """Send one packed chunk; store each failure's errno at `results[seq - base_seq]`."""
        self._sock.send(chunk.data)
        while True:
            for kind, _flags, seq, payload in self._receive():
                if kind != NLMSG_ERROR:
                    continue
                index = seq - base_seq
                if 0 <= index < len(results):
                    results[index] = -ERROR_CODE.unpack_from(payload)[0]
                if seq == chunk.last_seq:
                    return

    def _receive(self) -> Iterator[tuple[int, int, int, memoryview]]:
        try:
            size = self._sock.recv_into(self._buffer)
        except TimeoutError as exc:
            raise NetlinkError(errno.ETIMEDOUT, "no netlink reply within timeout") from exc
        # Copy: the buffer is reused by the next receive while callers may keep payloads.
        yield from split_messages(memoryview(bytes(self._buffer[:size])))


class GenlSocket(NetlinkSocket):
    """A generic-netlink socket, which can also look families up by name."""

    def __init__(self) -> None:
        super().__init__(NETLINK_GENERIC)

    def resolve_family(self, name: str) -> int:
        """The numeric id of generic-netlink family `name`; ENOENT when it is not registered."""
        body = GENL_HEADER.pack(CTRL_CMD_GETFAMILY, 1, 0) + attribute(
            CTRL_ATTR_FAMILY_NAME, name.encode() + b"\0"
        )
        (reply,) = self.request(GENL_ID_CTRL, body)
        attrs = parse_attributes(reply, GENL_HEADER.size)
        family_id: int = struct.unpack("=H", attrs[CTRL_ATTR_FAMILY_ID])[0]
        return family_id
