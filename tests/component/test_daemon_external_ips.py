"""The daemon with --service-external-ip-range, against the API emulator over the fake kernel:
an externalIP outside the ranges gets no virtual server and no address, the Service gets a
Warning Event (reason ExternalIPNotServed) once, and the other externalIP is served.

That IPVS virtual servers and addresses for externalIPs reach the real kernel and carry
packets is proven by the kernel tier (`tests/kernel/test_firewall_packets.py`, the golden
scenarios); what this changes is only the plan, so the fakes suffice here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from ipaddress import ip_network
from typing import Any

import pytest

from ipvsd.config.settings import ProxyConfig
from ipvsd.dataplane.addresses import FakeAddresses
from ipvsd.dataplane.ipvs_fake import FakeIpvs
from ipvsd.kube.auth import load_credentials
from ipvsd.kube.client import ApiClient
from ipvsd.model.ipvs import parse_address
from ipvsd.testing.apiserver import ApiServer
from tests.component.apiserver_support import endpoint, endpoint_slice, node, service
from tests.component.daemon_support import running_daemon
from tests.component.informer_support import eventually


@pytest.fixture
async def api() -> AsyncIterator[ApiServer]:
    async with ApiServer() as running:
        running.store.create(node("node-a", zone="zone-a"))
        running.store.create(
            service("web", clusterIP="10.96.0.10", externalIPs=["192.0.2.5", "203.0.113.7"])
        )
        running.store.create(
            endpoint_slice("web-1", "web", [endpoint("10.244.1.5", node="node-a")])
        )
        yield running


async def events(api: ApiServer) -> list[dict[str, Any]]:
    client = ApiClient(credentials=load_credentials(kubeconfig=str(api.kubeconfig_path)))
    async with client:
        listed = await client.get_json("/api/v1/namespaces/default/events", {})
    items: list[dict[str, Any]] = listed["items"]
    return items


async def test_an_external_ip_outside_the_ranges_is_not_served_and_the_service_is_told(
    api: ApiServer,
) -> None:
    config = ProxyConfig(
        node_name="node-a",
        kubeconfig=str(api.kubeconfig_path),
        service_external_ip_ranges=(ip_network("192.0.2.0/24"),),
        ipvs_sync_period=0.2,  # several full syncs: the Event is still posted once
    )
    kernel, addresses = FakeIpvs(), FakeAddresses(host=[(parse_address("192.168.1.10"), "eth0")])
    async with running_daemon(config, ipvs=kernel, addresses=addresses):
        await eventually(lambda: "-A -t 192.0.2.5:80 -s rr" in kernel.render(), within=60.0)
        await asyncio.sleep(1.0)  # a few more full syncs
        assert "203.0.113.7" not in kernel.render()
        assert parse_address("203.0.113.7") not in await addresses.bound()
        assert parse_address("192.0.2.5") in await addresses.bound()
        (event,) = [e for e in await events(api) if e["reason"] == "ExternalIPNotServed"]
        assert event["type"] == "Warning"
        assert event["involvedObject"]["name"] == "web"
        assert event["message"].startswith(
            "spec.externalIPs: 203.0.113.7 is outside --service-external-ip-range (192.0.2.0/24)"
        )
