"""Injected faults, through the Python API and the HTTP control endpoint: failing and
throttled requests, delays, forced 410s, dropped watches, compaction, and restarts that keep
the objects (in-process, and through the state file)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from ipvsd.testing.apiserver import ApiServer
from tests.component.apiserver_support import SERVICES, Api, api_for, next_event, service, status_of

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server() -> AsyncIterator[ApiServer]:
    async with ApiServer() as running:
        running.store.create(service("steady"))
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def api(server: ApiServer) -> AsyncIterator[Api]:
    server.faults.clear()
    async with api_for(server) as client:
        yield client
    server.faults.clear()


async def test_next_requests_fail_with_500(server: ApiServer, api: Api) -> None:
    server.faults.fail_next(2)
    for _ in range(2):
        status, body = await api.get(SERVICES)
        assert status == 500
        assert status_of(body) == (500, "InternalError")
    status, _ = await api.get(SERVICES)
    assert status == 200


async def test_throttling_answers_429_with_retry_after_only_under_a_prefix(
    server: ApiServer, api: Api
) -> None:
    server.faults.fail_next(1, code=429, retry_after=3, path_prefix="/apis/discovery.k8s.io")
    status, _ = await api.get(SERVICES)
    assert status == 200
    status, body, headers = await api.request("GET", "/apis/discovery.k8s.io/v1/endpointslices")
    assert status == 429
    assert headers["Retry-After"] == "3"
    assert status_of(body) == (429, "TooManyRequests")
    assert body["details"]["retryAfterSeconds"] == 3


async def test_faults_can_target_one_method(server: ApiServer, api: Api) -> None:
    server.faults.fail_next(1, code=503, method="POST")
    status, _ = await api.get(SERVICES)
    assert status == 200
    status, _ = await api.post(SERVICES, service("refused"))
    assert status == 503
    status, _ = await api.post(SERVICES, service("refused"))
    assert status == 201


async def test_responses_can_be_delayed(server: ApiServer, api: Api) -> None:
    server.faults.delay(300, path_prefix="/api/v1/namespaces/default/services")
    started = time.monotonic()
    await api.get(SERVICES)
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    await api.get("/api/v1/nodes")
    assert time.monotonic() - started < 0.3


async def test_forced_gone_on_the_next_watch_and_list_from_a_version(
    server: ApiServer, api: Api
) -> None:
    _, listed = await api.get(SERVICES)
    current = listed["metadata"]["resourceVersion"]
    server.faults.expire_next(2)
    status, _ = await api.get(SERVICES)  # a list without a version is not affected
    assert status == 200
    events = await api.watch(SERVICES, resourceVersion=current)
    assert [e["type"] for e in events] == ["ERROR"]
    assert events[0]["object"]["code"] == 410
    status, body = await api.get(SERVICES, resourceVersion=current)
    assert status == 410
    assert body["reason"] == "Expired"
    status, _ = await api.get(SERVICES, resourceVersion=current)
    assert status == 200


async def test_compaction_makes_older_versions_gone(server: ApiServer, api: Api) -> None:
    _, listed = await api.get(SERVICES)
    old = listed["metadata"]["resourceVersion"]
    await api.patch(f"{SERVICES}/steady", {"metadata": {"labels": {"c": "1"}}})
    assert server.compact() == server.storage.resource_version
    events = await api.watch(SERVICES, resourceVersion=old)
    assert events[0]["object"]["reason"] == "Expired"
    events = await api.watch(
        SERVICES, resourceVersion=server.storage.resource_version, timeoutSeconds=1
    )
    assert events == []  # the newest version is still fine


@pytest.mark.parametrize("mode", ["abort", "end"])
async def test_dropping_watches(server: ApiServer, api: Api, mode: str) -> None:
    _, listed = await api.get(SERVICES)
    async with api.stream(
        SERVICES, resourceVersion=listed["metadata"]["resourceVersion"]
    ) as stream:
        await asyncio.sleep(0.05)
        assert server.drop_watches(mode=mode) == 1
        if mode == "abort":
            with pytest.raises(aiohttp.ClientPayloadError):
                await stream.content.read()
        else:
            assert await stream.content.read() == b""
    await asyncio.sleep(0.05)
    assert server.state()["watches"] == 0


async def test_restart_keeps_objects_port_and_history(server: ApiServer, api: Api) -> None:
    _, listed = await api.get(SERVICES)
    before = listed["metadata"]["resourceVersion"]
    await api.patch(f"{SERVICES}/steady", {"metadata": {"labels": {"restart": "before"}}})
    url = server.url
    async with api.stream(SERVICES, resourceVersion=before) as stream:
        await next_event(stream)
        await server.restart(down_seconds=0.1)
        assert await stream.content.read() == b""  # ended by the shutdown
    assert server.url == url
    _, after = await api.get(f"{SERVICES}/steady")
    assert after["metadata"]["labels"]["restart"] == "before"
    events = await api.watch(SERVICES, resourceVersion=before, count=1)
    assert events[0]["type"] == "MODIFIED"  # history survives an in-process restart


async def test_control_endpoint_arms_and_reports_faults(server: ApiServer, api: Api) -> None:
    status, armed, _ = await api.request(
        "POST",
        "/_emulator/faults",
        {
            "failNext": {
                "count": 1,
                "code": 429,
                "retryAfterSeconds": 2,
                "pathPrefix": "/api/v1/nodes",
            },
            "expireNext": {"count": 1},
            "delay": {"milliseconds": 0},
        },
    )
    assert status == 200
    assert armed["failNext"][0]["code"] == 429
    assert armed["expireNext"] == 1
    status, _ = await api.get("/api/v1/nodes")
    assert status == 429
    status, _, _ = await api.request("POST", "/_emulator/faults", {"clear": {}, "compact": {}})
    _, state = await api.get("/_emulator/state")
    assert state["oldestResourceVersion"] == state["resourceVersion"]
    assert state["objects"]["services"] >= 1
    _, requests = await api.get("/_emulator/requests")
    assert {
        "method": "GET",
        "path": "/api/v1/nodes",
        "query": {},
        "content_type": "application/json",
        "status": 429,
    } in requests
    status, body, _ = await api.request("POST", "/_emulator/faults", {"explode": {}})
    assert status == 400
    assert body["reason"] == "BadRequest"
    async with api_for(server, token="wrong") as stranger:
        status, _ = await stranger.get("/_emulator/faults")
        assert status == 401


async def test_control_endpoint_drops_watches_and_restarts(server: ApiServer, api: Api) -> None:
    _, listed = await api.get(SERVICES)
    async with api.stream(
        SERVICES, resourceVersion=listed["metadata"]["resourceVersion"]
    ) as stream:
        await asyncio.sleep(0.05)
        _, report, _ = await api.request(
            "POST", "/_emulator/faults", {"dropWatches": {"mode": "end"}}
        )
        assert report["droppedWatches"] == 1
        assert await stream.content.read() == b""
    _, report, _ = await api.request("POST", "/_emulator/faults", {"restart": {"downSeconds": 0.2}})
    assert report["restarting"] is True
    await asyncio.sleep(0.05)
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.get(SERVICES)
    await asyncio.sleep(0.4)
    status, _ = await api.get(SERVICES)
    assert status == 200


async def test_state_file_carries_objects_and_token_to_a_new_server(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    async with ApiServer(state_file=state) as first:
        created = first.store.create(service("persisted", type="NodePort"))
        token, version, port = first.token, first.storage.resource_version, first.port
    assert state.exists()
    # The same port: default/kubernetes then stays as saved (on another port it is reset).
    async with ApiServer(state_file=state, port=port) as second, api_for(second) as client:
        assert second.token == token
        assert second.storage.resource_version == version
        status, loaded = await client.get(f"{SERVICES}/persisted")
        assert status == 200
        assert loaded == created
        clash = service("clash", clusterIP=created["spec"]["clusterIP"])
        status, body = await client.post(SERVICES, clash)
        assert status == 422
        assert "already allocated" in body["message"]
        events = await client.watch(SERVICES, resourceVersion=version - 1)
        assert events[0]["object"]["code"] == 410  # history starts afresh
        _, listed = await client.get(SERVICES)
        assert int(listed["metadata"]["resourceVersion"]) == version


async def test_paced_lists_come_a_page_at_a_time_after_a_delay(server: ApiServer, api: Api) -> None:
    """A slow API (the disruption harness's partial-list fault): a paged list gets one item
    per response whatever `limit` asked, each after the delay, and the pacing records it."""
    server.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "paced"}})
    for name in ("paced-a", "paced-b", "paced-c"):
        server.store.create(service(name, "paced"))
    path = "/api/v1/namespaces/paced/services"
    pacing = server.faults.pace_lists(0.2, path_prefix=path)
    started = time.monotonic()
    names, token = [], None
    while True:
        params = {"limit": 500, **({"continue": token} if token else {})}
        status, page = await api.get(path, **params)
        assert status == 200
        assert len(page["items"]) <= 1
        names += [item["metadata"]["name"] for item in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
    assert names == ["paced-a", "paced-b", "paced-c"]
    assert time.monotonic() - started >= 3 * 0.2
    assert [(done.mode, done.pages) for done in pacing.done] == [("list", 3)]
    assert pacing.done[0].client == "127.0.0.1"
    started = time.monotonic()
    status, _ = await api.get(SERVICES)  # outside the prefix: not paced
    assert status == 200
    assert time.monotonic() - started < 0.2


async def test_paced_streaming_lists_send_their_initial_events_slowly(
    server: ApiServer, api: Api
) -> None:
    """A streaming list (sendInitialEvents) under a paced prefix: each initial event, and the
    bookmark that ends them, arrives only after the delay; the live watch after it is not
    slowed."""
    server.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "streamed"}})
    for name in ("streamed-a", "streamed-b"):
        server.store.create(service(name, "streamed"))
    path = "/api/v1/namespaces/streamed/services"
    pacing = server.faults.pace_lists(0.3, path_prefix=path)
    params = {"sendInitialEvents": True, "resourceVersionMatch": "NotOlderThan",
              "resourceVersion": "", "allowWatchBookmarks": True}  # fmt: skip
    started = time.monotonic()
    arrived = []
    async with api.stream(path, **params) as response:
        for _ in range(3):
            event = await next_event(response)
            arrived.append((event["type"], round(time.monotonic() - started, 2)))
        assert [kind for kind, _ in arrived] == ["ADDED", "ADDED", "BOOKMARK"]
        assert [at >= 0.3 * (i + 1) for i, (_, at) in enumerate(arrived)] == [True] * 3
        server.store.create(service("streamed-c", "streamed"))
        changed = time.monotonic()
        event = await next_event(response)
        assert event["type"] == "ADDED"
        assert time.monotonic() - changed < 0.3
    assert [(done.mode, done.pages) for done in pacing.done] == [("stream", 2)]
