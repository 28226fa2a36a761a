"""healthCheckNodePort listeners respect `--nodeport-addresses` (kube-proxy's service health
server listens on the node-port addresses): the whole daemon (`app.serve` over the fake
kernel) against the emulator, probed over real sockets on 127.0.0.1 (selected) and 127.0.0.2
(a host address the selection excludes)."""

from __future__ import annotations

import asyncio
import errno

import aiohttp
import pytest

from ipvsd.config.settings import ProxyConfig
from ipvsd.config.values import parse_nodeport_addresses
from ipvsd.dataplane.addresses import FakeAddresses
from ipvsd.model.ipvs import parse_address
from ipvsd.testing.apiserver import ApiServer
from tests.component.apiserver_support import endpoint, endpoint_slice, node, service
from tests.component.daemon_support import running_daemon

pytestmark = pytest.mark.timeout(90)


async def answer(session: aiohttp.ClientSession, host: str, port: int) -> int | str:
    """The status a probe gets, or why it got none."""
    try:
        async with session.get(f"http://{host}:{port}/") as response:
            return response.status
    except aiohttp.ClientConnectorError as error:
        return "refused" if error.os_error.errno == errno.ECONNREFUSED else str(error)


async def test_health_check_listens_only_on_the_nodeport_addresses() -> None:
    async with ApiServer() as server:
        server.store.create(node("node-a", zone="zone-a"))
        lb = service("lb", type="LoadBalancer", externalTrafficPolicy="Local")
        created = server.store.create(lb)
        port = int(created["spec"]["healthCheckNodePort"])
        ingress = {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}}
        server.store.patch("services", "lb", {"status": ingress}, status=True)
        server.store.create(endpoint_slice("lb-1", "lb", [endpoint("10.244.1.5", node="node-a")]))
        config = ProxyConfig(
            node_name="node-a",
            kubeconfig=str(server.kubeconfig_path),
            nodeport_addresses=parse_nodeport_addresses(["127.0.0.1/32"], "--nodeport-addresses"),
        )
        host = [(parse_address("127.0.0.1"), "lo"), (parse_address("127.0.0.2"), "lo")]
        async with (
            running_daemon(config, addresses=FakeAddresses(host=host)),
            aiohttp.ClientSession() as session,
        ):
            statuses: dict[str, int | str] = {}

            async def probed() -> bool:
                statuses["127.0.0.1"] = await answer(session, "127.0.0.1", port)
                return statuses["127.0.0.1"] == 200

            try:
                async with asyncio.timeout(20):
                    while not await probed():  # noqa: ASYNC110 - polling a socket
                        await asyncio.sleep(0.1)
            except TimeoutError:
                pytest.fail(f"no 200 on 127.0.0.1:{port}: {statuses}")
            assert await answer(session, "127.0.0.2", port) == "refused", (
                "127.0.0.2 is a host address outside --nodeport-addresses"
            )
