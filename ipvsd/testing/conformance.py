"""Upstream's Service e2e tests, re-created for ipvsd: run them and print the table (issue 18).

    python -m ipvsd.testing.conformance [--ci] [--no-owned]   # inside the VM (hack/conformance.sh)

Runs, each in its own pytest process with `ipvsd.testing.conformance_plugin` recording the
verdicts:

- the cases of `tests/conformance/` (each marked `upstream(name, file)`), layout A's cluster
  then layout B's (with `--ci`, `CI_CASES` only: at least one case per upstream file);
- unless `--no-owned` (and never with `--ci`), the cases another issue's tests already
  re-create (`OWNED`): conntrack.go's UDP cases and the health check one, run and counted too.

Then it prints one row per case (upstream test name, upstream file, ipvsd's test, verdict),
the cases out of a proxy's scope (`OUT_OF_SCOPE`, SKIP with the reason), the duration, and
last one JSON line `{"passed": N, "failed": N, "skipped": N, "cases": {name: verdict}}`.
A strict expected failure is FAIL with its measured reason. The exit status is pytest's: 0
when every process passed (expected failures included), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ipvsd.testing.conformance_plugin import RECORD_VARIABLE

CASES = "tests/conformance"
SERVICE_GO = "test/e2e/network/service.go"
CONNTRACK_GO = "test/e2e/network/conntrack.go"

# The CI subset: every upstream file, both layouts, in about ten minutes of one VM boot.
CI_CASES = [
    f"{CASES}/test_service.py::test_switch_session_affinity_cluster_ip",
    f"{CASES}/test_service.py::test_terminating_fallback_internal_local",
    f"{CASES}/test_service.py::test_should_be_able_to_change_the_type_and_ports_of_a_tcp_service",
    f"{CASES}/test_topology_hints.py::test_should_distribute_endpoints_evenly",
    f"{CASES}/test_traffic_distribution.py::test_prefer_close_same_zone",
    f"{CASES}/test_traffic_distribution.py::test_prefer_same_node_or_same_zone",
]

# Cases another issue's tests re-create: node id → (upstream name, upstream file).
_CONNTRACK = "tests/kernel/test_conntrack.py::test_should_be_able_to_preserve_udp_traffic_when_"
OWNED = {
    f"{_CONNTRACK}server_pod_cycles_for_a_nodeport_service": (
        "should be able to preserve UDP traffic when server pod cycles for a NodePort service",
        CONNTRACK_GO,
    ),
    f"{_CONNTRACK}server_pod_cycles_for_a_clusterip_service": (
        "should be able to preserve UDP traffic when server pod cycles for a ClusterIP service",
        CONNTRACK_GO,
    ),
    f"{_CONNTRACK}server_pod_cycles_for_a_clusterip_service_with_internaltrafficpolicy_set_to_local": (  # noqa: E501
        "should be able to preserve UDP traffic when server pod cycles for a ClusterIP service "
        "with InternalTrafficPolicy set to Local",
        CONNTRACK_GO,
    ),
    f"{_CONNTRACK}initial_unready_endpoints_get_ready": (
        "should be able to preserve UDP traffic when initial unready endpoints get ready",
        CONNTRACK_GO,
    ),
    "tests/kernel/test_daemon_traffic_policies.py::"
    "test_fail_health_check_node_port_if_there_are_only_terminating_endpoints": (
        "should fail health check node port if there are only terminating endpoints",
        SERVICE_GO,
    ),
}

# What upstream tests but the proxy does not decide: (name, file, why).
OUT_OF_SCOPE = [
    ("should create endpoints for unready pods", SERVICE_GO,
     "publishNotReadyAddresses is the EndpointSlice controller's (the harness plays it)"),
    ("should be able to update service type to NodePort listening on same port number but "
     "different protocols", SERVICE_GO,
     "the API server's validation and node port allocation; no packet involved"),
    ("should check NodePort out-of-range", SERVICE_GO, "the API server's validation"),
    ("should release NodePorts on delete", SERVICE_GO, "the API server's node port allocator"),
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    file: str
    test: str
    verdict: str
    seconds: float = 0.0


def run_pytest(targets: list[str], record: Path) -> int:
    """One pytest process over `targets`, its verdicts appended to `record`; its exit code."""
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "-p", "ipvsd.testing.conformance_plugin", *targets]  # fmt: skip
    print("$", " ".join(argv[1:]), flush=True)
    env = {**os.environ, RECORD_VARIABLE: str(record)}
    return subprocess.run(argv, env=env, check=False).returncode


def rows_from(record: Path) -> list[Row]:
    rows = []
    for line in record.read_text().splitlines():
        entry = json.loads(line)
        name, file = entry["upstream"] or OWNED.get(entry["nodeid"], (entry["nodeid"], "?"))
        rows.append(Row(name, file, entry["nodeid"], entry["verdict"], entry["seconds"]))
    return rows


def table(rows: list[Row]) -> str:
    lines = ["| upstream test | upstream file | ipvsd's test | result |", "| --- " * 4 + "|"]
    for row in rows:
        file = row.file.removeprefix("test/e2e/network/")
        lines.append(f"| {row.name} | {file} | `{row.test}` | {row.verdict} |")
    return "\n".join(lines)


def summary(rows: list[Row]) -> str:
    kinds = [row.verdict.split(":", 1)[0] for row in rows]
    return json.dumps({
        "passed": kinds.count("PASS"), "failed": kinds.count("FAIL"),
        "skipped": kinds.count("SKIP"), "cases": {row.name: row.verdict for row in rows},
    })  # fmt: skip


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m ipvsd.testing.conformance")
    parser.add_argument("--ci", action="store_true", help="the CI subset (CI_CASES) only")
    parser.add_argument("--no-owned", action="store_true", help="skip other issues' cases")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        record = Path(scratch) / "verdicts.jsonl"
        record.touch()
        codes = [run_pytest(CI_CASES if args.ci else [CASES], record)]
        if not (args.ci or args.no_owned):
            codes.append(run_pytest(list(OWNED), record))
        rows = rows_from(record)
    if not args.ci:
        rows += [Row(name, file, "-", f"SKIP: out of a proxy's scope: {why}")
                 for name, file, why in OUT_OF_SCOPE]  # fmt: skip
    print(table(rows))
    for row in sorted(rows, key=lambda r: -r.seconds)[:8]:
        print(f"{row.seconds:7.1f} s  {row.test}")
    print(f"{len(rows)} cases in {time.monotonic() - started:.0f} s "
          f"({'CI subset' if args.ci else 'full run'})")  # fmt: skip
    print(summary(rows), flush=True)
    return 0 if all(code == 0 for code in codes) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
