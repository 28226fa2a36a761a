"""topology_hints.go's "should distribute endpoints evenly", with real packets (layout A).

Upstream: a server pod on every node (a DaemonSet), a Service annotated
`service.kubernetes.io/topology-mode: Auto`; once the EndpointSlice controller has given every
endpoint a hint for its own zone, a client pod in each zone must reach only servers of its
zone. Here the emulator's hint controller plays kube-controller-manager (three zones of equal
allocatable CPU, one endpoint each: each zone gets its own).
"""

from __future__ import annotations

import asyncio

import pytest

from ipvsd.testing.conformance_cluster import ConformanceCluster, Endpoint

FILE = "test/e2e/network/topology_hints.go"
PORT, TARGET = 80, 9376
pytestmark = [
    pytest.mark.kernel,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.timeout(1200),
]


def zone_hints(cluster: ConformanceCluster, slice_name: str) -> dict[str, list[str]]:
    """Endpoint address → the zones its hints name."""
    found = cluster.store.get("endpointslices", slice_name)
    return {
        endpoint["addresses"][0]: [z["name"] for z in (endpoint.get("hints") or {}).get(
            "forZones", [])]
        for endpoint in found["endpoints"]
    }  # fmt: skip


@pytest.mark.upstream("should distribute endpoints evenly", FILE)
async def test_should_distribute_endpoints_evenly(layout_a: ConformanceCluster) -> None:
    cluster, name = layout_a, "topology-hints"
    cluster.create({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default",
                     "annotations": {"service.kubernetes.io/topology-mode": "Auto"}},
        "spec": {"selector": {"app": name},
                 "ports": [{"port": PORT, "targetPort": TARGET, "protocol": "TCP"}]},
    })  # fmt: skip
    servers = [
        cluster.server(f"{name}-{node.name}", node.name, TARGET, {"app": name})
        for node in cluster.nodes
    ]
    cluster.write_slice(name, [Endpoint(pod) for pod in servers], (("", "TCP", TARGET),))
    for _ in range(50):  # the hint controller runs after the write that triggers it
        hints = zone_hints(cluster, f"{name}-ep")
        if all(hints.get(pod.address) == [pod.node.zone] for pod in servers):
            break
        await asyncio.sleep(0.2)
    assert all(hints.get(pod.address) == [pod.node.zone] for pod in servers), hints

    wanted = {}
    for pod in servers:
        client = cluster.client(f"{name}-client-{pod.node.name}", pod.node.name)
        wanted[client.name] = {pod.name}
    failures = await cluster.distribution(wanted, cluster.cluster_ip(name), PORT)
    assert not failures, failures
