"""Benchmark of the IPVS adapter's batch path: program a table, dump it back, clean up.

    python -m ipvsd.testing.bench.netlink --services 100 --dests 100

Needs root and an IPVS kernel (run it through `hack/kernel-run.sh` on machines without one).
It owns only virtual servers inside the RFC 2544 benchmarking range 198.18.0.0/15: those are
deleted before and after the run, everything else in the table is left alone. The last line
printed is JSON: `{"objects": ..., "apply_s": ..., "dump_s": ...}`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from ipaddress import IPv4Address, IPv4Network

from ipvsd.dataplane.ipvs_netlink import NetlinkIpvs
from ipvsd.model.ipvs import (
    AddRealServer,
    AddService,
    DeleteService,
    Operation,
    RealServer,
    ServiceKey,
    VirtualServer,
)

OWNED_RANGE = IPv4Network("198.18.0.0/15")
VIP_BASE = int(IPv4Address("198.18.0.1"))
BACKEND_BASE = int(IPv4Address("198.19.0.1"))


def table_operations(services: int, dests: int, *, scheduler: str = "rr") -> list[Operation]:
    """Operations creating `services` virtual servers with `dests` real servers each."""
    ops: list[Operation] = []
    for s in range(services):
        key = ServiceKey.tcp(IPv4Address(VIP_BASE + s), 80)
        ops.append(AddService(VirtualServer(key, scheduler)))
        backends = (RealServer(IPv4Address(BACKEND_BASE + d), 8080) for d in range(dests))
        ops.extend(AddRealServer(key, backend) for backend in backends)
    return ops


def is_owned(key: ServiceKey) -> bool:
    return key.address is not None and key.address in OWNED_RANGE


def remove_owned(ipvs: NetlinkIpvs) -> int:
    """Delete the benchmark's own virtual servers (their real servers go with them)."""
    owned = [DeleteService(s.key) for s in ipvs.dump_sync() if is_owned(s.key)]
    ipvs.apply_sync(owned).raise_first()
    return len(owned)


def run(services: int, dests: int) -> dict[str, float | int]:
    ipvs = NetlinkIpvs.open_sync()
    try:
        remove_owned(ipvs)
        ops = table_operations(services, dests)
        started = time.perf_counter()
        result = ipvs.apply_sync(ops)
        apply_s = time.perf_counter() - started
        result.raise_first()
        started = time.perf_counter()
        table = ipvs.dump_sync()
        dump_s = time.perf_counter() - started
        dumped = sum(1 + len(s.real_servers) for s in table if is_owned(s.key))
        if dumped != len(ops):
            raise SystemExit(f"dump shows {dumped} objects, expected {len(ops)}")
        remove_owned(ipvs)
    finally:
        ipvs.close_sync()
    return {"objects": len(ops), "apply_s": round(apply_s, 4), "dump_s": round(dump_s, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--dests", type=int, default=100)
    args = parser.parse_args()
    subprocess.run(["modprobe", "ip_vs"], check=False, capture_output=True)
    print(json.dumps(run(args.services, args.dests)))


if __name__ == "__main__":
    main()
