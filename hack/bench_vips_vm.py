"""Inside the VM: VIP programming before and after routed Service CIDRs (hack/bench-vips.sh).

For each N, in the VM's root namespace, cleared between measurements (kube-ipvs0 deleted,
ipvsd's routes flushed):
  bind  - `RtnlAddresses.bind` of N ClusterIPs as /32s on kube-ipvs0: the product's batched,
          hand-packed rtnetlink path, the kernel walking the device's address list per address
  route - `RtnlServiceRoutes.add` of 10.96.0.0/12: the one local route that replaces them
Both are checked, not just timed: every bound address is on the device, and the last
ClusterIP is local through the route (`ip route get`).
"""

import argparse
import asyncio
import json
import subprocess
import time
from ipaddress import IPv4Address, ip_network

from ipvsd.dataplane.addresses import DEVICE, RtnlAddresses
from ipvsd.dataplane.service_routes import PROTOCOL, RtnlServiceRoutes

RANGE = ip_network("10.96.0.0/12")


def cluster_ips(count: int) -> list[IPv4Address]:
    first = int(RANGE.network_address) + 10
    return [IPv4Address(first + n) for n in range(count)]


def clear() -> None:
    subprocess.run(["ip", "link", "del", DEVICE], check=False, capture_output=True)
    subprocess.run(
        ["ip", "route", "flush", "table", "local", "proto", str(PROTOCOL)],
        check=False,
        capture_output=True,
    )


def assert_local(address: IPv4Address) -> None:
    shown = subprocess.run(
        ["ip", "route", "get", str(address)], capture_output=True, text=True, check=True
    ).stdout
    assert shown.startswith(f"local {address} "), shown


async def bind_time(addresses: list[IPv4Address]) -> float:
    adapter = RtnlAddresses()
    try:
        await adapter.ensure_device()
        started = time.perf_counter()
        await adapter.bind(addresses)
        took = time.perf_counter() - started
        bound = await adapter.bound()
    finally:
        await adapter.close()
    assert len(bound) == len(addresses), (len(bound), len(addresses))
    return took


async def route_time(last: IPv4Address) -> float:
    routes = RtnlServiceRoutes()
    try:
        started = time.perf_counter()
        await routes.add([RANGE])
        took = time.perf_counter() - started
    finally:
        await routes.close()
    assert_local(last)
    return took


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, action="append", default=[])
    counts = parser.parse_args().services or [10_000, 50_000]
    rows = []
    for count in counts:
        addresses = cluster_ips(count)
        clear()
        bind_s = await bind_time(addresses)
        clear()
        route_s = await route_time(addresses[-1])
        clear()
        rows.append({"vips": count, "bind_s": round(bind_s, 3), "route_s": round(route_s, 5),
                     "ratio": round(bind_s / route_s)})  # fmt: skip
    print(f"{'ClusterIPs':>10} {'bind /32s (s)':>14} {'one route (s)':>14} {'ratio':>8}")
    for row in rows:
        print(
            f"{row['vips']:>10,} {row['bind_s']:>14.3f} {row['route_s']:>14.5f} {row['ratio']:>8,}"
        )
    for row in rows:
        print(json.dumps(row))


asyncio.run(main())
