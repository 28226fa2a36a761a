"""What the fake IPVS adds to the host benchmark's RSS (`python -m
ipvsd.testing.bench.fake_footprint --services N`).

The host has no IPVS, so `hack/bench.sh`'s host part runs the daemon against `FakeIpvs`, whose
table lives in the daemon's own process: its peak RSS is the daemon's plus the fake's. This
builds the benchmark's shape (N virtual servers of 10 real servers each), lets the caller hold
the objects first (the syncer's plan holds the same ones in the daemon), and measures the RSS
the fake's table adds on top, so that the daemon's own figure can be stated.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
from ipaddress import IPv4Address

from ipvsd.dataplane.ipvs_fake import FakeIpvs
from ipvsd.model.ipvs import RealServer, ServiceKey, VirtualServer
from ipvsd.plan.diff import creation
from ipvsd.testing.bench.daemon import status_mb

SERVICE_NETWORK = int(IPv4Address("10.96.0.0"))
POD_NETWORK = int(IPv4Address("10.128.0.0"))


async def footprint(services: int, endpoints: int) -> dict[str, float]:
    plan = [
        (
            VirtualServer(ServiceKey.tcp(str(IPv4Address(SERVICE_NETWORK + i)), 80), "rr"),
            [
                RealServer(IPv4Address(POD_NETWORK + endpoints * i + j), 8080)
                for j in range(endpoints)
            ],
        )
        for i in range(services)
    ]
    gc.collect()
    before = status_mb("VmRSS")
    fake = FakeIpvs()
    for start in range(0, services, 1000):
        await fake.apply(
            [op for vs, reals in plan[start : start + 1000] for op in creation(vs, reals)]
        )
    gc.collect()
    after = status_mb("VmRSS")
    return {"services": services, "endpoints": endpoints, "fake_ipvs_mb": round(after - before, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--endpoints", type=int, default=10, help="real servers per service")
    arguments = parser.parse_args()
    print(json.dumps(asyncio.run(footprint(arguments.services, arguments.endpoints))))


if __name__ == "__main__":
    main()
