"""Inside the VM: program one table three ways and compare (run by hack/bench-netlink.sh).

Methods, alternated and each run after the same clearing (`ipvsadm -C`, then a pause so the
kernel has finished freeing the previous table), best of N each:
  adapter  - ipvsd's NetlinkIpvs batch path (`python -m ipvsd.dataplane.bench`'s core)
  ipvsadm  - `ipvsadm -R` of the same rules (one request and ACK per object, in C)
  floor    - hack/netlink_floor.py, a minimal hand-packed batched sender
Then the full-table dump: the adapter's `dump_sync()` against `ipvsadm -Sn`.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from ipvsd.dataplane.bench import table_operations
from ipvsd.dataplane.ipvs_netlink import NetlinkIpvs

HERE = Path(__file__).resolve().parent


def clear() -> None:
    subprocess.run(["ipvsadm", "-C"], check=True)
    time.sleep(1.0)


def count_objects() -> int:
    out = subprocess.run(["ipvsadm", "-Sn"], check=True, capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if line.startswith(("-A", "-a")))


def time_adapter(services: int, dests: int) -> float:
    ipvs = NetlinkIpvs.open_sync()
    ops = table_operations(services, dests)
    started = time.perf_counter()
    ipvs.apply_sync(ops).raise_first()
    elapsed = time.perf_counter() - started
    ipvs.close_sync()
    return elapsed


def time_ipvsadm(rules: str) -> float:
    started = time.perf_counter()
    subprocess.run(["ipvsadm", "-R"], input=rules, text=True, check=True)
    return time.perf_counter() - started


def time_floor(services: int, dests: int) -> float:
    out = subprocess.run(
        [
            sys.executable,
            str(HERE / "netlink_floor.py"),
            "--services",
            str(services),
            "--dests",
            str(dests),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if result["errors"]:
        raise SystemExit(f"floor sender had {result['errors']} errors")
    return float(result["apply_s"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--dests", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    subprocess.run(["modprobe", "ip_vs"], check=True)
    subprocess.run(["modprobe", "ip_vs_rr"], check=True)
    expected = args.services * (args.dests + 1)
    # ipvsadm -R reads the very rules the adapter programs, rendered by ipvsd's formatter.
    ipvs = NetlinkIpvs.open_sync()
    clear()
    ipvs.apply_sync(table_operations(args.services, args.dests)).raise_first()
    rules = subprocess.run(["ipvsadm", "-Sn"], check=True, capture_output=True, text=True).stdout
    methods = {
        "adapter": lambda: time_adapter(args.services, args.dests),
        "ipvsadm": lambda: time_ipvsadm(rules),
        "floor": lambda: time_floor(args.services, args.dests),
    }
    times: dict[str, list[float]] = {name: [] for name in methods}
    for round_no in range(args.rounds):
        order = list(methods) if round_no % 2 == 0 else list(reversed(methods))
        for name in order:
            clear()
            times[name].append(methods[name]())
            got = count_objects()
            if got != expected:
                raise SystemExit(f"{name}: table has {got} objects, expected {expected}")
            print(f"round {round_no + 1} {name}: {times[name][-1]:.3f} s", flush=True)
    dump_adapter, dump_ipvsadm = [], []
    for _ in range(args.rounds):
        started = time.perf_counter()
        table = ipvs.dump_sync()
        dump_adapter.append(time.perf_counter() - started)
        assert sum(1 + len(s.real_servers) for s in table) == expected
        started = time.perf_counter()
        subprocess.run(["ipvsadm", "-Sn"], check=True, capture_output=True)
        dump_ipvsadm.append(time.perf_counter() - started)
    ipvs.close_sync()
    clear()
    best = {name: min(values) for name, values in times.items()}
    summary = {
        "objects": expected,
        "adapter_s": round(best["adapter"], 3),
        "ipvsadm_restore_s": round(best["ipvsadm"], 3),
        "floor_s": round(best["floor"], 3),
        "adapter_vs_floor": round(best["adapter"] / best["floor"], 2),
        "ipvsadm_vs_adapter": round(best["ipvsadm"] / best["adapter"], 2),
        "dump_adapter_s": round(min(dump_adapter), 3),
        "dump_ipvsadm_s": round(min(dump_ipvsadm), 3),
        "dump_ipvsadm_vs_adapter": round(min(dump_ipvsadm) / min(dump_adapter), 2),
    }
    print(
        f"adapter {summary['adapter_s']} s | ipvsadm -R {summary['ipvsadm_restore_s']} s | "
        f"floor {summary['floor_s']} s"
    )
    print(
        f"adapter = {summary['adapter_vs_floor']} x floor (target <= 1.5); "
        f"ipvsadm -R = {summary['ipvsadm_vs_adapter']} x adapter (target >= 4)"
    )
    print(f"dump: adapter {summary['dump_adapter_s']} s, ipvsadm -Sn {summary['dump_ipvsadm_s']} s")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
