"""/metrics after real syncs: the daemon's loop (`app.serve`) against the API emulator, over the
fake kernel, scraped over HTTP. kube-proxy's metrics carry its names, types and labels
(`ip_family`, `traffic_policy`), and they, and ipvsd's kernel operation counts, move with the
syncs that really happened (issue 16 item 12)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ipvsd.config.settings import ProxyConfig
from ipvsd.dataplane.ipvs_fake import FakeIpvs
from ipvsd.server.http import BindAddress
from ipvsd.server.metrics import ProxyMetrics
from ipvsd.server.metrics_server import metrics_server
from ipvsd.testing.apiserver import ApiServer
from tests.component.apiserver_support import endpoint, endpoint_slice, node, service
from tests.component.daemon_support import running_daemon
from tests.component.informer_support import eventually
from tests.component.test_syncer_isolation import RefusingFirewall

pytestmark = pytest.mark.timeout(60)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
async def api() -> AsyncIterator[ApiServer]:
    async with ApiServer() as running:
        running.store.create(node("node-a", zone="zone-a"))
        yield running


async def scrape(port: int) -> tuple[dict[str, str], Samples]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    families = list(text_string_to_metric_families(text))
    types = {family.name: family.type for family in families}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples
    }
    return types, samples


def slice_with(*addresses: str) -> dict[str, object]:
    document = endpoint_slice("echo-1", "echo", [endpoint(a, node="node-a") for a in addresses])
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    document["metadata"]["annotations"] = {  # type: ignore[index]
        "endpoints.kubernetes.io/last-change-trigger-time": stamp
    }
    return document


async def test_kube_proxys_metrics_and_kernel_operations_move_with_real_syncs(
    api: ApiServer,
) -> None:
    kernel = FakeIpvs()
    metrics = ProxyMetrics(families=("IPv4",))
    server = metrics_server(metrics, BindAddress("127.0.0.1", 0))
    await server.start()
    config = ProxyConfig(
        node_name="node-a", kubeconfig=str(api.kubeconfig_path), ipvs_sync_period=300.0
    )
    try:
        async with running_daemon(
            config, ipvs=kernel, firewall=RefusingFirewall(), metrics=metrics
        ):
            api.store.create(service("echo", clusterIP="10.96.0.10"))
            api.store.create(
                service("local", clusterIP="10.96.0.11", internalTrafficPolicy="Local")
            )
            api.store.create(slice_with("10.244.1.5"))
            await eventually(lambda: "10.244.1.5:8080" in kernel.render(), within=30)
            api.store.update(slice_with("10.244.1.5", "10.244.1.6"))  # a partial sync
            await eventually(lambda: "10.244.1.6:8080" in kernel.render(), within=30)
            await asyncio.sleep(0.2)  # the sync's bookkeeping after the kernel call
            types, samples = await scrape(server.port)
            rows = kernel.render().splitlines()
    finally:
        await server.stop()

    v4 = (("ip_family", "IPv4"),)
    for name, kind in {
        "kubeproxy_sync_proxy_rules_duration_seconds": "histogram",
        "kubeproxy_sync_full_proxy_rules_duration_seconds": "histogram",
        "kubeproxy_sync_partial_proxy_rules_duration_seconds": "histogram",
        "kubeproxy_network_programming_duration_seconds": "histogram",
        "kubeproxy_sync_proxy_rules_last_timestamp_seconds": "gauge",
        "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds": "gauge",
        "kubeproxy_sync_proxy_rules_no_local_endpoints_total": "gauge",
        "kubeproxy_sync_proxy_rules_iptables_restore_failures": "counter",
        "kubeproxy_sync_proxy_rules_endpoint_changes": "counter",
        "kubeproxy_sync_proxy_rules_service_changes": "counter",
        "kubeproxy_sync_proxy_rules_endpoint_changes_pending": "gauge",
        "kubeproxy_sync_proxy_rules_service_changes_pending": "gauge",
        "ipvsd_kernel_operations": "counter",
        "ipvsd_sync_errors": "counter",
    }.items():
        assert types.get(name) == kind, name

    full = samples[("kubeproxy_sync_full_proxy_rules_duration_seconds_count", v4)]
    partial = samples[("kubeproxy_sync_partial_proxy_rules_duration_seconds_count", v4)]
    assert full >= 1
    assert partial >= 1
    assert samples[("kubeproxy_sync_proxy_rules_duration_seconds_count", v4)] == full + partial
    assert samples[("kubeproxy_sync_proxy_rules_last_timestamp_seconds", v4)] > 0
    assert samples[("kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds", v4)] > 0
    assert samples[("kubeproxy_network_programming_duration_seconds_count", v4)] >= 1
    assert samples[("kubeproxy_sync_proxy_rules_endpoint_changes_total", ())] >= 2
    assert samples[("kubeproxy_sync_proxy_rules_service_changes_total", ())] >= 2
    no_local = "kubeproxy_sync_proxy_rules_no_local_endpoints_total"
    assert samples[(no_local, (*v4, ("traffic_policy", "internal")))] == 1  # Service "local"
    assert samples[(no_local, (*v4, ("traffic_policy", "external")))] == 0

    def operations(operation: str, result: str = "ok") -> float:
        labels = (("operation", operation), ("result", result))
        return samples.get(("ipvsd_kernel_operations_total", labels), 0)

    # echo's, local's and the emulator's "kubernetes" Service, each added once, never changed
    assert operations("add_service") == len([r for r in rows if r.startswith("-A")]) == 3
    assert operations("add_real_server") == len([r for r in rows if r.startswith("-a")]) == 3
    assert operations("bind_address") == 3
    assert operations("ipvs_dump") >= 1
    assert operations("ipvs_dump_service") >= 1  # the partial sync reads only echo's
    assert operations("nftables_replace") >= 1
    assert operations("nftables_update") >= 1
    assert operations("add_service", "error") == 0
