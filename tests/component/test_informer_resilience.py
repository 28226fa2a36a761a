"""Informers when the API misbehaves: bookmarks, 410 Gone, dropped watches, 5xx and 429,
an API server that goes away. The store must stay whole and catch up, never flap."""

from __future__ import annotations

import asyncio
import logging

import pytest

from ipvsd.kube.watch import ListMode
from ipvsd.testing.apiserver import ApiServer
from tests.component.informer_support import (
    KUBERNETES,
    Recorder,
    emulator,
    endpoint_slice,
    eventually,
    node,
    running,
    service,
    settle,
)

pytestmark = pytest.mark.timeout(15)


class RecordingSleep:
    """asyncio.sleep that also writes down each delay, so backoff can be checked."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(min(delay, 0.01))


def populate(server: ApiServer, count: int = 5) -> None:
    server.store.load([service(f"svc-{i}") for i in range(count)])
    server.store.load(
        [endpoint_slice(f"svc-{i}-1", f"svc-{i}", f"10.0.0.{i + 1}") for i in range(count)]
    )
    server.store.load([node("node-a")])


async def test_bookmarks_advance_the_version_without_object_changes() -> None:
    async with emulator(bookmark_interval=0.05) as server:
        populate(server)
        async with running(server) as informers:
            watch = informers.services.watches[0]
            before = int(watch.resource_version or 0)
            server.store.load([node(f"other-{i}") for i in range(3)])  # moves the global version
            target = server.store.resource_version

            await eventually(lambda: int(watch.resource_version or 0) >= target)

            assert int(watch.resource_version or 0) > before


@pytest.mark.parametrize("mode", [ListMode.LIST, ListMode.STREAM], ids=["list", "stream"])
async def test_a_compacted_history_relists_and_reports_only_real_differences(
    mode: ListMode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with emulator() as server:
        populate(server)
        async with running(server, mode=mode) as informers:
            recorder = Recorder()
            informers.services.add_handler(recorder)

            await server.stop()  # while the proxy cannot see: changes, then the history is lost
            server.store.patch(
                "services", "svc-1", {"spec": {"ports": [{"name": "http", "port": 81}]}}
            )
            server.store.delete("services", "svc-2")
            server.store.create(service("svc-new"))
            server.store.patch("services", "svc-3", {"metadata": {"annotations": {"note": "x"}}})
            server.compact()
            await server.start()

            await eventually(lambda: "default/svc-new" in informers.services.store)
            await settle()

        assert sorted(recorder.calls) == [
            "add default/svc-new",
            "delete default/svc-2",
            "update default/svc-1",
        ]
        assert "taking a fresh snapshot" in caplog.text


async def test_an_expired_watch_relists_without_flapping() -> None:
    async with emulator() as server:
        populate(server)
        async with running(server) as informers:
            recorder = Recorder()
            informers.services.add_handler(recorder)
            informers.endpoint_slices.add_handler(recorder)

            server.faults.expire_next(4)
            server.drop_watches()
            await eventually(lambda: server.faults.expire_remaining == 0)
            server.store.create(service("after"))
            await eventually(lambda: "default/after" in informers.services.store)
            await settle()

            assert recorder.calls == ["add default/after"]
            assert len(informers.endpoint_slices.store) == 6  # with default/kubernetes


@pytest.mark.parametrize("how", ["abort", "end"])
async def test_dropped_watches_reconnect_and_miss_nothing(how: str) -> None:
    async with emulator() as server:
        populate(server)
        async with running(server) as informers:
            for round_ in range(3):
                server.drop_watches(mode=how)
                server.store.create(service(f"new-{round_}"))
                server.store.delete("services", f"svc-{round_}")

            expected = [
                KUBERNETES,
                "default/new-0",
                "default/new-1",
                "default/new-2",
                "default/svc-3",
                "default/svc-4",
            ]
            await eventually(lambda: sorted(informers.services.store) == expected)


async def test_server_errors_back_off_and_429_honours_retry_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sleep = RecordingSleep()
    async with emulator() as server:
        populate(server)
        server.faults.fail_next(3, code=500, path_prefix="/api/v1/services")
        server.faults.fail_next(1, code=429, retry_after=2, path_prefix="/apis/discovery.k8s.io")
        async with running(server, sleep=sleep) as informers:
            assert len(informers.services.store) == 6  # with default/kubernetes
            assert len(informers.endpoint_slices.store) == 6

    assert 2.0 in sleep.delays
    assert len([d for d in sleep.delays if d != 2.0]) == 3
    assert "API error 500" in caplog.text
    assert "API error 429" in caplog.text


async def test_an_unreachable_api_keeps_the_store_and_catches_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with emulator() as server:
        populate(server)
        async with running(server) as informers:
            recorder = Recorder()
            informers.services.add_handler(recorder)
            await server.stop()
            await eventually(lambda: "API unreachable" in caplog.text)
            await settle(0.2)

            assert len(informers.services.store) == 6  # with default/kubernetes
            assert recorder.calls == []

            await server.start()
            server.store.create(service("back"))
            await eventually(lambda: "default/back" in informers.services.store)
            assert recorder.calls == ["add default/back"]
