"""Traffic between nodes that only a two-node cluster shows, through one ipvsd per node.

The namespace cluster of `ipvsd.testing.cluster` (node-1 192.168.49.2, node-2 192.168.49.3,
pod CIDRs 10.244.0.0/24 and 10.244.1.0/24, routed between the nodes): the one `echo` pod,
behind Services `echo` and `local`, runs on node-2. Both daemons start without a detect-local
(`--cluster-cidr=` empty), so pods cannot be told from other sources.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ipvsd.testing.cluster import ipvs_rules, namespace_cluster, run_in
from ipvsd.testing.cluster_net import OUTSIDE, http_request, node_specs
from ipvsd.testing.cluster_workload import EchoApp, start_client

pytestmark = pytest.mark.kernel

NODES = node_specs([None, None])  # node-1, node-2
ECHO = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "echo", "namespace": "default"},
    "spec": {"ports": [{"port": 80, "targetPort": 5678, "protocol": "TCP"}]},
}  # fmt: skip
LOCAL = {  # the same pod behind a LoadBalancer Service with externalTrafficPolicy: Local
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "local", "namespace": "default"},
    "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
             "ports": [{"port": 80, "targetPort": 5678, "protocol": "TCP"}]},
}  # fmt: skip


async def until_programmed(node: str, line: str, within: float = 120.0) -> None:
    for _ in range(int(within / 0.3)):
        if line in await ipvs_rules(node):
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"{node} never got {line!r}:\n{await ipvs_rules(node)}")


async def until_firewall(node: str, text: str, within: float = 120.0) -> None:
    """Until the node's nftables table (`nft list table inet ipvsd`) shows `text`."""
    for _ in range(int(within / 0.3)):
        if text in await run_in(node, "nft", "list", "table", "inet", "ipvsd"):
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"{node}'s table never showed {text!r}")


def ask(namespace: str, host: str, port: int) -> dict[str, Any]:
    """The echo pod's answer (who it is, whom it saw) to one request from `namespace`."""
    return http_request(namespace, host, port).body


@pytest.mark.timeout(600)  # two daemons import and start under emulation, one restarts
async def test_a_node_and_then_its_pods_reach_services_whose_pod_runs_on_the_other_node() -> None:
    """1. kube-proxy's `src,dst` rule (issue 16, item 2): node-1's own connection to the
    ClusterIP leaves from the ClusterIP (the address on its kube-ipvs0); unless it is
    masqueraded, the pod answers that address and node-2, which has it on its own
    kube-ipvs0, keeps the answer. Masqueraded, the pod sees node-1's address.

    2. node-1's ipvsd restarted with `--detect-local-mode=NodeCIDR` (its Node's podCIDR
    10.244.0.0/24): a pod of node-1 reaches the NodePort of an externalTrafficPolicy: Local
    Service whose only pod is on node-2 through node-1 (item 1), unmasqueraded; a client
    outside the cluster does not, and node-1's health check port answers 503."""
    flags = ("--cluster-cidr=",)
    async with namespace_cluster(NODES, hint_controller=False, ipvsd_flags=flags) as cluster:
        store, net, proxies = cluster.server.store, cluster.net, cluster.proxies
        EchoApp(store, net, also_for=("local",)).add_pod("node-2")
        store.create(ECHO)
        store.create(LOCAL)
        vip = store.get("services", "echo")["spec"]["clusterIP"]
        await proxies.wait_ready()
        for node in ("node-1", "node-2"):
            await until_programmed(node, f"-a -t {vip}:80 -r 10.244.1.2:5678")
        answer = await asyncio.to_thread(ask, "node-1", vip, 80)
        assert (answer["env"]["NODE_NAME"], answer["client"]) == ("node-2", "192.168.49.2")

        proxies.extra_flags = ("--detect-local-mode=NodeCIDR",)
        await proxies.restart("node-1")
        await until_firewall("node-1", "10.244.0.0/24")  # /healthz is 200 before the first sync
        local = store.get("services", "local")["spec"]
        node_port, health_port = local["ports"][0]["nodePort"], local["healthCheckNodePort"]
        await until_programmed("node-1", f"-A -t 192.168.49.2:{node_port} ")
        client = start_client(store, net, "node-1")
        answer = await asyncio.to_thread(ask, client.name, "192.168.49.2", node_port)
        assert (answer["env"]["NODE_NAME"], answer["client"]) == ("node-2", client.address)
        with pytest.raises((TimeoutError, ConnectionRefusedError)):
            await asyncio.to_thread(http_request, OUTSIDE, "192.168.49.2", node_port, timeout=2)
        health = await asyncio.to_thread(http_request, OUTSIDE, "192.168.49.2", health_port)
        assert (health.status, health.body["localEndpoints"]) == (503, 0)
