"""The seed documents' walkthroughs, replayed on the running cluster, each judged by its promise.

From the traffic-distribution walkthrough (seed 000), in its order, with the client pod on
mnode-m02 (zone-a) sending 20 requests to Service `echo` each time:

1. default: no preference, so an even split over both pods (rr: 10 and 10);
2. `trafficDistribution: PreferSameNode`: all to the pod on the client's node;
3. `PreferSameZone`: all to pods in zone-a (here the same pod);
4. fallback: the Deployment scaled to one replica pinned to zone-b; no endpoint in zone-a is
   left, so the preference falls back and all go to that one pod;
5. ipvsd's own `ipvsd.io/topology-mode: weight` (after restoring one pod per zone): both pods
   stay in the table, weighted by proximity (`node=3,zone=2,other=1`), so most requests go to
   the local pod and some to the remote one.

Then `externalTrafficPolicy: Local` (seed 003), asked from `outside` the cluster: the
NodePort of a node without a local pod serves nothing and its healthCheckNodePort answers 503;
on a node with one it is served with the client's address preserved, and 200. Last,
`sessionAffinity: ClientIP` (seed 004): 20 requests from the client pod land on one pod while
both are in the table.

Every change goes through the API (`Cluster.editor`); before measuring, a scenario waits (at
most 30 s) until the nodes' IPVS tables show the change has been programmed. PASS or FAIL is
computed from the answers the pods gave, never from the tables.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ipvsd.testing.cluster import CLIENT_NODE, ECHO_NODES, Cluster, hit_label
from ipvsd.testing.cluster_net import OUTSIDE, OUTSIDE_ADDRESS, http_request

REQUESTS = 20
WEIGHTS = "node=3,zone=2,other=1"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One row of the summary: what was asked, what came back, what was promised."""

    scenario: str
    answers: str
    promise: str
    passed: bool


@dataclass(frozen=True, slots=True)
class RealServers:
    """One virtual server of an `ipvsadm -Sn` listing."""

    scheduler: str
    persistent: bool
    weights: dict[str, int] = field(default_factory=dict)  # "ip:port" -> weight

    @property
    def active(self) -> set[str]:
        """The real servers' addresses (without port) that get new connections (weight > 0)."""
        return {real.rsplit(":", 1)[0] for real, weight in self.weights.items() if weight > 0}


def parse_rules(text: str) -> dict[str, RealServers]:
    """`ipvsadm -Sn` text → virtual server ("ip:port") → scheduler, persistence, weights."""
    servers: dict[str, RealServers] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) < 3:
            continue
        if words[0] == "-A":
            scheduler = words[words.index("-s") + 1] if "-s" in words else "wlc"
            servers[words[2]] = RealServers(scheduler, "-p" in words)
        elif words[0] == "-a" and words[2] in servers and "-r" in words:
            weight = int(words[words.index("-w") + 1]) if "-w" in words else 1
            servers[words[2]].weights[words[words.index("-r") + 1]] = weight
    return servers


def counted(counts: Counter[str]) -> str:
    """`sort | uniq -c` of hit.sh, on one line: `echo-…@mnode-m02: 10, …`."""
    return ", ".join(f"{label}: {n}" for label, n in sorted(counts.items()))


def pod_label(cluster: Cluster, node: str) -> str:
    (pod,) = [p for p in cluster.app.pods if p.node.name == node]
    return f"{pod.name}@{node}"


def zone_labels(cluster: Cluster, zone: str) -> set[str]:
    return {f"{p.name}@{p.node.name}" for p in cluster.app.pods if p.node.zone == zone}


class Walkthrough:
    """Runs the scenarios in order, printing a transcript through `say`."""

    def __init__(self, cluster: Cluster, say: Callable[[str], None] = print) -> None:
        self.cluster = cluster
        self.say = say
        self.outcomes: list[Outcome] = []
        self.started = time.monotonic()

    async def run(self) -> list[Outcome]:
        steps: list[Callable[[], Awaitable[None]]] = [
            self.default, self.prefer_same_node, self.prefer_same_zone, self.fallback,
            self.weighted, self.external_local, self.client_ip_affinity,
        ]  # fmt: skip
        for step in steps:
            await step()
        return self.outcomes

    # -- helpers ---------------------------------------------------------------------------

    def heading(self, title: str) -> None:
        self.say(f"\n=== {title} ===")
        self.started = time.monotonic()

    async def patch_service(self, patch: dict[str, object]) -> None:
        self.say(await self.cluster.editor.patch("svc", "echo", patch))

    def cluster_ip_servers(self, table: str) -> RealServers:
        return parse_rules(table).get(
            f"{self.cluster.cluster_ip}:80", RealServers("(none)", persistent=False)
        )

    def addresses_on(self, *nodes: str) -> set[str]:
        return {p.address for p in self.cluster.app.pods if p.node.name in nodes}

    async def wait_for_client_node(self, check: Callable[[RealServers], bool]) -> None:
        settled = await self.cluster.settle(
            {CLIENT_NODE: lambda table: check(self.cluster_ip_servers(table))}
        )
        if not settled:
            self.say(f"(the table of {CLIENT_NODE} did not show the change within 30 s)")

    async def measure(
        self, scenario: str, promise: str, judge: Callable[[Counter[str]], bool]
    ) -> None:
        """hit.sh from the client pod, the client node's table, and the verdict."""
        self.say(f"hit.sh in pod client on {CLIENT_NODE}: {REQUESTS} requests to "
                 f"http://{self.cluster.cluster_ip}:80/, one connection each")  # fmt: skip
        counts = await self.cluster.hit(REQUESTS)
        for label, n in sorted(counts.items()):
            self.say(f"{n:7} {label}")
        await self.show_tables(CLIENT_NODE)
        self.record(scenario, counted(counts), promise, judge(counts))

    async def show_tables(self, *nodes: str) -> None:
        for node in nodes:
            self.say(f"ipvsadm -Ln on {node}:")
            self.say((await self.cluster.listing(node)).rstrip())

    def record(self, scenario: str, answers: str, promise: str, passed: bool) -> None:
        self.outcomes.append(Outcome(scenario, answers, promise, passed))
        verdict = "PASS" if passed else "FAIL"
        self.say(f"promise: {promise} -> {verdict} ({time.monotonic() - self.started:.1f}s)")
        if not passed:
            for node in self.cluster.net.nodes:
                self.say(self.cluster.proxies.tail(node.name, 8))

    # -- the seed's traffic distribution walkthrough ------------------------------------------

    async def default(self) -> None:
        self.heading("default (no trafficDistribution)")
        both = self.addresses_on(*ECHO_NODES)
        await self.wait_for_client_node(lambda s: s.active == both)
        expected = Counter({pod_label(self.cluster, node): REQUESTS // 2 for node in ECHO_NODES})
        await self.measure(
            "default", "even split over both pods (10 each)", lambda got: got == expected
        )

    async def prefer_same_node(self) -> None:
        self.heading("PreferSameNode")
        await self.patch_service({"spec": {"trafficDistribution": "PreferSameNode"}})
        local = self.addresses_on(CLIENT_NODE)
        await self.wait_for_client_node(lambda s: s.active == local)
        wanted = pod_label(self.cluster, CLIENT_NODE)
        await self.measure(
            "PreferSameNode", f"all {REQUESTS} to the pod on {CLIENT_NODE}",
            lambda got: got == Counter({wanted: REQUESTS}),
        )  # fmt: skip

    async def prefer_same_zone(self) -> None:
        self.heading("PreferSameZone")
        await self.patch_service({"spec": {"trafficDistribution": "PreferSameZone"}})
        zone = self.cluster.net.node(CLIENT_NODE).zone or ""
        in_zone = {p.address for p in self.cluster.app.pods if p.node.zone == zone}
        await self.wait_for_client_node(lambda s: s.active == in_zone)
        wanted = zone_labels(self.cluster, zone)
        await self.measure(
            "PreferSameZone", f"all {REQUESTS} to pods in {zone}",
            lambda got: sum(got.values()) == REQUESTS and set(got) <= wanted,
        )  # fmt: skip

    async def fallback(self) -> None:
        self.heading("fallback: one replica, pinned to zone-b (PreferSameZone still set)")
        self.say("$ kubectl scale deploy echo --replicas=1")
        self.say("$ kubectl patch deploy echo --type merge -p "
                 "'{\"spec\":{\"template\":{\"spec\":{\"nodeSelector\":"
                 "{\"topology.kubernetes.io/zone\":\"zone-b\"}}}}}'")  # fmt: skip
        self.say(
            "(the emulator serves no Deployments: the rollout is played by hand — a new "
            "pod on mnode-m03, then the old pods removed, the EndpointSlice rewritten)"
        )
        (pod,) = await asyncio.to_thread(self.cluster.app.rollout, ["mnode-m03"], template="zone-b")
        self.say(f'deployment "echo" successfully rolled out: {pod.name} on mnode-m03')
        await self.wait_for_client_node(lambda s: s.active == {pod.address})
        wanted = f"{pod.name}@mnode-m03"
        await self.measure(
            "fallback (1 replica in zone-b)", f"all {REQUESTS} to the only pod, {wanted}",
            lambda got: got == Counter({wanted: REQUESTS}),
        )  # fmt: skip

    async def weighted(self) -> None:
        self.heading(f"ipvsd.io/topology-mode: weight ({WEIGHTS})")
        self.say("(the pin removed, two replicas again: one pod per zone)")
        await asyncio.to_thread(self.cluster.app.rollout, ECHO_NODES)
        await self.patch_service({
            "metadata": {"annotations": {"ipvsd.io/topology-mode": "weight",
                                         "ipvsd.io/topology-weights": WEIGHTS}},
            "spec": {"trafficDistribution": None},
        })  # fmt: skip
        both = self.addresses_on(*ECHO_NODES)
        await self.wait_for_client_node(lambda s: s.active == both and s.scheduler == "wrr")
        local, remote = (pod_label(self.cluster, node) for node in ECHO_NODES)
        await self.measure(
            "topology-mode: weight", "most to the local pod, some (>0) to the remote one",
            lambda got: sum(got.values()) == REQUESTS and got[local] > got[remote] > 0,
        )  # fmt: skip

    # -- externalTrafficPolicy: Local (seed 003) ----------------------------------------------

    async def external_local(self) -> None:
        self.heading("externalTrafficPolicy: Local, from outside the cluster")
        await self.patch_service({
            "metadata": {"annotations": {"ipvsd.io/topology-mode": None,
                                         "ipvsd.io/topology-weights": None}},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local"},
        })  # fmt: skip
        spec = self.cluster.service()["spec"]
        node_port, health_port = spec["ports"][0]["nodePort"], spec["healthCheckNodePort"]
        without, with_pod = self.cluster.net.node("mnode"), self.cluster.net.node(CLIENT_NODE)
        local = self.addresses_on(CLIENT_NODE)

        def programmed(node_address: str, active: set[str]) -> Callable[[str], bool]:
            def check(table: str) -> bool:
                server = parse_rules(table).get(f"{node_address}:{node_port}")
                return server is not None and server.active == active

            return check

        settled = await self.cluster.settle({
            without.name: programmed(without.address, set()),
            with_pod.name: programmed(with_pod.address, local),
        })  # fmt: skip
        if not settled:
            self.say("(the NodePorts were not programmed as expected within 30 s)")
        health = {
            node.name: await self.health(node.address, health_port, want)
            for node, want in ((without, 503), (with_pod, 200))
        }
        self.say(f"NodePort {node_port}, healthCheckNodePort {health_port}; "
                 f"requests from namespace {OUTSIDE} ({OUTSIDE_ADDRESS})")  # fmt: skip
        refused = await self.from_outside(without.address, node_port, 3, wait=1.5)
        self.say(f"  to {without.name} ({without.address}): {counted(refused)}; "
                 f"health check {health[without.name]}")  # fmt: skip
        served = await self.from_outside(with_pod.address, node_port, 10, wait=3.0)
        self.say(f"  to {with_pod.name} ({with_pod.address}): {counted(served)}; "
                 f"health check {health[with_pod.name]}")  # fmt: skip
        await self.show_tables(without.name, with_pod.name)
        self.record(
            f"eTP=Local via {without.name} (no local pod)",
            f"{counted(refused)}; health {health[without.name]}",
            "not served; health check 503",
            sum(refused.values()) == refused["not served"] and health[without.name] == 503,
        )
        wanted = f"{pod_label(self.cluster, CLIENT_NODE)} saw {OUTSIDE_ADDRESS}"
        self.record(
            f"eTP=Local via {with_pod.name} (local pod)",
            f"{counted(served)}; health {health[with_pod.name]}",
            f"all served by the local pod, which sees the client's {OUTSIDE_ADDRESS}; "
            "health check 200",
            served == Counter({wanted: 10}) and health[with_pod.name] == 200,
        )

    async def health(self, address: str, port: int, want: int) -> int:
        """The health check's status (waiting up to 15 s for `want`: it follows the syncs)."""
        status = 0
        for _ in range(50):
            try:
                status = (await asyncio.to_thread(http_request, OUTSIDE, address, port)).status
            except OSError:
                status = 0  # the listener opens at the end of a sync
            if status == want:
                break
            await asyncio.sleep(0.3)
        return status

    async def from_outside(
        self, address: str, port: int, count: int, *, wait: float
    ) -> Counter[str]:
        def requests() -> Counter[str]:
            counts: Counter[str] = Counter()
            for _ in range(count):
                try:
                    body = http_request(OUTSIDE, address, port, timeout=wait).body
                except OSError:
                    counts["not served"] += 1
                else:
                    counts[f"{hit_label(body)} saw {body.get('client')}"] += 1
            return counts

        return await asyncio.to_thread(requests)

    # -- sessionAffinity: ClientIP (seed 004) -------------------------------------------------

    async def client_ip_affinity(self) -> None:
        self.heading("sessionAffinity: ClientIP")
        await self.patch_service({"spec": {"sessionAffinity": "ClientIP"}})
        both = self.addresses_on(*ECHO_NODES)
        ready = await self.cluster.settle({
            CLIENT_NODE: lambda t: (s := self.cluster_ip_servers(t)).persistent
            and s.active == both
        })  # fmt: skip
        await self.measure(
            "sessionAffinity: ClientIP",
            f"all {REQUESTS} on one pod, though both are in the table",
            lambda got: ready and len(got) == 1 and sum(got.values()) == REQUESTS
            and not next(iter(got)).startswith("("),
        )  # fmt: skip


def summary(outcomes: list[Outcome]) -> str:
    """The results table, as the seed's (markdown, so it can be pasted into the README)."""
    rows = [("scenario", "requests per pod", "promise", "result"), ("---",) * 4]
    rows += [(o.scenario, o.answers, o.promise, "PASS" if o.passed else "FAIL") for o in outcomes]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)
