"""The composition root: builds every part from a `ProxyConfig` and runs them together.

Data flows one way: informers → change tracker → bounded-frequency runner → syncer → kernel
adapters; health and metrics observe the runner. Nothing is programmed before Services,
EndpointSlices and the own Node have listed once, and while the own Node does not exist (a
wrong `--hostname-override`) the daemon says so and waits for it. (`--dry-run` is
`ipvsd.explain`'s: it reads the API once and touches no kernel.)

What can fail at start fails before the node is changed: the credentials are loaded, the
health and metrics ports bound and IPVS opened before any sysctl is set. SIGTERM (and SIGINT)
stop the daemon with exit code 0 and leave the kernel as programmed, so a restarting or
upgraded pod takes over without a gap in service.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace

from ipvsd.config.settings import ProxyConfig
from ipvsd.dataplane.addresses import DEVICE, Addresses, RtnlAddresses
from ipvsd.dataplane.conntrack import Conntrack, NetlinkConntrack
from ipvsd.dataplane.errors import IpvsUnavailable
from ipvsd.dataplane.families import kernel_families
from ipvsd.dataplane.ipvs import Ipvs
from ipvsd.dataplane.ipvs_netlink import NetlinkIpvs
from ipvsd.dataplane.kube_proxy_leftovers import NetfilterLeftovers
from ipvsd.dataplane.nft import NftFirewall, check_support
from ipvsd.dataplane.service_routes import RtnlServiceRoutes, ServiceRoutes
from ipvsd.dataplane.sysctl import Sysctl
from ipvsd.kube.auth import Credentials, load_credentials
from ipvsd.kube.client import ApiClient
from ipvsd.kube.critical import critical_names
from ipvsd.kube.events import EventRecorder
from ipvsd.kube.proxy_informers import ProxyInformers
from ipvsd.model.firewall import Firewall
from ipvsd.model.ipvs import DeleteService, Family, Timeouts
from ipvsd.model.node import Node
from ipvsd.model.service import Service, ServiceRef
from ipvsd.plan.external_ips import ExternalIPPolicy
from ipvsd.plan.health_check_hosts import health_check_hosts
from ipvsd.plan.node_labels import needs_other_nodes
from ipvsd.plan.ownership import Ownership
from ipvsd.plan.sysctls import kernel_version, required_sysctls
from ipvsd.reconcile.conntrack_settings import apply_conntrack_settings
from ipvsd.reconcile.critical import Critical, program_first, read_first
from ipvsd.reconcile.firewall_isolation import FirewallPort
from ipvsd.reconcile.other_nodes import OtherNodesDemand, plannable
from ipvsd.reconcile.runner import BoundedFrequencyRunner
from ipvsd.reconcile.syncer import (
    CHECK_PER_PERIOD,
    CHECK_STEP,
    Syncer,
    SyncReport,
    SyncSettings,
    node_port_addresses,
)
from ipvsd.reconcile.takeover import KubeProxyLeftovers, check_live_kube_proxy
from ipvsd.server.health import ProxyHealth, family_names
from ipvsd.server.health_server import health_server
from ipvsd.server.http import AppServer, parse_bind_address
from ipvsd.server.kube_proxy_probe import kube_proxy_mode
from ipvsd.server.metrics import ProxyMetrics
from ipvsd.server.metrics_server import metrics_server
from ipvsd.server.servicehealth import ServiceHealthServers
from ipvsd.state.tracker import ChangeTracker

log = logging.getLogger("ipvsd")


YOUNG_ALLOCATIONS = 50_000  # net allocations between young collections (CPython: 700)
OLDER_EVERY = 20  # young (then middle) collections per next-generation one (CPython: 10)


def tune_collector() -> None:
    """Collect less often: this process holds a million small, long-lived, acyclic values.

    At 10,000 Services with 10 endpoints each, ipvsd keeps about a million model objects (the
    converted API objects and the per-Service plans). With CPython's defaults (a young
    collection every 700 net allocations, a full one whenever the survivors grew by a quarter)
    the collector walks them again and again while a cluster is listed and planned: on the host
    it doubled the Python time of a cold start (`hack/bench.sh`; listing-and-converting 10,000
    EndpointSlices 0.76 s -> 0.31 s, planning 0.94 s -> 0.67 s with these thresholds).

    Nothing is kept longer by this: the model values are immutable and form no reference
    cycles, so reference counting frees them the moment they are replaced. The collector is
    only needed for rare cycles (exceptions with tracebacks, some asyncio internals); finding
    those a little later costs a little memory, never correctness. Call once, before the
    informers start.
    """
    gc.set_threshold(YOUNG_ALLOCATIONS, OLDER_EVERY, OLDER_EVERY)


def sync_settings(config: ProxyConfig) -> SyncSettings:
    return SyncSettings(
        node_name=config.node_name,
        default_scheduler=config.ipvs_scheduler,
        families=(Family.INET, Family.INET6),
        node_ports=config.nodeport_addresses,
        node_port_range=config.node_port_range,
        exclude_cidrs=config.ipvs_exclude_cidrs,
        service_routes=config.routed_service_cidrs,
        firewall=config.firewall_config,
        topology_source=config.topology_source,
        drain_timeout=config.ipvs_drain_timeout,
        external_ips=ExternalIPPolicy(
            allowed=config.allow_service_external_ips, ranges=config.service_external_ip_ranges
        ),
    )


class _NodeEligibility:
    """Keeps /healthz's node eligibility in step with the own Node object."""

    def __init__(self, health: ProxyHealth) -> None:
        self._health = health

    def on_add(self, new: Node) -> None:
        self._health.set_node_eligible(not new.deleting)

    def on_update(self, old: Node, new: Node) -> None:
        self._health.set_node_eligible(not new.deleting)

    def on_delete(self, old: Node) -> None:
        self._health.set_node_eligible(False)


@contextlib.asynccontextmanager
async def _informers(
    config: ProxyConfig, credentials: Credentials | None = None
) -> AsyncIterator[tuple[ProxyInformers, ChangeTracker, ApiClient]]:
    if credentials is None:
        credentials = load_credentials(kubeconfig=config.kubeconfig, master=config.master)
    async with ApiClient(credentials=credentials) as client:
        informers = ProxyInformers(
            client=client,
            node_name=config.node_name,
            proxy_name=config.proxy_name,
            only_labelled=config.serve_only_labelled,
        )
        tracker = ChangeTracker()
        informers.services.add_handler(tracker.services)
        informers.services.add_handler(OtherNodesDemand(informers, _needs_other_nodes(config)))
        informers.endpoint_slices.add_handler(tracker.endpoint_slices)
        informers.own_node.add_handler(tracker.node)
        informers.add_nodes_handler(tracker.nodes)  # other Nodes' labels, while watched
        informers.on_other_nodes_synced(tracker.request_full)  # held Services planned now
        yield informers, tracker, client


def _needs_other_nodes(config: ProxyConfig) -> Callable[[Service], bool]:
    return lambda service: needs_other_nodes(service, config.topology_source)


def _own_node(informers: ProxyInformers) -> Node | None:
    return informers.own_node.store.get(informers.node_name)


def _health_check_hosts(
    config: ProxyConfig, syncer: Syncer, informers: ProxyInformers
) -> tuple[str, ...] | None:
    """Where healthCheckNodePorts listen: the node-port addresses (`plan.health_check_hosts`)."""
    node = _own_node(informers)
    return health_check_hosts(
        config.nodeport_addresses,
        syncer.host_addresses,
        primary_addresses=node.primary_addresses if node is not None else (),
        families=kernel_families(),
    )


def informed_syncer(
    config: ProxyConfig,
    informers: ProxyInformers,
    tracker: ChangeTracker,
    *,
    ipvs: Ipvs,
    addresses: Addresses,
    firewall: FirewallPort,
    leftovers: KubeProxyLeftovers | None = None,
    conntrack: Conntrack | None = None,
    routes: ServiceRoutes | None = None,
) -> Syncer:
    """The syncer reading the informers' stores, over the given adapters (the daemon's real
    ones; the benchmark's timed or fake ones). With `leftovers`, kube-proxy's leftovers are
    removed after full syncs until none is left (`reconcile.takeover`); with `conntrack`,
    stale UDP conntrack entries are deleted after syncs (`reconcile.udp_conntrack`); with
    `routes`, --service-cluster-ip-range's IPv4 ranges are made local by one route each
    (without it, every ClusterIP is bound on kube-ipvs0)."""
    needs = _needs_other_nodes(config)

    def service_of(ref: ServiceRef) -> Service | None:
        service = informers.services.store.get(f"{ref.namespace}/{ref.name}")
        return plannable(service, syncer.service(ref), informers=informers, needs=needs)

    def services() -> list[Service]:
        found = (service_of(s.ref) for s in informers.services.store.values())
        return [service for service in found if service is not None]

    settings = sync_settings(config)
    if routes is None:
        settings = replace(settings, service_routes=())
    syncer = Syncer(
        ipvs=ipvs,
        addresses=addresses,
        firewall=firewall,
        settings=settings,
        services=services,
        slices_of=lambda ref: tracker.slices_of(ref).values(),
        own_node=lambda: _own_node(informers),
        nodes=informers.other_nodes,
        service_of=service_of,
        after_full_sync=leftovers.remove if leftovers is not None else None,
        conntrack=conntrack,
        routes=routes,
    )
    return syncer


async def read_critical_first(config: ProxyConfig, client: ApiClient) -> Critical | None:
    """`default/kubernetes`, `kube-system/kube-dns` and `--critical-services` with the own
    Node, read before the informers list (`reconcile.critical`); `program_first` programs
    them before the lists start."""
    return await read_first(
        client,
        config.node_name,
        critical_names(config.critical_services),
        proxy_name=config.proxy_name,
        only_labelled=config.serve_only_labelled,
        needs_other_nodes=_needs_other_nodes(config),
    )


def prepare_kernel(config: ProxyConfig) -> None:
    """Modules, then `configure_kernel` (best effort: each failure is logged, none is fatal)."""
    _log_module_failures(load_modules())
    configure_kernel(config)


def load_modules() -> dict[str, str]:
    """modprobe IPVS, its usual schedulers and conntrack; returns what modprobe said of each
    module it could not load (the module may be built in: opening IPVS tells)."""
    failed = {}
    for module in ("ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack"):
        try:
            done = subprocess.run(["modprobe", module], capture_output=True, text=True, check=False)
        except OSError as error:  # no modprobe on this host
            failed[module] = f"modprobe: {error.strerror}"
            continue
        if done.returncode:
            failed[module] = done.stderr.strip() or "modprobe failed"
    return failed


def _log_module_failures(failed: Mapping[str, str]) -> None:
    for module, complaint in failed.items():
        log.warning("modprobe %s: %s", module, complaint)


class IpvsModuleMissing(IpvsUnavailable):
    """No IPVS, and `modprobe ip_vs` said why (`what` is what it said)."""


async def open_ipvs() -> NetlinkIpvs:
    """IPVS after modprobe. Without IPVS, `IpvsModuleMissing` carries modprobe's complaint;
    with it, the modules that failed are logged (a scheduler may be missing)."""
    failed = load_modules()
    try:
        ipvs = await NetlinkIpvs.open()
    except IpvsUnavailable as error:
        if "ip_vs" not in failed:
            raise
        raise IpvsModuleMissing(error.errno, failed["ip_vs"]) from error
    _log_module_failures(failed)
    return ipvs


def configure_kernel(config: ProxyConfig) -> None:
    """Sysctls, and an nftables check that also loads its modules: the first changes to the
    node, made once everything that can stop the start has passed."""
    wanted = required_sysctls(
        kernel=kernel_version(os.uname().release), strict_arp=config.ipvs_strict_arp
    )
    sysctl = Sysctl()
    sysctl.ensure(wanted)
    apply_conntrack_settings(config.conntrack_tuning, sysctl=sysctl, cpus=os.cpu_count() or 1)
    complaint = check_support(Firewall(config=sync_settings(config).firewall))
    if complaint:
        log.warning("nftables refuses ipvsd's table (syncs will fail until fixed): %s", complaint)


async def cleanup(config: ProxyConfig) -> int:
    """Remove what ipvsd (or kube-proxy's IPVS mode) put into this node's kernel; leave the rest."""
    ipvs = await NetlinkIpvs.open()
    addresses = RtnlAddresses()
    routes = RtnlServiceRoutes()
    try:
        host = await addresses.host_addresses()
        ownership = Ownership.of(
            bound=[a for a, name in host if name == DEVICE],
            node_port_addresses=node_port_addresses(host, sync_settings(config)),
            node_port_range=config.node_port_range,
            excluded=config.ipvs_exclude_cidrs,
            routed=config.routed_service_cidrs,
        )
        owned = [DeleteService(s.key) for s in await ipvs.dump() if ownership.owns(s.key)]
        result = await ipvs.apply(owned)
        for _, error in result.failures:
            log.error("cleanup: %s", error)
        await NftFirewall().cleanup()
        await addresses.remove_device()
        await routes.remove(await routes.present())  # ipvsd's, by their protocol number
        log.info(
            "cleanup removed %d virtual servers, the nftables table, %s and ipvsd's local routes",
            len(owned),
            DEVICE,
        )
        kube_proxy_gone = await KubeProxyLeftovers(NetfilterLeftovers()).remove()
        return 0 if result.ok and kube_proxy_gone else 1
    finally:
        await routes.close()
        await addresses.close()
        await ipvs.close()


async def run(config: ProxyConfig) -> int:
    """Run the proxy until cancelled (or, with `once`, until the first full sync is done).

    Raises `CredentialsError`, `ListenFailed`, `IpvsUnavailable` or `KubeProxyRunning` (a
    live kube-proxy in IPVS mode, asked before ipvsd binds its own metrics port) before
    anything on the node has changed."""
    tune_collector()
    if config.cleanup:
        return await cleanup(config)
    credentials = load_credentials(kubeconfig=config.kubeconfig, master=config.master)
    live_mode = await kube_proxy_mode()
    warning = check_live_kube_proxy(live_mode, only_labelled=config.serve_only_labelled)
    if warning:
        log.warning("%s", warning)
    takeover = live_mode is None and not config.serve_only_labelled
    health = ProxyHealth(
        sync_period=config.ipvs_sync_period, families=family_names(kernel_families())
    )
    metrics = ProxyMetrics(families=health.families)
    servers = _servers(config, health, metrics)
    try:
        for server in servers:
            await server.start()
        ipvs = await open_ipvs()
        addresses = RtnlAddresses()
        conntrack = NetlinkConntrack()
        routes = RtnlServiceRoutes()
        try:
            configure_kernel(config)
            if config.ipvs_timeouts != Timeouts():
                await ipvs.set_timeouts(config.ipvs_timeouts)
            return await serve(
                config,
                credentials=credentials,
                ipvs=ipvs,
                addresses=addresses,
                firewall=NftFirewall(),
                health=health,
                metrics=metrics,
                leftovers=KubeProxyLeftovers(NetfilterLeftovers()) if takeover else None,
                conntrack=conntrack,
                routes=routes,
            )
        finally:
            await routes.close()
            await conntrack.close()
            await addresses.close()
            await ipvs.close()
    finally:
        for server in servers:
            await server.stop()


async def serve(
    config: ProxyConfig,
    *,
    credentials: Credentials,
    ipvs: Ipvs,
    addresses: Addresses,
    firewall: FirewallPort,
    health: ProxyHealth,
    metrics: ProxyMetrics,
    leftovers: KubeProxyLeftovers | None = None,
    conntrack: Conntrack | None = None,
    routes: ServiceRoutes | None = None,
) -> int:
    """Watch the API and keep the kernel in step over the given adapters (the real ones from
    `run`; fakes in tests), until cancelled or, with `once`, after the first full sync.
    `leftovers`: kube-proxy's, removed after full syncs (the takeover); `conntrack`: where
    stale UDP entries are deleted after syncs; `routes`: the Service CIDRs' local routes."""
    service_health = ServiceHealthServers(proxy_healthy=health.is_healthy)
    try:
        async with _informers(config, credentials) as (informers, tracker, client):
            informers.own_node.add_handler(_NodeEligibility(health))
            events = EventRecorder(client=client, node_name=config.node_name)
            syncer = informed_syncer(
                config,
                informers,
                tracker,
                ipvs=ipvs,
                addresses=addresses,
                firewall=firewall,
                leftovers=leftovers,
                conntrack=conntrack,
                routes=routes,
            )
            metrics.read_topology_from(
                lambda: (
                    (ref, d.real_servers_by_proximity(), d.topology_fallback)
                    for ref, d in syncer.programmed.items()
                )
            )
            metrics.read_invalid_objects_from(informers.invalid_objects)
            loop = _SyncLoop(
                syncer,
                tracker,
                health=health,
                metrics=metrics,
                service_health=service_health,
                events=events,
                health_check_hosts=lambda: _health_check_hosts(config, syncer, informers),
            )
            runner = BoundedFrequencyRunner(
                loop.sync,
                min_interval=config.ipvs_min_sync_period,
                max_interval=config.ipvs_sync_period,
            )

            def changed() -> None:
                health.queued()
                metrics.sync_queued()
                services, endpoints = tracker.pending_counts
                metrics.changes_pending(services=services, endpoints=endpoints)
                runner.request()

            tracker.set_notify(changed)
            async with asyncio.TaskGroup() as group:
                # Before the lists: beside them, the lists' parsing starved it (10 s of the
                # VM's 50 s cold start at 10,000 Services); alone it takes a few requests.
                await program_first(syncer, await read_critical_first(config, client))
                watching = group.create_task(informers.run(), name="informers")
                await informers.synced.wait()
                await wait_for_own_node(informers)
                log.info("informers synced; programming node %s", config.node_name)
                if config.once:
                    await loop.sync(False)
                    watching.cancel()
                    return 0
                group.create_task(runner.loop(), name="sync loop")
        return 0
    finally:
        await service_health.close()


class _Arrival:
    """Sets an event when the own Node is added."""

    def __init__(self, arrived: asyncio.Event) -> None:
        self._arrived = arrived

    def on_add(self, new: Node) -> None:
        self._arrived.set()

    def on_update(self, old: Node, new: Node) -> None:
        self._arrived.set()

    def on_delete(self, old: Node) -> None:
        pass


async def wait_for_own_node(informers: ProxyInformers) -> None:
    """Return once the own Node exists; until then say, loudly, that it does not.

    Without it the plan has no zone, no labels and no NodePort addresses from the Node: a
    misspelt `--hostname-override` would program a table without topology, silently."""
    if _own_node(informers) is not None:
        return
    arrived = asyncio.Event()
    informers.own_node.add_handler(_Arrival(arrived))
    log.warning(
        "node %r not found in the API: nothing is programmed until it exists (set "
        "--hostname-override or NODE_NAME to this node's name as `kubectl get nodes` shows it)",
        informers.node_name,
    )
    await arrived.wait()
    log.info("node %r found", informers.node_name)


async def until_signalled(
    main: Awaitable[int], signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT)
) -> int:
    """Run `main`; on one of `signals`, cancel it, log one line and return 0 (the kernel
    state stays as programmed: the next ipvsd takes it over without a gap)."""
    task = asyncio.ensure_future(main)
    loop = asyncio.get_running_loop()
    received: list[signal.Signals] = []

    def stop(signum: signal.Signals) -> None:
        received.append(signum)
        task.cancel()

    for signum in signals:
        loop.add_signal_handler(signum, stop, signum)
    try:
        return await task
    except asyncio.CancelledError:
        if not received:
            raise
        log.info(
            "%s: shutting down; IPVS, the addresses on %s and the nftables table stay as "
            "programmed",
            received[0].name,
            DEVICE,
        )
        return 0
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


def _servers(
    config: ProxyConfig, health: ProxyHealth, metrics: ProxyMetrics
) -> Sequence[AppServer]:
    servers = []
    healthz = parse_bind_address(config.healthz_bind_address, default_port=10256)
    if healthz is not None:
        servers.append(health_server(health, healthz, metrics=metrics))
    metrics_address = parse_bind_address(config.metrics_bind_address, default_port=10249)
    if metrics_address is not None:
        servers.append(metrics_server(metrics, metrics_address))
    return servers


class _SyncLoop:
    """One run of the runner: take the recorded work, sync, report to health and metrics."""

    def __init__(
        self,
        syncer: Syncer,
        tracker: ChangeTracker,
        *,
        health: ProxyHealth,
        metrics: ProxyMetrics,
        service_health: ServiceHealthServers,
        events: EventRecorder,
        health_check_hosts: Callable[[], Sequence[str] | None] = lambda: None,
    ) -> None:
        self._events = events
        self._health_check_hosts = health_check_hosts
        self._syncer = syncer
        self._tracker = tracker
        self._health = health
        self._metrics = metrics
        self._service_health = service_health

    async def sync(self, periodic: bool) -> None:
        """One run. A periodic one at scale is a rotating check (`Syncer.periodic_is_full`):
        pending changes first, the host's addresses at the start of each rotation (one read of
        every address: at 50,000 VIPs it is not for every period), then the next part of the
        rotation in small steps, with the changes that arrived meanwhile synced between steps,
        so that the check never holds a change back for longer than one step."""
        if not periodic or self._syncer.periodic_is_full() or self._tracker.has_work_full:
            await self._sync_pending(periodic)
            return
        await self._sync_pending(False)
        if self._syncer.rotation_done and not await self._syncer.check_host():
            self._tracker.request_full()  # the host's addresses changed: a full sync now
            return
        budget = min(len(self._syncer.programmed), CHECK_PER_PERIOD)
        while budget > 0:
            step = self._syncer.rotation_step(min(CHECK_STEP, budget))
            if not step:
                break
            budget -= len(step)
            report = await self._syncer.check(step)
            self._record_isolated()
            for _failure in report.failures:
                self._metrics.sync_error("kernel")
            if self._tracker.has_work:
                await self._sync_pending(False)

    async def _sync_pending(self, periodic: bool) -> None:
        pending = self._tracker.take()
        started_wall, started = time.time(), time.perf_counter()
        full = pending.full or periodic
        try:
            report = await self._syncer.sync(full=full, services=pending.services)
        except Exception:
            self._tracker.give_back(pending)
            self._record_isolated()
            self._metrics.sync_error("sync")
            self._metrics.sync_finished(time.perf_counter() - started, full=full, ok=False)
            raise
        self._record_isolated()
        self._health.updated(started=started_wall)
        self._metrics.sync_finished(
            time.perf_counter() - started, full=report.full, ok=not report.failures
        )
        self._metrics.changes_seen(
            services=pending.service_changes, endpoints=pending.endpoint_changes
        )
        self._metrics.changes_pending(
            services=self._tracker.pending_counts[0], endpoints=self._tracker.pending_counts[1]
        )
        self._metrics.no_local_endpoints(report.no_local)
        for ref, when in pending.trigger_times.items():
            service = self._syncer.service(ref)
            families = family_names(
                {Family.of(ip) for ip in service.cluster_ips} if service is not None else ()
            )
            self._metrics.network_programming(max(0.0, time.time() - when), families)
        for failure in report.failures:
            self._metrics.sync_error("kernel")
            log.debug("kernel failure recorded: %s", failure)
        if report.conntrack.deleted:
            self._metrics.kernel_operations({("conntrack_delete", "ok"): report.conntrack.deleted})
        if report.conntrack.failed:
            self._metrics.sync_error("conntrack")
        if report.full:
            self._metrics.set_ipvs_snapshot(self._syncer.traffic())
        await self._service_health.sync(self._health_checks(), hosts=self._health_check_hosts())
        for by_service, record, reason in (
            (report.warnings, self._events.warn, "InvalidAnnotation"),
            (report.notices, self._events.notice, "SchedulerSubstituted"),
            (report.unavailable, self._events.warn, "SchedulerUnavailable"),
            (report.external_ip_warnings, self._events.warn, "ExternalIPNotServed"),
            (report.duplicates, self._events.warn, "DuplicateVirtualServer"),
        ):
            for ref, notes in by_service.items():
                service = self._syncer.service(ref)
                if service is not None:
                    await record(service, reason, notes)
        _log_report(report)

    def _record_isolated(self) -> None:
        """What the syncer counted, failed syncs included: kernel operations by result, nft
        refusals as kube-proxy's restore failures, failures kept to one Service or address."""
        operations = self._syncer.kernel.take()
        self._metrics.kernel_operations(operations)
        for _ in range(operations.get(("nftables_replace", "error"), 0)):
            self._metrics.restore_failed()
        for _ in range(operations.get(("nftables_update", "error"), 0)):
            self._metrics.restore_failed(partial=True)
        for kind, count in self._syncer.problems.take_counts().items():
            self._metrics.sync_error(kind, count)

    def _health_checks(self) -> dict[ServiceRef, tuple[int, int]]:
        checks: dict[ServiceRef, tuple[int, int]] = {}
        for ref in self._syncer.health_checked:
            service, desired = self._syncer.service(ref), self._syncer.programmed.get(ref)
            if service is None or desired is None or not service.health_check_node_port:
                continue
            checks[ref] = (service.health_check_node_port, desired.local_ready_endpoints())
        return checks


def _log_report(report: SyncReport) -> None:
    level = logging.WARNING if report.failures else logging.DEBUG
    log.log(
        level,
        "%s sync: %d services, %d kernel operations, %d refused",
        "full" if report.full else "partial",
        report.services,
        report.operations,
        len(report.failures),
    )
