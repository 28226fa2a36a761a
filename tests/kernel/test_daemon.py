"""The whole daemon in the VM: API emulator → informers → syncer → real IPVS, real packets.

The Service and its EndpointSlice are created over HTTP, as a controller would; ipvsd runs with
kube-proxy's flags and a one-second sync period so periodic full syncs happen during the test.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator

import aiohttp
import pytest

from ipvsd.testing.netns import Lab, http_get
from tests.kernel.daemon_support import (
    SERVICES,
    SLICES,
    Api,
    bound_on_dummy,
    ipvsadm,
    running_daemon,
    slice_for,
    until,
    until_serving,
)

pytestmark = pytest.mark.kernel


@pytest.fixture
async def cluster() -> AsyncIterator[tuple[Api, Lab]]:
    async with running_daemon() as running:
        yield running


async def test_the_daemon_programs_services_from_the_api_and_keeps_foreign_entries(
    cluster: tuple[Api, Lab],
) -> None:
    api, _net = cluster
    subprocess.run(["ipvsadm", "-A", "-t", "10.0.0.1:80", "-s", "wlc"], check=True)  # foreign
    service = await api.send("POST", SERVICES, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    })  # fmt: skip
    vip = service["spec"]["clusterIP"]
    await api.send("POST", SLICES, slice_for(["10.200.1.2"]))
    await until_serving(vip, "-r 10.200.1.2:8080")
    assert http_get("client", vip, 80).startswith("pod-a ")

    await api.send("PUT", f"{SLICES}/web-1", slice_for(["10.200.1.2", "10.200.2.2"]))
    await until(lambda: "-r 10.200.2.2:8080" in ipvsadm())
    answers = {http_get("client", vip, 80).split()[0] for _ in range(4)}
    assert answers == {"pod-a", "pod-b"}

    await asyncio.sleep(2.5)  # at least two periodic full syncs
    assert "-A -t 10.0.0.1:80 -s wlc" in ipvsadm()

    async with aiohttp.ClientSession() as session:
        async with session.get("http://127.0.0.1:10256/healthz") as response:
            assert response.status == 200
            assert (await response.json())["nodeEligible"] is True
        async with session.get("http://127.0.0.1:10249/metrics") as response:
            assert "kubeproxy_sync_proxy_rules_duration_seconds_bucket" in await response.text()

    await api.send("DELETE", f"{SERVICES}/web")
    await until(lambda: vip not in ipvsadm())
    await until(lambda: f"{vip}/32" not in bound_on_dummy())  # unbound after the IPVS change
    assert "-A -t 10.0.0.1:80 -s wlc" in ipvsadm()
