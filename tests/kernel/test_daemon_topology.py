"""ipvsd's own topology through the whole daemon, with real packets: weights and topology keys.

The daemon runs for `node-a` (zone-a). The EndpointSlices place `pod-a` on node-a, `pod-b` on
node-b (zone-a) and `pod-c` on node-c (zone-b); all three physically hang off this VM, but
the proxy only goes by what the API says.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ipvsd.testing.netns import Lab, http_get
from tests.kernel.daemon_support import (
    SERVICES,
    SLICES,
    Api,
    endpoint_slice,
    ipvsadm,
    running_daemon,
    until,
    until_serving,
)

pytestmark = pytest.mark.kernel
PODS = [("10.200.1.2", "node-a"), ("10.200.2.2", "node-b"), ("10.200.4.2", "node-c")]


@pytest.fixture
async def cluster() -> AsyncIterator[tuple[Api, Lab]]:
    async with running_daemon() as (api, net):
        net.serve("pod-c", net.add_namespace("pod-c"), 8080)
        for name, zone in (("node-b", "zone-a"), ("node-c", "zone-b")):
            await api.send("POST", "/api/v1/nodes", {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {
                    "topology.kubernetes.io/zone": zone, "kubernetes.io/hostname": name}},
            })  # fmt: skip
        yield api, net


async def create(api: Api, name: str, annotations: dict[str, str], pods: list[Any]) -> str:
    """A ClusterIP Service on port 80 → 8080 with endpoints on `pods`; its ClusterIP."""
    service = await api.send(
        "POST", SERVICES,
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": name, "annotations": annotations},
         "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}},
    )  # fmt: skip
    await api.send("POST", SLICES, endpoint_slice(name, pods))
    return str(service["spec"]["clusterIP"])


def spread(vip: str, requests: int) -> Counter[str]:
    return Counter(http_get("client", vip, 80).split()[0] for _ in range(requests))


async def test_weight_mode_sends_most_traffic_to_the_closest_pods(
    cluster: tuple[Api, Lab],
) -> None:
    api, _net = cluster
    vip = await create(api, "weighted", {"ipvsd.io/topology-mode": "weight"}, PODS)
    await until(lambda: f"-A -t {vip}:80 -s wrr" in ipvsadm())
    await until_serving(vip, f"-a -t {vip}:80 -r 10.200.4.2:8080 -m -w 1")
    table = ipvsadm()
    assert f"-a -t {vip}:80 -r 10.200.1.2:8080 -m -w 100" in table
    assert f"-a -t {vip}:80 -r 10.200.2.2:8080 -m -w 10" in table

    # wrr is periodic over the sum of the weights: 111 connections are one whole cycle.
    got = await asyncio.to_thread(spread, vip, 111)
    assert abs(got["pod-a"] - 100) <= 2, got
    assert abs(got["pod-b"] - 10) <= 2, got
    assert 1 <= got["pod-c"] <= 3, got

    events = await api.send("GET", "/api/v1/namespaces/default/events")
    reasons = {(e["type"], e["reason"]) for e in events["items"]
               if e["involvedObject"]["name"] == "weighted"}  # fmt: skip
    assert ("Normal", "SchedulerSubstituted") in reasons


async def test_weight_mode_keeps_the_service_alive_when_local_pods_go(
    cluster: tuple[Api, Lab],
) -> None:
    api, _net = cluster
    vip = await create(api, "resilient", {"ipvsd.io/topology-mode": "weight"}, PODS[:1])
    await until_serving(vip, f"-a -t {vip}:80 -r 10.200.1.2:8080 -m -w 100")
    await api.send("PUT", f"{SLICES}/resilient-1", endpoint_slice("resilient", PODS[2:]))
    await until(lambda: f"-a -t {vip}:80 -r 10.200.4.2:8080 -m -w 1" in ipvsadm())
    assert set((await asyncio.to_thread(spread, vip, 5)).elements()) == {"pod-c"}


async def test_topology_keys_pick_the_first_matching_key_and_drop_without_wildcard(
    cluster: tuple[Api, Lab],
) -> None:
    api, _net = cluster
    keys = "ipvsd.io/topology-keys"
    zone_first = await create(
        api, "zoned", {keys: "kubernetes.io/hostname,topology.kubernetes.io/zone"}, PODS[1:]
    )
    strict = await create(api, "strict", {keys: "kubernetes.io/hostname"}, PODS[1:])
    wildcard = await create(api, "wildcard", {keys: "kubernetes.io/hostname,*"}, PODS[1:])
    await until_serving(zone_first, f"-a -t {zone_first}:80 -r 10.200.2.2:8080")
    await until_serving(wildcard, f"-a -t {wildcard}:80 -r 10.200.4.2:8080")
    await until_serving(strict, f"-A -t {strict}:80 -s rr")
    table = ipvsadm()
    assert f"-a -t {zone_first}:80 -r 10.200.4.2:8080" not in table  # zone-b is left out
    assert f"-a -t {strict}:80 -r" not in table

    assert set((await asyncio.to_thread(spread, zone_first, 6)).elements()) == {"pod-b"}
    assert set((await asyncio.to_thread(spread, wildcard, 6)).elements()) == {"pod-b", "pod-c"}
    with pytest.raises((TimeoutError, ConnectionRefusedError)):  # strict: nothing matches
        await asyncio.to_thread(http_get, "client", strict, 80, timeout=2)
