"""Inside the VM: the floor against the Python work no cold start can skip (hack/bench-bound.sh).

The cold-start target compares ipvsd with hack/netlink_floor.py. Whatever the daemon's order
of work, one core has to parse the two lists, convert 10,000 Services and 10,000 EndpointSlices
into model values and plan every Service before the last virtual server can be sent. This
times those three steps alone, as plain loops over `bench_proxy.cluster()` (no informers, no
firewall, no netlink, best of two each), next to the floor in a fresh namespace of the same
boot. Their sum over the floor is a lower bound on the cold-start ratio of today's converter
and planner.

It also times unpickling the converted slices: what a second process that converted them
would cost this one to take them back (Python 3.11 runs one interpreter per process).

The last line printed is one JSON object.
"""

import argparse
import json
import pickle
import subprocess
import time
from collections.abc import Callable
from ipaddress import ip_address
from typing import Any

import orjson
from bench_vm import floor

from ipvsd.app import tune_collector
from ipvsd.kube.convert import endpoint_slice_from_dict, node_from_dict, service_from_dict
from ipvsd.plan.desired import desired_service
from ipvsd.reconcile.syncer import SyncSettings, node_context
from ipvsd.testing.bench.daemon import NODE_NAME
from ipvsd.testing.bench.proxy import cluster


def best_of_two(step: Callable[[], Any]) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(2):
        started = time.perf_counter()
        result = step()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--endpoints", type=int, default=10)
    args = parser.parse_args()
    for module in ("ip_vs", "ip_vs_rr"):
        subprocess.run(["modprobe", module], check=True)
    tune_collector()  # as the daemon does
    floor_s = floor(args.services, args.endpoints)
    documents = cluster(args.services, args.endpoints)
    services = [d for d in documents if d["kind"] == "Service"]
    for index, service in enumerate(services):  # the emulator would allocate these
        service["spec"]["clusterIP"] = f"10.96.{index // 250}.{index % 250 + 1}"
    node = node_from_dict(next(d for d in documents if d["kind"] == "Node"))
    assert node is not None
    lists = (
        orjson.dumps(services),
        orjson.dumps([d for d in documents if d["kind"] == "EndpointSlice"]),
    )
    times: dict[str, float] = {}
    times["parse"], (raw_services, raw_slices) = best_of_two(
        lambda: [orjson.loads(text) for text in lists]
    )
    times["convert_services"], converted = best_of_two(
        lambda: [service_from_dict(raw) for raw in raw_services]
    )
    times["convert_slices"], slices = best_of_two(
        lambda: [endpoint_slice_from_dict(raw) for raw in raw_slices]
    )
    pickled = pickle.dumps(slices, protocol=pickle.HIGHEST_PROTOCOL)
    unpickle_s, _ = best_of_two(lambda: pickle.loads(pickled))
    by_service = {s.service: [s] for s in slices}
    context = node_context(
        [(ip_address("192.168.0.10"), "eth0")],
        SyncSettings(node_name=NODE_NAME),
        node,
        {node.name: node},
    )
    times["plan"], _ = best_of_two(
        lambda: {s.ref: desired_service(s, by_service.get(s.ref, ()), context) for s in converted}
    )
    bound = sum(times.values())
    for step, seconds in times.items():
        print(f"{step:17s} {seconds:7.3f} s = {seconds / floor_s:.2f} x the floor")
    print(
        f"floor {floor_s:.3f} s; parse + convert + plan {bound:.3f} s = "
        f"{bound / floor_s:.2f} x the floor (a lower bound on the cold-start ratio); "
        f"unpickling the converted slices {unpickle_s:.3f} s = {unpickle_s / floor_s:.2f} x"
    )
    summary = {
        "floor_s": floor_s,
        **{f"{step}_s": round(seconds, 3) for step, seconds in times.items()},
        "unpickle_slices_s": round(unpickle_s, 3),
        "bound_vs_floor": round(bound / floor_s, 2),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
