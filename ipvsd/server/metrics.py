"""Every metric ipvsd exports, and the narrow functions the rest of ipvsd records through.

The `kubeproxy_*` metrics keep kube-proxy's names, types, help texts, labels and buckets
(`pkg/proxy/metrics/metrics.go`), with Go's spelling of bucket bounds (`histogram.py`), so
dashboards and alerts written for kube-proxy's IPVS mode keep working. Where kube-proxy labels
a metric with `ip_family` (it runs one proxier per family, each timing and stamping its own
syncs), ipvsd records the same value under each family it serves (`families`): one ipvsd sync
covers both families, so a dual-stack node shows what kube-proxy's two proxiers would show,
one observation per family and sync. Per-family counts (Services without local endpoints) are
counted per family. kube-proxy's IPVS mode registers `kubeproxy_sync_full_proxy_rules_*` and
`kubeproxy_sync_partial_proxy_rules_*` only in iptables mode; ipvsd has both kinds of sync and
exports them. Its nftables table replaces kube-proxy's iptables rules, so a refused nftables
load counts in `kubeproxy_sync_proxy_rules_iptables_restore_failures_total` (a refused
element update, which falls back to a full load, in `..._iptables_partial_restore_...`).

`ipvsd_*` metrics are ipvsd's own: sync errors by kind, kernel operations by operation and
result, per-virtual-server IPVS traffic read from the kernel's own counters, and per-Service
topology (real servers by proximity, fallback in effect).

Everything lives in a registry owned by one ProxyMetrics, never the process-wide default, so
each test (and each app instance) sees only its own values. Callers never touch metric
objects: they call the recording methods, which name what happened, not how it is stored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector
from prometheus_client import disable_created_metrics as _disable_created_metrics
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ipvsd.model.ipvs import Protocol, ServiceKey, Stats
from ipvsd.model.service import ServiceRef
from ipvsd.server.health import IPV4
from ipvsd.server.histogram import GoHistogram

# kube-proxy exposes no `_created` series (client_golang has none); neither does ipvsd.
_disable_created_metrics()  # type: ignore[no-untyped-call]  # the library leaves it unannotated

# prometheus.ExponentialBuckets(0.001, 2, 15): 1 ms … 16.384 s.
SYNC_DURATION_BUCKETS: tuple[float, ...] = tuple(0.001 * 2**i for i in range(15))

# metrics.MergeBuckets(LinearBuckets(0.25, 0.25, 2), LinearBuckets(1, 1, 59),
# LinearBuckets(60, 5, 12), LinearBuckets(120, 30, 7)); MergeBuckets starts from a zero
# bucket, so kube-proxy's list begins with le="0" (it catches clock-skewed negative latencies).
NETWORK_PROGRAMMING_BUCKETS: tuple[float, ...] = (
    0.0,
    0.25,
    0.5,
    *(float(s) for s in range(1, 60)),
    *(float(s) for s in range(60, 120, 5)),
    *(float(s) for s in range(120, 301, 30)),
)

TRAFFIC_LABELS = ("namespace", "service", "port", "protocol", "vip", "vport")

FAMILY = ("ip_family",)  # its values are kube-proxy's, `health.IPV4` and `health.IPV6`

IpvsSnapshot = Mapping[ServiceKey, tuple[ServiceRef, str, Stats]]
"""Virtual server → (its Service, the Service port's name, the kernel's counters)."""

PROXIMITIES = ("node", "zone", "other")
ServiceTopology = tuple[ServiceRef, Mapping[str, int], bool]
"""A Service, its real servers counted by proximity (node / zone / other), fallback or not."""
TopologySource = Callable[[], Iterable[ServiceTopology]]
InvalidObjectsSource = Callable[[], Mapping[str, int]]
"""Kind (Service, EndpointSlice, Node) → objects whose latest version ipvsd cannot use."""


class ProxyMetrics:
    """The metrics of one ipvsd process; `registry` is what /metrics serves.

    `clock` gives the wall-clock seconds stored in the timestamp gauges.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.time, families: Iterable[str] = (IPV4,)
    ) -> None:
        self._clock = clock
        self.families = tuple(families)
        self.registry = CollectorRegistry()
        r = self.registry
        self._sync_duration, self._full_sync_duration, self._partial_sync_duration = (
            GoHistogram(name, text, SYNC_DURATION_BUCKETS, FAMILY)
            for name, text in (
                (
                    "kubeproxy_sync_proxy_rules_duration_seconds",
                    "SyncProxyRules latency in seconds",
                ),
                (
                    "kubeproxy_sync_full_proxy_rules_duration_seconds",
                    "SyncProxyRules latency in seconds for full resyncs",
                ),
                (
                    "kubeproxy_sync_partial_proxy_rules_duration_seconds",
                    "SyncProxyRules latency in seconds for partial resyncs",
                ),
            )
        )
        for histogram in (
            self._sync_duration,
            self._full_sync_duration,
            self._partial_sync_duration,
        ):
            r.register(histogram)
        self._last_synced = Gauge(
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "The last time proxy rules were successfully synced",
            FAMILY,
            registry=r,
        )
        self._last_queued = Gauge(
            "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
            "The last time a sync of proxy rules was queued",
            FAMILY,
            registry=r,
        )
        self._network_programming = GoHistogram(
            "kubeproxy_network_programming_duration_seconds",
            "In Cluster Network Programming Latency in seconds",
            NETWORK_PROGRAMMING_BUCKETS,
            FAMILY,
        )
        r.register(self._network_programming)
        self._endpoint_changes_pending = Gauge(
            "kubeproxy_sync_proxy_rules_endpoint_changes_pending",
            "Pending proxy rules Endpoint changes",
            registry=r,
        )
        self._endpoint_changes = Counter(
            "kubeproxy_sync_proxy_rules_endpoint_changes_total",
            "Cumulative proxy rules Endpoint changes",
            registry=r,
        )
        self._service_changes_pending = Gauge(
            "kubeproxy_sync_proxy_rules_service_changes_pending",
            "Pending proxy rules Service changes",
            registry=r,
        )
        self._service_changes = Counter(
            "kubeproxy_sync_proxy_rules_service_changes_total",
            "Cumulative proxy rules Service changes",
            registry=r,
        )
        self._no_local_endpoints = Gauge(
            "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
            "Number of services with a Local traffic policy and no endpoints",
            ["traffic_policy", *FAMILY],
            registry=r,
        )
        self._restore_failures = Counter(
            "kubeproxy_sync_proxy_rules_iptables_restore_failures_total",
            "Cumulative proxy iptables restore failures",
            FAMILY,
            registry=r,
        )
        self._partial_restore_failures = Counter(
            "kubeproxy_sync_proxy_rules_iptables_partial_restore_failures_total",
            "Cumulative proxy iptables partial restore failures",
            FAMILY,
            registry=r,
        )
        self._healthz = Counter(
            "kubeproxy_proxy_healthz_total",
            "Cumulative proxy healthz HTTP status",
            ["code"],
            registry=r,
        )
        self._livez = Counter(
            "kubeproxy_proxy_livez_total",
            "Cumulative proxy livez HTTP status",
            ["code"],
            registry=r,
        )
        self._sync_errors = Counter(
            "ipvsd_sync_errors_total",
            "Syncs or parts of syncs that failed, by what failed",
            ["kind"],
            registry=r,
        )
        self._kernel_operations = Counter(
            "ipvsd_kernel_operations_total",
            "Operations ipvsd asked of the kernel, by operation and result (ok or error)",
            ["operation", "result"],
            registry=r,
        )
        self._traffic = IpvsTrafficCollector()
        r.register(self._traffic)
        self._topology = TopologyCollector()
        r.register(self._topology)
        self._invalid_objects = InvalidObjectsCollector()
        r.register(self._invalid_objects)
        r.register(AsyncioTasksCollector())
        ProcessCollector(registry=r)

    # --- the sync loop -------------------------------------------------------------------------

    def sync_queued(self, now: float | None = None) -> None:
        """A change asked for a sync (kube-proxy sets this on every Sync() request)."""
        at = self._now(now)
        for family in self.families:
            self._last_queued.labels(ip_family=family).set(at)

    def sync_finished(
        self, duration: float, *, full: bool = True, ok: bool = True, now: float | None = None
    ) -> None:
        """A `full` (or partial) sync ran for `duration` seconds; only a successful one moves
        the last-synced time."""
        by_kind = self._full_sync_duration if full else self._partial_sync_duration
        at = self._now(now)
        for family in self.families:
            self._sync_duration.observe(duration, (family,))
            by_kind.observe(duration, (family,))
            if ok:
                self._last_synced.labels(ip_family=family).set(at)

    def network_programming(self, latency: float, families: Iterable[str] = ()) -> None:
        """Seconds from an EndpointSlice's last-change-trigger-time to the sync applying it,
        under the families of its Service (all served families when not given).

        Recorded as measured, negative (clock-skewed) values included, as kube-proxy does.
        """
        for family in self._served(families):
            self._network_programming.observe(latency, (family,))

    def changes_pending(self, *, services: int, endpoints: int) -> None:
        """How many Services and endpoint sets have changes not yet synced."""
        self._service_changes_pending.set(services)
        self._endpoint_changes_pending.set(endpoints)

    def changes_seen(self, *, services: int = 0, endpoints: int = 0) -> None:
        """Changes received from the API (Service events, EndpointSlice events)."""
        if services:
            self._service_changes.inc(services)
        if endpoints:
            self._endpoint_changes.inc(endpoints)

    def no_local_endpoints(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Services with a Local traffic policy and no local endpoint, counted by the last sync
        per (traffic policy "internal"/"external", IP family); absent pairs count 0."""
        for policy in ("internal", "external"):
            for family in self.families:
                value = counts.get((policy, family), 0)
                self._no_local_endpoints.labels(traffic_policy=policy, ip_family=family).set(value)

    def restore_failed(self, *, partial: bool = False) -> None:
        """nft refused ipvsd's table (`partial`: a set-element update, replaced whole next)."""
        counter = self._partial_restore_failures if partial else self._restore_failures
        for family in self.families:
            counter.labels(ip_family=family).inc()

    def sync_error(self, kind: str, count: int = 1) -> None:
        """A sync step failed; `kind` is a short fixed word (e.g. "bind", "plan", "nftables")."""
        self._sync_errors.labels(kind=kind).inc(count)

    def kernel_operations(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Kernel operations done, by (operation, result); operations are fixed words."""
        for (operation, result), count in counts.items():
            if count:
                self._kernel_operations.labels(operation=operation, result=result).inc(count)

    def read_topology_from(self, source: TopologySource) -> None:
        """Where each scrape reads the per-Service topology figures (the syncer's plan)."""
        self._topology.source = source

    def read_invalid_objects_from(self, source: InvalidObjectsSource) -> None:
        """Where each scrape reads how many API objects of each kind ipvsd cannot use."""
        self._invalid_objects.source = source

    def set_ipvs_snapshot(self, snapshot: IpvsSnapshot) -> None:
        """The latest IPVS dump's counters for the virtual servers ipvsd programs."""
        self._traffic.set_snapshot(snapshot)

    # --- the health server ---------------------------------------------------------------------

    def healthz_answered(self, status: int) -> None:
        self._healthz.labels(code=str(status)).inc()

    def livez_answered(self, status: int) -> None:
        self._livez.labels(code=str(status)).inc()

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now

    def _served(self, families: Iterable[str]) -> tuple[str, ...]:
        wanted = [family for family in families if family in self.families]
        return tuple(wanted) or self.families


class IpvsTrafficCollector(Collector):
    """Per-virtual-server traffic counters, read from the last IPVS dump on every scrape.

    The kernel keeps the totals, so these are exposed as counters straight from the snapshot;
    a virtual server that is deleted and re-created restarts from zero, which Prometheus
    treats as a counter reset. One series per virtual server keeps cardinality at the size
    of the IPVS table. `vip` is the address, or `fwmark:<n>` for a firewall-mark service.
    """

    def __init__(self) -> None:
        self._snapshot: IpvsSnapshot = {}

    def set_snapshot(self, snapshot: IpvsSnapshot) -> None:
        self._snapshot = dict(snapshot)  # replaced whole: a scrape sees one dump, never a mix

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        connections, packets, traffic_bytes = self._families()
        for key, (service, port_name, stats) in self._snapshot.items():
            labels = _traffic_labels(key, service, port_name)
            connections.add_metric(labels, stats.connections)
            packets.add_metric([*labels, "in"], stats.packets_in)
            packets.add_metric([*labels, "out"], stats.packets_out)
            traffic_bytes.add_metric([*labels, "in"], stats.bytes_in)
            traffic_bytes.add_metric([*labels, "out"], stats.bytes_out)
        return [connections, packets, traffic_bytes]

    @staticmethod
    def _families() -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(
            "ipvsd_virtual_server_connections",
            "Connections scheduled by an IPVS virtual server (kernel counter)",
            labels=TRAFFIC_LABELS,
        )
        yield CounterMetricFamily(
            "ipvsd_virtual_server_packets",
            "Packets through an IPVS virtual server by direction (kernel counter)",
            labels=(*TRAFFIC_LABELS, "direction"),
        )
        yield CounterMetricFamily(
            "ipvsd_virtual_server_bytes",
            "Bytes through an IPVS virtual server by direction (kernel counter)",
            labels=(*TRAFFIC_LABELS, "direction"),
        )


def _traffic_labels(key: ServiceKey, service: ServiceRef, port_name: str) -> list[str]:
    if key.fwmark:
        return [service.namespace, service.name, port_name, "", f"fwmark:{key.fwmark}", "0"]
    return [
        service.namespace,
        service.name,
        port_name,
        Protocol(key.protocol).name,
        str(key.address),
        str(key.port),
    ]


class TopologyCollector(Collector):
    """Per Service: how many real servers are on this node, in its zone, elsewhere, and whether
    a topology fallback is in effect. Computed from the programmed plan at scrape time, so a
    sync pays nothing for it and a deleted Service disappears with the plan."""

    def __init__(self) -> None:
        self.source: TopologySource = tuple

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        servers, fallback = self._families()
        for ref, counts, fell_back in self.source():
            for proximity in PROXIMITIES:
                servers.add_metric([ref.namespace, ref.name, proximity], counts.get(proximity, 0))
            fallback.add_metric([ref.namespace, ref.name], 1.0 if fell_back else 0.0)
        return [servers, fallback]

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "ipvsd_service_real_servers",
                "Distinct real servers of a Service on this node, by proximity to the node "
                "(node, zone, other)",
                labels=("namespace", "service", "proximity"),
            ),
            GaugeMetricFamily(
                "ipvsd_service_topology_fallback",
                "1 when a topology preference of the Service (hints, trafficDistribution, "
                "topology keys, weights) cannot be met at its first level on this node",
                labels=("namespace", "service"),
            ),
        )


class InvalidObjectsCollector(Collector):
    """Per kind, the API objects whose latest version ipvsd cannot use (a field of the wrong
    type, an address that is not one, a port out of range): each is skipped, or kept at its
    last valid version, and named once in the log. Read from the informers at scrape time, so
    the figure falls back to 0 when the object is fixed or deleted; above 0 means an operator
    (or a broken controller) has something to fix."""

    def __init__(self) -> None:
        self.source: InvalidObjectsSource = dict

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        for kind, count in sorted(self.source().items()):
            family.add_metric([kind], count)
        return [family]

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "ipvsd_invalid_objects",
            "API objects whose latest version ipvsd cannot use (skipped, or kept at their "
            "last valid version), by kind",
            labels=("kind",),
        )


class AsyncioTasksCollector(Collector):
    """`ipvsd_asyncio_tasks`: the event loop's unfinished tasks at scrape time (the scrape
    runs on the loop). With `process_open_fds` and `process_resident_memory_bytes` beside it,
    a leak (a task per watch retry, a connection per sync) shows as growth over a long run;
    the disruption harness's soak reads all three."""

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # scraped off the loop (a test): nothing to count
            return [family]
        family.add_metric([], len(asyncio.all_tasks(loop)))
        return [family]

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "ipvsd_asyncio_tasks", "Unfinished asyncio tasks of the daemon's event loop"
        )
