"""ProxyMetrics: kube-proxy's declarations, the recording functions, the IPVS traffic collector."""

from __future__ import annotations

import asyncio

import pytest

from ipvsd.model.ipvs import (
    ServiceKey,
    Stats,
)
from ipvsd.model.service import ServiceRef
from ipvsd.server.health import IPV4, IPV6
from ipvsd.server.metrics import (
    NETWORK_PROGRAMMING_BUCKETS,
    SYNC_DURATION_BUCKETS,
    ProxyMetrics,
)

pytestmark = pytest.mark.timeout(5)

NOW = 1_700_000_000.0
WEB = ServiceRef("shop", "web")


@pytest.fixture
def metrics() -> ProxyMetrics:
    return ProxyMetrics(clock=lambda: NOW)


def value(metrics: ProxyMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_sync_duration_buckets_are_1ms_doubling_15_times() -> None:
    assert len(SYNC_DURATION_BUCKETS) == 15
    assert SYNC_DURATION_BUCKETS[0] == 0.001
    assert SYNC_DURATION_BUCKETS[-1] == 16.384


def test_network_programming_buckets_are_kube_proxys() -> None:
    expected = [0.0, 0.25, 0.5, *range(1, 60), *range(60, 120, 5), *range(120, 301, 30)]
    assert list(NETWORK_PROGRAMMING_BUCKETS) == expected
    assert len(NETWORK_PROGRAMMING_BUCKETS) == 81


def test_types_of_the_kube_proxy_metrics(metrics: ProxyMetrics) -> None:
    types = {family.name: family.type for family in metrics.registry.collect()}
    assert types["kubeproxy_sync_proxy_rules_duration_seconds"] == "histogram"
    assert types["kubeproxy_sync_full_proxy_rules_duration_seconds"] == "histogram"
    assert types["kubeproxy_sync_partial_proxy_rules_duration_seconds"] == "histogram"
    assert types["kubeproxy_network_programming_duration_seconds"] == "histogram"
    assert types["kubeproxy_sync_proxy_rules_last_timestamp_seconds"] == "gauge"
    assert types["kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds"] == "gauge"
    assert types["kubeproxy_sync_proxy_rules_endpoint_changes_pending"] == "gauge"
    assert types["kubeproxy_sync_proxy_rules_service_changes_pending"] == "gauge"
    assert types["kubeproxy_sync_proxy_rules_endpoint_changes"] == "counter"
    assert types["kubeproxy_sync_proxy_rules_service_changes"] == "counter"
    assert types["kubeproxy_sync_proxy_rules_no_local_endpoints_total"] == "gauge"
    assert types["kubeproxy_sync_proxy_rules_iptables_restore_failures"] == "counter"
    assert types["kubeproxy_sync_proxy_rules_iptables_partial_restore_failures"] == "counter"
    assert types["kubeproxy_proxy_healthz"] == "counter"
    assert types["kubeproxy_proxy_livez"] == "counter"


def test_no_created_series(metrics: ProxyMetrics) -> None:
    metrics.changes_seen(services=1)
    names = {s.name for family in metrics.registry.collect() for s in family.samples}
    assert not [name for name in names if name.endswith("_created")]


def test_sync_finished_observes_and_stamps_per_family_and_kind(metrics: ProxyMetrics) -> None:
    metrics.sync_finished(0.003, full=True)
    metrics.sync_finished(0.0005, full=False)
    count = "kubeproxy_sync_proxy_rules_duration_seconds_count"
    bucket = "kubeproxy_sync_proxy_rules_duration_seconds_bucket"
    assert value(metrics, count, ip_family=IPV4) == 2
    assert value(metrics, bucket, ip_family=IPV4, le="0.002") == 1
    assert value(metrics, bucket, ip_family=IPV4, le="0.004") == 2
    full = "kubeproxy_sync_full_proxy_rules_duration_seconds_bucket"
    partial = "kubeproxy_sync_partial_proxy_rules_duration_seconds_bucket"
    assert value(metrics, full, ip_family=IPV4, le="0.002") == 0
    assert value(metrics, full, ip_family=IPV4, le="0.004") == 1
    assert value(metrics, partial, ip_family=IPV4, le="0.001") == 1
    assert value(metrics, count, ip_family=IPV6) is None, "only the families ipvsd serves"
    stamp = "kubeproxy_sync_proxy_rules_last_timestamp_seconds"
    assert value(metrics, stamp, ip_family=IPV4) == NOW


def test_a_dual_stack_node_shows_each_sync_under_both_families() -> None:
    metrics = ProxyMetrics(clock=lambda: NOW, families=(IPV4, IPV6))
    metrics.sync_finished(0.003)
    metrics.sync_queued()
    for family in (IPV4, IPV6):
        labels = {"ip_family": family}
        assert value(metrics, "kubeproxy_sync_proxy_rules_duration_seconds_count", **labels) == 1
        assert value(metrics, "kubeproxy_sync_proxy_rules_last_timestamp_seconds", **labels) == NOW
        queued = "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds"
        assert value(metrics, queued, **labels) == NOW


def test_a_failed_sync_is_timed_but_does_not_move_the_last_sync(metrics: ProxyMetrics) -> None:
    metrics.sync_finished(0.5, ok=False)
    labels = {"ip_family": IPV4}
    assert value(metrics, "kubeproxy_sync_proxy_rules_duration_seconds_count", **labels) == 1
    assert value(metrics, "kubeproxy_sync_proxy_rules_last_timestamp_seconds", **labels) is None


def test_sync_queued_stamps(metrics: ProxyMetrics) -> None:
    metrics.sync_queued(now=NOW + 7)
    name = "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds"
    assert value(metrics, name, ip_family=IPV4) == NOW + 7


def test_network_programming_keeps_skewed_negative_latencies_in_the_zero_bucket(
    metrics: ProxyMetrics,
) -> None:
    metrics.network_programming(-0.2)
    metrics.network_programming(1.5, [IPV4])
    bucket = "kubeproxy_network_programming_duration_seconds_bucket"
    assert value(metrics, bucket, ip_family=IPV4, le="0") == 1
    assert value(metrics, bucket, ip_family=IPV4, le="1") == 1
    assert value(metrics, bucket, ip_family=IPV4, le="2") == 2
    total = "kubeproxy_network_programming_duration_seconds_sum"
    assert value(metrics, total, ip_family=IPV4) == 1.3


def test_network_programming_goes_under_the_families_of_the_service() -> None:
    metrics = ProxyMetrics(clock=lambda: NOW, families=(IPV4, IPV6))
    metrics.network_programming(2.0, [IPV6])
    count = "kubeproxy_network_programming_duration_seconds_count"
    assert value(metrics, count, ip_family=IPV6) == 1
    assert value(metrics, count, ip_family=IPV4) is None


def test_changes(metrics: ProxyMetrics) -> None:
    metrics.changes_seen(services=2, endpoints=5)
    metrics.changes_seen(endpoints=1)
    metrics.changes_pending(services=1, endpoints=3)
    assert value(metrics, "kubeproxy_sync_proxy_rules_service_changes_total") == 2
    assert value(metrics, "kubeproxy_sync_proxy_rules_endpoint_changes_total") == 6
    assert value(metrics, "kubeproxy_sync_proxy_rules_service_changes_pending") == 1
    assert value(metrics, "kubeproxy_sync_proxy_rules_endpoint_changes_pending") == 3


def test_no_local_endpoints_by_traffic_policy_and_family() -> None:
    metrics = ProxyMetrics(clock=lambda: NOW, families=(IPV4, IPV6))
    name = "kubeproxy_sync_proxy_rules_no_local_endpoints_total"
    labels = {"traffic_policy": "internal", "ip_family": IPV4}
    assert value(metrics, name, **labels) is None, "nothing before a sync"
    metrics.no_local_endpoints({("internal", IPV4): 2, ("external", IPV6): 1})
    assert value(metrics, name, **labels) == 2
    assert value(metrics, name, traffic_policy="external", ip_family=IPV6) == 1
    assert value(metrics, name, traffic_policy="external", ip_family=IPV4) == 0
    metrics.no_local_endpoints({})
    assert value(metrics, name, **labels) == 0


def test_nft_refusals_count_as_kube_proxys_restore_failures(metrics: ProxyMetrics) -> None:
    metrics.restore_failed()
    metrics.restore_failed(partial=True)
    metrics.restore_failed(partial=True)
    full = "kubeproxy_sync_proxy_rules_iptables_restore_failures_total"
    partial = "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total"
    assert value(metrics, full, ip_family=IPV4) == 1
    assert value(metrics, partial, ip_family=IPV4) == 2


def test_health_answers_by_code(metrics: ProxyMetrics) -> None:
    metrics.healthz_answered(200)
    metrics.healthz_answered(503)
    metrics.livez_answered(200)
    assert value(metrics, "kubeproxy_proxy_healthz_total", code="200") == 1
    assert value(metrics, "kubeproxy_proxy_healthz_total", code="503") == 1
    assert value(metrics, "kubeproxy_proxy_livez_total", code="200") == 1


def test_errors_and_kernel_operations(metrics: ProxyMetrics) -> None:
    metrics.kernel_operations({("add_service", "ok"): 1, ("add_real_server", "ok"): 2})
    metrics.kernel_operations({("add_real_server", "ok"): 1, ("bind_address", "error"): 1})
    metrics.sync_error("bind")
    metrics.sync_error("plan", 3)
    name = "ipvsd_kernel_operations_total"
    assert value(metrics, name, operation="add_service", result="ok") == 1
    assert value(metrics, name, operation="add_real_server", result="ok") == 3
    assert value(metrics, name, operation="bind_address", result="error") == 1
    assert value(metrics, "ipvsd_sync_errors_total", kind="bind") == 1
    assert value(metrics, "ipvsd_sync_errors_total", kind="plan") == 3


def test_ipvs_traffic_comes_from_the_latest_snapshot(metrics: ProxyMetrics) -> None:
    key = ServiceKey.tcp("10.96.0.10", 80)
    stats = Stats(connections=3, packets_in=10, packets_out=8, bytes_in=700, bytes_out=900)
    metrics.set_ipvs_snapshot({key: (WEB, "http", stats)})
    labels = {
        "namespace": "shop",
        "service": "web",
        "port": "http",
        "protocol": "TCP",
        "vip": "10.96.0.10",
        "vport": "80",
    }
    assert value(metrics, "ipvsd_virtual_server_connections_total", **labels) == 3
    assert value(metrics, "ipvsd_virtual_server_packets_total", **labels, direction="in") == 10
    assert value(metrics, "ipvsd_virtual_server_packets_total", **labels, direction="out") == 8
    assert value(metrics, "ipvsd_virtual_server_bytes_total", **labels, direction="in") == 700
    assert value(metrics, "ipvsd_virtual_server_bytes_total", **labels, direction="out") == 900

    metrics.set_ipvs_snapshot({})
    assert value(metrics, "ipvsd_virtual_server_connections_total", **labels) is None


def test_fwmark_virtual_servers_are_labelled_by_mark(metrics: ProxyMetrics) -> None:
    metrics.set_ipvs_snapshot({ServiceKey.for_fwmark(7): (WEB, "http", Stats(connections=1))})
    labels = {
        "namespace": "shop",
        "service": "web",
        "port": "http",
        "protocol": "",
        "vip": "fwmark:7",
        "vport": "0",
    }
    assert value(metrics, "ipvsd_virtual_server_connections_total", **labels) == 1


def test_registries_are_isolated() -> None:
    first, second = ProxyMetrics(), ProxyMetrics()
    first.sync_error("ipvs")
    assert second.registry.get_sample_value("ipvsd_sync_errors_total", {"kind": "ipvs"}) is None


def test_topology_figures_are_read_from_the_plan_at_scrape_time(metrics: ProxyMetrics) -> None:
    plan = [(WEB, {"node": 1, "zone": 2, "other": 3}, True)]
    metrics.read_topology_from(lambda: plan)
    labels = {"namespace": "shop", "service": "web"}
    got = {
        p: value(metrics, "ipvsd_service_real_servers", **labels, proximity=p)
        for p in ("node", "zone", "other")
    }
    assert got == {"node": 1.0, "zone": 2.0, "other": 3.0}
    assert value(metrics, "ipvsd_service_topology_fallback", **labels) == 1.0
    plan.clear()  # the Service is gone from the plan: its series go too
    assert value(metrics, "ipvsd_service_topology_fallback", **labels) is None


async def test_asyncio_tasks_counts_the_loop_s_unfinished_tasks(metrics: ProxyMetrics) -> None:
    before = value(metrics, "ipvsd_asyncio_tasks")
    assert before is not None
    waiting = [asyncio.create_task(asyncio.sleep(10)) for _ in range(3)]
    try:
        assert value(metrics, "ipvsd_asyncio_tasks") == before + 3
    finally:
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
    assert value(metrics, "ipvsd_asyncio_tasks") == before
