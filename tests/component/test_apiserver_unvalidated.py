"""The emulator's `acceptAnything` fault: a resource stored and served as given, as a buggy
controller writing through a lax server would leave it, so ipvsd's tests can serve it
objects the real API server would refuse."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ipvsd.testing.apiserver import ApiServer
from tests.component.apiserver_support import SERVICES, SLICES, Api, api_for, endpoint_slice

pytestmark = pytest.mark.timeout(20)

GARBAGE = {
    "apiVersion": "discovery.k8s.io/v1",
    "kind": "EndpointSlice",
    "metadata": {"name": "garbage", "labels": ["not", "a", "map"]},
    "addressType": 4,
    "ports": {"port": 65536},
    "endpoints": "10.0.0.1",
}


@pytest.fixture
async def api() -> AsyncIterator[tuple[ApiServer, Api]]:
    async with ApiServer() as server, api_for(server) as client:
        yield server, client


async def test_refused_until_switched_on_then_stored_listed_watched_and_deleted_as_given(
    api: tuple[ApiServer, Api],
) -> None:
    server, client = api
    assert (await client.post(SLICES, GARBAGE))[0] == 400

    status, body, _ = await client.request(
        "POST", "/_emulator/faults", {"acceptAnything": {"resources": ["endpointslices"]}}
    )
    assert (status, body["acceptingAnything"]) == (200, ["endpointslices"])
    status, created = await client.post(SLICES, GARBAGE)
    assert status == 201
    assert {k: created[k] for k in ("addressType", "ports", "endpoints")} == {
        "addressType": 4,
        "ports": {"port": 65536},
        "endpoints": "10.0.0.1",
    }
    assert created["metadata"]["labels"] == ["not", "a", "map"]
    listed = (await client.get(SLICES, labelSelector="!kubernetes.io/service-name"))[1]
    assert [item["endpoints"] for item in listed["items"]] == ["10.0.0.1"]

    version = listed["metadata"]["resourceVersion"]
    changed = {**created, "endpoints": [{"addresses": None}]}
    assert (await client.put(f"{SLICES}/garbage", changed))[0] == 200
    assert (await client.delete(f"{SLICES}/garbage"))[0] == 200
    events = await client.watch(SLICES, resourceVersion=version, count=2)
    assert [(e["type"], e["object"]["endpoints"]) for e in events] == [
        ("MODIFIED", [{"addresses": None}]),
        ("DELETED", [{"addresses": None}]),
    ]

    server.store.accept_anything("endpointslices", enabled=False)
    assert (await client.post(SLICES, GARBAGE))[0] == 400
    valid = endpoint_slice("fine", "web", [{"addresses": ["10.0.0.1"]}])
    assert (await client.post(SLICES, valid))[0] == 201


async def test_an_unvalidated_service_gets_no_defaults_and_allocates_nothing(
    api: tuple[ApiServer, Api],
) -> None:
    server, client = api
    server.store.accept_anything("services")
    bad = {"metadata": {"name": "bad"}, "spec": {"clusterIP": ["10.96.0.1"], "ports": "80"}}
    status, created = await client.post(SERVICES, bad)
    assert status == 201
    assert created["spec"] == {"clusterIP": ["10.96.0.1"], "ports": "80"}
    assert (await client.delete(f"{SERVICES}/bad"))[0] == 200
    assert (await client.post(SERVICES, {"metadata": "bad"}))[0] == 400
