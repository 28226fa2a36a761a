"""The soak scenario of the disruption harness (issue 17): ten minutes of endpoint churn with
1,000 Services, watching every daemon for leaks.

`soak` creates 1,000 ClusterIP Services (`soak-0000` ...) in the running cluster, each with
one EndpointSlice holding the two `echo` pods, and waits until every node's IPVS table has
them. Then, for `SOAK_S` seconds while the harness's traffic flows, it flips one endpoint's
readiness in a random slice every `CHURN_EVERY_S` and, every `RECREATE_EVERY_S`, deletes a
random Service with its slice and creates it again (a VIP unbound and bound, its virtual
servers removed and added). Every `SAMPLE_EVERY_S` it reads, per node, the daemon's resident
memory (`VmRSS` of /proc/<pid>/status), its open file descriptors (/proc/<pid>/fd) and its
event loop's unfinished tasks (`ipvsd_asyncio_tasks` on its metrics port). The first sample
is taken after `WARM_S` of churn (the first syncs with 1,000 Services grow caches once); the
row's notes give, per node, start / end / peak of each. Flat means no growth beyond noise.
Afterwards the Services go and the tables converge again.

It takes about 15 minutes of VM time (the creation and first syncs of 1,000 Services by three
daemons, the ten minutes, the deletion), so `hack/disruption.sh` runs it only when named.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from ipvsd.testing.cluster import ipvs_rules, run_in
from ipvsd.testing.disruption_harness import TCP_PORT, Fault, Harness, Row, Scenario
from ipvsd.testing.traffic import FlowResult

SERVICES = 1_000
SOAK_S = 600.0
WARM_S = 60.0
CHURN_EVERY_S = 0.5
RECREATE_EVERY_S = 30.0
SAMPLE_EVERY_S = 30.0
PROGRAMMED_WITHIN = 900.0


def _name(index: int) -> str:
    return f"soak-{index:04d}"


def _service(index: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": _name(index), "namespace": "default"},
        "spec": {"ports": [{"name": "tcp", "port": 80, "targetPort": TCP_PORT,
                            "protocol": "TCP"}]},
    }  # fmt: skip


def _slice(h: Harness, index: int, not_ready: int | None = None) -> dict[str, Any]:
    """Service `index`'s EndpointSlice: the echo pods, pod number `not_ready` not ready."""
    endpoints = [
        {"addresses": [pod.address],
         "conditions": {"ready": n != not_ready, "serving": n != not_ready,
                        "terminating": False},
         "nodeName": pod.node.name, "zone": pod.node.zone,
         "targetRef": {"kind": "Pod", "namespace": "default", "name": pod.name}}
        for n, pod in enumerate(h.app.pods[:2])
    ]  # fmt: skip
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{_name(index)}-ep", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": _name(index),
                                "endpointslice.kubernetes.io/managed-by": "soak"}},
        "addressType": "IPv4",
        "ports": [{"name": "tcp", "protocol": "TCP", "port": TCP_PORT}],
        "endpoints": endpoints,
    }  # fmt: skip


def _create(h: Harness, index: int) -> None:
    store = h.cluster.server.store
    store.create(_service(index))
    store.create(_slice(h, index))


def _delete(h: Harness, index: int) -> None:
    store = h.cluster.server.store
    with contextlib.suppress(Exception):
        store.delete("endpointslices", f"{_name(index)}-ep")
    with contextlib.suppress(Exception):
        store.delete("services", _name(index))


# --- what is measured -------------------------------------------------------------------------


@dataclass
class Series:
    """One figure of one daemon over the soak."""

    values: list[float] = field(default_factory=list)

    def text(self, unit: str = "", scale: float = 1.0) -> str:
        if not self.values:
            return "no samples"
        start, end, peak = self.values[0], self.values[-1], max(self.values)
        return f"{start / scale:.0f}/{end / scale:.0f}/{peak / scale:.0f}{unit}"


@dataclass
class Daemon:
    node: str
    rss: Series = field(default_factory=Series)
    fds: Series = field(default_factory=Series)
    tasks: Series = field(default_factory=Series)
    pids: set[int] = field(default_factory=set)


def _daemon_pid(node: str) -> int | None:
    """The node's ipvsd: in its namespace, the forked child of the supervisor (both run the
    supervisor's command line; the daemon is the one whose parent does too)."""
    try:
        done = subprocess.run(["ip", "netns", "pids", node], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    listing = done.stdout.decode().split()
    pids = {int(p) for p in listing if p.isdigit()}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                supervised = b"ipvsd.testing.supervisor" in cmdline.read()
        except (OSError, ValueError, IndexError):
            continue
        if supervised and parent in pids:
            return pid
    return None


def _rss_and_fds(pid: int) -> tuple[float, float] | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            rss = re.search(r"^VmRSS:\s+(\d+) kB", status.read(), re.MULTILINE)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    return (float(rss.group(1)) * 1024 if rss else 0.0), float(fds)


async def _tasks(node: str) -> float | None:
    with contextlib.suppress(RuntimeError):
        text = await run_in(node, "curl", "-s", "-m", "5", "http://127.0.0.1:10249/metrics")
        found = re.search(r"^ipvsd_asyncio_tasks (\S+)$", text, re.MULTILINE)
        return float(found.group(1)) if found else None
    return None


async def _sample(daemons: list[Daemon]) -> None:
    for daemon in daemons:
        pid = await asyncio.to_thread(_daemon_pid, daemon.node)
        if pid is None:
            continue
        daemon.pids.add(pid)
        figures = await asyncio.to_thread(_rss_and_fds, pid)
        if figures is not None:
            daemon.rss.values.append(figures[0])
            daemon.fds.values.append(figures[1])
        tasks = await _tasks(daemon.node)
        if tasks is not None:
            daemon.tasks.values.append(tasks)


async def _virtual_servers(h: Harness) -> dict[str, int]:
    counts = {}
    for node in h.cluster.net.nodes:
        rules = await ipvs_rules(node.name)
        counts[node.name] = sum(1 for line in rules.splitlines() if line.startswith("-A "))
    return counts


_figures: dict[int, list[str]] = {}


async def soak(h: Harness) -> Fault:
    before = await _virtual_servers(h)
    started = time.monotonic()
    for index in range(SERVICES):
        await asyncio.to_thread(_create, h, index)
    h.say(f"  {SERVICES} Services and slices created in {time.monotonic() - started:.0f}s")
    while any(n < before[node] + SERVICES for node, n in (await _virtual_servers(h)).items()):
        if time.monotonic() - started > PROGRAMMED_WITHIN:
            raise RuntimeError(f"{SERVICES} Services not programmed on every node "
                               f"within {PROGRAMMED_WITHIN:.0f}s")  # fmt: skip
        await asyncio.sleep(2.0)
    h.say(f"  every node programmed them {time.monotonic() - started:.0f}s after the start")
    daemons = [Daemon(node.name) for node in h.cluster.net.nodes]
    churned = recreated = 0
    begun = time.monotonic()
    next_sample, next_recreate = begun + WARM_S, begun + RECREATE_EVERY_S
    while (now := time.monotonic()) < begun + SOAK_S:
        index = h.rng.randrange(SERVICES)
        if now >= next_recreate:
            await asyncio.to_thread(_delete, h, index)
            await asyncio.sleep(CHURN_EVERY_S)
            await asyncio.to_thread(_create, h, index)
            recreated += 1
            next_recreate += RECREATE_EVERY_S
        else:
            document = _slice(h, index, not_ready=h.rng.choice([0, 1, None]))
            await asyncio.to_thread(h.cluster.server.store.update, document)
            churned += 1
        if now >= next_sample:
            await _sample(daemons)
            next_sample += SAMPLE_EVERY_S
        await asyncio.sleep(CHURN_EVERY_S)
    await asyncio.sleep(5.0)  # the last changes applied
    await _sample(daemons)
    notes = [f"{SERVICES} Services, {time.monotonic() - begun:.0f}s of churn: {churned} "
             f"slice changes, {recreated} Services deleted and created again"]  # fmt: skip
    for d in daemons:
        restarted = f" (pids {sorted(d.pids)}: restarted!)" if len(d.pids) > 1 else ""
        series = " ".join(f"{value / (1024 * 1024):.0f}" for value in d.rss.values)
        notes.append(
            f"{d.node} start/end/peak: RSS {d.rss.text(' MiB', 1024 * 1024)}, fds "
            f"{d.fds.text()}, asyncio tasks {d.tasks.text()} ({len(d.rss.values)} samples, "
            f"RSS MiB every {SAMPLE_EVERY_S:.0f}s: {series}){restarted}"
        )
        h.say(f"  {notes[-1]}")
    _figures[id(h)] = notes
    return time.monotonic(), []


async def remove_soak_services(h: Harness, row: Row, results: list[FlowResult]) -> None:
    row.notes += _figures.pop(id(h), [])
    for index in range(SERVICES):
        await asyncio.to_thread(_delete, h, index)
    await h.converge(time.monotonic(), [])


SCENARIOS: dict[str, Scenario] = {"soak": Scenario(soak, after=remove_soak_services)}
