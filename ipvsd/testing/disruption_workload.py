"""The workload scenarios of the disruption harness (issue 17): pods that end, and a slow API.

- `drain-across-restart` (4): node-1's ipvsd restarted once with `--ipvs-drain-timeout`
  (DRAIN_BOUND_S); a successor pod on node-1; node-1's original pod (P) starts its grace
  period (its endpoint ready=false, serving, terminating) while long-lived connections use it;
  its TCP real servers on node-1 go to weight 0; node-1's ipvsd restarts mid-drain while a
  probe generator opens new connections; then P's grace ends (its clients close in order,
  `traffic` `leaving`), P goes, and the harness waits for its real server to leave node-1's
  table. Proves: the live connections to P survive the restart (interrupted = 0, P's ActiveConn
  after the restart), no new connection reaches P (the probe's backends, and node-1's table
  polled through the restart: P's weight never above 0), and the real server goes when drained
  or at the bound. The bound across a restart: the kernel keeps no drain start time and
  ipvsd keeps none either, so a restarted ipvsd starts the clock again at its first sync (see
  `ipvsd.reconcile.draining`); the row's notes give when the real server went, from the drain's
  start and from the restart.
- `partial-list` (5, Cilium #26912): the emulator answers EndpointSlice lists one slice per
  page, PAGE_DELAY_S before each (`Faults.pace_lists`: ipvsd's informer streams its lists as a
  watch with `sendInitialEvents` when the server can, as this one can, so each initial event,
  and the bookmark that ends them, comes PAGE_DELAY_S apart; a client paging with
  `limit`/`continue` would get one slice per response instead) while node-1's and node-2's
  ipvsd restart. Both tables are polled (`ipvsadm -Ln`) until both daemons have synced and
  both lists have ended: any real server the API wants that is missing or at weight 0 in a
  poll is reported, and so is a first sync (the per-family status in /healthz) that came
  before the node's EndpointSlice list ended.
- `rollout` (8): the Deployment rolled with surge (maxSurge 1, maxUnavailable 0), pod by pod:
  a new pod on the old one's node, created not ready, becomes ready (the first one's readiness
  also flips off and on again), then the old pod terminates with a GRACE_S grace period
  (ready=false, serving, terminating), its clients close in order when the grace ends, and it
  goes. No new connection may fail, no connection to a pod may break before its grace ends.

The pods' grace ends the way a well-behaved server ends: its clients are told (`leaving`),
close between two requests and reconnect elsewhere, and the pod goes once it has no connection
left (at most LEAVE_WITHIN); a connection still open when it goes breaks and is counted.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from ipvsd.testing.apiserver.faults import ListPacing, PacedList
from ipvsd.testing.cluster import run_in
from ipvsd.testing.cluster_net import OUTSIDE, PodNet
from ipvsd.testing.disruption_harness import (
    CLIENT_NODE,
    CONVERGE_WITHIN,
    REMOTE_NODE,
    REPLY_TIMEOUT_S,
    TCP_PORT,
    Fault,
    Harness,
    Row,
    Scenario,
)
from ipvsd.testing.traffic import Flow, FlowResult, Generator

DRAIN_BOUND_S = 60  # --ipvs-drain-timeout for drain-across-restart: beyond the grace's end
RESTART_AFTER_S = 12.0  # into the drain: a bound counted from the drain's start would be near
GRACE_S = 6.0  # the rollout's terminationGracePeriodSeconds
PAGE_DELAY_S = 2.0  # before each page of the EndpointSlice list (partial-list)
SLICES_PATH = "/apis/discovery.k8s.io/v1/endpointslices"
LEAVE_WITHIN = 15.0  # for a leaving pod's clients to close
POLL_S = 0.25

Table = dict[tuple[str, str], dict[str, tuple[int, int, int]]]  # (proto, vs) -> rs -> counts


def parse_listing(text: str) -> Table:
    """`ipvsadm -Ln` text -> (protocol, virtual server) -> real server -> (weight, ActiveConn,
    InActConn)."""
    table: Table = {}
    current: dict[str, tuple[int, int, int]] | None = None
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in ("TCP", "UDP", "SCTP"):
            current = table.setdefault((words[0], words[1]), {})
        elif len(words) >= 6 and words[0] == "->" and current is not None and words[3].isdigit():
            current[words[1]] = (int(words[3]), int(words[4]), int(words[5]))
    return table


async def listing(node: str) -> Table:
    return parse_listing(await run_in(node, "ipvsadm", "-Ln"))


def real_servers_of(table: Table, pod: PodNet, protocol: str = "TCP") -> dict[str, tuple[int, ...]]:
    """The pod's real servers of `protocol` in `table`: virtual server -> counts."""
    wanted = f"{pod.address}:{TCP_PORT}"
    return {vs: reals[wanted] for (proto, vs), reals in table.items()
            if proto == protocol and wanted in reals}  # fmt: skip


async def established(pod: PodNet) -> int:
    """TCP connections established to the pod's server (seen from inside the pod)."""
    out = await run_in(pod.name, "ss", "-Htn", "state", "established", f"( sport = :{TCP_PORT} )")
    return len(out.splitlines())


async def end_grace(h: Harness, pod: PodNet) -> int:
    """The pod's grace period ends: its clients close in order, then it goes; the connections
    it still had when it went (they break)."""
    for generator in h.generators:
        await generator.leaving(pod.name)
    deadline = time.monotonic() + LEAVE_WITHIN
    left = await established(pod)
    while left and time.monotonic() < deadline:
        await asyncio.sleep(POLL_S)
        left = await established(pod)
    for generator in h.generators:
        await generator.gone(pod.name)
    await asyncio.to_thread(h.app.remove_pod, pod.name)
    return left


async def settle(h: Harness, within: float = 30.0) -> float | None:
    """Seconds until every node's table matches the API again (None: not within `within`)."""
    started = time.monotonic()
    while not await h.kernel_matches_api():
        if time.monotonic() - started > within:
            return None
        await asyncio.sleep(0.2)
    return time.monotonic() - started


def add_figures(row: Row, results: list[FlowResult]) -> None:
    """Fold a scenario's own probe generators into its row."""
    for result in results:
        row.interrupted += result.interrupted
        row.failed_new += result.failed_new
        row.udp_lost += result.udp_lost
        row.max_gap_ms = max(row.max_gap_ms, result.max_gap_ms)


@dataclass
class Poller:
    """Polls one node's IPVS table in the background until stopped."""

    node: str
    look: Callable[[float, Table], None]  # (seconds since start, the table)
    polls: int = 0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> Poller:
        self._task = asyncio.ensure_future(self._run())
        return self

    async def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            self.look(time.monotonic() - started, await listing(self.node))
            self.polls += 1
            await asyncio.sleep(POLL_S)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task


# --- drain-across-restart ---------------------------------------------------------------------


@dataclass
class DrainAcrossRestart:
    """Scenario 4 (see the module docstring); keeps what it saw for its row."""

    notes: list[str] = field(default_factory=list)
    probes: list[FlowResult] = field(default_factory=list)
    flags: tuple[str, ...] = ()

    async def fault(self, h: Harness) -> Fault:
        self.notes, self.probes = [], []
        proxies = h.cluster.proxies
        self.flags = proxies.extra_flags
        proxies.extra_flags = (*self.flags, f"--ipvs-drain-timeout={DRAIN_BOUND_S}s")
        await h.restart(CLIENT_NODE, signal.SIGTERM)  # to take the bound
        await proxies.wait_ready(CONVERGE_WITHIN, nodes=[CLIENT_NODE])
        (pod, *_) = [p for p in h.app.pods
                     if p.node.name == CLIENT_NODE and p.name not in h.app.terminating]  # fmt: skip
        successor = await asyncio.to_thread(h.app.add_pod, CLIENT_NODE)
        await settle(h)
        await asyncio.to_thread(h.app.terminate, pod.name)
        began = time.monotonic()
        h.say(f"  {pod.name} terminating; {successor.name} serves beside it on {CLIENT_NODE}")
        before = await self._wait_weight_zero(pod)
        seen: dict[str, int] = {"polls": 0, "above_0": 0, "absent": 0}

        def look(at: float, table: Table) -> None:
            mine = real_servers_of(table, pod)
            seen["above_0"] += sum(1 for weight, _, _ in mine.values() if weight > 0)
            seen["absent"] += len(before) - len(mine)

        poller = Poller(CLIENT_NODE, look).start()
        probe = await self._probe(h)
        try:
            await asyncio.sleep(max(0.0, began + RESTART_AFTER_S - time.monotonic()))
            await h.restart(CLIENT_NODE, signal.SIGTERM)
            restarted = time.monotonic()
            synced = (await first_syncs(h, [CLIENT_NODE])).get(CLIENT_NODE)
            await asyncio.sleep(2.0)  # the new daemon's first decisions in place
            after = real_servers_of(await listing(CLIENT_NODE), pod)
            for generator in probe:
                self.probes += await generator.stop()
        finally:
            for generator in probe:
                await generator.kill()
            await poller.stop()
        still = await end_grace(h, pod)
        grace_ended = time.monotonic()
        removed = await self._wait_removed(pod, within=DRAIN_BOUND_S + 40.0)
        reached = sum(r.backends.get(pod.name, 0) for r in self.probes)
        opened = sum(r.replies for r in self.probes)
        self.notes += [
            f"{pod.name} on {CLIENT_NODE}: connections before/after the restart "
            f"{_active(before)}/{_active(after)}; in {poller.polls} polls of its table until its "
            f"grace ended, {seen['above_0']} times at a weight above 0, {seen['absent']} missing "
            f"({grace_ended - began:.0f} s after the drain began; {still} connections cut)",
            f"new connections during the drain: {opened}, to {pod.name}: {reached}",
            _removal_note(removed, began, restarted, synced),
        ]
        return time.monotonic(), [CLIENT_NODE]

    async def _wait_weight_zero(self, pod: PodNet) -> dict[str, tuple[int, ...]]:
        deadline = time.monotonic() + 30.0
        while True:
            mine = real_servers_of(await listing(CLIENT_NODE), pod)
            if mine and all(weight == 0 for weight, _, _ in mine.values()):
                return mine
            if time.monotonic() > deadline:
                raise RuntimeError(f"{pod.name}'s real servers never reached weight 0: {mine}")
            await asyncio.sleep(POLL_S)

    async def _wait_removed(self, pod: PodNet, within: float) -> float | None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not real_servers_of(await listing(CLIENT_NODE), pod):
                return time.monotonic()
            await asyncio.sleep(0.5)
        return None

    async def _probe(self, h: Harness) -> list[Generator]:
        """New connections only, started once P is at weight 0: none may reach it."""
        inside, outside = h.flows()
        news = [flow for flow in inside + outside if flow.kind == "new"]
        log = h.cluster.scratch / "traffic.log"
        timeout = REPLY_TIMEOUT_S
        mine = [Flow(f"drain-probe-{f.name}", "new", f.target, interval=0.3, timeout=timeout)
                for f in news]  # fmt: skip
        generators = [
            await Generator.start(h.client.name, [f for f in mine if "clusterip" in f.name], log),
            await Generator.start(OUTSIDE, [f for f in mine if "nodeport" in f.name], log),
        ]
        for generator in generators:
            await generator.ready()  # its first line; with no long flow it comes at once
        return generators

    async def after(self, h: Harness, row: Row, results: list[FlowResult]) -> None:
        add_figures(row, self.probes)
        row.notes += self.notes
        h.cluster.proxies.extra_flags = self.flags
        await h.as_built((CLIENT_NODE,))


def _active(counts: dict[str, tuple[int, ...]]) -> int:
    return sum(active for _, active, _ in counts.values())


def _removal_note(
    removed: float | None, began: float, restarted: float, synced: float | None
) -> str:
    if removed is None:
        return f"the real server was still there {DRAIN_BOUND_S + 40} s after the grace ended"
    first_sync = ("its first sync never seen" if synced is None else
                  f"{removed - synced:.1f} s after its first sync was seen done")  # fmt: skip
    return (f"its real server left {CLIENT_NODE}'s table {removed - began:.1f} s after the drain "
            f"began, {removed - restarted:.1f} s after the restart, {first_sync} (bound "
            f"{DRAIN_BOUND_S} s, counted from that sync's start, looked at each sync)")  # fmt: skip


# --- partial-list -----------------------------------------------------------------------------


@dataclass
class PartialList:
    """Scenario 5 (see the module docstring)."""

    notes: list[str] = field(default_factory=list)

    async def fault(self, h: Harness) -> Fault:
        self.notes = []
        faults = h.cluster.server.faults
        nodes = [CLIENT_NODE, REMOTE_NODE]
        wanted = h.expected()
        removals: dict[str, list[str]] = {node: [] for node in nodes}

        def looker(node: str) -> Callable[[float, Table], None]:
            def look(at: float, table: Table) -> None:
                weights: dict[str, dict[str, int]] = {}
                for (_, server), reals in table.items():
                    weights.setdefault(server, {}).update(
                        {real: counts[0] for real, counts in reals.items()}
                    )
                for server, active in wanted[node].items():
                    for real in active:
                        if weights.get(server, {}).get(real, 0) == 0:
                            removals[node].append(f"{server} -> {real} at {at:.1f}s")

            return look

        pollers = [Poller(node, looker(node)).start() for node in nodes]
        pacing = faults.pace_lists(PAGE_DELAY_S, page_size=1, path_prefix=SLICES_PATH)
        address = {node.name: node.address for node in h.cluster.proxies.nodes}
        try:
            started = time.monotonic()
            for node in nodes:
                await h.restart(node, signal.SIGTERM)
            synced = await first_syncs(h, nodes)
            # a daemon that synced without its list would still be receiving it: wait for it
            for _ in range(150):  # 30 s
                if all(_lists_of(pacing, address[node]) for node in nodes):
                    break
                await asyncio.sleep(0.2)
        finally:
            faults.pacing = None
            for poller in pollers:
                await poller.stop()
        for node, poller in zip(nodes, pollers, strict=True):
            self.notes.append(_list_note(node, _lists_of(pacing, address[node]),
                                         synced.get(node), started))  # fmt: skip
            seen = removals[node]
            self.notes.append(
                f"{node}: {len(seen)} valid real servers missing or at weight 0 in "
                f"{poller.polls} polls" + (f" ({', '.join(seen[:4])})" if seen else "")
            )
        others = sorted({done.client for done in pacing.done} - set(address.values()))
        if others:
            self.notes.append(f"paced lists from other addresses: {', '.join(others)}")
        return time.monotonic(), nodes

    async def after(self, h: Harness, row: Row, results: list[FlowResult]) -> None:
        row.notes += self.notes


async def first_syncs(h: Harness, nodes: list[str]) -> dict[str, float]:
    """When (time.monotonic()) each node's daemon was first seen synced, within
    CONVERGE_WITHIN."""
    proxies = h.cluster.proxies
    specs = {node.name: node for node in proxies.nodes}
    synced: dict[str, float] = {}
    deadline = time.monotonic() + CONVERGE_WITHIN
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while len(synced) < len(nodes) and time.monotonic() < deadline:
            for node in nodes:
                if node not in synced and await proxies.healthy(session, specs[node]):
                    synced[node] = time.monotonic()
            await asyncio.sleep(0.2)
    return synced


def _lists_of(pacing: ListPacing, client: str) -> list[PacedList]:
    return [done for done in pacing.done if done.client == client]


def _list_note(node: str, lists: list[PacedList], synced: float | None, started: float) -> str:
    if not lists:
        return f"{node}: no paced EndpointSlice list seen (the fault did not apply)"
    ended = max(done.ended for done in lists)
    shown = ", ".join(f"{done.mode} of {done.pages} pages in {done.ended - done.started:.1f}s"
                      for done in lists)  # fmt: skip
    note = f"{node}: EndpointSlice lists {shown}, the last ended {ended - started:.1f}s after "
    if synced is None:
        return note + "the restarts began; no first sync seen"
    note += f"the restarts began, the first sync {synced - started:.1f}s"
    return note + (" (BEFORE its list ended)" if synced < ended else "")


# --- rollout ----------------------------------------------------------------------------------


@dataclass
class Rollout:
    """Scenario 8 (see the module docstring)."""

    notes: list[str] = field(default_factory=list)

    async def fault(self, h: Harness) -> Fault:
        self.notes = []
        app = h.app
        old = [p for p in app.pods if p.name not in app.terminating]
        settles: list[float | None] = []
        cut = 0
        for index, pod in enumerate(old):
            node = pod.node.name
            new = await asyncio.to_thread(app.add_pod, node, ready=False)
            await asyncio.sleep(1.0)
            if index == 0:  # a readiness probe that flaps once before it holds
                for ready in (True, False):
                    await asyncio.to_thread(app.set_ready, new.name, ready)
                    await asyncio.sleep(1.5)
            await asyncio.to_thread(app.set_ready, new.name, True)
            settles.append(await settle(h))
            await asyncio.to_thread(app.terminate, pod.name)
            grace = time.monotonic()
            settles.append(await settle(h))
            h.say(f"  {new.name} ready on {node}; {pod.name} terminating ({GRACE_S:.0f}s grace)")
            await asyncio.sleep(max(0.0, grace + GRACE_S - time.monotonic()))
            cut += await end_grace(h, pod)
        shown = ", ".join("never" if s is None else f"{s:.1f}" for s in settles)
        self.notes.append(
            f"{len(old)} pods replaced; tables matched the API after each change in {shown} s; "
            f"{cut} connections still open when a grace ended"
        )
        return time.monotonic(), []

    async def after(self, h: Harness, row: Row, results: list[FlowResult]) -> None:
        left = sum(r.left for r in results)
        row.notes += [*self.notes, f"{left} long connections closed in order at a grace's end"]


SCENARIOS: dict[str, Scenario] = {}
for _name, _scenario in (
    ("drain-across-restart", DrainAcrossRestart()),
    ("partial-list", PartialList()),
    ("rollout", Rollout()),
):
    SCENARIOS[_name] = Scenario(_scenario.fault, after=_scenario.after)
