"""Issue 19's table and JSON line from the parts of `hack/bench.sh --services N`.

`python -m ipvsd.testing.bench.report --services N [--host FILE] [--informer FILE] [--vm FILE]`
reads the last JSON line of each part that ran (the host proxy bench, the informer bench, the
VM bench) and prints the figures beside their targets, then, last, one JSON line with every key
the issue names. A figure that no part measured is null, never estimated.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ipvsd.testing.bench.proxy import drift_periods

KEYS = (
    "services",
    "floor_s",
    "cold_start_s",
    "cold_ratio",
    "critical_s",
    "critical_ratio",
    "vm_change_p99_ratio",
    "change_p50_ms",
    "change_p99_ms",
    "idle_cpu_pct",
    "rss_mb",
    "informer_sync_s",
    "drift_bound_s",
)


def targets(services: int) -> dict[str, tuple[float, str]]:
    """Issue 19's targets (value, what it bounds); the host change targets are for 50,000."""
    return {
        "cold_ratio": (2.5, "VM cold start / floor"),
        "critical_ratio": (0.02, "VM critical Services reachable / cold start"),
        "vm_change_p99_ratio": (0.01, "VM slice change p99 / floor"),
        "change_p50_ms": (10.0, "host slice change p50, ms (target at 50,000)"),
        "change_p99_ms": (50.0, "host slice change p99, ms (target at 50,000)"),
        "idle_cpu_pct": (10.0, "VM idle daemon CPU, % of a vCPU (target at 50,000)"),
        "rss_mb": (250.0 if services <= 10_000 else 600.0, "host peak RSS, MB"),
        "informer_sync_s": (5.0, "informer initial sync, s (target at 50,000)"),
    }


def last_json(path: str | None) -> dict[str, Any] | None:
    if not path or not Path(path).exists():
        return None
    lines = [line for line in Path(path).read_text().splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def combine(
    services: int,
    host: dict[str, Any] | None,
    informer: dict[str, Any] | None,
    vm: dict[str, Any] | None,
) -> dict[str, Any]:
    line: dict[str, Any] = dict.fromkeys(KEYS)
    line["services"] = services
    if host is not None:
        line["change_p50_ms"] = host["change_p50_ms"]
        line["change_p99_ms"] = host["change_p99_ms"]
        line["rss_mb"] = host["peak_rss_mb"]
    if informer is not None:
        line["informer_sync_s"] = informer["sync_s"]
    if vm is not None:
        daemon = vm["ipvsd"]
        floor = vm["floor_s"]
        line["floor_s"] = floor
        line["cold_start_s"] = daemon["cold_start_s"]
        line["cold_ratio"] = vm["cold_start_vs_floor"]
        critical = daemon.get("critical_s")
        line["critical_s"] = critical
        if critical is not None:
            line["critical_ratio"] = round(critical / daemon["cold_start_s"], 4)
        line["vm_change_p99_ratio"] = vm["change_p99_vs_floor"]
        line["idle_cpu_pct"] = daemon.get("idle_cpu_pct")
    # The drift bound is the design's promise for a programmed Service's kernel objects
    # (`drift_periods` sync periods), or the measured correction if that took longer; null
    # where no hand-made change was measured. The VM's (the default sync period) comes first.
    measured = [part for part in (vm["ipvsd"] if vm else None, host) if part is not None]
    drifts = [part for part in measured if part.get("drift_s") is not None]
    if drifts:
        part = drifts[0]
        stated = part["sync_period_s"] * drift_periods(part["services"])
        line["drift_bound_s"] = round(max(stated, part["drift_s"]), 3)
    return line


def table(line: dict[str, Any], parts: dict[str, dict[str, Any] | None]) -> str:
    rows = [f"{'figure':<22} {'value':>10}  target"]
    for key, (target, what) in targets(line["services"]).items():
        value = line[key]
        verdict = "-" if value is None else ("PASS" if value <= target else "MISS")
        rows.append(f"{key:<22} {_show(value):>10}  <= {target:g} {verdict}  ({what})")
    for key in ("floor_s", "cold_start_s", "critical_s", "drift_bound_s"):
        rows.append(f"{key:<22} {_show(line[key]):>10}")
    vm, host = parts.get("vm"), parts.get("host")
    if vm is not None:
        daemon = vm["ipvsd"]
        rows.append(
            f"VM: critical Services programmed {daemon.get('critical_programmed_s')} s after the "
            f"start; informer sync {daemon['informer_sync_s']} s; the VM's whole CPU while idle "
            f"{daemon.get('machine_cpu_pct')} % of one (kernel {vm.get('kernel_release')}, "
            f"IPVS run_estimation={vm.get('run_estimation')}); idle periodic checks "
            f"{daemon.get('idle_periodic_checks')} taking {daemon.get('periodic_check_s')} s; "
            f"drift corrected after {daemon.get('drift_s')} s; periodic checks during the "
            f"changes {daemon.get('periodic_checks_during_changes')}"
        )
    if host is not None:
        rows.append(
            f"host: {host['changes']} changes at {host.get('change_rate')}/s; periodic checks "
            f"before the last change {host.get('periodic_checks_during_changes')}; idle CPU "
            f"{host.get('idle_cpu_pct')} % (fake IPVS); drift corrected after "
            f"{host.get('drift_s')} s at a {host.get('sync_period_s')} s sync period"
        )
    return "\n".join(rows)


def _show(value: object) -> str:
    return "null" if value is None else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ipvsd.testing.bench.report")
    parser.add_argument("--services", type=int, required=True)
    for part in ("host", "informer", "vm"):
        parser.add_argument(f"--{part}", help=f"the {part} part's output")
    arguments = parser.parse_args(argv)
    parts = {part: last_json(getattr(arguments, part)) for part in ("host", "informer", "vm")}
    line = combine(arguments.services, parts["host"], parts["informer"], parts["vm"])
    print(table(line, parts))
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
