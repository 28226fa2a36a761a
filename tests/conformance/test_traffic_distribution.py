"""traffic_distribution.go, all of it, with real packets through one ipvsd per node.

Upstream's setups: a Service with `trafficDistribution` (port 80 → 9376), server pods on chosen
nodes, one client pod per chosen node asking the Service once a second; its pass rule per
client (`distribution_verdict`): every answer from the client's allowed set, every allowed
endpoint reached, at least 10 good answers in a row. The emulator's hint controller writes the
hints as the EndpointSlice controller does (`forZones` for PreferClose/PreferSameZone, also
`forNodes` for PreferSameNode). Layout A (one node per zone) first, then layout B (two nodes per
zone): the layout B cluster is built once, after the layout A cases.
"""

from __future__ import annotations

import pytest

from ipvsd.testing.cluster_net import PodNet
from ipvsd.testing.conformance_cluster import ConformanceCluster, Endpoint

FILE = "test/e2e/network/traffic_distribution.go"
PORT, TARGET = 80, 9376
pytestmark = [
    pytest.mark.kernel,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.timeout(1200),  # the first case of a layout builds its cluster
]


def service(name: str, distribution: str) -> dict[str, object]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"app": name}, "trafficDistribution": distribution,
                 "ports": [{"port": PORT, "targetPort": TARGET, "protocol": "TCP"}]},
    }  # fmt: skip


async def check(
    cluster: ConformanceCluster,
    name: str,
    distribution: str,
    servers: list[str],
    clients: list[tuple[str, list[int]]],
) -> None:
    """Servers on the nodes of `servers`; per (node, indexes into servers) a client that may
    reach only those servers; upstream's check on every client."""
    cluster.create(service(name, distribution))
    pods = [
        cluster.server(f"{name}-server-{i}", node, TARGET, {"app": name})
        for i, node in enumerate(servers)
    ]
    cluster.write_slice(name, [Endpoint(pod) for pod in pods], (("", "TCP", TARGET),))
    wanted: dict[str, set[str]] = {}
    for i, (node, allowed) in enumerate(clients):
        client = cluster.client(f"{name}-client-{i}", node)
        wanted[client.name] = {pods[j].name for j in allowed}
    failures = await cluster.distribution(wanted, cluster.cluster_ip(name), PORT)
    assert not failures, failures


# --- layout A: zone-a (node-1), zone-b (node-2), zone-c (node-3) ------------------------------
# upstream's allocateClientsAndServers: a client in each zone, servers in the first two zones;
# the clients with a server in their zone reach only it, the third reaches both.
SAME_ZONE_SERVERS = ["node-1", "node-2"]
SAME_ZONE_CLIENTS = [("node-1", [0]), ("node-2", [1]), ("node-3", [0, 1])]


@pytest.mark.upstream("should route traffic to an endpoint in the same zone when using PreferClose",
                      FILE)  # fmt: skip
async def test_prefer_close_same_zone(layout_a: ConformanceCluster) -> None:
    await check(layout_a, "td-close", "PreferClose", SAME_ZONE_SERVERS, SAME_ZONE_CLIENTS)


@pytest.mark.upstream(
    "should route traffic to an endpoint in the same zone when using PreferSameZone", FILE
)
async def test_prefer_same_zone_same_zone(layout_a: ConformanceCluster) -> None:
    await check(layout_a, "td-zone", "PreferSameZone", SAME_ZONE_SERVERS, SAME_ZONE_CLIENTS)


@pytest.mark.upstream(
    "should route traffic to an endpoint on the same node when using PreferSameNode and fall "
    "back when the endpoint becomes unavailable",
    FILE,
)
async def test_prefer_same_node_falls_back_and_returns(layout_a: ConformanceCluster) -> None:
    """A client and a server on each of two nodes: each client reaches its own node's server;
    the first server deleted (out of the slice, then gone), both clients reach the other; a
    new server on the first node, and each client reaches only its own node's again."""
    cluster, name = layout_a, "td-node"
    cluster.create(service(name, "PreferSameNode"))
    servers = [cluster.server(f"{name}-server-{i}", f"node-{i + 1}", TARGET, {"app": name})
               for i in range(2)]  # fmt: skip
    clients = [cluster.client(f"{name}-client-{i}", f"node-{i + 1}") for i in range(2)]
    vip = cluster.cluster_ip(name)

    def endpoints(pods: list[PodNet]) -> None:
        cluster.write_slice(name, [Endpoint(pod) for pod in pods], (("", "TCP", TARGET),))

    endpoints(servers)
    own = {clients[i].name: {servers[i].name} for i in range(2)}
    assert not (failures := await cluster.distribution(own, vip, PORT)), failures

    endpoints(servers[1:])  # the EndpointSlice controller drops the deleted pod first
    cluster.delete_pod(servers[0].name)
    remaining = {client.name: {servers[1].name} for client in clients}
    assert not (failures := await cluster.distribution(remaining, vip, PORT)), failures

    new = cluster.server(f"{name}-server-0-new", "node-1", TARGET, {"app": name})
    endpoints([new, servers[1]])
    again = {clients[0].name: {new.name}, clients[1].name: {servers[1].name}}
    assert not (failures := await cluster.distribution(again, vip, PORT)), failures


# --- layout B: zone-a (node-1, node-2), zone-b (node-3, node-4), zone-c (node-5, node-6) -------
# upstream's allocateMultiNodeClientsAndServers: zone-a a client and a server on each node,
# zone-b a client on one node and a server on the other, zone-c a client only.
MULTI_SERVERS = ["node-1", "node-2", "node-4"]


@pytest.mark.upstream(
    "should route traffic correctly between pods on multiple nodes when using PreferClose", FILE
)
async def test_prefer_close_multiple_nodes(layout_b: ConformanceCluster) -> None:
    clients = [("node-1", [0, 1]), ("node-2", [0, 1]), ("node-3", [2]), ("node-5", [0, 1, 2])]
    await check(layout_b, "td-close-b", "PreferClose", MULTI_SERVERS, clients)


@pytest.mark.upstream(
    "should route traffic correctly between pods on multiple nodes when using PreferSameZone",
    FILE,
)
async def test_prefer_same_zone_multiple_nodes(layout_b: ConformanceCluster) -> None:
    clients = [("node-1", [0, 1]), ("node-2", [0, 1]), ("node-3", [2]), ("node-5", [0, 1, 2])]
    await check(layout_b, "td-zone-b", "PreferSameZone", MULTI_SERVERS, clients)


@pytest.mark.upstream(
    "should route traffic to an endpoint on the same node or fall back to same zone when using "
    "PreferSameNode",
    FILE,
)
async def test_prefer_same_node_or_same_zone(layout_b: ConformanceCluster) -> None:
    """zone-a's clients reach only their own node's server; zone-b's client, with no server
    on its node, its zone's server; zone-c's client, with neither, every server."""
    clients = [("node-1", [0]), ("node-2", [1]), ("node-3", [2]), ("node-5", [0, 1, 2])]
    await check(layout_b, "td-node-b", "PreferSameNode", MULTI_SERVERS, clients)
