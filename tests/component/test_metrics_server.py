"""The metrics server over real HTTP: kube-proxy's metric names and types, /proxyMode, /healthz."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from ipvsd.model.ipvs import ServiceKey, Stats
from ipvsd.model.service import ServiceRef
from ipvsd.server.http import AppServer, BindAddress
from ipvsd.server.metrics import ProxyMetrics
from ipvsd.server.metrics_server import metrics_server

pytestmark = pytest.mark.timeout(10)

KUBE_PROXY_TYPES = {
    "kubeproxy_sync_proxy_rules_duration_seconds": "histogram",
    "kubeproxy_sync_full_proxy_rules_duration_seconds": "histogram",
    "kubeproxy_sync_partial_proxy_rules_duration_seconds": "histogram",
    "kubeproxy_sync_proxy_rules_last_timestamp_seconds": "gauge",
    "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds": "gauge",
    "kubeproxy_network_programming_duration_seconds": "histogram",
    "kubeproxy_sync_proxy_rules_endpoint_changes_pending": "gauge",
    "kubeproxy_sync_proxy_rules_endpoint_changes": "counter",  # exposed as ..._total
    "kubeproxy_sync_proxy_rules_service_changes_pending": "gauge",
    "kubeproxy_sync_proxy_rules_service_changes": "counter",
    "kubeproxy_sync_proxy_rules_no_local_endpoints_total": "gauge",
    "kubeproxy_sync_proxy_rules_iptables_restore_failures": "counter",
    "kubeproxy_proxy_healthz": "counter",
    "kubeproxy_proxy_livez": "counter",
}


@pytest.fixture
def metrics() -> ProxyMetrics:
    return ProxyMetrics(clock=lambda: 1_700_000_000.0)


@pytest.fixture
async def server(metrics: ProxyMetrics) -> AsyncIterator[AppServer]:
    server = metrics_server(metrics, BindAddress("127.0.0.1", 0))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def scrape(client: aiohttp.ClientSession, server: AppServer) -> dict[str, Metric]:
    async with client.get(f"http://127.0.0.1:{server.port}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert response.headers.get("Content-Encoding") == "gzip"
        text = await response.text()
    return {family.name: family for family in text_string_to_metric_families(text)}


async def test_metrics_carry_kube_proxys_names_and_types(
    client: aiohttp.ClientSession, server: AppServer, metrics: ProxyMetrics
) -> None:
    metrics.sync_queued()
    metrics.sync_finished(0.02)
    metrics.network_programming(1.0)
    metrics.changes_seen(services=1, endpoints=2)
    metrics.changes_pending(services=0, endpoints=1)
    metrics.no_local_endpoints({("external", "IPv4"): 1})
    metrics.restore_failed()
    metrics.healthz_answered(200)
    metrics.livez_answered(200)
    families = await scrape(client, server)
    assert {name: families[name].type for name in KUBE_PROXY_TYPES} == KUBE_PROXY_TYPES
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families.values()
        for s in family.samples
    }
    assert samples[("kubeproxy_sync_proxy_rules_endpoint_changes_total", ())] == 2
    ipv4 = (("ip_family", "IPv4"),)
    last = "kubeproxy_sync_proxy_rules_last_timestamp_seconds"
    assert samples[(last, ipv4)] == 1_700_000_000
    no_local = "kubeproxy_sync_proxy_rules_no_local_endpoints_total"
    assert samples[(no_local, (*ipv4, ("traffic_policy", "external")))] == 1
    assert "process_cpu_seconds_total" in {s.name for s in families["process_cpu_seconds"].samples}


async def test_histogram_buckets_are_spelled_as_go_spells_them(
    client: aiohttp.ClientSession, server: AppServer, metrics: ProxyMetrics
) -> None:
    metrics.sync_finished(0.02)
    metrics.network_programming(1.0)
    families = await scrape(client, server)

    def bounds(name: str) -> list[str]:
        return [s.labels["le"] for s in families[name].samples if s.name.endswith("_bucket")]

    sync = bounds("kubeproxy_sync_proxy_rules_duration_seconds")
    assert sync[:3] == ["0.001", "0.002", "0.004"]
    assert sync[-2:] == ["16.384", "+Inf"]
    assert len(sync) == 16
    programming = bounds("kubeproxy_network_programming_duration_seconds")
    assert programming[:5] == ["0", "0.25", "0.5", "1", "2"]
    assert programming[-3:] == ["270", "300", "+Inf"]


async def test_ipvs_traffic_counters_follow_the_snapshot(
    client: aiohttp.ClientSession, server: AppServer, metrics: ProxyMetrics
) -> None:
    stats = Stats(connections=4, packets_in=1, packets_out=2, bytes_in=3, bytes_out=5)
    metrics.set_ipvs_snapshot(
        {ServiceKey.udp("fd00::10", 53): (ServiceRef("kube-system", "dns"), "dns", stats)}
    )
    families = await scrape(client, server)
    connections = families["ipvsd_virtual_server_connections"]
    assert connections.type == "counter"
    [sample] = connections.samples
    assert sample.labels == {
        "namespace": "kube-system",
        "service": "dns",
        "port": "dns",
        "protocol": "UDP",
        "vip": "fd00::10",
        "vport": "53",
    }
    assert sample.value == 4
    by_direction = {
        s.labels["direction"]: s.value for s in families["ipvsd_virtual_server_bytes"].samples
    }
    assert by_direction == {"in": 3, "out": 5}


async def test_proxy_mode_is_ipvs(client: aiohttp.ClientSession, server: AppServer) -> None:
    async with client.get(f"http://127.0.0.1:{server.port}/proxyMode") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert await response.text() == "ipvs"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/healthz", "ok"),
        ("/healthz?verbose", "[+]ping ok\nhealthz check passed\n"),
        ("/healthz/ping", "ok"),
    ],
)
async def test_healthz_on_the_metrics_port_is_a_ping(
    client: aiohttp.ClientSession, server: AppServer, path: str, body: str
) -> None:
    async with client.get(f"http://127.0.0.1:{server.port}{path}") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert await response.text() == body


async def test_metrics_are_not_compressed_unless_asked(
    client: aiohttp.ClientSession, server: AppServer
) -> None:
    url = f"http://127.0.0.1:{server.port}/metrics"
    async with client.get(url, headers={"Accept-Encoding": "identity"}) as response:
        assert "Content-Encoding" not in response.headers
        assert "kubeproxy_sync_proxy_rules_duration_seconds" in await response.text()
