"""Metadata-only reads (client-go's metadata client) held to the official Python client:
`PartialObjectMetadataList` lists, `PartialObjectMetadata` watch events (every change of an
object still sends one, status included), field selectors, and 406 where upstream answers it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from ipvsd.kube.resources import METADATA_LIST_ACCEPT, METADATA_WATCH_ACCEPT
from ipvsd.testing.apiserver import ApiServer
from tests.component.apiserver_support import node

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(30)]
T = TypeVar("T")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server() -> AsyncIterator[ApiServer]:
    async with ApiServer(bookmark_interval=0.3) as running:
        running.store.create(node("node-a", zone="zone-a", team="blue"))
        running.store.create(node("node-b", zone="zone-b"))
        yield running


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api_client(server: ApiServer) -> AsyncIterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(server.kubeconfig_path))
    yield api
    await asyncio.to_thread(api.close)


async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(function, *args, **kwargs)


def send(api: client.ApiClient, path: str, accept: str, **query: str) -> Any:
    """A GET through the client's own request building (auth, TLS, query encoding)."""
    method, url, headers, body, post = api.param_serialize(
        "GET",
        path,
        query_params=list(query.items()),
        header_params={"Accept": accept},
        auth_settings=["BearerToken"],
    )
    return api.call_api(method, url, header_params=headers, body=body, post_params=post)


def get(api: client.ApiClient, path: str, accept: str, response_type: str, **query: str) -> Any:
    """The answer deserialized by the client into `response_type` (a model name or object)."""
    response = send(api, path, accept, **query)
    response.read()
    return api.response_deserialize(response, {"200": response_type}).data


def typed_metadata(api: client.ApiClient, item: dict[str, Any]) -> client.V1ObjectMeta:
    """An item's metadata as the client's typed model (it has no PartialObjectMetadata model:
    the metadata is the part a metadata client types)."""
    meta: client.V1ObjectMeta = api.deserialize(
        json.dumps(item["metadata"]), "V1ObjectMeta", "application/json"
    )
    return meta


async def test_a_metadata_list_is_a_partial_object_metadata_list(
    api_client: client.ApiClient,
) -> None:
    listed = await call(get, api_client, "/api/v1/nodes", METADATA_LIST_ACCEPT, "object")
    assert (listed["kind"], listed["apiVersion"]) == ("PartialObjectMetadataList", "meta.k8s.io/v1")
    assert int(listed["metadata"]["resourceVersion"]) > 0
    assert [(i["kind"], i["apiVersion"]) for i in listed["items"]] == [
        ("PartialObjectMetadata", "meta.k8s.io/v1")
    ] * 2
    typed = {meta.name: meta for meta in (typed_metadata(api_client, i) for i in listed["items"])}
    assert typed["node-a"].labels == {"topology.kubernetes.io/zone": "zone-a", "team": "blue"}
    assert typed["node-a"].creation_timestamp is not None


async def test_a_metadata_list_carries_no_spec_or_status_and_takes_a_field_selector(
    api_client: client.ApiClient,
) -> None:
    raw = await call(
        get,
        api_client,
        "/api/v1/nodes",
        METADATA_LIST_ACCEPT,
        "object",
        fieldSelector="metadata.name=node-b",
    )
    (item,) = raw["items"]
    assert set(item) == {"kind", "apiVersion", "metadata"}
    assert item["metadata"]["name"] == "node-b"


async def test_a_list_asked_for_as_a_single_object_is_406(api_client: client.ApiClient) -> None:
    with pytest.raises(ApiException) as error:
        await call(get, api_client, "/api/v1/nodes", METADATA_WATCH_ACCEPT, "object")
    assert error.value.status == 406
    assert json.loads(error.value.body)["reason"] == "NotAcceptable"


async def test_one_object_as_metadata(api_client: client.ApiClient) -> None:
    one = await call(get, api_client, "/api/v1/nodes/node-a", METADATA_WATCH_ACCEPT, "object")
    assert one["kind"] == "PartialObjectMetadata"
    assert typed_metadata(api_client, one).name == "node-a"


def watch_lines(api: client.ApiClient, count: int, **query: str) -> list[dict[str, Any]]:
    response = send(api, "/api/v1/nodes", METADATA_WATCH_ACCEPT, watch="true", **query)
    events: list[dict[str, Any]] = []
    buffer = b""
    try:
        while len(events) < count:
            chunk = response.response.read1(65536)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            events += [json.loads(line) for line in lines if line.strip()]
    finally:
        response.response.release_conn()
    return events[:count]


async def test_a_metadata_watch_sends_every_change_status_included(
    server: ApiServer, api_client: client.ApiClient
) -> None:
    """What a metadata watch costs: a status-only update (a heartbeat) is still an event, with
    the object's new resourceVersion and its metadata, never its status."""
    version = str(server.store.resource_version)
    watching = asyncio.ensure_future(
        call(
            watch_lines,
            api_client,
            2,
            resourceVersion=version,
            fieldSelector="metadata.name=node-a",
            timeoutSeconds="20",
        )
    )
    await asyncio.sleep(0.5)
    heartbeat = {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "x"}]}}
    server.store.patch("nodes", "node-b", heartbeat, status=True)  # filtered out by name
    server.store.patch("nodes", "node-a", heartbeat, status=True)
    server.store.patch("nodes", "node-a", {"metadata": {"labels": {"team": "red"}}})
    events = await watching
    assert [event["type"] for event in events] == ["MODIFIED", "MODIFIED"]
    assert {event["object"]["kind"] for event in events} == {"PartialObjectMetadata"}
    assert all(set(event["object"]) == {"kind", "apiVersion", "metadata"} for event in events)
    assert events[1]["object"]["metadata"]["labels"]["team"] == "red"
    versions = [int(event["object"]["metadata"]["resourceVersion"]) for event in events]
    assert int(version) < versions[0] < versions[1]
