"""Inside the VM: program one table three ways and compare (run by hack/bench-netlink.sh).

Methods, alternated, best of N each:
  adapter  - ipvsd's NetlinkIpvs batch path (the core of `python -m ipvsd.testing.bench.netlink`)
  ipvsadm  - `ipvsadm -R` of the same rules (one request and ACK per object, in C)
  floor    - hack/netlink_floor.py, a minimal hand-packed batched sender
Then the full-table dump: the adapter's `dump_sync()` against `ipvsadm -Sn`.

"Cleared the same way" means a fresh network namespace per measurement: IPVS state is per
namespace, including the trash of deleted real servers that the kernel keeps for two minutes
and scans on every add. Clearing with `ipvsadm -C` in one namespace would make each run slower
than the last and favour whichever method happened to run first.
"""

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ipvsd.dataplane.ipvs_netlink import NetlinkIpvs
from ipvsd.testing.bench.netlink import table_operations
from ipvsd.testing.netns import entered

HERE = Path(__file__).resolve().parent
NAMESPACE = "ipvs-bench"


def in_namespace(*command: str) -> list[str]:
    return ["ip", "netns", "exec", NAMESPACE, *command]


def fresh_namespace() -> None:
    subprocess.run(["ip", "netns", "del", NAMESPACE], check=False, capture_output=True)
    time.sleep(1.0)  # let the kernel finish tearing the previous namespace down
    subprocess.run(["ip", "netns", "add", NAMESPACE], check=True)
    # The kernel accepts a real server only if the namespace's local routing table (created
    # with the first address, here loopback's) calls its address unicast.
    for command in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "link", "add", "bench0", "type", "dummy"],
        ["ip", "link", "set", "bench0", "up"],
        ["ip", "route", "add", "default", "dev", "bench0"],
    ):
        subprocess.run(in_namespace(*command), check=True)


def count_objects() -> int:
    out = subprocess.run(
        in_namespace("ipvsadm", "-Sn"), check=True, capture_output=True, text=True
    ).stdout
    return sum(1 for line in out.splitlines() if line.startswith(("-A", "-a")))


def open_adapter() -> NetlinkIpvs:
    with entered(NAMESPACE):  # the netlink socket belongs to the namespace it is made in
        return NetlinkIpvs.open_sync()


def time_adapter(services: int, dests: int) -> float:
    ipvs = open_adapter()
    ops = table_operations(services, dests)
    started = time.perf_counter()
    ipvs.apply_sync(ops).raise_first()
    elapsed = time.perf_counter() - started
    ipvs.close_sync()
    return elapsed


def time_ipvsadm(rules: str) -> float:
    started = time.perf_counter()
    subprocess.run(in_namespace("ipvsadm", "-R"), input=rules, text=True, check=True)
    return time.perf_counter() - started


def time_floor(services: int, dests: int) -> float:
    command = [sys.executable, str(HERE / "netlink_floor.py"), "--services", str(services),
               "--dests", str(dests)]  # fmt: skip
    out = subprocess.run(in_namespace(*command), check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["errors"]:
        raise SystemExit(f"floor sender had {result['errors']} errors")
    return float(result["apply_s"])


def best_of(
    rounds: int, methods: dict[str, Callable[[], float]], expected: int
) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in methods}
    for round_no in range(rounds):
        order = list(methods) if round_no % 2 == 0 else list(reversed(methods))
        for name in order:
            fresh_namespace()
            times[name].append(methods[name]())
            got = count_objects()
            if got != expected:
                raise SystemExit(f"{name}: table has {got} objects, expected {expected}")
            print(f"round {round_no + 1} {name}: {times[name][-1]:.3f} s", flush=True)
    return {name: min(values) for name, values in times.items()}


def time_dumps(rounds: int, services: int, dests: int) -> tuple[float, float]:
    fresh_namespace()
    ipvs = open_adapter()
    ipvs.apply_sync(table_operations(services, dests)).raise_first()
    adapter, ipvsadm = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        table = ipvs.dump_sync()
        adapter.append(time.perf_counter() - started)
        assert sum(1 + len(s.real_servers) for s in table) == services * (dests + 1)
        started = time.perf_counter()
        subprocess.run(in_namespace("ipvsadm", "-Sn"), check=True, capture_output=True)
        ipvsadm.append(time.perf_counter() - started)
    ipvs.close_sync()
    return min(adapter), min(ipvsadm)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--dests", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    for module in ("ip_vs", "ip_vs_rr"):
        subprocess.run(["modprobe", module], check=True)
    expected = args.services * (args.dests + 1)
    # ipvsadm -R restores exactly the table the adapter programs, as ipvsadm -Sn prints it.
    fresh_namespace()
    ipvs = open_adapter()
    ipvs.apply_sync(table_operations(args.services, args.dests)).raise_first()
    ipvs.close_sync()
    rules = subprocess.run(
        in_namespace("ipvsadm", "-Sn"), check=True, capture_output=True, text=True
    ).stdout
    best = best_of(
        args.rounds,
        {
            "adapter": lambda: time_adapter(args.services, args.dests),
            "ipvsadm": lambda: time_ipvsadm(rules),
            "floor": lambda: time_floor(args.services, args.dests),
        },
        expected,
    )
    dump_adapter, dump_ipvsadm = time_dumps(args.rounds, args.services, args.dests)
    subprocess.run(["ip", "netns", "del", NAMESPACE], check=False)
    summary = {
        "objects": expected,
        "adapter_s": round(best["adapter"], 3),
        "ipvsadm_restore_s": round(best["ipvsadm"], 3),
        "floor_s": round(best["floor"], 3),
        "adapter_vs_floor": round(best["adapter"] / best["floor"], 2),
        "ipvsadm_vs_adapter": round(best["ipvsadm"] / best["adapter"], 2),
        "dump_adapter_s": round(dump_adapter, 3),
        "dump_ipvsadm_s": round(dump_ipvsadm, 3),
        "dump_adapter_vs_ipvsadm": round(dump_adapter / dump_ipvsadm, 2),
    }
    print(
        f"apply: adapter {summary['adapter_s']} s | ipvsadm -R {summary['ipvsadm_restore_s']} s"
        f" | floor {summary['floor_s']} s"
    )
    print(
        f"adapter = {summary['adapter_vs_floor']} x floor (target <= 1.5); "
        f"ipvsadm -R = {summary['ipvsadm_vs_adapter']} x adapter (target >= 4)"
    )
    print(
        f"dump: adapter {summary['dump_adapter_s']} s, ipvsadm -Sn {summary['dump_ipvsadm_s']} s"
        f" (adapter = {summary['dump_adapter_vs_ipvsadm']} x ipvsadm -Sn)"
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
