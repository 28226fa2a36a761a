"""The disruption harness's command: traffic through a three-node cluster while ipvsd is faulted.

    python -m ipvsd.testing.disruption [--scenarios baseline,negative-control,...] [--seed N]

Root, inside the IPVS VM (`hack/disruption.sh` boots it). The cluster, its traffic and what is
measured: `disruption_harness`. The scenarios, by what they fault: `disruption_restarts`
(the daemon restarted, killed or down, and watch faults), `disruption_workload` (pods
draining, rolled, and a slow EndpointSlice list), `disruption_outages` (the API server
down, kernel operations failing, the kernel state tampered with by hand). They run in the
order given, in one cluster; a table, then last one JSON line: `{"scenarios": {"<name>":
{"interrupted": N, "failed_new": N, "udp_lost": N, "max_gap_ms": X, "converge_s": Y}, ...}}`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Callable
from functools import partial

from ipvsd.testing import (
    disruption_outages,
    disruption_restarts,
    disruption_soak,
    disruption_workload,
)
from ipvsd.testing.disruption_harness import STEADY_S, Row, Scenario, running_cluster

SCENARIOS: dict[str, Scenario] = {
    **disruption_restarts.SCENARIOS,
    **disruption_workload.SCENARIOS,
    **disruption_outages.SCENARIOS,
}
# Run only when named: `soak` takes about 15 minutes of VM time on its own; the single
# tampering actions repeat what `tampering` does, one traffic window each.
ON_REQUEST: dict[str, Scenario] = {**disruption_outages.ON_REQUEST, **disruption_soak.SCENARIOS}


async def run(
    scenarios: list[str],
    *,
    seed: int,
    say: Callable[[str], None] = print,
    steady: float = STEADY_S,
) -> list[Row]:
    """Build the cluster, run `scenarios` in order, tear down; one row each."""
    known = {**SCENARIOS, **ON_REQUEST}
    unknown = [name for name in scenarios if name not in known]
    if unknown:
        raise ValueError(f"unknown scenarios: {', '.join(unknown)}")
    async with running_cluster(seed=seed, say=say, steady=steady) as harness:
        rows = []
        for name in scenarios:
            scenario = known[name]
            row, results = await harness.with_traffic(name, partial(scenario.fault, harness))
            if scenario.after is not None:
                await scenario.after(harness, row, results)
            rows.append(row)
            if row.converge_s is None:
                say(harness.cluster.proxies.tails())
        return rows


def table(rows: list[Row]) -> str:
    lines = [
        "| scenario | interrupted | failed_new | udp_lost | max_gap_ms | converge_s | notes |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        f = row.figures()
        converge = "never" if f["converge_s"] is None else f"{f['converge_s']:.2f}"
        lines.append(
            f"| {row.scenario} | {f['interrupted']} | {f['failed_new']} | {f['udp_lost']} | "
            f"{f['max_gap_ms']:.0f} | {converge} | {'; '.join(row.notes)} |"
        )
    return "\n".join(lines)


def report(rows: list[Row]) -> str:
    """The final JSON line."""
    return json.dumps({"scenarios": {row.scenario: row.figures() for row in rows}})


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m ipvsd.testing.disruption")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 16)
    started = time.monotonic()
    rows = asyncio.run(run(args.scenarios.split(","), seed=seed))
    print(f"\n{table(rows)}\n\n{len(rows)} scenarios in {time.monotonic() - started:.0f}s "
          f"in the VM (seed {seed})")  # fmt: skip
    print(report(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
