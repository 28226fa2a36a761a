"""A namespace cluster, running: network, API emulator, one ipvsd per node; and the demo's.

    async with namespace_cluster(node_specs(["zone-a", "zone-a", "zone-b"])) as nodes:
        ...                                        # any nodes and zones; workload is the caller's
    async with running_cluster() as cluster:       # the demo's three nodes with its workload
        print(await cluster.listing("mnode-m02"))  # that node's `ipvsadm -Ln`
        counts = await cluster.hit()               # the seed's hit.sh from the client pod

`namespace_cluster` is the builder (root, inside the IPVS VM): the network of `cluster_net`
for the given nodes, the emulator, the Nodes registered with their zone labels, and every
node's ipvsd started (through `cluster_proxies`' forking supervisors, so restarts are cheap);
it does not wait for them to be healthy, so the caller's workload overlaps their start.
`running_cluster` is the demo on top of it. The emulator runs in the caller's event loop on the
nodes' segment (192.168.49.1:8443) with its hint controller on; the demo's Nodes carry the
seed's zone labels; Service `echo` (port 80 → 5678) is created through the API; the `echo` pods
run on mnode-m02 (zone-a) and mnode-m03 (zone-b) and the `client` pod on mnode-m02, as in the
seed's walkthrough. See `cluster_net`
(namespaces), `cluster_workload` (the controllers played by hand), `cluster_proxies` (the
daemons) and `cluster_kubectl` (changes through the API).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipvsd.testing.apiserver import ApiServer
from ipvsd.testing.cluster_kubectl import Editor
from ipvsd.testing.cluster_net import (
    HOST_ADDRESS,
    NODES,
    ClusterNet,
    NodeSpec,
    PodNet,
    http_request,
)
from ipvsd.testing.cluster_proxies import NodeProxies
from ipvsd.testing.cluster_workload import EchoApp, register_nodes, start_client

API_PORT = 8443
SERVICE_PORT = 80
CLIENT_NODE = "mnode-m02"
ECHO_NODES = ["mnode-m02", "mnode-m03"]
ECHO_SERVICE = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "echo", "namespace": "default"},
    "spec": {"selector": {"app": "echo"},
             "ports": [{"port": SERVICE_PORT, "targetPort": 5678, "protocol": "TCP"}]},
}  # fmt: skip


async def run_in(namespace: str, *argv: str) -> str:
    """A command's stdout, run inside a node's namespace (`ip netns exec`)."""
    process = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", namespace, *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"{' '.join(argv)} in {namespace}: {err.decode().strip()}")
    return out.decode()


def hit_label(answer: dict[str, Any]) -> str:
    """`POD_NAME@NODE_NAME`, as the seed's hit.sh extracts it with jq."""
    env = answer.get("env")
    if not isinstance(env, dict):
        return "(no JSON)"
    return f"{env.get('POD_NAME')}@{env.get('NODE_NAME')}"


async def ipvs_rules(node: str) -> str:
    """The node's IPVS table as `ipvsadm -Sn` prints it."""
    return await run_in(node, "ipvsadm", "-Sn")


@dataclass
class NamespaceCluster:
    """Handles on a built cluster (see `namespace_cluster`)."""

    net: ClusterNet
    server: ApiServer
    proxies: NodeProxies
    scratch: Path


@contextlib.asynccontextmanager
async def namespace_cluster(
    nodes: tuple[NodeSpec, ...] = NODES,
    *,
    hint_controller: bool = True,
    ipvsd_flags: tuple[str, ...] = (),
    ipvsd_env: dict[str, str] | None = None,
) -> AsyncIterator[NamespaceCluster]:
    """Build the network of `nodes`, serve the API emulator on their segment, register the
    Nodes and start one ipvsd per node (not yet healthy); tear everything down afterwards."""
    await asyncio.to_thread(subprocess.run, ["modprobe", "ip_vs"], check=True)
    scratch = Path(tempfile.mkdtemp(prefix="ipvsd-cluster-"))
    net = ClusterNet(nodes)
    proxies = NodeProxies(
        scratch / "kubeconfig", net.nodes, scratch, ipvsd_flags, dict(ipvsd_env or {})
    )
    try:
        await asyncio.to_thread(net.build)
        server = ApiServer(
            host=HOST_ADDRESS, port=API_PORT, kubeconfig_path=proxies.kubeconfig,
            hint_controller=hint_controller,
        )  # fmt: skip
        async with server:
            register_nodes(server.store, net.nodes)
            try:
                await proxies.start()
                yield NamespaceCluster(net, server, proxies, scratch)
            finally:
                await proxies.stop()
    finally:
        await proxies.stop()
        await asyncio.to_thread(net.close)
        shutil.rmtree(scratch, ignore_errors=True)


@dataclass
class Cluster:
    """Handles on the running cluster (see the module docstring)."""

    net: ClusterNet
    server: ApiServer
    app: EchoApp
    client: PodNet
    proxies: NodeProxies
    editor: Editor

    def service(self) -> dict[str, Any]:
        return self.server.store.get("services", "echo")

    @property
    def cluster_ip(self) -> str:
        return str(self.service()["spec"]["clusterIP"])

    async def rules(self, node: str) -> str:
        """The node's IPVS table as `ipvsadm -Sn` prints it."""
        return await ipvs_rules(node)

    async def listing(self, node: str) -> str:
        """The node's IPVS table as `ipvsadm -Ln` prints it (what the demo shows)."""
        return await run_in(node, "ipvsadm", "-Ln")

    async def settle(self, checks: dict[str, Callable[[str], bool]], within: float = 30.0) -> bool:
        """Until every node's `ipvsadm -Sn` passes its check and has the ClusterIP bound (the
        daemons caught up: ipvsd binds a new VIP after its virtual servers), or False after
        `within` seconds: the caller then measures anyway and the measurement tells."""
        deadline = time.monotonic() + within
        while True:
            tables = {node: await self.rules(node) for node in checks}
            if all(check(tables[node]) for node, check in checks.items()) and all(
                [await self._cluster_ip_bound(node) for node in checks]
            ):
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.3)

    async def _cluster_ip_bound(self, node: str) -> bool:
        try:
            device = await run_in(node, "ip", "-br", "addr", "show", "kube-ipvs0")
        except RuntimeError:  # not created yet
            return False
        return f" {self.cluster_ip}/" in device

    async def hit(self, count: int = 20) -> Counter[str]:
        """The seed's hit.sh: `count` requests from the client pod to the Service, each on a
        fresh connection, counted per `POD_NAME@NODE_NAME` (errors counted by kind)."""
        vip = self.cluster_ip

        def requests() -> Counter[str]:
            counts: Counter[str] = Counter()
            for _ in range(count):
                try:
                    counts[hit_label(http_request(self.client.name, vip, SERVICE_PORT).body)] += 1
                except OSError as error:
                    counts[f"({type(error).__name__})"] += 1
            return counts

        return await asyncio.to_thread(requests)


@contextlib.asynccontextmanager
async def running_cluster(
    *, use_kubectl: bool | None = None, say: Callable[[str], None] = print
) -> AsyncIterator[Cluster]:
    """Build and start everything; tear it all down afterwards (see the module docstring)."""
    started = time.monotonic()
    async with namespace_cluster(NODES) as nodes:
        net, server, proxies = nodes.net, nodes.server, nodes.proxies
        built = time.monotonic()
        say(f"nodes {', '.join(n.name for n in net.nodes)}: namespaces on a bridge; "
            f"API emulator at {server.url}; one ipvsd per node starting")  # fmt: skip
        editor = Editor.for_kubeconfig(server.kubeconfig_path, use_kubectl=use_kubectl)
        app = EchoApp(server.store, net)
        await asyncio.to_thread(app.rollout, ECHO_NODES)
        client = await asyncio.to_thread(start_client, server.store, net, CLIENT_NODE)
        say(await editor.apply(ECHO_SERVICE))
        workload = time.monotonic()
        await proxies.wait_ready()
        cluster = Cluster(net, server, app, client, proxies, editor)
        # Healthy is not yet synced: wait for every node's first programming of `echo`.
        entry = f"-A -t {cluster.cluster_ip}:{SERVICE_PORT} "
        if not await cluster.settle({n.name: lambda t: entry in t for n in net.nodes}, 300):
            raise RuntimeError(f"Service echo not programmed on every node:\n{proxies.tails()}")
        now = time.monotonic()
        say(f"cluster up in {now - started:.1f}s: network and daemons started "
            f"{built - started:.1f}s, pods and Service {workload - built:.1f}s, every ipvsd "
            f"synced {now - workload:.1f}s later (changes via {editor.via})")  # fmt: skip
        yield cluster
