"""Per-Service health check listeners over real HTTP on 127.0.0.1: what cloud LBs probe."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest

from ipvsd.model.service import ServiceRef
from ipvsd.server.servicehealth import ServiceHealthServers

pytestmark = pytest.mark.timeout(10)

WEB = ServiceRef("shop", "web")
API = ServiceRef("shop", "api")


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class ProxyState:
    def __init__(self) -> None:
        self.healthy = True

    def __call__(self) -> bool:
        return self.healthy


@pytest.fixture
def proxy() -> ProxyState:
    return ProxyState()


@pytest.fixture
async def servers(proxy: ProxyState) -> AsyncIterator[ServiceHealthServers]:
    servers = ServiceHealthServers(proxy_healthy=proxy, hosts=["127.0.0.1"])
    yield servers
    await servers.close()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        yield session


async def probe(client: aiohttp.ClientSession, port: int, path: str = "/") -> tuple[int, str]:
    async with client.get(f"http://127.0.0.1:{port}{path}") as response:
        return response.status, await response.text()


async def refused(client: aiohttp.ClientSession, port: int) -> bool:
    try:
        await probe(client, port)
    except aiohttp.ClientConnectorError:
        return True
    return False


async def test_a_service_with_local_endpoints_answers_200_on_any_path(
    servers: ServiceHealthServers, client: aiohttp.ClientSession
) -> None:
    [port] = free_ports(1)
    await servers.sync({WEB: (port, 2)})
    assert servers.listening() == {WEB: port}
    async with client.post(f"http://127.0.0.1:{port}/any/path?x=1") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Load-Balancing-Endpoint-Weight"] == "2"
        assert await response.read() == (
            b'{\n\t"service": {\n\t\t"namespace": "shop",\n\t\t"name": "web"\n\t},\n'
            b'\t"localEndpoints": 2,\n\t"serviceProxyHealthy": true\n}'
        )


async def test_counts_change_without_moving_the_listener(
    servers: ServiceHealthServers, client: aiohttp.ClientSession
) -> None:
    [port] = free_ports(1)
    await servers.sync({WEB: (port, 1)})
    listener = servers._open[WEB]
    await servers.sync({WEB: (port, 0)})
    assert servers._open[WEB] is listener
    status, body = await probe(client, port)
    assert status == 503
    assert '"localEndpoints": 0' in body
    await servers.sync({WEB: (port, 3)})
    assert servers._open[WEB] is listener
    status, body = await probe(client, port)
    assert status == 200
    assert '"localEndpoints": 3' in body


async def test_an_unhealthy_proxy_fails_every_service(
    servers: ServiceHealthServers, client: aiohttp.ClientSession, proxy: ProxyState
) -> None:
    [port] = free_ports(1)
    await servers.sync({WEB: (port, 5)})
    proxy.healthy = False
    status, body = await probe(client, port)
    assert status == 503
    assert '"serviceProxyHealthy": false' in body
    proxy.healthy = True
    assert (await probe(client, port))[0] == 200


async def test_removed_services_stop_listening(
    servers: ServiceHealthServers, client: aiohttp.ClientSession
) -> None:
    web_port, api_port = free_ports(2)
    await servers.sync({WEB: (web_port, 1), API: (api_port, 1)})
    await servers.sync({API: (api_port, 1)})
    assert servers.listening() == {API: api_port}
    assert await refused(client, web_port)
    assert (await probe(client, api_port))[0] == 200


async def test_a_changed_port_moves_the_listener(
    servers: ServiceHealthServers, client: aiohttp.ClientSession
) -> None:
    old, new = free_ports(2)
    await servers.sync({WEB: (old, 1)})
    await servers.sync({WEB: (new, 1)})
    assert servers.listening() == {WEB: new}
    assert await refused(client, old)
    assert (await probe(client, new))[0] == 200


async def test_two_services_can_swap_ports_in_one_sync(
    servers: ServiceHealthServers, client: aiohttp.ClientSession
) -> None:
    first, second = free_ports(2)
    await servers.sync({WEB: (first, 1), API: (second, 0)})
    await servers.sync({WEB: (second, 1), API: (first, 0)})
    assert servers.listening() == {WEB: second, API: first}
    status, body = await probe(client, second)
    assert (status, '"name": "web"' in body) == (200, True)
    status, body = await probe(client, first)
    assert (status, '"name": "api"' in body) == (503, True)


async def test_a_port_in_use_is_logged_and_retried_on_the_next_sync(
    servers: ServiceHealthServers, client: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    web_port, api_port = free_ports(2)
    caplog.set_level(logging.DEBUG, logger="ipvsd.server.servicehealth")
    taken = socket.socket()
    taken.bind(("127.0.0.1", api_port))
    taken.listen()
    try:
        await servers.sync({WEB: (web_port, 1), API: (api_port, 1)})
        assert servers.listening() == {WEB: web_port}, "one bad port does not stop the others"
        [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert f"Service shop/api cannot listen on port {api_port}" in warning.getMessage()
        assert "retrying on the next sync" in warning.getMessage()

        caplog.clear()
        await servers.sync({WEB: (web_port, 1), API: (api_port, 1)})
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], "said once"
    finally:
        taken.close()

    caplog.clear()
    await servers.sync({WEB: (web_port, 1), API: (api_port, 1)})
    assert servers.listening() == {WEB: web_port, API: api_port}
    assert any("now listening" in r.getMessage() for r in caplog.records)
    assert (await probe(client, api_port))[0] == 200


async def test_a_kept_alive_connection_to_a_removed_service_is_refused_and_closed(
    servers: ServiceHealthServers,
) -> None:
    [port] = free_ports(1)
    await servers.sync({WEB: (port, 1)})
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        [length] = [
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.startswith(b"Content-Length")
        ]
        await reader.readexactly(length)
        await servers.sync({})
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503")
        assert b"Connection: close" in head
    finally:
        writer.close()
        await writer.wait_closed()


async def test_close_stops_every_listener(
    servers: ServiceHealthServers, client: aiohttp.ClientSession
) -> None:
    web_port, api_port = free_ports(2)
    await servers.sync({WEB: (web_port, 1), API: (api_port, 1)})
    await servers.close()
    assert servers.listening() == {}
    assert await refused(client, web_port)
    assert await refused(client, api_port)


async def test_by_default_every_address_is_listened_on(
    proxy: ProxyState, client: aiohttp.ClientSession
) -> None:
    servers = ServiceHealthServers(proxy_healthy=proxy)
    [port] = free_ports(1)
    try:
        await servers.sync({WEB: (port, 1)})
        assert (await probe(client, port))[0] == 200
    finally:
        await servers.close()
