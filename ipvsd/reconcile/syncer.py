"""One sync: plan the desired objects, read the kernel, apply the difference, in safe order.

A *full* sync (the first one, the periodic check, a Node change) plans every Service, dumps
the whole IPVS table and diffs it under the ownership rule, so anything stale from a previous
run or from kube-proxy is corrected and every attribute is reset (a restart never leaves real
servers stuck at weight 0). A *partial* sync plans only the changed Services and reads only
their virtual servers: one Service's change touches only that Service's kernel objects, and
costs time in proportion to that Service, not to the cluster. For that the syncer keeps, between
syncs, what the last full sync learnt of the host (its addresses, the node's context), how many
Services want each bound address, who owns each virtual server (`claims`) and each Service's
firewall share (`plan.firewall_ledger`); a partial sync updates them for the changed Services
only and sends the firewall as element changes. The periodic full sync rebuilds all of it from
the kernel and the informers, so drift (an address removed by hand, a new node address) is
corrected within one sync period; after a failed sync the next one is full.

Order: the firewall first, then IPVS, then the Service CIDRs' local routes are added and new
VIPs are bound, and addresses (and routes) nothing needs any more are removed last. A ClusterIP
inside a routed Service CIDR (`--service-cluster-ip-range`, `dataplane.service_routes`) is
not bound at all: the route makes it local, so a cold start does no per-address rtnetlink
work for those, and kube-proxy's /32s there are unbound once the route covers them. A bound
address is reachable at once, on every port: binding it
before its reject rule exists would expose the host's own listeners on it, and binding it
before its virtual servers exist would hand their first connections to the host. The one
exception, on a full sync, is documented at `_early`. Kernel refusals are logged per object
and counted; they never stop the sync nor affect other Services.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import IPv6Address

from ipvsd.config.settings import DEFAULT_NODE_PORT_RANGE
from ipvsd.config.values import NodePortAddresses, TopologySource
from ipvsd.dataplane.addresses import Addresses, AddressesRefused
from ipvsd.dataplane.conntrack import Conntrack
from ipvsd.dataplane.ipvs import Ipvs
from ipvsd.dataplane.service_routes import ServiceRoutes
from ipvsd.model.endpoint import EndpointSlice
from ipvsd.model.firewall import Firewall, FirewallConfig
from ipvsd.model.ipvs import (
    KNOWN_SCHEDULERS,
    AddService,
    DeleteRealServer,
    DeleteService,
    Family,
    IPAddress,
    ObservedVirtualServer,
    Operation,
    Protocol,
    RealServer,
    ServiceKey,
    Stats,
    UpdateRealServer,
    VirtualServer,
)
from ipvsd.model.node import Node
from ipvsd.model.service import IPNetwork, Service, ServiceRef
from ipvsd.model.tracked_flow import FlowEnd
from ipvsd.plan.desired import DesiredService, NodeContext, VipKind, desired_service
from ipvsd.plan.diff import creation, diff_service, diff_tables
from ipvsd.plan.external_ips import ExternalIPPolicy
from ipvsd.plan.firewall import firewall_for
from ipvsd.plan.firewall_ledger import FirewallLedger
from ipvsd.plan.ownership import Ownership
from ipvsd.reconcile.claims import Claims
from ipvsd.reconcile.draining import DrainClock
from ipvsd.reconcile.firewall_isolation import FirewallLoader, FirewallPort, FirewallRefused
from ipvsd.reconcile.isolation import KernelTally, Problems
from ipvsd.reconcile.schedulers import SchedulerAvailability, fell_back, operation_key, wanting
from ipvsd.reconcile.udp_conntrack import NO_CLEANUP, CleanupOutcome, UdpConntrackCleaner

log = logging.getLogger(__name__)

Planner = Callable[[Service, Iterable[EndpointSlice], NodeContext], DesiredService]

# The periodic check at scale (`Syncer.periodic_is_full`, `Syncer.check`). Each periodic check
# checks the next CHECK_PER_PERIOD Services of a rotation, and each rotation starts by reading
# the host's addresses: the drift bound of a programmed Service's virtual servers and real
# servers is one rotation, ceil(Services / CHECK_PER_PERIOD) sync periods (10,000 Services at
# 30 s: 150 s; 50,000: 750 s); of its VIPs and the host's addresses, two rotations (the device
# is read at a rotation's start); of the rest (owned virtual servers nobody wants,
# the firewall table, kube-proxy's leftovers), FULL_INTERVAL (a full sync, as kube-proxy's
# iptables and nftables modes force one an hour). The cost of a check does not grow with the
# cluster: CHECK_PER_PERIOD Services read one by one (about 1.3 ms each in the test VM, whose
# Python runs 15-20 x slower than a node's: `hack/bench.sh`).
ROTATE_ABOVE = 1_000  # Services: up to this many, every periodic check is a full sync
CHECK_PER_PERIOD = 2_000  # Services checked per periodic check at scale
FULL_INTERVAL = 3600.0  # seconds between full syncs at scale
CHECK_STEP = 100  # Services per step of a check; pending changes are synced between steps


@dataclass(frozen=True, slots=True)
class SyncSettings:
    node_name: str
    default_scheduler: str = "rr"
    families: tuple[Family, ...] = (Family.INET, Family.INET6)
    node_ports: NodePortAddresses = field(default_factory=NodePortAddresses)  # --nodeport-addresses
    node_port_range: tuple[int, int] = DEFAULT_NODE_PORT_RANGE
    exclude_cidrs: tuple[IPNetwork, ...] = ()
    firewall: FirewallConfig = field(default_factory=FirewallConfig)
    drain_timeout: float = 120.0  # --ipvs-drain-timeout
    device: str = "kube-ipvs0"
    schedulers: frozenset[str] = KNOWN_SCHEDULERS
    topology_source: TopologySource = "hints"  # --topology-source
    external_ips: ExternalIPPolicy = field(default_factory=ExternalIPPolicy)
    # Service CIDRs made local by a route instead of binding their ClusterIPs (IPv4 ones of
    # --service-cluster-ip-range); they need `Syncer(routes=...)`
    service_routes: tuple[IPNetwork, ...] = ()


@dataclass(frozen=True, slots=True)
class SyncReport:
    full: bool
    services: int
    operations: int
    failures: tuple[str, ...]
    warnings: Mapping[ServiceRef, tuple[str, ...]]
    notices: Mapping[ServiceRef, tuple[str, ...]] = field(default_factory=dict)
    no_local_internal: int = 0  # Services with iTP=Local and no local endpoint
    no_local_external: int = 0  # Services with eTP=Local and no local endpoint
    conntrack: CleanupOutcome = NO_CLEANUP  # stale UDP conntrack entries deleted
    external_ip_warnings: Mapping[ServiceRef, tuple[str, ...]] = field(default_factory=dict)
    # (traffic policy "internal"/"external", "IPv4"/"IPv6") → Services without local endpoints
    no_local: Mapping[tuple[str, str], int] = field(default_factory=dict)
    unavailable: Mapping[ServiceRef, tuple[str, ...]] = field(default_factory=dict)
    duplicates: Mapping[ServiceRef, tuple[str, ...]] = field(default_factory=dict)


class Syncer:
    """Owns the picture of what was programmed and turns changes into kernel operations."""

    def __init__(
        self,
        *,
        ipvs: Ipvs,
        addresses: Addresses,
        firewall: FirewallPort,
        settings: SyncSettings,
        services: Callable[[], Iterable[Service]],
        slices_of: Callable[[ServiceRef], Iterable[EndpointSlice]],
        own_node: Callable[[], Node | None],
        nodes: Mapping[str, Node] | None = None,
        service_of: Callable[[ServiceRef], Service | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        after_full_sync: Callable[[], Awaitable[object]] | None = None,
        conntrack: Conntrack | None = None,
        planner: Planner = desired_service,
        routes: ServiceRoutes | None = None,
    ) -> None:
        """`services` lists every Service (full syncs); `service_of` finds one (partial syncs;
        without it they search `services`, which costs time in proportion to the cluster).
        `after_full_sync` runs once each full sync has put everything in place (the takeover
        from kube-proxy removes its leftovers there); its failure is logged, not raised.
        `planner` plans one Service (`plan.desired.desired_service`; tests give one that
        fails for a chosen Service, to show that the failure stays with it). `routes` adds
        and removes the local routes of `settings.service_routes`."""
        self._ipvs = ipvs
        self._addresses = addresses
        self._firewall = firewall
        self.settings = settings
        self._services = services
        self._slices_of = slices_of
        self._own_node = own_node
        self._nodes = nodes
        self._service_of = service_of or self._search
        self._clock = clock
        self._after_full_sync = after_full_sync
        # Stale UDP conntrack entries are deleted after each sync (`reconcile.udp_conntrack`).
        self._conntrack = UdpConntrackCleaner(conntrack) if conntrack is not None else None
        self.programmed: dict[ServiceRef, DesiredService] = {}
        self._services_by_ref: dict[ServiceRef, Service] = {}
        self._drains = DrainClock(settings.drain_timeout, clock)
        self.last_dump: list[ObservedVirtualServer] = []  # from the latest full sync
        # Kept between syncs so that a partial one works in proportion to its Services:
        self._node: NodeContext | None = None  # as of the last full sync (a Node change is one)
        self._elsewhere: frozenset[IPAddress] = frozenset()  # host addresses not on the device
        self._on_device: set[IPAddress] = set()  # bound by us or found on the device
        self._wanted: dict[IPAddress, int] = {}  # bound address → Services that want it
        self._claims = Claims(created=self._created_of)
        self._ledger = FirewallLedger(settings.firewall)
        self._failed = False  # the state above is unreliable: the next sync is full
        self._said: dict[ServiceRef, tuple[tuple[str, ...], tuple[str, ...]]] = {}  # logged
        # Failure isolation (`reconcile.isolation`): what went wrong for one Service or address
        # stays with it, is said once and counted; the kernel operations are counted.
        self._planner = planner
        self.problems = Problems()
        self.kernel = KernelTally()
        self._loader = FirewallLoader(firewall, self._ledger, self.kernel, self.problems)
        self._schedulers = SchedulerAvailability(self.problems)
        self._refused_keys: set[ServiceKey] = set()  # a scheduler refused: plan again now
        self._retry: set[ServiceRef] = set()  # planning failed: planned again at every sync
        self._held: frozenset[ServiceRef] = frozenset()  # nft refused them: kept as they were
        if settings.service_routes and routes is None:
            raise ValueError("settings.service_routes needs a ServiceRoutes adapter (routes=)")
        self._routes = routes
        # the Service CIDRs whose route is in place: their ClusterIPs are not bound
        self._routed: tuple[IPNetwork, ...] = ()
        # The rotating periodic check (`periodic_is_full`, `check`):
        self._last_full = 0.0  # when the last full sync ended (`clock`)
        self._rotation: list[ServiceRef] = []  # the rest of the current rotation, reversed
        self._device_now: set[IPAddress] = set()  # the device's addresses, as last read
        self._no_local: dict[ServiceRef, frozenset[tuple[str, str]]] = {}  # `_count_no_local`
        self._health_checked: set[ServiceRef] = set()  # Services with a healthCheckNodePort

    # --- planning -----------------------------------------------------------------------------

    def _created_of(self, ref: ServiceRef) -> str:
        """A Service's creationTimestamp: the older of two keeps a virtual server (`claims`)."""
        service = self._service_of(ref)
        return service.created if service is not None else ""

    def node_context(self, host: list[tuple[IPAddress, str]]) -> NodeContext:
        """This node as the planner sees it, given the host's (address, interface) pairs."""
        context = node_context(host, self.settings, self._own_node(), self._nodes)
        return replace(context, missing_schedulers=self._schedulers.missing)

    def traffic(self) -> dict[ServiceKey, tuple[ServiceRef, str, Stats]]:
        """Counters of every programmed virtual server from the latest full sync's dump."""
        owners = {
            d.server.key: (ref, d.port.name)
            for ref, desired in self.programmed.items()
            for d in desired.virtual_servers
        }
        return {
            entry.key: (*owners[entry.key], entry.stats)
            for entry in self.last_dump
            if entry.key in owners
        }

    @property
    def health_checked(self) -> frozenset[ServiceRef]:
        """The synced Services that have a healthCheckNodePort (kept per sync, so that the
        health servers' update after a partial sync does not look at every Service)."""
        return frozenset(self._health_checked)

    def service(self, ref: ServiceRef) -> Service | None:
        """The Service as last synced (None once it is gone)."""
        return self._services_by_ref.get(ref)

    @property
    def host_addresses(self) -> frozenset[IPAddress]:
        """The host's addresses outside the dummy device, as the last full sync saw them."""
        return self._elsewhere

    def plan(self, service: Service, node: NodeContext) -> DesiredService | None:
        """The Service's plan; if planning raises, what was programmed for it before (None if
        nothing was): the failure is logged once and counted, and it is planned again at every
        sync until it plans."""
        ref = service.ref
        try:
            desired = self._planner(service, self._slices_of(ref), node)
        except Exception as error:
            self._retry.add(ref)
            self.problems.report(
                "plan",
                str(ref),
                f"Service {ref}: planning failed ({type(error).__name__}: {error}); its "
                f"kernel objects stay as they were; planned again at every sync",
                exc_info=True,
            )
            return self.programmed.get(ref)
        if ref in self._retry:
            self._retry.discard(ref)
            self.problems.resolved("plan", str(ref), f"Service {ref}: planned again")
        return desired

    def _plan_all(
        self, services: Mapping[ServiceRef, Service], node: NodeContext
    ) -> dict[ServiceRef, DesiredService]:
        planned = {ref: self.plan(service, node) for ref, service in services.items()}
        return {ref: desired for ref, desired in planned.items() if desired is not None}

    # --- syncing ------------------------------------------------------------------------------

    async def sync(self, *, full: bool, services: Iterable[ServiceRef] = ()) -> SyncReport:
        try:
            if full or self._failed:
                report = await self._full()
            else:
                try:
                    report = await self._partial(frozenset(services) | self._retry)
                except FirewallRefused:  # a full sync finds the Services nft refuses
                    self._failed = True
                    report = await self._full()
            return await self._settle_schedulers(report)
        except BaseException:
            self._failed = True
            raise

    async def _settle_schedulers(self, report: SyncReport) -> SyncReport:
        """Plan again, at once, the Services whose scheduler the kernel just refused (they get
        rr); after a full sync, ask the kernel again for each missing scheduler."""
        again = wanting(self.programmed, self._refused_keys)
        self._refused_keys = set()
        probes = self._schedulers.probes(self.programmed) if report.full else []
        if probes:
            result = await self._ipvs.apply(probes)
            self.kernel.ipvs(result)
            if self._schedulers.probed(result):
                again |= fell_back(self.programmed)
        if not again or self._node is None:
            return report
        self._node = replace(self._node, missing_schedulers=self._schedulers.missing)
        second = await self._partial(frozenset(again))

        def merged(
            first: Mapping[ServiceRef, tuple[str, ...]], then: Mapping[ServiceRef, tuple[str, ...]]
        ) -> dict[ServiceRef, tuple[str, ...]]:
            return {**{ref: v for ref, v in first.items() if ref not in again}, **then}

        return replace(
            report,
            operations=report.operations + second.operations,
            failures=report.failures + second.failures,
            warnings=merged(report.warnings, second.warnings),
            notices=merged(report.notices, second.notices),
            unavailable=merged(report.unavailable, second.unavailable),
            duplicates=merged(report.duplicates, second.duplicates),
            no_local=second.no_local,
            no_local_internal=second.no_local_internal,
            no_local_external=second.no_local_external,
        )

    def _search(self, ref: ServiceRef) -> Service | None:
        return next((s for s in self._services() if s.ref == ref), None)

    async def _full(self) -> SyncReport:
        """Everything planned again and checked against the kernel.

        The slow kernel jobs run beside this thread's Python wherever that is safe:
        1. IPVS is dumped (netlink worker) while every Service is planned.
        2. New ClusterIP virtual servers on addresses the host does not have yet are added at
           once: until the address is bound only this node's own processes reach them (`_early`).
        3. nft loads the table (its own process) while the rest of the table is diffed.
        4. With the firewall in place, the rest of IPVS is changed; then VIPs are bound, so
           an address answers only once its filter and its virtual servers exist."""
        host, routes_before = await self._host_and_routes()
        dumping = asyncio.ensure_future(self._ipvs.dump())
        await asyncio.sleep(0)  # the dump reaches its worker thread before planning starts
        try:
            node = self.node_context(host)
            current = {service.ref: service for service in self._services()}
            planned = self._claims.resolve_all(self._plan_all(current, node))
        finally:
            observed = await dumping
            self.kernel.record("ipvs_dump", ok=True)
        self.last_dump = observed
        table = {
            d.server.key: (d.server, d.real_servers)
            for desired in planned.values()
            for d in desired.virtual_servers
        }
        early = _early(planned, observed, host, routed=tuple(routes_before))
        creations = [op for key in early for op in creation(*table.pop(key))]
        adding = asyncio.ensure_future(self._apply(creations))
        await asyncio.sleep(0)  # the kernel adds them while this thread goes on
        loading: asyncio.Future[dict[ServiceRef, str]] | None = None
        try:
            bound_before, wanted = self._addresses_wanted(planned, host)
            ownership = Ownership.of(
                bound=bound_before | wanted,
                node_port_addresses=node.node_port_addresses,
                node_port_range=self.settings.node_port_range,
                excluded=self.settings.exclude_cidrs,
                routed=self.settings.service_routes,
            )
            parts = {ref: self._firewall_part(current[ref], d) for ref, d in planned.items()}
            self._ledger.config = firewall_config(self.settings.firewall, self._own_node())
            loading = asyncio.ensure_future(self._loader.replace(parts))
            ops = diff_tables(
                table, observed, owns=ownership.owns, drain_expired=self._drains.expired
            )
            self._drains.settle()
        finally:
            await _all_done(*(job for job in (loading, adding) if job is not None))
        self._held = frozenset(loading.result())
        if self._held:  # nft refused their shares: they stay as they were, the rest goes on
            planned, ops = self._hold(planned, observed, early, ownership)
            bound_before, wanted = self._addresses_wanted(planned, host)
        failures = adding.result() + await self._apply(ops)
        wanted, refused = await self._route_and_bind(planned, host, bound_before, wanted)
        cleanup = await self._clean_conntrack(
            planned,
            added=[*creations, *ops],
            bound=self._newly_local(planned, wanted - bound_before - refused, routes_before),
        )
        self.programmed = planned
        self._remember(current)
        await self._unbind(bound_before - wanted, stale_routes=routes_before - set(self._routed))
        self._node, self._on_device = node, set(wanted) - refused
        self._elsewhere = frozenset(a for a, name in host if name != self.settings.device)
        self._wanted = {}
        for desired in planned.values():
            self._count_addresses(desired.bound_addresses, +1)
        self._failed, self._last_full = False, self._clock()
        if self._after_full_sync is not None:
            try:
                await self._after_full_sync()
            except Exception:
                log.exception("after the full sync")
        return self._report(True, planned, creations + ops, failures, cleanup)

    # --- the periodic check -----------------------------------------------------------------

    def periodic_is_full(self) -> bool:
        """Whether this periodic check must be a full sync: while the table is small (a full
        sync is then cheap and corrects every kind of drift within one period), after a failed
        sync, before any full sync, and once every `FULL_INTERVAL` seconds at scale (the
        drift a rotating check cannot see: owned virtual servers nobody wants, the firewall
        table, kube-proxy's leftovers, traffic counters). Else the check rotates (`check`)."""
        return (
            self._failed
            or self._node is None
            or len(self.programmed) <= ROTATE_ABOVE
            or self._clock() - self._last_full >= FULL_INTERVAL
        )

    async def check_host(self) -> bool:
        """A rotation's one read of the host's addresses: which VIPs the device holds (for
        `check`); False when the host's other addresses changed (NodePort addresses: a full
        sync is due)."""
        host = await self._addresses.host_addresses()
        device = self.settings.device
        if frozenset(a for a, name in host if name != device) != self._elsewhere:
            return False
        self._device_now = {a for a, name in host if name == device}
        return True

    @property
    def rotation_done(self) -> bool:
        """Whether the next `rotation_step` starts a new rotation."""
        return not self._rotation

    def rotation_step(self, most: int) -> list[ServiceRef]:
        """The next Services of the rotation (at most `most`); a rotation goes through every
        programmed Service once, in a fixed order, then starts again."""
        if not self._rotation:
            self._rotation = sorted(self.programmed, reverse=True)
        step = self._rotation[-most:]
        del self._rotation[-most:]
        step.reverse()
        return step

    async def check(self, refs: Iterable[ServiceRef]) -> SyncReport:
        """The periodic check of a few Services: their virtual servers, real servers and VIPs
        in the kernel against what was last programmed for them, corrected where they differ.

        Nothing is planned again: a Service whose inputs changed was planned by the partial
        sync of that change, so its last plan is what the kernel must hold. Only these virtual
        servers are read (`dump_services`), so a step costs time in proportion to its
        Services, and the runner syncs pending changes between steps."""
        wanted: dict[ServiceKey, tuple[VirtualServer, tuple[RealServer, ...]]] = {}
        checked = {}
        for ref in refs:
            desired = self.programmed.get(ref)
            if desired is None:
                continue
            checked[ref] = desired
            for d in desired.virtual_servers:
                wanted[d.server.key] = (d.server, d.real_servers)
        ops: list[Operation] = []
        found = await self._ipvs.dump_services(list(wanted))
        self.kernel.record("ipvs_dump_service", ok=True, count=len(found))
        for (server, real_servers), observed in zip(wanted.values(), found, strict=True):
            if observed is None:
                ops.extend(creation(server, real_servers))
            else:
                ops.extend(
                    diff_service(server, real_servers, observed, drain_expired=self._drains.expired)
                )
        self._drains.settle(wanted)
        failures = await self._apply(ops)
        missing = {
            address
            for desired in checked.values()
            for address in desired.bound_addresses
            if address not in self._elsewhere
            and address not in self._device_now
            and not self._is_routed(address)  # a Service CIDR's route makes it local
        }
        refused = await self._bind(missing) if missing else set()
        self._on_device |= missing - refused
        self._device_now |= missing - refused
        # What was put back (a UDP virtual server, a VIP) may have left flows stale meanwhile.
        cleanup = (
            await self._clean_conntrack(
                self.programmed, checked, added=ops, bound=missing - refused
            )
            if ops or missing
            else NO_CLEANUP
        )
        if ops or missing:
            log.warning(
                "periodic check: %d kernel operations and %d VIPs bound again for %d Services "
                "(changed behind ipvsd's back)",
                len(ops),
                len(missing),
                len(checked),
            )
        return self._report(False, {}, ops, failures, cleanup, touched=())

    async def program_first(
        self, services: Sequence[tuple[Service, Sequence[EndpointSlice]]], own_node: Node
    ) -> tuple[ServiceRef, ...]:
        """Program a few critical Services (the API's, the cluster DNS) before the lists of
        the bulk have completed, from objects read on their own (`own_node` too); returns
        those programmed.

        A new node reaches the API and DNS in a time that does not grow with the cluster; the
        first full sync, after every list completed, then checks everything as usual. Nothing
        is deleted or lowered here (no list is complete yet): only additions and in-place
        updates of these Services' own virtual servers, set elements added to the firewall,
        and their VIPs bound once filter and virtual servers exist. The firewall table is
        created only on a node where nothing is bound on the device yet (a fresh node: no
        table of ours to lose); elsewhere its elements are added to the table in place, and
        if that is refused the Services wait for the full sync. Nothing is kept as
        programmed: the full sync plans them again and owns the state."""
        host = await self._addresses.host_addresses()
        node = replace(
            node_context(host, self.settings, own_node, self._nodes),
            missing_schedulers=self._schedulers.missing,
        )
        planned: dict[ServiceRef, tuple[Service, DesiredService]] = {}
        for service, slices in services:
            try:
                planned[service.ref] = (service, self._planner(service, slices, node))
            except Exception:
                log.exception("Service %s: planning it first failed; it waits for the lists",
                              service.ref)  # fmt: skip
        if not planned:
            return ()
        on_device = {address for address, name in host if name == self.settings.device}
        self._ledger.config = firewall_config(self.settings.firewall, own_node)
        for ref, (service, desired) in planned.items():
            self._ledger.set_part(ref, self._firewall_part(service, desired))
        changes = self._ledger.take_changes()
        try:
            await self._firewall.update(changes)
        except Exception as error:
            if on_device:
                log.warning("critical Services wait for the full sync: the firewall refused "
                            "their elements (%s)", error)  # fmt: skip
                return ()
            await self._firewall.apply(self._ledger.snapshot())  # a fresh node: nothing to lose
        ops: list[Operation] = []
        for _service, desired in planned.values():
            for d in desired.virtual_servers:
                observed = await self._ipvs.dump_service(d.server.key)
                if observed is None:
                    ops.extend(creation(d.server, d.real_servers))
                else:
                    ops.extend(_growing(diff_service(d.server, d.real_servers, observed),
                                        d.real_servers))  # fmt: skip
        failures = await self._apply(ops)
        elsewhere = {address for address, name in host if name != self.settings.device}
        wanted = {
            address
            for _service, desired in planned.values()
            for address in desired.bound_addresses
            if address not in elsewhere and address not in on_device
        }
        await self._bind(wanted)
        log.info(
            "critical Services programmed before the lists completed: %s (%d kernel operations, "
            "%d refused)",
            ", ".join(map(str, planned)),
            len(ops),
            len(failures),
        )
        return tuple(planned)

    async def _partial(self, refs: frozenset[ServiceRef]) -> SyncReport:
        if self._node is None:  # no full sync yet: nothing is programmed, learn the host now
            host = await self._addresses.host_addresses()
            self._node = self.node_context(host)
            self._on_device = {a for a, name in host if name == self.settings.device}
            self._elsewhere = frozenset(a for a, name in host if name != self.settings.device)
        node = self._node
        services = {ref: s for ref in refs if (s := self._service_of(ref)) is not None}
        planned = dict(self.programmed)
        for ref in refs:
            service = services.get(ref)
            desired = self.plan(service, node) if service is not None else None
            if desired is None:
                planned.pop(ref, None)
                if service is None and ref in self._retry:
                    self._retry.discard(ref)
                    self.problems.resolved("plan", str(ref), f"Service {ref} is gone")
            else:
                planned[ref] = desired
        planned, losers = self._claims.resolve(planned, refs, previous=self.programmed)
        ops: list[Operation] = []
        for ref in sorted(refs):
            ops.extend(await self._service_ops(self.programmed.get(ref), planned.get(ref)))
        current = dict(self._services_by_ref)
        for ref in refs:
            current.pop(ref, None)
        current.update(services)
        for ref in refs:
            service = services.get(ref)
            if service is not None and service.health_check_node_port:
                self._health_checked.add(ref)
            else:
                self._health_checked.discard(ref)
        parts = {}
        for ref in refs | losers:
            desired = planned.get(ref)
            parts[ref] = None if desired is None else self._firewall_part(current[ref], desired)
            self._ledger.set_part(ref, parts[ref])
        await self._loader.update(parts)  # filters and masquerade ready before traffic flows
        if self._routes is not None and set(self._routed) != set(self.settings.service_routes):
            await self._add_routes()  # before the first full sync, or after a refusal
        newly, unwanted = self._recount_addresses(refs, planned)
        failures = await self._apply(ops)
        refused = await self._bind(newly)  # a new VIP answers once its filter and servers exist
        cleanup = await self._clean_conntrack(planned, refs | losers)
        self._on_device |= newly - refused
        self.programmed = planned
        self._services_by_ref = current
        await self._unbind(unwanted)
        self._on_device -= unwanted
        changed = {ref: planned[ref] for ref in refs if ref in planned}
        return self._report(False, changed, ops, failures, cleanup, touched=refs | losers)

    def _hold(
        self,
        planned: dict[ServiceRef, DesiredService],
        observed: list[ObservedVirtualServer],
        early: list[ServiceKey],
        ownership: Ownership,
    ) -> tuple[dict[ServiceRef, DesiredService], list[Operation]]:
        """The full sync's plan and IPVS changes again, with the held Services as they were
        programmed (or absent); virtual servers added early for them go again."""
        kept = {ref: d for ref, d in planned.items() if ref not in self._held}
        kept.update({ref: d for ref in self._held if (d := self.programmed.get(ref))})
        table = _table(kept)
        ops: list[Operation] = [DeleteService(key) for key in early if key not in table]
        for key in early:
            table.pop(key, None)
        ops += diff_tables(table, observed, owns=ownership.owns, drain_expired=self._drains.expired)
        return kept, ops

    def _remember(self, services: dict[ServiceRef, Service]) -> None:
        """Every Service as synced by a full sync."""
        self._services_by_ref = services
        self._health_checked = {r for r, svc in services.items() if svc.health_check_node_port}

    def _count_addresses(self, addresses: Iterable[IPAddress], step: int) -> set[IPAddress]:
        """Count Services per address; returns the addresses whose count went to or from 0."""
        flipped = set()
        for address in addresses:
            count = self._wanted.get(address, 0) + step
            if count:
                self._wanted[address] = count
            else:
                del self._wanted[address]
            if count == (1 if step > 0 else 0):
                flipped.add(address)
        return flipped

    def _recount_addresses(
        self, refs: frozenset[ServiceRef], planned: Mapping[ServiceRef, DesiredService]
    ) -> tuple[set[IPAddress], set[IPAddress]]:
        """(addresses to bind, addresses to unbind) after the changed Services' new plans.
        Addresses on another interface stay there (the host answers for them anyway)."""
        gone: set[IPAddress] = set()
        came: set[IPAddress] = set()
        for ref in refs:
            before, after = self.programmed.get(ref), planned.get(ref)
            gone |= self._count_addresses(before.bound_addresses if before else (), -1)
            came |= self._count_addresses(after.bound_addresses if after else (), +1)
        newly = {
            a
            for a in came - gone
            if a not in self._elsewhere and a not in self._on_device and not self._is_routed(a)
        }
        unwanted = {a for a in gone - came if a in self._on_device}
        return newly, unwanted

    def _firewall_part(self, service: Service, desired: DesiredService) -> Firewall:
        return firewall_for([(service, desired)], self.settings.firewall)

    async def _service_ops(
        self, before: DesiredService | None, after: DesiredService | None
    ) -> list[Operation]:
        """Operations for one Service, reading only its own virtual servers from the kernel."""
        wanted: dict[ServiceKey, tuple[VirtualServer, tuple[RealServer, ...]]] = {}
        if after is not None:
            wanted = {d.server.key: (d.server, d.real_servers) for d in after.virtual_servers}
        previous = {d.server.key for d in before.virtual_servers} if before is not None else set()
        ops: list[Operation] = []
        for key in sorted(wanted.keys() | previous, key=ServiceKey.sort_key):
            observed = await self._ipvs.dump_service(key)
            self.kernel.record("ipvs_dump_service", ok=True)
            if key not in wanted:
                if observed is not None:
                    ops.append(DeleteService(key))
                continue
            server, real_servers = wanted[key]
            if observed is None:
                ops.extend(creation(server, real_servers))
            else:
                ops.extend(
                    diff_service(server, real_servers, observed, drain_expired=self._drains.expired)
                )
        self._drains.settle(wanted.keys() | previous)
        return ops

    def _addresses_wanted(
        self,
        planned: Mapping[ServiceRef, DesiredService],
        host: list[tuple[IPAddress, str]],
        routed: tuple[IPNetwork, ...] | None = None,
    ) -> tuple[frozenset[IPAddress], frozenset[IPAddress]]:
        """(bound on the device now, wanted there). Addresses that are already on another
        interface stay there (the host answers for them anyway); addresses inside a `routed`
        Service CIDR are not bound (its local route makes them the host's; by default the
        configured ones)."""
        routed = self.settings.service_routes if routed is None else routed
        device = self.settings.device
        elsewhere = {address for address, name in host if name != device}
        bound_before = frozenset(address for address, name in host if name == device)
        wanted = frozenset(
            address
            for desired in planned.values()
            for address in desired.bound_addresses
            if address not in elsewhere and not _covered(address, routed)
        )
        return bound_before, wanted

    async def _host_and_routes(self) -> tuple[list[tuple[IPAddress, str]], frozenset[IPNetwork]]:
        """The host's (address, interface) pairs and ipvsd's local routes now in the kernel."""
        host = await self._addresses.host_addresses()
        routes = await self._routes.present() if self._routes is not None else frozenset()
        return host, routes

    async def _route_and_bind(
        self,
        planned: Mapping[ServiceRef, DesiredService],
        host: list[tuple[IPAddress, str]],
        bound_before: frozenset[IPAddress],
        wanted: frozenset[IPAddress],
    ) -> tuple[frozenset[IPAddress], set[IPAddress]]:
        """A full sync's routes, then its new addresses: (addresses wanted on the device,
        those the kernel refused). If the routes are refused, this sync binds their
        ClusterIPs one by one instead."""
        if not await self._add_routes():
            bound_before, wanted = self._addresses_wanted(planned, host, self._routed)
        return wanted, await self._bind(wanted - bound_before)

    def _newly_local(
        self,
        planned: Mapping[ServiceRef, DesiredService],
        bound: frozenset[IPAddress],
        routes_before: frozenset[IPNetwork],
    ) -> frozenset[IPAddress]:
        """The addresses this full sync made local: those it bound, and the planned ones of a
        route it put (back) in place (removed by hand, or a first start): their UDP flows made
        meanwhile are checked for stale conntrack entries as a re-bound VIP's are."""
        added = tuple(net for net in self._routed if net not in routes_before)
        if not added:
            return bound
        routed = {
            address
            for desired in planned.values()
            for address in desired.bound_addresses
            if _covered(address, added)
        }
        return bound | routed

    def _is_routed(self, address: IPAddress) -> bool:
        return _covered(address, self._routed)

    async def _add_routes(self) -> bool:
        """Add the Service CIDRs' local routes (after the firewall that rejects their other
        ports is in place); False if the kernel refused, in which case their ClusterIPs are
        bound one by one until a later sync adds the routes."""
        wanted = self.settings.service_routes
        if self._routes is None or not wanted:
            self._routed = ()
            return True
        try:
            await self._routes.add(wanted)
        except OSError as error:
            self._routed = ()
            self.kernel.record("add_route", ok=False, count=len(wanted))
            self.problems.report(
                "route",
                "service CIDRs",
                f"local routes for {', '.join(map(str, wanted))}: the kernel refused ({error}); "
                f"their ClusterIPs are bound one by one; tried again at every sync",
            )
            return False
        self.kernel.record("add_route", ok=True, count=len(wanted))
        self.problems.resolved("route", "service CIDRs")
        self._routed = wanted
        return True

    async def _remove_routes(self, stale: Iterable[IPNetwork]) -> None:
        """Remove ipvsd's local routes no longer configured (after their ClusterIPs were
        bound one by one); a refusal is logged, the route tried again at the next full sync."""
        stale = tuple(stale)
        if self._routes is None or not stale:
            return
        try:
            await self._routes.remove(stale)
        except OSError as error:
            log.error("removing local routes %s: %s", ", ".join(map(str, stale)), error)

    async def _bind(self, addresses: Iterable[IPAddress]) -> set[IPAddress]:
        """Bind; returns what the kernel refused (left unbound, tried again at the next full
        sync; the Services wanting it keep their other addresses and virtual servers)."""
        await self._addresses.ensure_device()
        return await self._change_addresses("bind", addresses)

    async def _unbind(
        self, addresses: Iterable[IPAddress], *, stale_routes: Iterable[IPNetwork] = ()
    ) -> None:
        """Unbind, then remove ipvsd's routes no longer configured (`stale_routes`)."""
        await self._change_addresses("unbind", addresses)
        await self._remove_routes(stale_routes)

    async def _change_addresses(self, verb: str, addresses: Iterable[IPAddress]) -> set[IPAddress]:
        ordered = sorted(addresses, key=_address_order)
        if not ordered:
            return set()
        change = self._addresses.bind if verb == "bind" else self._addresses.unbind
        refused: dict[IPAddress, int] = {}
        try:
            await change(ordered)
        except AddressesRefused as error:
            refused = error.refused
        self.kernel.record(f"{verb}_address", ok=True, count=len(ordered) - len(refused))
        self.kernel.record(f"{verb}_address", ok=False, count=len(refused))
        for address, code in refused.items():
            self.problems.report(
                verb,
                str(address),
                f"{verb} {address} on {self.settings.device}: the kernel refused "
                f"({os.strerror(code)}); tried again at every full sync",
            )
        if self.problems.any_of(verb):  # 10,000 addresses at a cold start: only when needed
            for address in ordered:
                if address not in refused:
                    self.problems.resolved(verb, str(address))
        return set(refused)

    async def _apply(self, ops: list[Operation]) -> tuple[str, ...]:
        """Send `ops`; the refusals, except those of a virtual server whose scheduler is missing
        (its Service is planned again with rr at once, `_settle_schedulers`)."""
        if not ops:
            return ()
        result = await self._ipvs.apply(ops)
        self.kernel.ipvs(result)
        refused = self._schedulers.refused(result)
        self._refused_keys |= refused
        failures = tuple(
            str(error) for op, error in result.failures if operation_key(op) not in refused
        )
        for failure in failures:
            log.error("kernel refused: %s", failure)
        return failures

    async def _clean_conntrack(
        self,
        planned: Mapping[ServiceRef, DesiredService],
        changed: Iterable[ServiceRef] | None = None,
        *,
        added: Iterable[Operation] = (),
        bound: Iterable[IPAddress] = (),
    ) -> CleanupOutcome:
        """Stale UDP conntrack entries of the changed Services (all after a full sync) go once
        IPVS and the VIPs are in place; a failure is logged and reported, never raised.
        `added` (the sync's operations) and `bound` (the addresses it bound) name what a full
        sync put back that the kernel had lost (`ipvsadm -C`, an address removed by hand):
        flows made meanwhile are checked too."""
        if self._conntrack is None:
            return NO_CLEANUP
        put_back = {
            FlowEnd(op.server.key.address, op.server.key.port)
            for op in added
            if isinstance(op, AddService)
            and op.server.key.protocol == Protocol.UDP
            and op.server.key.address is not None
        }
        return await self._conntrack.after_sync(
            planned, changed, put_back=put_back, bound=frozenset(bound)
        )

    def _report(
        self,
        full: bool,
        planned: Mapping[ServiceRef, DesiredService],
        ops: list[Operation],
        failures: tuple[str, ...],
        cleanup: CleanupOutcome = NO_CLEANUP,
        *,
        touched: Iterable[ServiceRef] | None = None,
    ) -> SyncReport:
        """The report of a sync; `touched`: the Services whose programmed plan may have
        changed (None: every one), whose count of local endpoints is looked at again."""
        warnings = {ref: d.warnings for ref, d in planned.items() if d.warnings}
        notices = {ref: d.notices for ref, d in planned.items() if d.notices}
        external_ips = {
            ref: d.external_ip_warnings for ref, d in planned.items() if d.external_ip_warnings
        }
        unavailable = {ref: d.unavailable for ref, d in planned.items() if d.unavailable}
        duplicates = {ref: d.duplicates for ref, d in planned.items() if d.duplicates}
        self._log_problems(planned)
        self._count_no_local(touched)
        internal: set[ServiceRef] = set()
        external: set[ServiceRef] = set()
        by_family: dict[tuple[str, str], set[ServiceRef]] = {}
        for ref, pairs in self._no_local.items():
            for policy, family in pairs:
                (internal if policy == "internal" else external).add(ref)
                by_family.setdefault((policy, family), set()).add(ref)
        return SyncReport(
            full,
            len(planned),
            len(ops),
            failures,
            warnings,
            notices,
            no_local_internal=len(internal),
            no_local_external=len(external),
            conntrack=cleanup,
            external_ip_warnings=external_ips,
            no_local={pair: len(refs) for pair, refs in by_family.items()},
            unavailable=unavailable,
            duplicates=duplicates,
        )

    def _count_no_local(self, touched: Iterable[ServiceRef] | None) -> None:
        """Keep `_no_local` (Service → its (policy, family) pairs without a local endpoint)
        current for the `touched` Services (None: all), so that a partial sync's report costs
        time in proportion to its Services, not to the cluster."""
        if touched is None:
            self._no_local = {}
            touched = self.programmed
        for ref in touched:
            desired = self.programmed.get(ref)
            pairs = frozenset(
                (
                    "internal" if d.kind is VipKind.CLUSTER_IP else "external",
                    "IPv4" if d.server.key.family is Family.INET else "IPv6",
                )
                for d in (desired.virtual_servers if desired is not None else ())
                if d.uses_local_endpoints and not d.real_servers
            )
            if pairs:
                self._no_local[ref] = pairs
            else:
                self._no_local.pop(ref, None)

    def _log_problems(self, planned: Mapping[ServiceRef, DesiredService]) -> None:
        """Log each warning and notice of a Service when it appears (or reappears after it was
        gone), not on every full sync: the Events recorder dedupes the same way. Only the last
        messages of Services that have some are kept."""
        for ref in [ref for ref in self._said if ref not in self.programmed]:
            del self._said[ref]  # the Service is gone: if it comes back, say it again
        for ref, desired in planned.items():
            warned = desired.warnings + desired.external_ip_warnings + desired.duplicates
            said = (warned, desired.notices)
            before = self._said.get(ref, ((), ()))
            if before == said:
                continue
            for level, notes, old in (
                (logging.WARNING, said[0], before[0]),
                (logging.INFO, said[1], before[1]),
            ):
                for note in notes:
                    if note not in old:
                        log.log(level, "Service %s: %s", ref, note)
            if said == ((), ()):
                self._said.pop(ref, None)
            else:
                self._said[ref] = said


def _table(
    planned: Mapping[ServiceRef, DesiredService],
) -> dict[ServiceKey, tuple[VirtualServer, tuple[RealServer, ...]]]:
    return {
        d.server.key: (d.server, d.real_servers)
        for desired in planned.values()
        for d in desired.virtual_servers
    }


def _covered(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def _growing(ops: Iterable[Operation], wanted: Iterable[RealServer]) -> list[Operation]:
    """`ops` without what deletes or retires: deletions, and weight changes of real servers
    that are not wanted (a retiring one goes to weight 0)."""
    endpoints = {real.endpoint for real in wanted}
    return [
        op
        for op in ops
        if not isinstance(op, (DeleteService, DeleteRealServer))
        and not (isinstance(op, UpdateRealServer) and op.server.endpoint not in endpoints)
    ]


def _early(
    planned: Mapping[ServiceRef, DesiredService],
    observed: Iterable[ObservedVirtualServer],
    host: Iterable[tuple[IPAddress, str]],
    *,
    routed: tuple[IPNetwork, ...] = (),
) -> list[ServiceKey]:
    """The virtual servers a full sync may add before the firewall is in place, sorted: new
    ClusterIP ones whose address the host does not have. No packet reaches such a virtual
    server until its address is bound (after the firewall) but this host's own, and the
    firewall restricts nothing for those: it only masquerades them, which a source that is a
    host address does not need. Anything else (NodePorts on live addresses, externalIPs and
    load-balancer IPs with their source ranges, changes to existing servers) waits. An address
    inside a Service CIDR whose local route is already there (`routed`) is the host's too."""
    present = {entry.key for entry in observed}
    local = {address for address, _ in host}
    keys = [
        d.server.key
        for desired in planned.values()
        for d in desired.virtual_servers
        if d.kind is VipKind.CLUSTER_IP
        and d.server.key not in present
        and d.server.key.address not in local
        and not (d.server.key.address is not None and _covered(d.server.key.address, routed))
    ]
    return sorted(keys, key=ServiceKey.sort_key)


async def _all_done(*jobs: Awaitable[object]) -> None:
    """Wait for every job, even when one fails (none is left running behind the sync's back);
    then raise the first failure."""
    outcomes = await asyncio.gather(*jobs, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


def node_context(
    host: list[tuple[IPAddress, str]],
    settings: SyncSettings,
    node: Node | None,
    nodes: Mapping[str, Node] | None = None,
) -> NodeContext:
    """This node as the planner sees it: name, zone, labels, NodePort addresses, proxy
    defaults, and the cluster's Nodes (for other endpoints' topology labels)."""
    return NodeContext(
        name=settings.node_name,
        zone=node.zone if node is not None else None,
        node_port_addresses=node_port_addresses(
            host, settings, node.primary_addresses if node is not None else ()
        ),
        families=settings.families,
        default_scheduler=settings.default_scheduler,
        schedulers=settings.schedulers,
        labels=node.labels if node is not None else (),
        nodes=nodes if nodes is not None else {},
        topology_source=settings.topology_source,
        external_ips=settings.external_ips,
    )


def firewall_config(config: FirewallConfig, node: Node | None) -> FirewallConfig:
    """`config` with the pod CIDRs filled in where they come from the Node (NodeCIDR mode):
    the first of each family of its `spec.podCIDRs`, as kube-proxy takes them. A Node without
    any (not yet allocated) tells no pods apart until it has some; a Node change is a full
    sync, which calls this again."""
    if not config.pod_cidrs_from_node:
        return config
    first: dict[int, IPNetwork] = {}
    for network in node.pod_cidrs if node is not None else ():
        first.setdefault(network.version, network)
    return replace(config, pod_cidrs=tuple(first[v] for v in sorted(first)))


def node_port_addresses(
    host: list[tuple[IPAddress, str]],
    settings: SyncSettings,
    primary: Iterable[IPAddress] = (),
) -> tuple[IPAddress, ...]:
    """The node's addresses NodePorts listen on: not the dummy interface's, not loopback, not
    IPv6 link-local; narrowed by --nodeport-addresses (`NodePortAddresses.allows`)."""
    found = {
        address
        for address, name in host
        if name != settings.device
        and not address.is_loopback
        and not (isinstance(address, IPv6Address) and address.is_link_local)
        and Family.of(address) in settings.families
    }
    primary = tuple(primary)
    found = {a for a in found if settings.node_ports.allows(a, primary_addresses=primary)}
    return tuple(sorted(found, key=lambda a: (a.version, int(a))))


def _address_order(address: IPAddress) -> tuple[int, int]:
    return (address.version, int(address))
