"""The API server stops, endpoints change, it comes back: the informers keep their store during
the outage and catch up within a probe interval of its return, not after the watches' backoff
(which has grown to tens of seconds by then); the requests sent meanwhile stay few."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from ipvsd.config.settings import ProxyConfig
from ipvsd.dataplane.ipvs_fake import FakeIpvs
from ipvsd.kube.auth import load_credentials
from ipvsd.kube.client import ApiClient
from ipvsd.kube.proxy_informers import ProxyInformers
from ipvsd.kube.watch import BackoffPolicy, WatchSettings
from ipvsd.server.health import ProxyHealth
from ipvsd.testing.apiserver import ApiServer
from tests.component import apiserver_support
from tests.component.daemon_support import running_daemon
from tests.component.informer_support import (
    emulator,
    endpoint_slice,
    eventually,
    node,
    service,
)

pytestmark = pytest.mark.timeout(30)

BACKOFF_S = 20.0  # what every retry would wait without the probe
PROBE_S = 0.2


async def test_after_an_outage_the_watches_resume_within_a_probe_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    settings = WatchSettings(
        timeout_range=(30, 60),
        initial_events_idle=2.0,
        backoff=BackoffPolicy(initial=BACKOFF_S, maximum=BACKOFF_S, jitter=0.0),
    )
    async with emulator() as server:
        server.store.load([service("svc"), endpoint_slice("svc-1", "svc", "10.0.0.1")])
        server.store.load([node("node-a")])
        credentials = load_credentials(kubeconfig=str(server.kubeconfig_path))
        async with ApiClient(credentials=credentials, probe_interval=PROBE_S) as client:
            informers = ProxyInformers(client=client, node_name="node-a", settings=settings)
            task = asyncio.create_task(informers.run())
            try:
                async with asyncio.timeout(5):
                    await informers.synced.wait()
                watches = sum(len(informer.watches) for informer in informers.all)
                await eventually(lambda: len(server.storage.subscriptions()) >= watches)

                await server.stop()
                server.store.create(endpoint_slice("svc-2", "svc", "10.0.0.2"))
                down = 2.0
                await asyncio.sleep(down)
                assert "default/svc-1" in informers.endpoint_slices.store  # kept meanwhile
                assert "default/svc-2" not in informers.endpoint_slices.store
                probes = client.reachability.probes

                await server.start()
                back = time.monotonic()
                await eventually(
                    lambda: "default/svc-2" in informers.endpoint_slices.store, within=5.0
                )
                caught_up = time.monotonic() - back
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    assert caught_up < 4 * PROBE_S + 1.0, caught_up
    # One probe per interval for the client, whatever the number of watches.
    assert probes <= down / (PROBE_S * 0.75) + 2, probes
    assert "the API server answers again" in caplog.text


async def test_healthz_stays_200_through_an_api_outage_and_the_table_stays() -> None:
    """The README's rule, kube-proxy's: an outage longer than the health timeout (twice the
    sync period) leaves /healthz serving, and the kernel's table as it was."""
    async with ApiServer() as api:
        support = apiserver_support
        api.store.create(support.service("echo", clusterIP="10.96.0.10"))
        api.store.create(
            support.endpoint_slice(
                "echo-1", "echo", [support.endpoint("10.244.1.5", node="node-a")]
            )
        )
        api.store.create(support.node("node-a", zone="zone-a"))
        config = ProxyConfig(
            node_name="node-a", kubeconfig=str(api.kubeconfig_path), ipvs_sync_period=0.5
        )
        kernel = FakeIpvs()
        health = ProxyHealth(sync_period=config.ipvs_sync_period)
        async with running_daemon(config, ipvs=kernel, health=health):
            await eventually(lambda: "10.244.1.5:8080" in kernel.render(), within=20.0)
            table = kernel.render()
            await api.stop()
            answers = []
            for _ in range(15):  # 3 s: six health timeouts
                answers.append(health.report().serving)
                await asyncio.sleep(0.2)
            assert all(answers)
            assert kernel.render() == table
