"""The conformance cases' cluster: upstream's e2e setups played in the namespace cluster.

Upstream's sig-network tests (`test/e2e/network/`) create Services, server pods on chosen
nodes and client pods that ask the Service again and again. Here the same objects are made in
the API emulator and the same packets flow through the namespace cluster of
`ipvsd.testing.cluster` (one ipvsd per node, the hint controller on), one cluster per layout:

- layout A: three nodes, one per zone (`zone-a`, `zone-b`, `zone-c`): upstream's
  `allocateClientsAndServers` finds exactly that, and the service.go cases need two nodes;
- layout B: three zones of two nodes each (`getNodesForMultiNode`).

`Layouts` keeps one cluster at a time (both use the same bridge, addresses and API port) and
builds the other only when a case asks for it, so a pytest session that orders the cases by
layout builds each once. `ConformanceCluster` plays the kubelet and the EndpointSlice
controller per case: pods are namespaces serving the demo's HTTP echo (the reply names the pod,
as agnhost's `serve-hostname` does, and shows the client address it saw), or a UDP echo;
each case writes its Service's EndpointSlices itself, so it can say which endpoints are ready,
serving or terminating. A case removes what it made (`forget`), so cases share a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ipvsd.testing.cluster import NamespaceCluster, ipvs_rules, namespace_cluster
from ipvsd.testing.cluster_net import NodeSpec, PodNet, http_request, node_specs
from ipvsd.testing.cluster_workload import MANAGED_BY, pod_object
from ipvsd.testing.conformance_rules import MIN_LINES, distribution_verdict
from ipvsd.testing.netns import entered

LAYOUT_A = node_specs(["zone-a", "zone-b", "zone-c"])
LAYOUT_B = node_specs(["zone-a", "zone-a", "zone-b", "zone-b", "zone-c", "zone-c"])
LAYOUTS = {"A": LAYOUT_A, "B": LAYOUT_B}
REQUEST_TIMEOUT = 2.0  # upstream's `curl --connect-timeout 2`


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint of a slice: the pod and its conditions (upstream's three booleans)."""

    pod: PodNet
    ready: bool = True
    serving: bool = True
    terminating: bool = False

    @classmethod
    def terminating_pod(cls, pod: PodNet) -> Endpoint:
        """A pod deleted but still serving (its preStop hook holds it): not ready, serving."""
        return cls(pod, ready=False, serving=True, terminating=True)


def answer_of(client: str, host: str, port: int, *, timeout: float = REQUEST_TIMEOUT) -> str:
    """The name of the pod that answered one HTTP request from `client`, on a fresh
    connection; `(ErrorName)` when nothing answered (refused, timed out)."""
    try:
        body = http_request(client, host, port, timeout=timeout).body
    except OSError as error:
        return f"({type(error).__name__})"
    env = body.get("env")
    return str(env.get("POD_NAME")) if isinstance(env, dict) else "(no JSON)"


def seen_client(client: str, host: str, port: int) -> str:
    """The client address the answering pod saw (upstream's echoserver `client_address`)."""
    return str(http_request(client, host, port, timeout=REQUEST_TIMEOUT).body.get("client"))


def udp_answer_of(client: str, host: str, port: int, *, timeout: float = REQUEST_TIMEOUT) -> str:
    """The pod name a UDP echo answered with, from `client`; `(timeout)` when none did."""
    with entered(client):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(b"hostname", (host, port))
            data, _ = sock.recvfrom(4096)
        except OSError as error:
            return f"({type(error).__name__})"
    return data.decode()


@dataclass
class ConformanceCluster:
    """One layout's cluster and what the current case made in it (see the module docstring)."""

    layout: str
    handles: NamespaceCluster
    _pods: list[str] = field(default_factory=list)
    _objects: list[tuple[str, str]] = field(default_factory=list)
    _udp: dict[str, socket.socket] = field(default_factory=dict)

    @property
    def nodes(self) -> tuple[NodeSpec, ...]:
        return self.handles.net.nodes

    @property
    def store(self) -> Any:
        return self.handles.server.store

    def node(self, name: str) -> NodeSpec:
        return self.handles.net.node(name)

    # -- objects ---------------------------------------------------------------------------

    def create(self, document: dict[str, Any]) -> dict[str, Any]:
        """Create an object through the emulator's store (the API's validation and events);
        it is deleted by `forget`."""
        created: dict[str, Any] = self.store.create(document)
        self._objects.append((document["kind"].lower() + "s", document["metadata"]["name"]))
        return created

    def service(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.store.get("services", name)
        return found

    def cluster_ip(self, name: str) -> str:
        return str(self.service(name)["spec"]["clusterIP"])

    def node_port(self, name: str, index: int = 0) -> int:
        return int(self.service(name)["spec"]["ports"][index]["nodePort"])

    def patch_service(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        patched: dict[str, Any] = self.store.patch("services", name, patch)
        return patched

    # -- pods ------------------------------------------------------------------------------

    def server(self, name: str, node: str, port: int, labels: dict[str, str]) -> PodNet:
        """A running pod on `node` whose HTTP echo answers on `port` with its own name."""
        pod = self.handles.net.add_pod(name, node)
        self._pods.append(name)
        self.handles.net.serve(pod, port)
        self.create(pod_object(pod, labels, "registry.k8s.io/e2e-test-images/agnhost", port))
        return pod

    def udp_server(self, pod: PodNet, port: int) -> None:
        """A UDP echo in `pod` answering every datagram with the pod's name (a thread)."""
        with entered(pod.name):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("0.0.0.0", port))
        self._udp[pod.name] = sock

        def serve() -> None:
            with contextlib.suppress(OSError):  # closed by `forget`
                while True:
                    _, address = sock.recvfrom(4096)
                    sock.sendto(pod.name.encode(), address)

        threading.Thread(target=serve, daemon=True, name=f"udp-{pod.name}").start()

    def client(self, name: str, node: str) -> PodNet:
        """A pod that only asks (upstream's agnhost exec pod)."""
        pod = self.handles.net.add_pod(name, node)
        self._pods.append(name)
        self.create(pod_object(pod, {"role": "client"}, "registry.k8s.io/e2e-test-images/agnhost",
                               0))  # fmt: skip
        return pod

    def delete_pod(self, name: str) -> None:
        """The pod is gone: its server, its namespace and its object."""
        sock = self._udp.pop(name, None)
        if sock is not None:
            sock.close()
        self.handles.net.remove_pod(name)
        with contextlib.suppress(Exception):
            self.store.delete("pods", name)
        self._pods = [p for p in self._pods if p != name]
        self._objects = [o for o in self._objects if o != ("pods", name)]

    # -- endpoints -------------------------------------------------------------------------

    def write_slice(
        self,
        service: str,
        endpoints: Sequence[Endpoint],
        ports: Sequence[tuple[str, str, int]] = (("", "TCP", 0),),
        *,
        suffix: str = "ep",
    ) -> None:
        """The Service's EndpointSlice `<service>-<suffix>`, as the EndpointSlice controller
        writes it: `ports` as (name, protocol, port), each endpoint with its node and zone and
        its conditions. The emulator's hint controller then adds the hints."""
        name = f"{service}-{suffix}"
        items = []
        for endpoint in endpoints:
            item: dict[str, Any] = {
                "addresses": [endpoint.pod.address],
                "conditions": {"ready": endpoint.ready, "serving": endpoint.serving,
                               "terminating": endpoint.terminating},
                "nodeName": endpoint.pod.node.name,
                "targetRef": {"kind": "Pod", "namespace": "default", "name": endpoint.pod.name},
            }  # fmt: skip
            if endpoint.pod.node.zone:
                item["zone"] = endpoint.pod.node.zone
            items.append(item)
        document: dict[str, Any] = {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "default",
                         "labels": {"kubernetes.io/service-name": service,
                                    "endpointslice.kubernetes.io/managed-by": MANAGED_BY}},
            "addressType": "IPv4",
            "ports": [{"name": n, "protocol": protocol, "port": port}
                      for n, protocol, port in ports],
            "endpoints": items,
        }  # fmt: skip
        existing = self.store.find("endpointslices", name)
        if existing is None:
            self.create(document)
        else:
            document["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
            self.store.update(document)

    # -- traffic ---------------------------------------------------------------------------

    async def answers(self, client: str, host: str, port: int, count: int) -> list[str]:
        """`count` requests from `client`, each on a fresh connection, oldest first."""
        return await asyncio.to_thread(
            lambda: [answer_of(client, host, port) for _ in range(count)]
        )

    async def until_answered(
        self, client: str, host: str, port: int, want: set[str], within: float = 120.0
    ) -> list[str]:
        """Ask until an answer from `want` comes back (the proxies caught up), or `within`
        seconds passed; every answer seen, oldest first."""
        seen: list[str] = []
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            seen += await self.answers(client, host, port, 1)
            if seen[-1] in want:
                break
            await asyncio.sleep(0.5)
        return seen

    async def until_unanswered(
        self, client: str, host: str, port: int, within: float = 120.0
    ) -> list[str]:
        """Ask until nothing answers (the Service is down for `client`) or `within` passed."""
        seen: list[str] = []
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            seen += await self.answers(client, host, port, 1)
            if seen[-1].startswith("("):
                break
            await asyncio.sleep(0.5)
        return seen

    async def distribution(
        self, wanted: dict[str, set[str]], host: str, port: int, within: float = 180.0
    ) -> dict[str, str]:
        """traffic_distribution.go's `checkTrafficDistribution`: per client pod (name →
        the pods it may reach), ask in rounds of 20 until upstream's rule passes on its whole
        log (`distribution_verdict`) or `within` seconds passed. The clients that did not
        pass, each with why and its last answers (empty: all passed)."""
        failures: dict[str, str] = {}
        for client, allowed in wanted.items():
            log: list[str] = []
            deadline = time.monotonic() + within
            while True:
                log += await self.answers(client, host, port, MIN_LINES)
                verdict = distribution_verdict(log, allowed)
                if verdict is None:
                    break
                if time.monotonic() > deadline:
                    failures[client] = f"{verdict}; last answers {log[-MIN_LINES:]}"
                    break
                await asyncio.sleep(1.0)
        return failures

    async def rules(self, node: str) -> str:
        return await ipvs_rules(node)

    # -- clean-up --------------------------------------------------------------------------

    def forget(self) -> None:
        """Delete what the case made: pods (servers, namespaces) and objects, newest first."""
        for name in list(self._pods):
            self.delete_pod(name)
        for resource, name in reversed(self._objects):
            with contextlib.suppress(Exception):
                self.store.delete(resource, name)
        self._objects.clear()


@dataclass
class Layouts:
    """One layout's cluster at a time, built on first use (see the module docstring)."""

    current: ConformanceCluster | None = None
    build_seconds: dict[str, float] = field(default_factory=dict)
    _stack: contextlib.AsyncExitStack | None = None

    async def get(self, layout: str) -> ConformanceCluster:
        if self.current is not None and self.current.layout == layout:
            self.current.forget()
            return self.current
        await self.close()
        started = time.monotonic()
        stack = contextlib.AsyncExitStack()
        await stack.__aenter__()
        try:
            handles = await stack.enter_async_context(namespace_cluster(LAYOUTS[layout]))
            await handles.proxies.wait_ready()
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        self.current = ConformanceCluster(layout, handles)
        self.build_seconds[layout] = time.monotonic() - started
        return self.current

    async def close(self) -> None:
        if self.current is not None:
            self.current.forget()
        self.current = None
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()


@contextlib.asynccontextmanager
async def layouts() -> AsyncIterator[Layouts]:
    """A `Layouts` whose cluster is torn down at the end."""
    built = Layouts()
    try:
        yield built
    finally:
        await built.close()
