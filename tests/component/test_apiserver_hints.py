"""The optional EndpointSlice hint controller: hints follow the Service's traffic distribution
(and topology-mode Auto), are rewritten when slices or Nodes change, and go away with the
policy — observed through HTTP and watches, as ipvsd will see them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from ipvsd.testing.apiserver import ApiServer
from tests.component.apiserver_support import (
    SERVICES,
    SLICES,
    Api,
    api_for,
    endpoint,
    endpoint_slice,
    next_event,
    node,
    service,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server() -> AsyncIterator[ApiServer]:
    async with ApiServer(hint_controller=True) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def api(server: ApiServer) -> AsyncIterator[Api]:
    async with api_for(server) as client:
        yield client


def echo_endpoints() -> list[dict[str, Any]]:
    """The seed's demo: one pod on mnode-m02 (zone-a), one on mnode-m03 (zone-b)."""
    return [
        endpoint("10.244.1.5", node="mnode-m02", zone="zone-a"),
        endpoint("10.244.2.7", node="mnode-m03", zone="zone-b"),
        endpoint("10.244.2.8", node="mnode-m03", zone="zone-b", ready=False),
    ]


def hints(slice_: dict[str, Any]) -> list[Any]:
    return [e.get("hints") for e in slice_["endpoints"]]


async def make(server: ApiServer, name: str, **spec: Any) -> None:
    server.store.create(service(name, **spec))
    server.store.create(endpoint_slice(f"{name}-abcde", name, echo_endpoints()))


@pytest.mark.parametrize("distribution", ["PreferClose", "PreferSameZone"])
async def test_zone_distributions_hint_each_ready_endpoint_to_its_zone(
    server: ApiServer, api: Api, distribution: str
) -> None:
    name = f"zone-{distribution.lower()}"
    await make(server, name)
    _, before = await api.get(f"{SLICES}/{name}-abcde")
    assert hints(before) == [None, None, None]
    status, _ = await api.patch(
        f"{SERVICES}/{name}", {"spec": {"trafficDistribution": distribution}}
    )
    assert status == 200
    _, after = await api.get(f"{SLICES}/{name}-abcde")  # written before the PATCH returned
    assert hints(after) == [
        {"forZones": [{"name": "zone-a"}]},
        {"forZones": [{"name": "zone-b"}]},
        None,
    ]


async def test_prefer_same_node_hints_node_and_zone(server: ApiServer, api: Api) -> None:
    await make(server, "echo")
    await api.patch(f"{SERVICES}/echo", {"spec": {"trafficDistribution": "PreferSameNode"}})
    _, after = await api.get(f"{SLICES}/echo-abcde")
    assert hints(after) == [
        {"forZones": [{"name": "zone-a"}], "forNodes": [{"name": "mnode-m02"}]},
        {"forZones": [{"name": "zone-b"}], "forNodes": [{"name": "mnode-m03"}]},
        None,
    ]


async def test_hints_are_removed_when_the_distribution_goes_away(
    server: ApiServer, api: Api
) -> None:
    await make(server, "fading", trafficDistribution="PreferSameNode")
    _, hinted = await api.get(f"{SLICES}/fading-abcde")
    assert hints(hinted)[0] is not None
    await api.patch(f"{SERVICES}/fading", {"spec": {"trafficDistribution": None}})
    _, plain = await api.get(f"{SLICES}/fading-abcde")
    assert hints(plain) == [None, None, None]


async def test_slice_changes_get_hints_and_watchers_see_service_then_slice(
    server: ApiServer, api: Api
) -> None:
    server.store.create(service("growing", trafficDistribution="PreferSameZone"))
    _, listed = await api.get(SLICES)
    async with api.stream(SLICES, resourceVersion=listed["metadata"]["resourceVersion"]) as stream:
        status, created = await api.post(
            SLICES, endpoint_slice("growing-1", "growing", [endpoint("10.0.0.1", zone="z1")])
        )
        assert status == 201
        assert hints(created) == [None]
        added = await next_event(stream)
        hinted = await next_event(stream)
        assert added["type"] == "ADDED"
        assert hints(added["object"]) == [None]
        assert hinted["type"] == "MODIFIED"
        assert hints(hinted["object"]) == [{"forZones": [{"name": "z1"}]}]
        await api.patch(
            f"{SLICES}/growing-1",
            {"endpoints": [endpoint("10.0.0.1", zone="z1"), endpoint("10.0.0.2", zone="z2")]},
        )
        await next_event(stream)
        rewritten = await next_event(stream)
        assert hints(rewritten["object"]) == [
            {"forZones": [{"name": "z1"}]},
            {"forZones": [{"name": "z2"}]},
        ]


async def test_slices_of_other_controllers_are_left_alone(server: ApiServer, api: Api) -> None:
    server.store.create(service("foreign", trafficDistribution="PreferClose"))
    foreign = endpoint_slice("foreign-1", "foreign", [endpoint("10.0.0.1", zone="z1")])
    foreign["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] = "someone-else"
    server.store.create(foreign)
    managed = endpoint_slice("foreign-2", "foreign", [endpoint("10.0.0.2", zone="z2")])
    managed["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] = (
        "endpointslice-controller.k8s.io"
    )
    server.store.create(managed)
    _, left_alone = await api.get(f"{SLICES}/foreign-1")
    _, hinted = await api.get(f"{SLICES}/foreign-2")
    assert hints(left_alone) == [None]
    assert hints(hinted) == [{"forZones": [{"name": "z2"}]}]


async def test_topology_mode_auto_allocates_by_zone_cpu_and_follows_nodes(
    server: ApiServer, api: Api
) -> None:
    for name, zone in (("node-a", "zone-a"), ("node-b", "zone-b")):
        server.store.create(node(name, zone=zone, cpu="4"))
    document = service("auto", trafficDistribution="PreferSameNode")  # the annotation wins
    document["metadata"]["annotations"] = {"service.kubernetes.io/topology-mode": "Auto"}
    server.store.create(document)
    endpoints = [endpoint(f"10.1.0.{i}", zone="zone-a") for i in range(3)] + [
        endpoint("10.1.1.1", zone="zone-b")
    ]
    server.store.create(endpoint_slice("auto-1", "auto", endpoints))
    _, balanced = await api.get(f"{SLICES}/auto-1")
    zones = [h["forZones"][0]["name"] for h in hints(balanced)]
    assert sorted(zones) == ["zone-a", "zone-a", "zone-b", "zone-b"]  # one endpoint moved to b
    assert all("forNodes" not in h for h in hints(balanced))
    await api.patch(
        "/api/v1/nodes/node-b", {"metadata": {"labels": {"topology.kubernetes.io/zone": "zone-a"}}}
    )
    _, one_zone = await api.get(f"{SLICES}/auto-1")
    assert hints(one_zone) == [None] * 4  # a single zone: no hints, as upstream


async def test_without_the_controller_nothing_writes_hints() -> None:
    async with ApiServer() as plain, api_for(plain) as client:
        plain.store.create(service("quiet", trafficDistribution="PreferSameNode"))
        plain.store.create(endpoint_slice("quiet-1", "quiet", echo_endpoints()))
        _, untouched = await client.get(f"{SLICES}/quiet-1")
        assert hints(untouched) == [None, None, None]
