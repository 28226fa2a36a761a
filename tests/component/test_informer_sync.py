"""Informers against the API emulator: what gets listed and watched, in both list modes, and
when `synced` may be trusted."""

from __future__ import annotations

import asyncio

import pytest

from ipvsd.kube.watch import ListMode
from ipvsd.testing.apiserver import ApiServer, RequestRecord
from tests.component.informer_support import (
    HEADLESS_LABEL,
    KUBERNETES,
    PROXY_NAME_LABEL,
    Recorder,
    emulator,
    endpoint_slice,
    eventually,
    node,
    running,
    service,
)

pytestmark = pytest.mark.timeout(15)


def populate(server: ApiServer) -> None:
    """One object of every kind the proxy must take or leave alone."""
    server.store.load(
        [
            service("plain"),
            service("ours", labels={PROXY_NAME_LABEL: "ipvsd"}),
            service("theirs", labels={PROXY_NAME_LABEL: "other-proxy"}),
            service("headless-labelled", labels={HEADLESS_LABEL: ""}),
            service("headless", clusterIP="None"),
            service("external", type="ExternalName", externalName="example.com", ports=[]),
            endpoint_slice("plain-1", "plain", "10.0.0.1"),
            endpoint_slice("ours-1", "ours", "10.0.0.2", labels={PROXY_NAME_LABEL: "ipvsd"}),
            endpoint_slice("theirs-1", "theirs", "10.0.0.3", labels={PROXY_NAME_LABEL: "other"}),
            endpoint_slice("headless-1", "headless", "10.0.0.4", labels={HEADLESS_LABEL: ""}),
            node("node-a", "zone-a"),
            node("node-b", "zone-b"),
        ]
    )


def watch_requests(server: ApiServer) -> list[RequestRecord]:
    return [r for r in server.requests if r.query.get("watch") == "true"]


@pytest.mark.parametrize("mode", [ListMode.LIST, ListMode.STREAM], ids=["list", "stream"])
async def test_both_list_modes_take_exactly_what_kube_proxy_would_plus_ours(
    mode: ListMode,
) -> None:
    async with emulator() as server:
        populate(server)
        async with running(server, mode=mode) as informers:
            # default/kubernetes: the API server's own Service, which kube-proxy takes too.
            assert sorted(informers.services.store) == [KUBERNETES, "default/ours", "default/plain"]
            assert sorted(informers.endpoint_slices.store) == [
                KUBERNETES,
                "default/ours-1",
                "default/plain-1",
            ]
            assert list(informers.own_node.store) == ["node-a"]
            assert informers.own_node.store["node-a"].zone == "zone-a"
            assert informers.nodes is None

            server.store.create(service("later"))
            server.store.delete("services", "plain")
            await eventually(lambda: "default/later" in informers.services.store)
            await eventually(lambda: "default/plain" not in informers.services.store)

            server.drop_watches(mode="end")  # open watches are logged once they end
            await eventually(lambda: len(watch_requests(server)) >= 5)

        watches = watch_requests(server)
        lists = [r for r in server.requests if r.query.get("limit")]
        streamed = [r for r in watches if r.query.get("sendInitialEvents") == "true"]
        if mode is ListMode.STREAM:
            assert lists == []
            assert len(streamed) >= 5  # two per Service and EndpointSlice, one for the Node
        else:
            assert len(lists) == 5
            assert streamed == []
        assert all(r.query.get("allowWatchBookmarks") == "true" for r in watches)
        node_requests = [r for r in server.requests if r.path == "/api/v1/nodes"]
        assert {r.query.get("fieldSelector") for r in node_requests} == {"metadata.name=node-a"}


async def test_auto_mode_streams_from_a_server_that_can() -> None:
    async with emulator() as server:
        populate(server)
        async with running(server, mode=ListMode.AUTO) as informers:
            assert len(informers.services.store) == 3  # with default/kubernetes

    assert not [r for r in server.requests if r.query.get("limit")]


async def test_synced_waits_until_every_informer_has_listed() -> None:
    async with emulator() as server:
        populate(server)
        server.faults.delay(600, path_prefix="/apis/discovery.k8s.io")
        async with running(server, synced=False) as informers:
            await eventually(informers.services.synced.is_set)
            await eventually(informers.own_node.synced.is_set)
            assert not informers.endpoint_slices.synced.is_set()
            assert not informers.synced.is_set()

            async with asyncio.timeout(5):
                await informers.synced.wait()
            assert len(informers.endpoint_slices.store) == 3  # with default/kubernetes


async def test_all_nodes_are_watched_when_a_feature_asks() -> None:
    async with emulator() as server:
        populate(server)
        async with running(server, watch_all_nodes=True) as informers:
            assert informers.nodes is not None
            nodes = informers.nodes
            assert sorted(nodes.store) == ["node-a", "node-b"]
            assert nodes.store["node-b"].zone == "zone-b"

            server.store.create(node("node-c", "zone-c"))
            await eventually(lambda: "node-c" in nodes.store)


async def test_the_own_node_watch_sees_only_this_node() -> None:
    async with emulator() as server:
        populate(server)
        async with running(server) as informers:
            recorder = Recorder()
            informers.own_node.add_handler(recorder)

            server.store.patch("nodes", "node-b", {"metadata": {"labels": {"x": "y"}}})
            server.store.patch(
                "nodes",
                "node-a",
                {
                    "spec": {
                        "taints": [
                            {"key": "ToBeDeletedByClusterAutoscaler", "effect": "NoSchedule"}
                        ]
                    }
                },
            )
            await eventually(lambda: informers.own_node.store["node-a"].deleting)

            assert recorder.calls == ["update node-a"]
