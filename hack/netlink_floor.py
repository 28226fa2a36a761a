"""The floor for IPVS programming speed: the least work that can put a table into the kernel.

Hand-packs NEW_SERVICE / NEW_DEST messages with `struct`, concatenates them into ~60 KB
`sendmsg` batches without per-message acknowledgements, and waits once for a final ACK. It
shares no code with ipvsd on purpose: it is the yardstick the adapter is measured against.

    python hack/netlink_floor.py --services 100 --dests 100   (root, IPVS kernel)

Prints `{"objects": N, "apply_s": T, "errors": E}`.
"""

import argparse
import json
import socket
import struct
import time

NLM_F_REQUEST, NLM_F_ACK = 1, 4
BATCH = 60 * 1024


def attr(kind: int, data: bytes) -> bytes:
    n = 4 + len(data)
    return struct.pack("=HH", n, kind) + data + b"\0" * ((4 - n % 4) % 4)


def family_id(sock: socket.socket) -> int:
    body = struct.pack("=BBH", 3, 1, 0) + attr(2, b"IPVS\0")
    sock.send(struct.pack("=IHHII", 16 + len(body), 0x10, NLM_F_REQUEST, 1, 0) + body)
    data = sock.recv(65536)
    off = 20
    while off < len(data):
        n, kind = struct.unpack_from("=HH", data, off)
        if kind == 1:
            return int(struct.unpack_from("=H", data, off + 4)[0])
        off += (n + 3) & ~3
    raise SystemExit("no IPVS family (modprobe ip_vs)")


def messages(services: int, dests: int) -> list[bytes]:
    out = []
    for s in range(services):
        vip = socket.inet_aton("198.18.0.1")
        vip = (int.from_bytes(vip, "big") + s).to_bytes(4, "big") + b"\0" * 12
        ident = attr(1, struct.pack("=H", 2)) + attr(2, struct.pack("=H", 6))
        ident += attr(3, vip) + attr(4, struct.pack("!H", 80))
        full = ident + attr(6, b"rr\0") + attr(7, struct.pack("=II", 0, 0xFFFFFFFF))
        full += attr(8, struct.pack("=I", 0)) + attr(9, b"\xff\xff\xff\xff")
        out.append(struct.pack("=BBH", 1, 1, 0) + attr(1, full))
        svc = attr(1, ident)
        for d in range(dests):
            rip = (int.from_bytes(socket.inet_aton("198.19.0.1"), "big") + d).to_bytes(4, "big")
            dest = attr(1, rip + b"\0" * 12) + attr(2, struct.pack("!H", 8080))
            dest += attr(3, struct.pack("=I", 0)) + attr(4, struct.pack("=I", 1))
            dest += attr(5, struct.pack("=I", 0)) + attr(6, struct.pack("=I", 0))
            out.append(struct.pack("=BBH", 5, 1, 0) + svc + attr(2, dest))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--dests", type=int, default=100)
    args = parser.parse_args()
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 16)
    sock.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)  # SO_RCVBUFFORCE: room for every error
    sock.setsockopt(270, 10, 1)  # NETLINK_CAP_ACK: short error replies
    sock.bind((0, 0))
    fam = family_id(sock)
    started = time.perf_counter()
    bodies = messages(args.services, args.dests)
    batch, seq = bytearray(), 100
    for body in bodies:
        if len(batch) + 16 + len(body) > BATCH:
            sock.send(batch)
            batch = bytearray()
        seq += 1
        batch += struct.pack("=IHHII", 16 + len(body), fam, NLM_F_REQUEST, seq, 0) + body
    seq += 1
    info = struct.pack("=BBH", 15, 1, 0)  # GET_INFO with ACK: everything before it is done
    batch += struct.pack("=IHHII", 16 + len(info), fam, NLM_F_REQUEST | NLM_F_ACK, seq, 0) + info
    sock.send(batch)
    errors = 0
    while True:
        data = sock.recv(65536)
        _n, kind, _f, got, _p = struct.unpack_from("=IHHII", data)
        if kind == 2 and got != seq and struct.unpack_from("=i", data, 16)[0] != 0:
            errors += 1
        if got == seq and kind == 2:
            break
    elapsed = time.perf_counter() - started
    print(json.dumps({"objects": len(bodies), "apply_s": round(elapsed, 4), "errors": errors}))


if __name__ == "__main__":
    main()
