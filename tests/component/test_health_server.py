"""The proxy health server over real HTTP on 127.0.0.1: what probes and load balancers see."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from ipvsd.server.health import ProxyHealth
from ipvsd.server.health_server import health_server
from ipvsd.server.http import SHUTDOWN_GRACE, AppServer, BindAddress, ListenFailed
from ipvsd.server.metrics import ProxyMetrics

pytestmark = pytest.mark.timeout(10)

START = 1_700_000_000.0
SYNC_PERIOD = 30.0


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def health(clock: FakeClock) -> ProxyHealth:
    return ProxyHealth(sync_period=SYNC_PERIOD, clock=clock)


@pytest.fixture
def metrics() -> ProxyMetrics:
    return ProxyMetrics()


@pytest.fixture
async def server(health: ProxyHealth, metrics: ProxyMetrics) -> AsyncIterator[AppServer]:
    server = health_server(health, BindAddress("127.0.0.1", 0), metrics=metrics)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(
    client: aiohttp.ClientSession, server: AppServer, path: str, method: str = "GET"
) -> tuple[int, dict[str, object], aiohttp.ClientResponse]:
    async with client.request(method, f"http://127.0.0.1:{server.port}{path}") as response:
        body = await response.json(content_type=None)
        return response.status, body, response


async def test_healthz_is_200_with_kube_proxys_body_and_headers(
    client: aiohttp.ClientSession, server: AppServer, health: ProxyHealth, clock: FakeClock
) -> None:
    clock.now = START + 1.25
    status, body, response = await get(client, server, "/healthz")
    assert status == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert body == {
        "lastUpdated": "2023-11-14T22:13:21.25Z",
        "currentTime": "2023-11-14T22:13:21.25Z",
        "nodeEligible": True,
        "healthy": True,
    }, "no family has synced yet: kube-proxy's body has no status map then"
    health.updated(START)
    status, body, _ = await get(client, server, "/healthz")
    assert body["status"] == {"IPv4": {"lastUpdated": "2023-11-14T22:13:20Z", "healthy": True}}


async def test_healthz_and_livez_turn_503_when_a_change_is_late(
    client: aiohttp.ClientSession, server: AppServer, health: ProxyHealth, clock: FakeClock
) -> None:
    health.updated()
    health.queued()
    clock.now += 2 * SYNC_PERIOD
    for path in ("/healthz", "/livez"):
        status, body, _ = await get(client, server, path)
        assert status == 503, path
        assert body["healthy"] is False
        assert body["lastUpdated"] == "2023-11-14T22:13:20Z", "a 503 shows the real last sync"
    health.updated()
    assert (await get(client, server, "/healthz"))[0] == 200


async def test_a_leaving_node_fails_healthz_but_not_livez(
    client: aiohttp.ClientSession, server: AppServer, health: ProxyHealth
) -> None:
    health.set_node_eligible(False)
    status, body, _ = await get(client, server, "/healthz")
    assert (status, body["nodeEligible"], body["healthy"]) == (503, False, True)
    status, body, _ = await get(client, server, "/livez")
    assert status == 200
    assert "nodeEligible" not in body


async def test_any_method_is_answered(client: aiohttp.ClientSession, server: AppServer) -> None:
    assert (await get(client, server, "/healthz", method="POST"))[0] == 200


async def test_other_paths_are_not_found(client: aiohttp.ClientSession, server: AppServer) -> None:
    async with client.get(f"http://127.0.0.1:{server.port}/healthz/extra") as response:
        assert response.status == 404


async def test_answers_are_counted_by_code(
    client: aiohttp.ClientSession, server: AppServer, health: ProxyHealth, metrics: ProxyMetrics
) -> None:
    await get(client, server, "/healthz")
    health.set_node_eligible(False)
    await get(client, server, "/healthz")
    await get(client, server, "/livez")
    registry = metrics.registry
    assert registry.get_sample_value("kubeproxy_proxy_healthz_total", {"code": "200"}) == 1
    assert registry.get_sample_value("kubeproxy_proxy_healthz_total", {"code": "503"}) == 1
    assert registry.get_sample_value("kubeproxy_proxy_livez_total", {"code": "200"}) == 1


async def test_an_address_in_use_is_reported_with_its_errno(health: ProxyHealth) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = health_server(health, BindAddress("127.0.0.1", port))
        with pytest.raises(ListenFailed, match=f"cannot listen on 127.0.0.1:{port}") as failure:
            await server.start()
    assert failure.value.errno == errno.EADDRINUSE
    await server.start()  # free again: the failed start left nothing behind
    await server.stop()


async def test_stop_cancels_a_request_in_flight_instead_of_waiting_for_it(
    client: aiohttp.ClientSession,
) -> None:
    """A scrape stuck in its handler must not keep a terminating daemon alive: aiohttp's own
    default would wait 60 s for it (longer than kubelet's grace period)."""
    entered, cancelled = asyncio.Event(), asyncio.Event()

    async def stuck(_request: web.Request) -> web.Response:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        raise AssertionError("unreachable")

    app = web.Application()
    app.router.add_get("/", stuck)
    server = AppServer(app, BindAddress("127.0.0.1", 0), name="stuck")
    await server.start()
    request = asyncio.create_task(client.get(f"http://127.0.0.1:{server.port}/"))
    await entered.wait()
    async with asyncio.timeout(2 * SHUTDOWN_GRACE + 3):
        await server.stop()
    assert cancelled.is_set()
    with pytest.raises(aiohttp.ClientError):
        await request
