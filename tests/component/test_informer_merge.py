"""The two selections merged into one store (objects moving between them by a label change),
handlers quiet for changes the proxy does not care about, and invalid objects skipped."""

from __future__ import annotations

import logging

import pytest

from ipvsd.testing.apiserver.resources import ENDPOINT_SLICES as EMULATED_SLICES
from ipvsd.testing.apiserver.resources import SERVICES as EMULATED_SERVICES
from tests.component.informer_support import (
    HEADLESS_LABEL,
    KUBERNETES,
    PROXY_NAME_LABEL,
    Recorder,
    emulator,
    endpoint_slice,
    eventually,
    running,
    service,
    settle,
)

pytestmark = pytest.mark.timeout(15)


def labels(value: str | None) -> dict[str, object]:
    """A merge patch setting (or with None removing) the service-proxy-name label."""
    return {"metadata": {"labels": {PROXY_NAME_LABEL: value}}}


async def test_services_and_slices_moving_between_selections_end_up_right() -> None:
    async with emulator() as server:
        server.store.load([service("web"), endpoint_slice("web-1", "web", "10.0.0.1")])
        async with running(server) as informers:
            services, slices = informers.services, informers.endpoint_slices
            recorder = Recorder()
            services.add_handler(recorder)
            slices.add_handler(recorder)

            for value in ("ipvsd", None, "ipvsd"):  # into ours, back to plain, into ours again
                server.store.patch("services", "web", labels(value))
                server.store.patch("endpointslices", "web-1", labels(value))
                await settle(0.2)
                assert "default/web" in services.store
                assert "default/web-1" in slices.store

            server.store.patch("services", "web", labels("other-proxy"))
            server.store.patch("endpointslices", "web-1", labels("other-proxy"))
            await eventually(lambda: list(services.store) == list(slices.store) == [KUBERNETES])

            server.store.patch("services", "web", labels("ipvsd"))
            await eventually(lambda: "default/web" in services.store)

        # the moves between the two selections were silent: only leaving and coming back count
        # (the two deletions come from two informers' own watches, in either order)
        left, came_back = recorder.calls[:2], recorder.calls[2:]
        assert sorted(left) == ["delete default/web", "delete default/web-1"]
        assert came_back == ["add default/web"]


async def test_a_headless_label_removes_a_service_and_its_slices() -> None:
    async with emulator() as server:
        server.store.load([service("web"), endpoint_slice("web-1", "web", "10.0.0.1")])
        async with running(server) as informers:
            server.store.patch("services", "web", {"metadata": {"labels": {HEADLESS_LABEL: ""}}})
            server.store.patch(
                "endpointslices", "web-1", {"metadata": {"labels": {HEADLESS_LABEL: ""}}}
            )

            await eventually(lambda: list(informers.services.store) == [KUBERNETES])
            await eventually(lambda: list(informers.endpoint_slices.store) == [KUBERNETES])


async def test_changes_that_do_not_matter_call_no_handler() -> None:
    async with emulator() as server:
        server.store.load([service("web"), endpoint_slice("web-1", "web", "10.0.0.1")])
        async with running(server) as informers:
            recorder = Recorder()
            informers.services.add_handler(recorder)
            informers.endpoint_slices.add_handler(recorder)

            server.store.patch("services", "web", {"metadata": {"annotations": {"team": "b"}}})
            server.store.patch("services", "web", {"metadata": {"labels": {"tier": "front"}}})
            server.store.patch("services", "web", {"spec": {"selector": {"app": "web-v2"}}})
            server.store.patch("endpointslices", "web-1", {"metadata": {"labels": {"x": "y"}}})
            await settle()
            assert recorder.calls == []

            server.store.patch(
                "services", "web", {"metadata": {"annotations": {"ipvsd.io/scheduler": "mh"}}}
            )
            await eventually(lambda: recorder.calls == ["update default/web"])


async def test_invalid_objects_are_skipped_with_one_line_and_never_stop_the_watch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The emulator validates writes like the API server, so the bad versions are written
    under it, straight into its storage, as a buggy or newer server could serve them."""
    caplog.set_level(logging.WARNING)
    async with emulator() as server:
        server.store.load([service("good"), service("fixme")])
        async with running(server) as informers:
            services = informers.services
            bad = service("bad", port=70000)
            bad["spec"]["clusterIP"] = "10.96.200.1"
            server.storage.write(EMULATED_SERVICES, bad)
            broken = server.store.get("services", "fixme")
            broken["spec"]["ports"][0]["protocol"] = "ICMP"
            server.storage.write(EMULATED_SERVICES, broken)
            slice_ = endpoint_slice("good-1", "good", "10.0.0.1", "10.0.0.1", "10.0.0.2")
            server.storage.write(EMULATED_SLICES, slice_)
            server.store.create(service("after"))

            await eventually(lambda: "default/after" in services.store)
            await eventually(lambda: "default/good-1" in informers.endpoint_slices.store)

            assert "default/bad" not in services.store
            assert services.store["default/fixme"].ports[0].port == 80  # the last valid version
            assert len(informers.endpoint_slices.store["default/good-1"].endpoints) == 2

        lines = [r.getMessage() for r in caplog.records if r.name == "ipvsd.kube.informer"]
        assert lines == [
            "skipping Service default/bad: spec.ports[0].port: 70000 out of range",
            "Service default/fixme: spec.ports[0].protocol: unknown protocol 'ICMP'; "
            "keeping its last valid version",
            "EndpointSlice default/good-1: endpoints[1].addresses[0]: duplicate address "
            "10.0.0.1, keeping the first",
        ]
