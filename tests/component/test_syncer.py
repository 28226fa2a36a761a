"""The syncer against the fake kernel: what a full and a partial sync do to the IPVS table."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import ip_network
from typing import Any

import pytest

from ipvsd.config.values import NodePortAddresses
from ipvsd.dataplane.addresses import FakeAddresses
from ipvsd.dataplane.ipvs import BatchResult
from ipvsd.dataplane.ipvs_fake import FakeIpvs
from ipvsd.model.endpoint import Endpoint, EndpointPort, EndpointSlice
from ipvsd.model.firewall import SET_FIELDS, Firewall, FirewallChanges
from ipvsd.model.ipvs import (
    AddRealServer,
    AddService,
    DeleteRealServer,
    Family,
    IPAddress,
    Operation,
    Protocol,
    RealServer,
    ServiceKey,
    UpdateService,
    VirtualServer,
    parse_address,
)
from ipvsd.model.node import Node
from ipvsd.model.service import Service, ServicePort, ServiceRef, ServiceType, TrafficPolicy
from ipvsd.plan.desired import desired_service
from ipvsd.plan.firewall import firewall_for
from ipvsd.reconcile.syncer import Syncer, SyncReport, SyncSettings, node_port_addresses

NODE_IP = parse_address("192.168.1.10")


@dataclass
class RecordingFirewall:
    """Keeps the table as nft would: replaced whole, or changed element by element (refusing,
    as nft does, to delete what is not there or to change a table it never had)."""

    current: Firewall | None = None
    replaced: int = 0
    updates: list[FirewallChanges] = field(default_factory=list)

    async def apply(self, firewall: Firewall) -> bool:
        self.current = firewall
        self.replaced += 1
        return True

    async def update(self, changes: FirewallChanges) -> None:
        if self.current is None:
            raise RuntimeError("no table")
        values = {}
        for name in SET_FIELDS:
            present, gone = getattr(self.current, name), getattr(changes.removed, name)
            if not gone <= present:
                raise RuntimeError(f"{name}: deleting missing elements {gone - present}")
            values[name] = (present - gone) | getattr(changes.added, name)
        self.current = replace(self.current, **values)
        self.updates.append(changes)


@dataclass
class Cluster:
    services: dict[ServiceRef, Service] = field(default_factory=dict)
    slices: dict[ServiceRef, list[EndpointSlice]] = field(default_factory=dict)

    def add(self, name: str, cluster_ip: str, *pods: str, **changes: object) -> ServiceRef:
        ref = ServiceRef("default", name)
        service = Service(
            ref, name, ServiceType.CLUSTER_IP, (parse_address(cluster_ip),),
            (ServicePort("http", Protocol.TCP, 80),),
        )  # fmt: skip
        self.services[ref] = replace(service, **changes)  # type: ignore[arg-type]
        endpoints = tuple(Endpoint(parse_address(p), node_name="node-a") for p in pods)
        port = (EndpointPort("http", Protocol.TCP, 8080),)
        self.slices[ref] = [
            EndpointSlice("default", f"{name}-1", ref, Family.INET, port, endpoints)
        ]
        return ref


@pytest.fixture
def kernel() -> FakeIpvs:
    return FakeIpvs()


@pytest.fixture
def addresses() -> FakeAddresses:
    return FakeAddresses(host=[(NODE_IP, "eth0"), (parse_address("127.0.0.1"), "lo")])


@pytest.fixture
def cluster() -> Cluster:
    return Cluster()


@pytest.fixture
def firewall() -> RecordingFirewall:
    return RecordingFirewall()


@pytest.fixture
def syncer(
    kernel: FakeIpvs, addresses: FakeAddresses, cluster: Cluster, firewall: RecordingFirewall
) -> Syncer:
    return syncer_with(firewall, kernel, addresses, cluster)


def syncer_with(
    firewall: RecordingFirewall,
    kernel: FakeIpvs,
    addresses: FakeAddresses,
    cluster: Cluster,
    settings: SyncSettings | None = None,
    **extra: Any,
) -> Syncer:
    """The fixtures' syncer over these fakes (node-a, IPv4 unless `settings` says otherwise);
    `extra` goes to `Syncer` (a planner, a clock, a conntrack, routes)."""
    return Syncer(
        ipvs=kernel,
        addresses=addresses,
        firewall=firewall,
        settings=settings or SyncSettings(node_name="node-a", families=(Family.INET,)),
        services=lambda: list(cluster.services.values()),
        slices_of=lambda ref: cluster.slices.get(ref, []),
        own_node=lambda: None,
        **extra,
    )


def table(kernel: FakeIpvs) -> list[str]:
    return kernel.render().splitlines()


async def test_full_sync_programs_every_service_and_binds_its_vip(
    syncer: Syncer, kernel: FakeIpvs, addresses: FakeAddresses, cluster: Cluster
) -> None:
    cluster.add("web", "10.96.0.10", "10.244.1.5")
    report = await syncer.sync(full=True)
    assert table(kernel) == [
        "-A -t 10.96.0.10:80 -s rr",
        "-a -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 1",
    ]
    assert await addresses.bound() == {parse_address("10.96.0.10")}
    assert report.failures == ()


async def test_foreign_virtual_servers_survive_and_stale_owned_ones_go(
    syncer: Syncer, kernel: FakeIpvs, addresses: FakeAddresses, cluster: Cluster
) -> None:
    foreign = VirtualServer(ServiceKey.tcp("192.168.1.10", 443), "wlc")  # keepalived-style
    stale = VirtualServer(ServiceKey.tcp("10.96.0.99", 80), "rr")  # a deleted Service's
    await kernel.apply([AddService(foreign), AddService(stale)])
    await addresses.ensure_device()
    await addresses.bind([parse_address("10.96.0.99")])
    cluster.add("web", "10.96.0.10")
    await syncer.sync(full=True)
    assert table(kernel) == ["-A -t 10.96.0.10:80 -s rr", "-A -t 192.168.1.10:443 -s wlc"]
    assert await addresses.bound() == {parse_address("10.96.0.10")}


async def test_first_full_sync_restores_real_servers_left_at_weight_zero(
    syncer: Syncer, kernel: FakeIpvs, addresses: FakeAddresses, cluster: Cluster
) -> None:
    key = ServiceKey.tcp("10.96.0.10", 80)
    left = RealServer.of("10.244.1.5", 8080, weight=0)
    await kernel.apply([AddService(VirtualServer(key, "rr")), AddRealServer(key, left)])
    cluster.add("web", "10.96.0.10", "10.244.1.5")
    await syncer.sync(full=True)
    assert "-a -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 1" in table(kernel)


async def test_partial_sync_reads_and_changes_only_the_changed_service(
    syncer: Syncer, kernel: FakeIpvs, cluster: Cluster
) -> None:
    web = cluster.add("web", "10.96.0.10", "10.244.1.5")
    cluster.add("api", "10.96.0.20", "10.244.2.5")
    await syncer.sync(full=True)
    kernel.clear_log()
    cluster.add("web", "10.96.0.10", "10.244.1.5", "10.244.1.6")
    await syncer.sync(full=False, services=[web])
    assert kernel.calls["dump"] == 0
    assert [str(op.service) for op in kernel.operations if isinstance(op, AddRealServer)] == [
        "TCP 10.96.0.10:80"
    ]
    assert "-a -t 10.96.0.20:80 -r 10.244.2.5:8080 -m -w 1" in table(kernel)


async def test_changed_scheduler_is_applied_in_place(
    syncer: Syncer, kernel: FakeIpvs, cluster: Cluster
) -> None:
    web = cluster.add("web", "10.96.0.10", "10.244.1.5")
    await syncer.sync(full=True)
    kernel.clear_log()
    cluster.add("web", "10.96.0.10", "10.244.1.5", annotations=(("ipvsd.io/scheduler", "wlc"),))
    await syncer.sync(full=False, services=[web])
    assert [type(op) for op in kernel.operations] == [UpdateService]
    assert table(kernel)[0] == "-A -t 10.96.0.10:80 -s wlc"


async def test_deleted_service_loses_its_virtual_server_and_its_vip(
    syncer: Syncer, kernel: FakeIpvs, addresses: FakeAddresses, cluster: Cluster
) -> None:
    web = cluster.add("web", "10.96.0.10", "10.244.1.5")
    await syncer.sync(full=True)
    del cluster.services[web]
    await syncer.sync(full=False, services=[web])
    assert table(kernel) == []
    assert await addresses.bound() == frozenset()


async def test_two_services_claiming_one_vip_port_the_first_keeps_it(
    syncer: Syncer, kernel: FakeIpvs, cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    shared = (parse_address("203.0.113.5"),)
    cluster.add("a", "10.96.0.10", "10.244.1.5", external_ips=shared)
    cluster.add("b", "10.96.0.20", "10.244.2.5", external_ips=shared)
    await syncer.sync(full=True)
    assert "-a -t 203.0.113.5:80 -r 10.244.1.5:8080 -m -w 1" in table(kernel)
    assert "TCP 203.0.113.5:80 is already used by default/a" in caplog.text


async def test_the_older_service_keeps_a_shared_vip_port_whatever_its_name(
    syncer: Syncer, kernel: FakeIpvs, cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """A newer Service cannot take an address an established one serves (CVE-2020-8554's
    interception) by being named earlier; one without a timestamp counts as the newest."""
    shared = (parse_address("203.0.113.5"),)
    cluster.add(
        "zeta", "10.96.0.10", "10.244.1.5", external_ips=shared, created="2026-01-01T00:00:00Z"
    )
    cluster.add(
        "alpha", "10.96.0.20", "10.244.2.5", external_ips=shared, created="2026-06-01T00:00:00Z"
    )
    cluster.add("aaa", "10.96.0.30", "10.244.3.5", external_ips=shared)  # fmt: skip
    await syncer.sync(full=True)
    assert "-a -t 203.0.113.5:80 -r 10.244.1.5:8080 -m -w 1" in table(kernel)
    assert "Service default/alpha: TCP 203.0.113.5:80 is already used by default/zeta" in (
        caplog.text
    )
    assert "Service default/aaa: TCP 203.0.113.5:80 is already used by default/zeta" in (
        caplog.text
    )


async def test_a_newer_service_changed_later_does_not_take_the_vip_port(
    syncer: Syncer, kernel: FakeIpvs, cluster: Cluster
) -> None:
    """Partial syncs settle as the full one does: the newcomer (first in name order) loses,
    and when the older Service changes it keeps what it has."""
    shared = (parse_address("203.0.113.5"),)
    old = cluster.add("zeta", "10.96.0.10", "10.244.1.5", external_ips=shared,
                      created="2026-01-01T00:00:00Z")  # fmt: skip
    await syncer.sync(full=True)
    new = cluster.add("alpha", "10.96.0.20", "10.244.2.5", external_ips=shared,
                      created="2026-06-01T00:00:00Z")  # fmt: skip
    await syncer.sync(full=False, services=[new])
    assert "-a -t 203.0.113.5:80 -r 10.244.1.5:8080 -m -w 1" in table(kernel)
    cluster.add("zeta", "10.96.0.10", "10.244.1.6", external_ips=shared,
                created="2026-01-01T00:00:00Z")  # fmt: skip
    await syncer.sync(full=False, services=[old])
    assert "-a -t 203.0.113.5:80 -r 10.244.1.6:8080 -m -w 1" in table(kernel)
    assert "10.244.2.5" not in "\n".join(line for line in table(kernel) if "203.0.113.5" in line)


async def test_a_refused_service_does_not_stop_the_others(
    syncer: Syncer, kernel: FakeIpvs, cluster: Cluster
) -> None:
    kernel.schedulers = frozenset({"rr"})  # this node's kernel lacks mh
    cluster.add("a", "10.96.0.10", "10.244.1.5", annotations=(("ipvsd.io/scheduler", "mh"),))
    cluster.add("b", "10.96.0.20", "10.244.2.5")
    report = await syncer.sync(full=True)
    assert report.failures == (), "a missing scheduler is handled: the Service gets rr"
    assert "-A -t 10.96.0.10:80 -s rr" in table(kernel)
    assert "-a -t 10.96.0.20:80 -r 10.244.2.5:8080 -m -w 1" in table(kernel)


async def test_node_port_addresses_exclude_loopback_and_honour_the_cidr_filter(
    syncer: Syncer,
) -> None:
    host = [
        (NODE_IP, "eth0"),
        (parse_address("10.0.0.5"), "eth1"),
        (parse_address("127.0.0.1"), "lo"),
        (parse_address("10.96.0.10"), "kube-ipvs0"),
    ]
    assert syncer.node_context(host).node_port_addresses == (parse_address("10.0.0.5"), NODE_IP)
    narrowed = NodePortAddresses(cidrs=(ip_network("192.168.0.0/16"),))
    syncer.settings = replace(syncer.settings, node_ports=narrowed)
    assert syncer.node_context(host).node_port_addresses == (NODE_IP,)


async def test_traffic_counters_of_programmed_servers_come_from_the_full_sync_dump(
    syncer: Syncer, kernel: FakeIpvs, cluster: Cluster
) -> None:
    web = cluster.add("web", "10.96.0.10", "10.244.1.5")
    await syncer.sync(full=True)
    key = ServiceKey.tcp("10.96.0.10", 80)
    kernel.add_traffic(key, parse_address("10.244.1.5"), 8080, connections=3)
    await syncer.sync(full=True)
    ref, port, stats = syncer.traffic()[key]
    assert (ref, port) == (web, "http")
    assert stats.connections == 3


async def test_node_port_addresses_primary_means_the_node_objects_primary_ips(
    syncer: Syncer,
) -> None:
    host = [
        (NODE_IP, "eth0"),
        (parse_address("10.0.0.5"), "eth1"),
        (parse_address("fd00:1::10"), "eth0"),
    ]
    settings = replace(
        syncer.settings,
        node_ports=NodePortAddresses(primary=True),
        families=(Family.INET, Family.INET6),
    )
    chosen = node_port_addresses(host, settings, [NODE_IP])
    # IPv4 narrowed to the primary address; IPv6 has no selector, so all its addresses serve.
    assert chosen == (NODE_IP, parse_address("fd00:1::10"))


async def test_report_counts_services_whose_local_policy_finds_no_local_endpoint(
    syncer: Syncer, cluster: Cluster
) -> None:
    cluster.add("here", "10.96.0.10", "10.244.1.5", internal_traffic_policy=TrafficPolicy.LOCAL)
    away = cluster.add("away", "10.96.0.20", internal_traffic_policy=TrafficPolicy.LOCAL)
    cluster.slices[away] = []
    report = await syncer.sync(full=True)
    assert (report.no_local_internal, report.no_local_external) == (1, 0)


def whole_firewall(syncer: Syncer, cluster: Cluster) -> Firewall:
    """What a full sync would put into the table now."""
    return firewall_for(
        [(cluster.services[ref], desired) for ref, desired in syncer.programmed.items()],
        syncer.settings.firewall,
    )


async def test_partial_syncs_change_only_the_changed_firewall_elements(
    syncer: Syncer, cluster: Cluster, firewall: RecordingFirewall
) -> None:
    web = cluster.add("web", "10.96.0.10", "10.244.1.5", "10.244.1.6")
    api = cluster.add("api", "10.96.0.20", "10.244.1.5")  # shares a pod (a hairpin element)
    await syncer.sync(full=True)
    assert firewall.replaced == 1
    cluster.add("web", "10.96.0.10", "10.244.1.6", "10.244.1.7")
    await syncer.sync(full=False, services=[web])
    pod = parse_address("10.244.1.5")
    assert firewall.updates[-1].added.hairpin == {(parse_address("10.244.1.7"), 6, 8080)}
    assert firewall.updates[-1].removed.hairpin == frozenset()  # api still has 10.244.1.5
    del cluster.services[api]
    await syncer.sync(full=False, services=[api])
    assert firewall.updates[-1].removed.hairpin == {(pod, 6, 8080)}
    assert firewall.updates[-1].removed.vips == {parse_address("10.96.0.20")}
    assert firewall.replaced == 1
    assert firewall.current == whole_firewall(syncer, cluster)


async def test_an_unchanged_firewall_is_not_touched_by_a_partial_sync(
    syncer: Syncer, cluster: Cluster, firewall: RecordingFirewall
) -> None:
    web = cluster.add("web", "10.96.0.10", "10.244.1.5")
    await syncer.sync(full=True)
    cluster.add("web", "10.96.0.10", "10.244.1.5", annotations=(("ipvsd.io/scheduler", "wlc"),))
    await syncer.sync(full=False, services=[web])
    assert firewall.updates == []


async def test_a_refused_firewall_update_replaces_the_table(
    syncer: Syncer, cluster: Cluster, firewall: RecordingFirewall
) -> None:
    web = cluster.add("web", "10.96.0.10", "10.244.1.5")
    await syncer.sync(full=True)
    firewall.current = None  # someone deleted the table
    cluster.add("web", "10.96.0.10", "10.244.1.6")
    await syncer.sync(full=False, services=[web])
    assert firewall.replaced == 2
    assert firewall.current == whole_firewall(syncer, cluster)


async def test_a_vip_shared_by_two_services_stays_bound_until_both_are_gone(
    syncer: Syncer, addresses: FakeAddresses, cluster: Cluster
) -> None:
    shared = (parse_address("203.0.113.5"),)
    a = cluster.add("a", "10.96.0.10", "10.244.1.5", external_ips=shared)
    b = cluster.add("b", "10.96.0.20", "10.244.2.5", external_ips=shared)
    await syncer.sync(full=True)
    del cluster.services[a]
    await syncer.sync(full=False, services=[a])
    assert parse_address("203.0.113.5") in await addresses.bound()
    del cluster.services[b]
    await syncer.sync(full=False, services=[b])
    assert await addresses.bound() == frozenset()


async def test_after_a_failed_sync_the_next_one_is_full(
    syncer: Syncer, kernel: FakeIpvs, addresses: FakeAddresses, cluster: Cluster
) -> None:
    web = cluster.add("web", "10.96.0.10", "10.244.1.5")
    cluster.add("api", "10.96.0.20", "10.244.2.5")
    await syncer.sync(full=True)
    await addresses.remove_device()  # binding now fails
    cluster.add("web", "10.96.0.11", "10.244.1.5")
    addresses.ensure_device = _failing  # type: ignore[method-assign]
    with pytest.raises(OSError, match="kube-ipvs0"):
        await syncer.sync(full=False, services=[web])
    del addresses.ensure_device
    report = await syncer.sync(full=False, services=[])
    assert report.full
    assert await addresses.bound() == {parse_address("10.96.0.11"), parse_address("10.96.0.20")}


async def _failing() -> None:
    raise OSError("kube-ipvs0 cannot be created")


class GatedFirewall(RecordingFirewall):
    """A table load that takes as long as the test wants (nft runs as its own process)."""

    def __init__(self) -> None:
        super().__init__()
        self.loading = asyncio.Event()
        self.may_finish = asyncio.Event()

    async def apply(self, firewall: Firewall) -> bool:
        self.loading.set()
        await self.may_finish.wait()
        return await super().apply(firewall)


async def full_sync_held_at_the_table(
    firewall: GatedFirewall, kernel: FakeIpvs, addresses: FakeAddresses, cluster: Cluster
) -> asyncio.Task[SyncReport]:
    """A full sync started and left running while its table load is held by `firewall`."""
    syncing = asyncio.create_task(syncer_with(firewall, kernel, addresses, cluster).sync(full=True))
    await asyncio.wait_for(firewall.loading.wait(), 5)
    for _ in range(20):  # whatever the sync does beside the load, it has done now
        await asyncio.sleep(0)
    return syncing


async def test_a_full_sync_adds_new_cluster_ip_servers_while_the_table_loads_and_binds_after(
    kernel: FakeIpvs, addresses: FakeAddresses, cluster: Cluster
) -> None:
    cluster.add("web", "10.96.0.10", "10.244.1.5")
    cluster.add("edge", "10.96.0.20", "10.244.2.5", external_ips=(parse_address("203.0.113.5"),))
    firewall = GatedFirewall()
    syncing = await full_sync_held_at_the_table(firewall, kernel, addresses, cluster)
    assert table(kernel) == [
        "-A -t 10.96.0.10:80 -s rr",
        "-a -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 1",
        "-A -t 10.96.0.20:80 -s rr",
        "-a -t 10.96.0.20:80 -r 10.244.2.5:8080 -m -w 1",
    ], "new ClusterIPs are programmed while the table loads; the externalIP waits for it"
    assert await addresses.bound() == frozenset(), "no VIP is bound before its filter"
    firewall.may_finish.set()
    report = await syncing
    assert report.operations == 6
    assert "-A -t 203.0.113.5:80 -s rr" in table(kernel)
    assert await addresses.bound() == {
        parse_address(a) for a in ("10.96.0.10", "10.96.0.20", "203.0.113.5")
    }


async def test_a_cluster_ip_the_host_already_has_waits_for_the_table(
    kernel: FakeIpvs, cluster: Cluster
) -> None:
    """After a restart the old VIPs are still bound: the firewall decides first."""
    addresses = FakeAddresses(host=[(NODE_IP, "eth0"), (parse_address("10.96.0.10"), "kube-ipvs0")])
    cluster.add("web", "10.96.0.10", "10.244.1.5")
    firewall = GatedFirewall()
    syncing = await full_sync_held_at_the_table(firewall, kernel, addresses, cluster)
    assert table(kernel) == []
    firewall.may_finish.set()
    await syncing
    assert table(kernel)[0] == "-A -t 10.96.0.10:80 -s rr"


async def test_a_changed_cluster_ip_server_waits_for_the_table(
    kernel: FakeIpvs, addresses: FakeAddresses, cluster: Cluster
) -> None:
    key = ServiceKey.tcp("10.96.0.10", 80)
    await kernel.apply([AddService(VirtualServer(key, "wrr"))])
    cluster.add("web", "10.96.0.10", "10.244.1.5")
    firewall = GatedFirewall()
    syncing = await full_sync_held_at_the_table(firewall, kernel, addresses, cluster)
    assert table(kernel) == ["-A -t 10.96.0.10:80 -s wrr"]
    firewall.may_finish.set()
    await syncing
    assert table(kernel) == [
        "-A -t 10.96.0.10:80 -s rr",
        "-a -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 1",
    ]


async def test_a_failed_binding_fails_the_full_sync_after_the_table_load_ends(
    kernel: FakeIpvs, addresses: FakeAddresses, cluster: Cluster
) -> None:
    cluster.add("web", "10.96.0.10", "10.244.1.5")
    firewall = GatedFirewall()
    addresses.ensure_device = _failing  # type: ignore[method-assign]
    syncing = await full_sync_held_at_the_table(firewall, kernel, addresses, cluster)
    assert not syncing.done(), "the sync waits for the table load it started"
    firewall.may_finish.set()
    with pytest.raises(OSError, match="kube-ipvs0"):
        await syncing
    assert firewall.current is not None, "the table load was not abandoned half way"
    assert await addresses.bound() == frozenset()


class JournalingAddresses(FakeAddresses):
    def __init__(self, journal: list[str], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.journal = journal

    async def bind(self, addresses: Iterable[IPAddress]) -> None:
        wanted = sorted(str(a) for a in addresses)
        if wanted:
            self.journal.append(f"bind {' '.join(wanted)}")
        await super().bind(addresses)


class JournalingIpvs(FakeIpvs):
    def __init__(self, journal: list[str]) -> None:
        super().__init__()
        self.journal = journal

    async def apply(self, operations: Sequence[Operation]) -> BatchResult:
        self.journal.append(f"ipvs {len(operations)} operations")
        return await super().apply(operations)


class JournalingFirewall(RecordingFirewall):
    def __init__(self, journal: list[str]) -> None:
        super().__init__()
        self.journal = journal

    async def apply(self, firewall: Firewall) -> bool:
        self.journal.append("firewall loaded")
        return await super().apply(firewall)

    async def update(self, changes: FirewallChanges) -> None:
        self.journal.append("firewall updated")
        await super().update(changes)


async def test_a_partial_sync_filters_then_programs_then_binds_a_new_vip(cluster: Cluster) -> None:
    journal: list[str] = []
    addresses = JournalingAddresses(journal, host=[(NODE_IP, "eth0")])
    syncer = syncer_with(JournalingFirewall(journal), JournalingIpvs(journal), addresses, cluster)
    cluster.add("web", "10.96.0.10", "10.244.1.5")
    await syncer.sync(full=True)
    journal.clear()
    edge = cluster.add(
        "edge", "10.96.0.20", "10.244.2.5", external_ips=(parse_address("203.0.113.5"),)
    )
    await syncer.sync(full=False, services=[edge])
    assert journal == [
        "firewall updated",
        "ipvs 4 operations",
        "bind 10.96.0.20 203.0.113.5",
    ]


async def test_an_invalid_annotation_is_logged_when_it_appears_not_on_every_full_sync(
    syncer: Syncer, cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    def logged() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "ipvsd.reconcile.syncer"]

    bad = (("ipvsd.io/topology-mode", "bogus"),)
    ref = cluster.add("web", "10.96.0.10", "10.244.1.5", annotations=bad)
    first = await syncer.sync(full=True)
    second = await syncer.sync(full=True)
    assert first.warnings == second.warnings == {ref: first.warnings[ref]}  # still reported
    assert logged() == [
        "Service default/web: annotation ipvsd.io/topology-mode='bogus': not 'exclude' or "
        "'weight'; using 'exclude'"
    ]
    caplog.clear()
    worse = (("ipvsd.io/topology-mode", "worse"),)
    cluster.services[ref] = replace(cluster.services[ref], annotations=worse)
    await syncer.sync(full=False, services=[ref])
    await syncer.sync(full=True)
    assert logged() == [
        "Service default/web: annotation ipvsd.io/topology-mode='worse': not 'exclude' or "
        "'weight'; using 'exclude'"
    ]
    caplog.clear()
    del cluster.services[ref]
    await syncer.sync(full=True)
    cluster.add("web", "10.96.0.10", "10.244.1.5", annotations=worse)
    await syncer.sync(full=True)
    assert len(logged()) == 1  # gone and back: said again


# --- critical Services first (`Syncer.program_first`): before the lists complete, nothing is
# deleted or retired ---------------------------------------------------------------------------

CRITICAL_NODE = Node("node-a")


def first(of: Cluster) -> list[tuple[object, list[object]]]:
    return [(of.services[ref], of.slices[ref]) for ref in of.services]


async def test_a_fresh_node_gets_the_critical_service_its_filter_and_its_vip(
    syncer: Syncer,
    kernel: FakeIpvs,
    addresses: FakeAddresses,
    cluster: Cluster,
    firewall: RecordingFirewall,
) -> None:
    cluster.add("kubernetes", "10.96.0.1", "192.168.1.2")
    done = await syncer.program_first(first(cluster), CRITICAL_NODE)  # type: ignore[arg-type]
    assert [str(ref) for ref in done] == ["default/kubernetes"]
    assert table(kernel) == [
        "-A -t 10.96.0.1:80 -s rr",
        "-a -t 10.96.0.1:80 -r 192.168.1.2:8080 -m -w 1",
    ]
    assert await addresses.bound() == {parse_address("10.96.0.1")}
    assert firewall.current is not None
    assert parse_address("10.96.0.1") in firewall.current.vips
    # The full sync, after the lists, takes over as always.
    cluster.add("web", "10.96.0.10", "10.244.1.5")
    await syncer.sync(full=True)
    assert "-A -t 10.96.0.10:80 -s rr" in table(kernel)
    assert await addresses.bound() == {parse_address("10.96.0.1"), parse_address("10.96.0.10")}


async def test_nothing_is_deleted_or_retired_before_the_lists_completed(
    syncer: Syncer,
    kernel: FakeIpvs,
    addresses: FakeAddresses,
    cluster: Cluster,
    firewall: RecordingFirewall,
) -> None:
    """A restart: the kernel and the table hold a previous run's state, with a real server of
    the critical Service that its fresh slice no longer names and another Service's VIP."""
    key = ServiceKey.tcp("10.96.0.1", 80)
    other = ServiceKey.tcp("10.96.0.99", 80)
    await kernel.apply(
        [
            AddService(VirtualServer(key, "rr")),
            AddRealServer(key, RealServer.of("192.168.1.9", 8080)),
            AddService(VirtualServer(other, "rr")),
        ]
    )
    await addresses.ensure_device()
    await addresses.bind([parse_address("10.96.0.99")])
    cluster.add("old", "10.96.0.99")
    await syncer.sync(full=True)  # the previous run's table
    del cluster.services[next(r for r in cluster.services if r.name == "old")]
    cluster.add("kubernetes", "10.96.0.1", "192.168.1.2")
    fresh = Syncer(
        ipvs=kernel,
        addresses=addresses,
        firewall=firewall,
        settings=syncer.settings,
        services=lambda: list(cluster.services.values()),
        slices_of=lambda ref: cluster.slices.get(ref, []),
        own_node=lambda: None,
    )
    await fresh.program_first(first(cluster), CRITICAL_NODE)  # type: ignore[arg-type]
    assert table(kernel) == [
        "-A -t 10.96.0.1:80 -s rr",
        "-a -t 10.96.0.1:80 -r 192.168.1.2:8080 -m -w 1",
        "-a -t 10.96.0.1:80 -r 192.168.1.9:8080 -m -w 1",  # kept, at its weight
        "-A -t 10.96.0.99:80 -s rr",  # another Service's: kept
    ]
    assert await addresses.bound() == {parse_address("10.96.0.1"), parse_address("10.96.0.99")}
    assert firewall.current is not None
    assert parse_address("10.96.0.99") in firewall.current.vips
    assert firewall.replaced == 1  # elements added in place, the table was not replaced


async def test_a_refused_firewall_on_a_node_with_vips_leaves_everything_to_the_full_sync(
    kernel: FakeIpvs, addresses: FakeAddresses, cluster: Cluster
) -> None:  # the fixtures' syncer and firewall are not used: a firewall without a table
    """kube-proxy's kube-ipvs0 (a takeover) or a lost table: no table of ours to add to, and
    replacing one could drop what serves the node now."""
    await addresses.ensure_device()
    await addresses.bind([parse_address("10.96.0.99")])
    tableless = RecordingFirewall()  # no table: update is refused
    critical = syncer_with(tableless, kernel, addresses, cluster)
    cluster.add("kubernetes", "10.96.0.1", "192.168.1.2")
    assert await critical.program_first(first(cluster), CRITICAL_NODE) == ()  # type: ignore[arg-type]
    assert table(kernel) == []
    assert tableless.current is None
    assert await addresses.bound() == {parse_address("10.96.0.99")}


# --- the rotating periodic check at scale (`Syncer.periodic_is_full`, `Syncer.check`) --------


@pytest.fixture
def rotating(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scale made small: more than two Services is "a large table"."""
    monkeypatch.setattr("ipvsd.reconcile.syncer.ROTATE_ABOVE", 2)


async def test_a_rotation_puts_back_what_was_changed_by_hand_without_planning_again(
    rotating: None,
    kernel: FakeIpvs,
    addresses: FakeAddresses,
    cluster: Cluster,
    firewall: RecordingFirewall,
) -> None:
    planned: list[ServiceRef] = []

    def planner(service: Service, slices: Iterable[EndpointSlice], node: object) -> object:
        planned.append(service.ref)
        return desired_service(service, slices, node)  # type: ignore[arg-type]

    syncer = syncer_with(firewall, kernel, addresses, cluster, planner=planner)
    for number in range(4):
        cluster.add(f"svc-{number}", f"10.96.0.{10 + number}", f"10.244.1.{number}")
    await syncer.sync(full=True)
    programmed = table(kernel)
    planned.clear()
    # By hand: svc-3 loses its real server and its VIP.
    key = ServiceKey.tcp("10.96.0.13", 80)
    await kernel.apply([DeleteRealServer(key, parse_address("10.244.1.3"), 8080)])
    await addresses.unbind([parse_address("10.96.0.13")])

    assert not syncer.periodic_is_full()
    assert syncer.rotation_done  # a rotation starts: the host's addresses are read
    assert await syncer.check_host()
    first = syncer.rotation_step(2)
    await syncer.check(first)
    assert [ref.name for ref in first] == ["svc-0", "svc-1"]
    assert table(kernel) != programmed  # not its turn yet
    second = syncer.rotation_step(2)
    assert [ref.name for ref in second] == ["svc-2", "svc-3"]
    await syncer.check(second)
    assert syncer.rotation_done
    assert table(kernel) == programmed
    assert parse_address("10.96.0.13") in await addresses.bound()
    assert planned == []  # nothing changed for them: their last plans are what counts
    assert [ref.name for ref in syncer.rotation_step(2)] == ["svc-0", "svc-1"]  # again


async def test_small_tables_failures_and_an_hourly_check_are_full_syncs(
    rotating: None,
    kernel: FakeIpvs,
    addresses: FakeAddresses,
    cluster: Cluster,
    firewall: RecordingFirewall,
) -> None:
    now = [1000.0]
    syncer = syncer_with(firewall, kernel, addresses, cluster, clock=lambda: now[0])
    cluster.add("a", "10.96.0.10")
    cluster.add("b", "10.96.0.11")
    assert syncer.periodic_is_full()  # nothing synced yet
    await syncer.sync(full=True)
    assert syncer.periodic_is_full()  # two Services: small
    cluster.add("c", "10.96.0.12")
    await syncer.sync(full=True)
    assert not syncer.periodic_is_full()
    now[0] += 3599
    assert not syncer.periodic_is_full()
    now[0] += 1
    assert syncer.periodic_is_full()  # an hour after the last full sync


async def test_a_changed_host_address_makes_the_next_check_a_full_one(
    rotating: None, syncer: Syncer, cluster: Cluster, addresses: FakeAddresses
) -> None:
    for number in range(3):
        cluster.add(f"svc-{number}", f"10.96.0.{10 + number}")
    await syncer.sync(full=True)
    assert await syncer.check_host()
    addresses._host.add((parse_address("192.168.1.11"), "eth0"))  # a new node address
    assert not await syncer.check_host()
