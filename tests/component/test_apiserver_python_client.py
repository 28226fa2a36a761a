"""The official Python client (`kubernetes`, synchronous, run in a thread) against the in-process
emulator: its kubeconfig, list/create/patch/delete, `Watch().stream` with a resource version
and timeout, its 410 handling, 401, and its client-go style Retry-After retries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from ipvsd.testing.apiserver import ApiServer
from tests.component.apiserver_support import endpoint, endpoint_slice, service

pytestmark = pytest.mark.asyncio(loop_scope="module")
T = TypeVar("T")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server() -> AsyncIterator[ApiServer]:
    async with ApiServer(bookmark_interval=0.3) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api_client(server: ApiServer) -> AsyncIterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(server.kubeconfig_path))
    yield api
    await asyncio.to_thread(api.close)


async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """The sync client blocks: run it in a thread while the loop serves it."""
    return await asyncio.to_thread(function, *args, **kwargs)


async def test_list_create_patch_delete(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    created = await call(core.create_namespaced_service, "default", service("py-echo"))
    assert created.spec.cluster_ip
    assert created.spec.session_affinity == "None"
    listed = await call(core.list_namespaced_service, "default")
    assert "py-echo" in [s.metadata.name for s in listed.items]
    assert int(listed.metadata.resource_version) >= int(created.metadata.resource_version)
    patched = await call(
        core.patch_namespaced_service,
        "py-echo",
        "default",
        {"spec": {"trafficDistribution": "PreferSameNode"}},
    )
    assert patched.spec.traffic_distribution == "PreferSameNode"
    patched = await call(
        core.patch_namespaced_service,
        "py-echo",
        "default",
        [{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}],
    )
    assert patched.metadata.labels == {"a": "b"}
    deleted = await call(core.delete_namespaced_service, "py-echo", "default")
    assert deleted.metadata.name == "py-echo"
    with pytest.raises(ApiException) as error:
        await call(core.read_namespaced_service, "py-echo", "default")
    assert error.value.status == 404


async def test_endpoint_slices_and_events(api_client: client.ApiClient) -> None:
    discovery = client.DiscoveryV1Api(api_client)
    created = await call(
        discovery.create_namespaced_endpoint_slice,
        "default",
        endpoint_slice("py-slice", "py", [endpoint("10.0.0.1", zone="a")]),
    )
    assert created.endpoints[0].zone == "a"
    assert created.ports[0].protocol == "TCP"
    listed = await call(
        discovery.list_endpoint_slice_for_all_namespaces,
        label_selector="kubernetes.io/service-name=py",
    )
    assert [s.metadata.name for s in listed.items] == ["py-slice"]
    status = await call(discovery.delete_namespaced_endpoint_slice, "py-slice", "default")
    assert status["status"] == "Success"  # this client returns the Status as a dict
    core = client.CoreV1Api(api_client)
    event = {
        "metadata": {"generateName": "py-svc."},
        "involvedObject": {"kind": "Service", "name": "py-svc", "namespace": "default"},
        "type": "Warning",
        "reason": "InvalidAnnotation",
        "message": "x",
    }
    made = await call(core.create_namespaced_event, "default", event)
    assert made.metadata.name.startswith("py-svc.")
    events = await call(
        core.list_namespaced_event, "default", field_selector="reason=InvalidAnnotation"
    )
    assert [e.metadata.name for e in events.items] == [made.metadata.name]


async def test_label_selector_with_negation_is_url_encoded_and_understood(
    server: ApiServer, api_client: client.ApiClient
) -> None:
    headless = service("py-headless", clusterIP="None")
    headless["metadata"]["labels"] = {"service.kubernetes.io/headless": ""}
    server.store.create(headless)
    server.store.create(service("py-plain"))
    core = client.CoreV1Api(api_client)
    listed = await call(
        core.list_namespaced_service, "default", label_selector="!service.kubernetes.io/headless"
    )
    names = [s.metadata.name for s in listed.items]
    assert "py-plain" in names
    assert "py-headless" not in names


def stream_events(core: client.CoreV1Api, **kwargs: Any) -> list[dict[str, Any]]:
    return [
        {
            "type": e["type"],
            "name": e["raw_object"]["metadata"].get("name"),
            "rv": e["raw_object"]["metadata"]["resourceVersion"],
        }
        for e in watch.Watch().stream(core.list_namespaced_service, "default", **kwargs)
    ]


async def test_watch_stream_from_a_version_ends_at_its_timeout(
    server: ApiServer, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    listed = await call(core.list_namespaced_service, "default")
    start = listed.metadata.resource_version
    server.store.create(service("py-watched"))
    server.store.patch("services", "py-watched", {"metadata": {"labels": {"x": "y"}}})
    events = await call(stream_events, core, resource_version=start, timeout_seconds=1)
    assert [(e["type"], e["name"]) for e in events] == [
        ("ADDED", "py-watched"),
        ("MODIFIED", "py-watched"),
    ]


async def test_watch_stream_sees_live_changes_and_bookmarks(
    server: ApiServer, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    listed = await call(core.list_namespaced_service, "default")
    watching = asyncio.create_task(
        call(
            stream_events,
            core,
            resource_version=listed.metadata.resource_version,
            timeout_seconds=1,
            allow_watch_bookmarks=True,
        )
    )
    await asyncio.sleep(0.2)
    server.store.create(service("py-live"))
    events = await watching
    assert ("ADDED", "py-live") in [(e["type"], e["name"]) for e in events]
    assert "BOOKMARK" in [e["type"] for e in events]


async def test_watch_from_a_compacted_version_raises_410(
    server: ApiServer, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    listed = await call(core.list_namespaced_service, "default")
    server.store.create(service("py-later"))
    server.compact()
    with pytest.raises(ApiException) as error:
        await call(
            stream_events,
            core,
            resource_version=listed.metadata.resource_version,
            timeout_seconds=1,
        )
    assert error.value.status == 410
    relisted = await call(core.list_namespaced_service, "default")
    events = await call(
        stream_events, core, resource_version=relisted.metadata.resource_version, timeout_seconds=1
    )
    assert events == []  # the relist-and-rewatch path works


async def test_wrong_token_is_401(server: ApiServer) -> None:
    configuration = client.Configuration()
    configuration.host = server.url
    configuration.ssl_ca_cert = str(server.ca_path)
    configuration.api_key = {"authorization": "Bearer not-the-token"}
    with client.ApiClient(configuration) as wrong, pytest.raises(ApiException) as error:
        await call(client.CoreV1Api(wrong).list_namespaced_service, "default")
    assert error.value.status == 401


async def test_client_go_retries_follow_retry_after(server: ApiServer) -> None:
    api = config.new_client_from_config(config_file=str(server.kubeconfig_path))
    api.configuration.client_go_retries = True
    server.clear_requests()
    server.faults.fail_next(1, code=429, retry_after=1, path_prefix="/api/v1/nodes")
    try:
        nodes = await call(client.CoreV1Api(api).list_node)
    finally:
        await call(api.close)
    assert nodes.items == []
    assert [r.status for r in server.requests if r.path == "/api/v1/nodes"] == [429, 200]
