"""The disruption harness's cluster, workload, traffic and measurement (issue 17).

The cluster (`cluster.namespace_cluster`): `node-1` and `node-2` in zone-a, `node-3` in zone-b,
one ipvsd per node against the API emulator. Deployment `echo` has a pod on node-1 and one on
node-2, each a `traffic serve` process (TCP echo on 7000, UDP on 7001). Service `echo`
(NodePort, eTP=Cluster: TCP 80, UDP 81) and Service `echo-local` (NodePort, eTP=Local: TCP 80)
select them. Traffic (`traffic`), each generator its own process, started afresh for every
scenario:

- from pod `client` on node-1, through echo's ClusterIP: long-lived TCP connections, new TCP
  connections and fixed-source-port UDP flows; round robin over the two pods sends half of
  them to the pod on the client's node and half across nodes;
- from `outside` (a host on the nodes' segment): long-lived and new TCP connections to echo's
  NodePort on node-1 (eTP=Cluster: half stay on node-1, half are forwarded to node-2) and to
  echo-local's NodePort on node-2 (eTP=Local: its local pod).

A `Scenario` is a fault run while that traffic flows, from before the fault until after the
kernel matches the API again, and optionally a step after the traffic window (to put the
cluster back, or to note what the scenario observed). Per scenario (`Row`): `interrupted`
long-lived connections, `failed_new` new connections, `udp_lost` datagrams (unanswered, or
answered by a backend that was gone), `max_gap_ms` between two replies of a flow, `converge_s`
from the end of the fault until every restarted ipvsd has synced (healthy) and every node's
IPVS table matches the API. The durations are a report, not a pass rule.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ipvsd.testing.cluster import NamespaceCluster, ipvs_rules, namespace_cluster
from ipvsd.testing.cluster_net import OUTSIDE, PodNet, node_specs
from ipvsd.testing.cluster_scenarios import parse_rules
from ipvsd.testing.cluster_workload import EchoApp, start_client
from ipvsd.testing.traffic import Flow, FlowResult, Generator, serve_argv

ZONES = ("zone-a", "zone-a", "zone-b")
CLIENT_NODE, REMOTE_NODE, SPARE_NODE = "node-1", "node-2", "node-3"
TCP_PORT, UDP_PORT = 7000, 7001
STEADY_S = 6.0  # default seconds of traffic before a fault, and after convergence
CONVERGE_WITHIN = 120.0
# No reply within this long is a failure. Generous because the VM is emulated and shares two
# host cores: its processes stall for seconds when the host is busy (max_gap_ms shows it).
REPLY_TIMEOUT_S = 5.0
FLUSHED = (CLIENT_NODE, REMOTE_NODE)  # the negative control's nodes

SERVICES: list[dict[str, Any]] = [
    {"apiVersion": "v1", "kind": "Service",
     "metadata": {"name": "echo", "namespace": "default"},
     "spec": {"type": "NodePort", "selector": {"app": "echo"},
              "externalTrafficPolicy": "Cluster",
              "ports": [{"name": "tcp", "port": 80, "targetPort": TCP_PORT, "protocol": "TCP"},
                        {"name": "udp", "port": 81, "targetPort": UDP_PORT, "protocol": "UDP"}]}},
    {"apiVersion": "v1", "kind": "Service",
     "metadata": {"name": "echo-local", "namespace": "default"},
     "spec": {"type": "NodePort", "selector": {"app": "echo"},
              "externalTrafficPolicy": "Local",
              "ports": [{"name": "tcp", "port": 80, "targetPort": TCP_PORT, "protocol": "TCP"}]}},
]  # fmt: skip


@dataclass
class Row:
    """One scenario's figures (the JSON keys) and what else it observed (`notes`)."""

    scenario: str
    interrupted: int = 0
    failed_new: int = 0
    udp_lost: int = 0
    max_gap_ms: float = 0.0
    converge_s: float | None = None
    notes: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        return {
            "interrupted": self.interrupted,
            "failed_new": self.failed_new,
            "udp_lost": self.udp_lost,
            "max_gap_ms": round(self.max_gap_ms, 1),
            "converge_s": None if self.converge_s is None else round(self.converge_s, 2),
        }


@dataclass
class Harness:
    """The running cluster, its workload and the scenarios' shared steps."""

    cluster: NamespaceCluster
    app: EchoApp
    client: PodNet
    rng: random.Random
    say: Callable[[str], None]
    steady: float = STEADY_S  # seconds of traffic before a fault, and after convergence
    generators: list[Generator] = field(default_factory=list)  # while traffic flows
    # Changes a scenario timed one by one while its fault ran (watch-faults): what, seconds
    # until every table had it, and the bound it is held to.
    changes: list[tuple[str, float | None, float]] = field(default_factory=list)

    # --- the API's view and the kernel's --------------------------------------------------------

    def service(self, name: str) -> dict[str, Any]:
        return self.cluster.server.store.get("services", name)

    def node_port(self, service: str, port_name: str = "tcp") -> int:
        ports = self.service(service)["spec"]["ports"]
        return int(next(p["nodePort"] for p in ports if p["name"] == port_name))

    def expected(self) -> dict[str, dict[str, set[str]]]:
        """Per node, per virtual server ("ip:port"), the real servers that must take new
        connections (weight > 0), from the API's Services and the pods' readiness (a
        terminating pod takes none: the scenarios keep a ready pod beside it on its node)."""
        app = self.app
        ready = [p for p in app.pods if p.name not in app.not_ready | app.terminating]
        tables: dict[str, dict[str, set[str]]] = {}
        for node in self.cluster.net.nodes:
            table: dict[str, set[str]] = {}
            for document in SERVICES:
                spec = self.service(document["metadata"]["name"])["spec"]
                local = spec.get("externalTrafficPolicy") == "Local"
                for port in spec["ports"]:
                    every = {f"{p.address}:{port['targetPort']}" for p in ready}
                    here = {f"{p.address}:{port['targetPort']}" for p in ready if p.node == node}
                    table[f"{spec['clusterIP']}:{port['port']}"] = every
                    table[f"{node.address}:{port['nodePort']}"] = here if local else every
            tables[node.name] = table
        return tables

    async def kernel_matches_api(self) -> bool:
        for node, wanted in self.expected().items():
            rules = parse_rules(await ipvs_rules(node))
            for server, active in wanted.items():
                found = rules.get(server)
                if found is None:
                    if active:
                        return False
                    continue
                if {real for real, weight in found.weights.items() if weight > 0} != active:
                    return False
        return True

    async def converge(self, since: float, nodes: list[str], poll: float = 0.2) -> float | None:
        """Seconds from `since` until `nodes`' daemons are healthy and every table matches the
        API (checked every `poll` seconds); None if not within CONVERGE_WITHIN."""
        proxies = self.cluster.proxies
        try:
            await proxies.wait_ready(CONVERGE_WITHIN, nodes=nodes)
        except RuntimeError as error:
            self.say(f"  not healthy: {error}")
            return None
        while not await self.kernel_matches_api():
            if time.monotonic() - since > CONVERGE_WITHIN:
                return None
            await asyncio.sleep(poll)
        return time.monotonic() - since

    # --- traffic --------------------------------------------------------------------------------

    def flows(self) -> tuple[list[Flow], list[Flow]]:
        """(from the client pod, from outside)."""
        vip = self.service("echo")["spec"]["clusterIP"]
        nodes = {n.name: n.address for n in self.cluster.net.nodes}
        cluster_port = f"{nodes[CLIENT_NODE]}:{self.node_port('echo')}"
        local_port = f"{nodes[REMOTE_NODE]}:{self.node_port('echo-local')}"
        timeout = REPLY_TIMEOUT_S
        inside = [
            Flow("clusterip-long", "long", f"{vip}:80", count=4, interval=0.2, timeout=timeout),
            Flow("clusterip-new", "new", f"{vip}:80", interval=0.2, timeout=timeout),
            Flow("clusterip-udp", "udp", f"{vip}:81", count=2, interval=0.2, timeout=timeout,
                 source_port=40000),
        ]  # fmt: skip
        outside = [
            Flow("nodeport-cluster-long", "long", cluster_port, count=2, interval=0.2,
                 timeout=timeout),
            Flow("nodeport-cluster-new", "new", cluster_port, interval=0.5, timeout=timeout),
            Flow("nodeport-local-long", "long", local_port, count=2, interval=0.2,
                 timeout=timeout),
            Flow("nodeport-local-new", "new", local_port, interval=0.5, timeout=timeout),
        ]  # fmt: skip
        return inside, outside

    async def with_traffic(
        self, name: str, fault: Callable[[], Awaitable[Fault]]
    ) -> tuple[Row, list[FlowResult]]:
        """Run `fault` with traffic flowing; it returns (when it ended, the restarted nodes)."""
        self.say(f"== {name}")
        inside, outside = self.flows()
        log = self.cluster.scratch / "traffic.log"
        generators = self.generators = [
            await Generator.start(self.client.name, inside, log),
            await Generator.start(OUTSIDE, outside, log),
        ]
        results: list[FlowResult] = []
        row = Row(name)
        self.changes = []
        try:
            for generator in generators:
                if not await generator.ready():
                    row.notes.append("a flow had no first reply")
            await asyncio.sleep(self.steady)
            try:
                ended, restarted = await fault()
            except Exception as error:  # reported in the row; the next scenarios still run
                row.notes.append(f"harness error: {error}")
                self.say(f"  harness error: {error}")
                ended, restarted = time.monotonic(), await self.recover()
            row.converge_s = await self.converge(ended, restarted)
            fold_changes(row, self.changes)
            await asyncio.sleep(self.steady)
            for generator in generators:
                results += await generator.stop()
        finally:
            self.generators = []
            for generator in generators:
                await generator.kill()
        for result in results:
            row.interrupted += result.interrupted
            row.failed_new += result.failed_new
            row.udp_lost += result.udp_lost
            row.max_gap_ms = max(row.max_gap_ms, result.max_gap_ms)
            errors = ", ".join(f"{k} {v}" for k, v in sorted(result.errors.items()))
            backends = ", ".join(f"{k} {v}" for k, v in sorted(result.backends.items()))
            self.say(f"  {result.name}: {result.replies} replies ({backends})"
                     + (f"; errors: {errors}" if errors else ""))  # fmt: skip
        self.say(f"  -> {json.dumps(row.figures())} {'; '.join(row.notes)}")
        return row, results

    # --- faults ---------------------------------------------------------------------------------

    async def restart(self, node: str, sig: int, env: dict[str, str] | None = None) -> None:
        code = await self.cluster.proxies.restart(node, sig, env)
        self.say(f"  {node}: ipvsd ended ({code}) after {signal.Signals(sig).name}, restarted")

    async def recover(self) -> list[str]:
        """After a scenario failed half-way: let every held daemon go, start every daemon that
        is not running; the nodes."""
        for hold in self.cluster.scratch.glob("hold-*"):
            hold.unlink(missing_ok=True)
        nodes = [node.name for node in self.cluster.net.nodes]
        for node in nodes:
            if await self.cluster.proxies.exit_code(node) is not None:
                await self.cluster.proxies.start_daemon(node)
        return nodes

    async def wait_hold(self, node: str, hold: Path, within: float = 300.0) -> str:
        deadline = time.monotonic() + within
        while not await asyncio.to_thread(hold.exists):
            code = await self.cluster.proxies.exit_code(node)
            if code is not None or time.monotonic() > deadline:
                state = f"ipvsd exited ({code})" if code is not None else f"{within:.0f}s passed"
                raise RuntimeError(f"hold point {hold.name} not reached, {state}:\n"
                                   f"{self.cluster.proxies.tail(node)}")  # fmt: skip
            await asyncio.sleep(0.1)
        return (await asyncio.to_thread(hold.read_text)).strip()

    async def as_built(self, nodes: tuple[str, ...]) -> None:
        """Restart `nodes`' daemons without test switches (after the negative control)."""
        for node in nodes:
            await self.restart(node, signal.SIGTERM)
        await self.cluster.proxies.wait_ready(CONVERGE_WITHIN, nodes=list(nodes))


def fold_changes(row: Row, changes: list[tuple[str, float | None, float]]) -> None:
    """Changes a scenario timed one by one (what, seconds or None if it never arrived, bound):
    the row's `converge_s` becomes the slowest of them (None if one never arrived), and a note
    gives their spread and those over their bound."""
    if not changes:
        return
    arrived = sorted(seconds for _, seconds, _ in changes if seconds is not None)
    late = [f"{what} ({'never' if seconds is None else f'{seconds:.2f} s'})"
            for what, seconds, bound in changes if seconds is None or seconds > bound]  # fmt: skip
    if len(arrived) < len(changes) or row.converge_s is None:
        row.converge_s = None
    else:
        row.converge_s = max(row.converge_s, arrived[-1])
    spread = (f"median {arrived[len(arrived) // 2]:.2f} s, slowest {arrived[-1]:.2f} s"
              if arrived else "none arrived")  # fmt: skip
    row.notes.append(f"{len(changes)} changes timed one by one: {spread}; over their bound "
                     f"(2 s, + Retry-After): {', '.join(late) or 'none'}")  # fmt: skip


Fault = tuple[float, list[str]]  # when the fault ended, and the nodes whose ipvsd restarted


@dataclass(frozen=True)
class Scenario:
    """A named fault: `fault` runs while traffic flows and returns (when it ended, the nodes
    whose ipvsd it restarted: convergence waits for them to be healthy); `after`, if any, runs
    once the traffic window closed (its figures are final), to note what it saw in the row or
    to put the cluster back for the next scenario."""

    fault: Callable[[Harness], Awaitable[Fault]]
    after: Callable[[Harness, Row, list[FlowResult]], Awaitable[None]] | None = None


@asynccontextmanager
async def running_cluster(
    *, seed: int, say: Callable[[str], None] = print, steady: float = STEADY_S
) -> AsyncIterator[Harness]:
    """The cluster built, its workload running and every table converged; torn down after."""
    started = time.monotonic()
    async with namespace_cluster(node_specs(ZONES)) as cluster:
        net, store = cluster.net, cluster.server.store
        log = cluster.scratch / "pods.log"
        app = EchoApp(
            store, net, port=TCP_PORT, image="ipvsd-traffic",
            ports=(("tcp", "TCP", TCP_PORT), ("udp", "UDP", UDP_PORT)),
            serve=lambda pod: net.serve_process(
                pod, serve_argv(pod.name, TCP_PORT, UDP_PORT), log, listening=TCP_PORT
            ),
            also_for=("echo-local",),
        )  # fmt: skip
        await asyncio.to_thread(app.rollout, [CLIENT_NODE, REMOTE_NODE])
        client = await asyncio.to_thread(start_client, store, net, CLIENT_NODE)
        for document in SERVICES:
            store.create(document)
        harness = Harness(cluster, app, client, random.Random(seed), say, steady)
        await cluster.proxies.wait_ready()  # the first start includes the imports
        converged = await harness.converge(time.monotonic(), [n.name for n in net.nodes])
        if converged is None:
            raise RuntimeError(f"the cluster never converged:\n{cluster.proxies.tails()}")
        say(f"cluster up in {time.monotonic() - started:.1f}s (seed {seed})")
        yield harness
