"""Lists and watches: resource-version semantics, the history window and 410 Gone, paging,
selectors, bookmarks, timeouts and the streaming list (sendInitialEvents)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from ipvsd.testing.apiserver import ApiServer
from tests.component.apiserver_support import (
    SERVICES,
    Api,
    api_for,
    next_event,
    service,
    status_of,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server() -> AsyncIterator[ApiServer]:
    async with ApiServer(bookmark_interval=0.2, history_size=50) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def api(server: ApiServer) -> AsyncIterator[Api]:
    async with api_for(server) as client:
        yield client


def version(document: dict[str, object]) -> int:
    return int(document["metadata"]["resourceVersion"])  # type: ignore[index]


async def test_one_global_resource_version_increases_with_every_write(api: Api) -> None:
    _, first = await api.post(SERVICES, service("rv-a"))
    _, node = await api.post(
        "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "rv-node"}}
    )
    _, second = await api.post(SERVICES, service("rv-b"))
    assert version(first) < version(node) < version(second)
    _, listed = await api.get(SERVICES)
    assert version(listed) >= version(second)


async def test_list_from_zero_or_a_known_version_reads_the_current_state(api: Api) -> None:
    _, current = await api.get(SERVICES)
    for requested in ("0", "1", str(version(current))):
        status, listed = await api.get(SERVICES, resourceVersion=requested)
        assert status == 200
        assert version(listed) == version(current)
    status, body = await api.get(SERVICES, resourceVersion=str(version(current) + 1000))
    assert status == 504
    assert body["reason"] == "Timeout"


async def test_exact_list_rebuilds_the_state_at_that_version(api: Api) -> None:
    _, created = await api.post(SERVICES, service("exact"))
    at_creation = version(created)
    await api.patch(f"{SERVICES}/exact", {"metadata": {"labels": {"later": "yes"}}})
    await api.delete(f"{SERVICES}/rv-a")
    status, past = await api.get(
        SERVICES, resourceVersion=at_creation, resourceVersionMatch="Exact"
    )
    assert status == 200
    assert version(past) == at_creation
    by_name = {item["metadata"]["name"]: item for item in past["items"]}
    assert "rv-a" in by_name
    assert "labels" not in by_name["exact"]["metadata"]
    status, _ = await api.get(SERVICES, resourceVersionMatch="Exact")
    assert status == 422


async def test_paging_serves_one_consistent_snapshot(api: Api) -> None:
    for index in range(5):
        await api.post(
            "/api/v1/namespaces/kube-public/services",
            service(f"page-{index}", namespace="kube-public"),
        )
    path = "/api/v1/namespaces/kube-public/services"
    _, first = await api.get(path, limit=2)
    assert [i["metadata"]["name"] for i in first["items"]] == ["page-0", "page-1"]
    assert first["metadata"]["remainingItemCount"] == 3
    await api.delete(f"{path}/page-3")  # after the first page: the snapshot still has it
    _, second = await api.get(path, limit=2, **{"continue": first["metadata"]["continue"]})
    assert [i["metadata"]["name"] for i in second["items"]] == ["page-2", "page-3"]
    _, third = await api.get(path, limit=2, **{"continue": second["metadata"]["continue"]})
    assert [i["metadata"]["name"] for i in third["items"]] == ["page-4"]
    assert "continue" not in third["metadata"]
    assert version(first) == version(second) == version(third)


async def test_label_selectors(api: Api) -> None:
    labelled = [
        ("sel-a", {"app": "web", "tier": "front"}),
        ("sel-b", {"app": "web"}),
        ("sel-c", {"app": "db"}),
        ("sel-d", {}),
    ]
    for name, labels in labelled:
        document = service(name, namespace="kube-node-lease")
        document["metadata"]["labels"] = labels
        await api.post("/api/v1/namespaces/kube-node-lease/services", document)

    async def names(selector: str) -> list[str]:
        status, listed = await api.get(
            "/api/v1/namespaces/kube-node-lease/services", labelSelector=selector
        )
        assert status == 200, listed
        return sorted(item["metadata"]["name"] for item in listed["items"])

    assert await names("app=web") == ["sel-a", "sel-b"]
    assert await names("app==web,tier=front") == ["sel-a"]
    assert await names("app!=web") == ["sel-c", "sel-d"]
    assert await names("app in (db, web)") == ["sel-a", "sel-b", "sel-c"]
    assert await names("app notin (web)") == ["sel-c", "sel-d"]
    assert await names("tier") == ["sel-a"]
    assert await names("!tier,app") == ["sel-b", "sel-c"]
    assert await names("!app") == ["sel-d"]
    status, body = await api.get(SERVICES, labelSelector="app in web")
    assert status == 400
    assert status_of(body)[1] == "BadRequest"


async def test_field_selectors(api: Api) -> None:
    _, listed = await api.get("/api/v1/services", fieldSelector="metadata.name=sel-a")
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in listed["items"]] == [
        ("kube-node-lease", "sel-a")
    ]
    _, listed = await api.get(
        "/api/v1/services", fieldSelector="metadata.namespace=kube-node-lease,metadata.name!=sel-a"
    )
    assert sorted(i["metadata"]["name"] for i in listed["items"]) == ["sel-b", "sel-c", "sel-d"]
    status, body = await api.get(SERVICES, fieldSelector="spec.nonsense=1")
    assert status == 400
    assert body["message"] == "field label not supported: spec.nonsense"


async def test_watch_replays_every_event_after_a_version(api: Api) -> None:
    _, listed = await api.get(SERVICES)
    start = version(listed)
    await api.post(SERVICES, service("replay"))
    await api.patch(f"{SERVICES}/replay", {"metadata": {"labels": {"v": "2"}}})
    await api.delete(f"{SERVICES}/replay")
    events = await api.watch(SERVICES, resourceVersion=start, count=3)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "replay"),
        ("MODIFIED", "replay"),
        ("DELETED", "replay"),
    ]
    versions = [version(e["object"]) for e in events]
    assert versions == sorted(versions)
    assert versions[0] > start
    assert events[0]["object"]["kind"] == "Service"


async def test_watch_without_version_starts_with_every_object(api: Api) -> None:
    events = await api.watch("/api/v1/namespaces/kube-node-lease/services", count=4)
    assert {e["type"] for e in events} == {"ADDED"}
    assert sorted(e["object"]["metadata"]["name"] for e in events) == [
        "sel-a",
        "sel-b",
        "sel-c",
        "sel-d",
    ]


async def test_live_events_arrive_as_they_commit(api: Api) -> None:
    _, listed = await api.get(SERVICES)
    async with api.stream(SERVICES, resourceVersion=version(listed)) as stream:
        await api.post(SERVICES, service("live"))
        event = await next_event(stream)
        assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "live")
        await api.patch(f"{SERVICES}/live", {"spec": {"sessionAffinity": "ClientIP"}})
        event = await next_event(stream)
        assert event["type"] == "MODIFIED"
        assert (
            event["object"]["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] == 10800
        )


async def test_watch_with_a_selector_sees_objects_enter_and_leave(api: Api) -> None:
    _, listed = await api.get(SERVICES)
    async with api.stream(
        SERVICES, resourceVersion=version(listed), labelSelector="watched=yes"
    ) as stream:
        await api.post(SERVICES, service("mover"))
        _, moved_in = await api.patch(
            f"{SERVICES}/mover", {"metadata": {"labels": {"watched": "yes"}}}
        )
        event = await next_event(stream)
        assert event["type"] == "ADDED"
        assert version(event["object"]) == version(moved_in)
        _, moved_out = await api.patch(
            f"{SERVICES}/mover", {"metadata": {"labels": {"watched": "no"}}}
        )
        event = await next_event(stream)
        assert event["type"] == "DELETED"
        assert event["object"]["metadata"]["labels"] == {"watched": "yes"}  # the old content
        assert version(event["object"]) == version(moved_out)  # at the event's version


async def test_too_old_version_is_a_410_error_event_and_a_410_exact_list(
    server: ApiServer, api: Api
) -> None:
    _, listed = await api.get(SERVICES)
    old = version(listed)
    for index in range(60):  # the history holds 50 events in this module
        await api.patch(f"{SERVICES}/rv-b", {"metadata": {"labels": {"n": str(index)}}})
    assert server.storage.oldest_resource_version > old
    events = await api.watch(SERVICES, resourceVersion=old)
    assert len(events) == 1
    assert events[0]["type"] == "ERROR"
    assert status_of(events[0]["object"]) == (410, "Expired")
    status, body = await api.get(SERVICES, resourceVersion=old, resourceVersionMatch="Exact")
    assert status == 410
    assert status_of(body) == (410, "Expired")
    status, _ = await api.get(SERVICES, resourceVersion=old)  # not older than: fine
    assert status == 200


async def test_compaction_expires_continue_tokens(server: ApiServer, api: Api) -> None:
    _, first = await api.get("/api/v1/namespaces/kube-public/services", limit=1)
    await api.patch(
        "/api/v1/namespaces/kube-public/services/page-0", {"metadata": {"labels": {"x": "y"}}}
    )
    server.compact()
    status, body = await api.get(
        "/api/v1/namespaces/kube-public/services",
        limit=1,
        **{"continue": first["metadata"]["continue"]},
    )
    assert status == 410
    assert body["reason"] == "Expired"


async def test_bookmarks_carry_only_kind_api_version_and_resource_version(
    api: Api, server: ApiServer
) -> None:
    _, listed = await api.get(SERVICES)
    events = await api.watch(
        SERVICES, resourceVersion=version(listed), allowWatchBookmarks=True, count=2, seconds=3
    )
    assert [e["type"] for e in events] == ["BOOKMARK", "BOOKMARK"]
    assert events[0]["object"] == {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": str(server.storage.resource_version)},
    }
    quiet = await api.watch(SERVICES, resourceVersion=version(listed), timeoutSeconds=1)
    assert quiet == []  # no bookmarks unless asked


async def test_timeout_seconds_ends_the_watch_cleanly(api: Api) -> None:
    _, listed = await api.get(SERVICES)
    started = time.monotonic()
    events = await api.watch(SERVICES, resourceVersion=version(listed), timeoutSeconds=1, seconds=5)
    elapsed = time.monotonic() - started
    assert events == []
    assert 0.9 <= elapsed < 2.5


async def test_streaming_list_sends_every_object_then_the_end_bookmark(
    api: Api, server: ApiServer
) -> None:
    at = server.storage.resource_version
    events = await api.watch(
        "/api/v1/namespaces/kube-node-lease/services",
        sendInitialEvents=True,
        resourceVersionMatch="NotOlderThan",
        allowWatchBookmarks=True,
        resourceVersion="",
        count=5,
    )
    assert [e["type"] for e in events] == ["ADDED"] * 4 + ["BOOKMARK"]
    end = events[-1]["object"]
    assert end["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert int(end["metadata"]["resourceVersion"]) >= at
    status, body = await api.get(
        SERVICES, watch=True, sendInitialEvents=True, resourceVersionMatch="NotOlderThan"
    )
    assert status == 422
    assert body["reason"] == "Invalid"


async def test_streaming_list_then_live_events(api: Api) -> None:
    async with api.stream(
        SERVICES,
        sendInitialEvents=True,
        resourceVersionMatch="NotOlderThan",
        allowWatchBookmarks=True,
    ) as stream:
        while (await next_event(stream))["type"] != "BOOKMARK":
            pass
        await api.post(SERVICES, service("after-initial"))
        event = await next_event(stream)
        while event["type"] == "BOOKMARK":
            event = await next_event(stream)
        assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "after-initial")


async def test_many_concurrent_watchers_each_get_every_event(api: Api) -> None:
    _, listed = await api.get(SERVICES)
    watches = [
        asyncio.create_task(api.watch(SERVICES, resourceVersion=version(listed), count=2))
        for _ in range(10)
    ]
    await api.post(SERVICES, service("fan-1"))
    await api.post(SERVICES, service("fan-2"))
    for events in await asyncio.gather(*watches):
        assert [e["object"]["metadata"]["name"] for e in events] == ["fan-1", "fan-2"]


async def test_large_lists_are_streamed_intact(server: ApiServer, api: Api) -> None:
    padding = "x" * 4096
    documents = []
    for index in range(300):  # about 1.3 MB: over the streaming threshold
        document = service(f"big-{index}", namespace="kube-system")
        document["metadata"]["annotations"] = {"example.com/padding": padding}
        documents.append(document)
    assert server.store.load(documents) == 300
    status, listed, headers = await api.request("GET", "/api/v1/namespaces/kube-system/services")
    assert status == 200
    assert int(headers["Content-Length"]) > 1 << 20
    names = [item["metadata"]["name"] for item in listed["items"]]
    assert len([name for name in names if name.startswith("big-")]) == 300


async def test_watch_one_node_by_field_selector(api: Api) -> None:
    _, listed = await api.get("/api/v1/nodes")
    async with api.stream(
        "/api/v1/nodes",
        resourceVersion=listed["metadata"]["resourceVersion"],
        fieldSelector="metadata.name=mine",
    ) as stream:
        for name in ("other", "mine"):
            await api.post(
                "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}
            )
        event = await next_event(stream)
        assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "mine")
