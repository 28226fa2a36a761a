"""Warning and Normal Events on Services, recorded through the API emulator."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from ipvsd.kube.auth import load_credentials
from ipvsd.kube.client import ApiClient
from ipvsd.kube.events import EventRecorder
from ipvsd.model.ipvs import parse_address
from ipvsd.model.service import Service, ServiceRef, ServiceType
from ipvsd.testing.apiserver import ApiServer

SERVICE = Service(
    ServiceRef("default", "web"),
    "uid-web",
    ServiceType.CLUSTER_IP,
    (parse_address("10.96.0.10"),),
    (),
)
BAD = "annotation ipvsd.io/scheduler='maglev': unknown scheduler; using 'rr'"


@pytest.fixture
async def api() -> AsyncIterator[tuple[ApiServer, ApiClient]]:
    async with ApiServer() as server:
        client = ApiClient(credentials=load_credentials(kubeconfig=str(server.kubeconfig_path)))
        async with client:
            yield server, client


async def events(client: ApiClient) -> list[dict[str, object]]:
    listed = await client.get_json("/api/v1/namespaces/default/events", {})
    items: list[dict[str, object]] = listed["items"]
    return items


async def test_a_warning_becomes_an_event_on_the_service(api: tuple[ApiServer, ApiClient]) -> None:
    _server, client = api
    recorder = EventRecorder(client=client, node_name="node-a")
    assert await recorder.warn(SERVICE, "InvalidAnnotation", [BAD]) == 1
    (event,) = await events(client)
    assert event["type"] == "Warning"
    assert event["reason"] == "InvalidAnnotation"
    assert event["message"] == BAD
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Service",
        "namespace": "default",
        "name": "web",
        "uid": "uid-web",
    }


async def test_the_same_warning_is_recorded_once_a_new_one_again(
    api: tuple[ApiServer, ApiClient],
) -> None:
    _server, client = api
    recorder = EventRecorder(client=client, node_name="node-a")
    await recorder.warn(SERVICE, "InvalidAnnotation", [BAD])
    assert await recorder.warn(SERVICE, "InvalidAnnotation", [BAD]) == 0
    assert await recorder.warn(SERVICE, "InvalidAnnotation", [BAD, "another"]) == 1
    assert len(await events(client)) == 2


async def test_a_notice_is_a_normal_event_recorded_apart_from_warnings(
    api: tuple[ApiServer, ApiClient],
) -> None:
    _server, client = api
    recorder = EventRecorder(client=client, node_name="node-a")
    swapped = "ipvsd.io/topology-mode: weight needs a weighted scheduler; using 'wrr'"
    await recorder.warn(SERVICE, "InvalidAnnotation", [BAD])
    assert await recorder.notice(SERVICE, "SchedulerSubstituted", [swapped]) == 1
    assert await recorder.warn(SERVICE, "InvalidAnnotation", [BAD]) == 0  # not forgotten
    assert await recorder.notice(SERVICE, "SchedulerSubstituted", [swapped]) == 0
    kinds = sorted((e["type"], e["reason"]) for e in await events(client))
    assert kinds == [("Normal", "SchedulerSubstituted"), ("Warning", "InvalidAnnotation")]


async def test_an_api_failure_is_logged_not_raised(
    api: tuple[ApiServer, ApiClient], caplog: pytest.LogCaptureFixture
) -> None:
    server, client = api
    server.faults.fail_next(1, code=500)
    recorder = EventRecorder(client=client, node_name="node-a")
    with caplog.at_level(logging.WARNING):
        assert await recorder.warn(SERVICE, "InvalidAnnotation", [BAD]) == 0
    assert "cannot record Event on Service default/web" in caplog.text
