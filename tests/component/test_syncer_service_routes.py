"""The syncer with routed Service CIDRs (--service-cluster-ip-range), against the fake kernel:
ClusterIPs inside a range are made local by its one route, never bound one by one; everything
else (externalIPs, LB IPs, ClusterIPs outside the ranges) is bound as before; the route comes
after the firewall that rejects the range's other ports; kube-proxy's /32s in the range go
only once the route covers them."""

from __future__ import annotations

import errno
from collections.abc import Iterable
from ipaddress import ip_network

import pytest

from ipvsd.dataplane.service_routes import FakeServiceRoutes
from ipvsd.model.firewall import FirewallConfig
from ipvsd.model.ipvs import (
    AddService,
    Family,
    IPAddress,
    Protocol,
    ServiceKey,
    VirtualServer,
    parse_address,
)
from ipvsd.model.service import IPNetwork
from ipvsd.reconcile.syncer import Syncer, SyncSettings
from tests.component.test_syncer import (
    NODE_IP,
    Cluster,
    JournalingAddresses,
    JournalingFirewall,
    JournalingIpvs,
    RecordingFirewall,
    table,
)

RANGE = ip_network("10.96.0.0/12")


class JournalingRoutes(FakeServiceRoutes):
    def __init__(self, journal: list[str], *, refuse: bool = False) -> None:
        super().__init__()
        self.journal = journal
        self.refuse = refuse

    async def add(self, networks: Iterable[IPNetwork]) -> None:
        wanted = sorted(str(n) for n in networks)
        if self.refuse:
            raise OSError(errno.EPERM, "refused by the test")
        self.journal.append(f"route add {' '.join(wanted)}")
        await super().add(networks)

    async def remove(self, networks: Iterable[IPNetwork]) -> None:
        self.journal.append(f"route del {' '.join(sorted(str(n) for n in networks))}")
        await super().remove(networks)


class UnbindJournalingAddresses(JournalingAddresses):
    async def unbind(self, addresses: Iterable[IPAddress]) -> None:
        gone = sorted(str(a) for a in addresses)
        if gone:
            self.journal.append(f"unbind {' '.join(gone)}")
        await super().unbind(addresses)


def routed_syncer(
    cluster: Cluster,
    journal: list[str],
    *,
    host: Iterable[tuple[IPAddress, str]] = ((NODE_IP, "eth0"),),
    routes: JournalingRoutes | None = None,
    ranges: tuple[IPNetwork, ...] = (RANGE,),
) -> tuple[Syncer, UnbindJournalingAddresses, JournalingRoutes, RecordingFirewall, JournalingIpvs]:
    addresses = UnbindJournalingAddresses(journal, host=list(host))
    routes = routes if routes is not None else JournalingRoutes(journal)
    firewall = JournalingFirewall(journal)
    ipvs = JournalingIpvs(journal)
    settings = SyncSettings(
        node_name="node-a",
        families=(Family.INET,),
        service_routes=ranges,
        firewall=FirewallConfig(service_cidrs=ranges),
    )
    syncer = Syncer(
        ipvs=ipvs,
        addresses=addresses,
        firewall=firewall,
        settings=settings,
        services=lambda: list(cluster.services.values()),
        slices_of=lambda ref: cluster.slices.get(ref, []),
        own_node=lambda: None,
        routes=routes,
    )
    return syncer, addresses, routes, firewall, ipvs


async def test_cluster_ips_in_the_range_are_served_through_one_route_and_never_bound() -> None:
    cluster, journal = Cluster(), list[str]()
    cluster.add("web", "10.96.0.10", "10.244.1.5")
    cluster.add("edge", "10.96.0.20", "10.244.2.5", external_ips=(parse_address("203.0.113.5"),))
    cluster.add("odd", "172.30.0.5", "10.244.3.5")  # a ClusterIP outside the configured range
    syncer, addresses, routes, firewall, ipvs = routed_syncer(cluster, journal)
    report = await syncer.sync(full=True)
    assert report.failures == ()
    assert routes.routes == {RANGE}
    assert await addresses.bound() == {parse_address("203.0.113.5"), parse_address("172.30.0.5")}
    assert "-A -t 10.96.0.10:80 -s rr" in table(ipvs)
    assert journal[-2:] == ["route add 10.96.0.0/12", "bind 172.30.0.5 203.0.113.5"]
    assert journal.index("firewall loaded") < journal.index("route add 10.96.0.0/12"), (
        "the range becomes local only once its reject rule is loaded"
    )
    assert firewall.current is not None
    assert firewall.current.config.service_cidrs == (RANGE,)
    assert syncer.kernel.take().get(("bind_address", "ok")) == 2


async def test_ten_thousand_cluster_ips_bind_nothing_and_add_the_route_once() -> None:
    cluster, journal = Cluster(), list[str]()
    for n in range(10_000):
        cluster.add(f"s{n}", f"10.96.{n // 250}.{n % 250 + 1}")
    syncer, addresses, routes, _, ipvs = routed_syncer(cluster, journal)
    await syncer.sync(full=True)
    await syncer.sync(full=True)
    assert [line for line in journal if line.startswith("bind")] == []
    assert await addresses.bound() == frozenset()
    assert routes.routes == {RANGE}
    assert routes.changes == 1
    counts = syncer.kernel.take()
    assert ("bind_address", "ok") not in counts
    assert ("unbind_address", "ok") not in counts
    assert len(table(ipvs)) == 10_000


async def test_partial_syncs_bind_nothing_in_the_range_and_unbind_nothing() -> None:
    cluster, journal = Cluster(), list[str]()
    cluster.add("web", "10.96.0.10", "10.244.1.5")
    syncer, addresses, _, _, _ = routed_syncer(cluster, journal)
    await syncer.sync(full=True)
    journal.clear()
    api = cluster.add("api", "10.96.0.30", "10.244.1.6")
    await syncer.sync(full=False, services=[api])
    del cluster.services[api]
    await syncer.sync(full=False, services=[api])
    assert not [line for line in journal if "bind" in line or "route" in line], journal
    assert await addresses.bound() == frozenset()


async def test_a_partial_sync_before_any_full_one_adds_the_route_after_the_filter() -> None:
    cluster, journal = Cluster(), list[str]()
    syncer, addresses, routes, _, _ = routed_syncer(cluster, journal)
    web = cluster.add("web", "10.96.0.10", "10.244.1.5")
    await syncer.sync(full=False, services=[web])
    assert journal[-3:] == ["firewall loaded", "route add 10.96.0.0/12", "ipvs 2 operations"]
    assert await addresses.bound() == frozenset()
    assert routes.routes == {RANGE}


async def test_kube_proxys_bound_cluster_ips_go_once_the_route_covers_them() -> None:
    """The takeover: kube-proxy bound every ClusterIP on kube-ipvs0; ipvsd keeps its virtual
    servers (owned: their address is in the routed range), adds the route, then unbinds."""
    cluster, journal = Cluster(), list[str]()
    cluster.add("web", "10.96.0.10", "10.244.1.5")
    leftover = [(parse_address(a), "kube-ipvs0") for a in ("10.96.0.10", "10.96.0.99")]
    syncer, addresses, _, _, ipvs = routed_syncer(
        cluster, journal, host=[(NODE_IP, "eth0"), *leftover]
    )
    addresses.device_exists = True
    stale = VirtualServer(
        ServiceKey(Family.INET, Protocol.TCP, parse_address("10.96.0.99"), 53), "rr"
    )
    await ipvs.apply([AddService(stale)])
    journal.clear()
    await syncer.sync(full=True)
    assert journal.index("route add 10.96.0.0/12") < journal.index(
        "unbind 10.96.0.10 10.96.0.99"
    ), "no moment where a ClusterIP is neither bound nor routed"
    assert await addresses.bound() == frozenset()
    assert table(ipvs) == [
        "-A -t 10.96.0.10:80 -s rr",
        "-a -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 1",
    ], "kube-proxy's stale virtual server in the range is ipvsd's to delete"


async def test_a_stale_virtual_server_in_the_range_goes_a_foreign_one_outside_it_stays() -> None:
    cluster, journal = Cluster(), list[str]()
    syncer, _, _, _, ipvs = routed_syncer(cluster, journal)
    foreign = VirtualServer(
        ServiceKey(Family.INET, Protocol.TCP, parse_address("192.0.2.7"), 80), "rr"
    )
    owned = VirtualServer(
        ServiceKey(Family.INET, Protocol.TCP, parse_address("10.97.0.1"), 80), "rr"
    )
    await ipvs.apply([AddService(foreign), AddService(owned)])
    await syncer.sync(full=True)
    assert table(ipvs) == ["-A -t 192.0.2.7:80 -s rr"]


async def test_a_refused_route_binds_the_range_one_by_one_until_it_is_taken() -> None:
    cluster, journal = Cluster(), list[str]()
    cluster.add("web", "10.96.0.10", "10.244.1.5")
    routes = JournalingRoutes(journal, refuse=True)
    syncer, addresses, _, _, _ = routed_syncer(cluster, journal, routes=routes)
    report = await syncer.sync(full=True)
    assert report.failures == ()
    assert await addresses.bound() == {parse_address("10.96.0.10")}, "still served"
    assert syncer.problems.any_of("route")
    routes.refuse = False
    await syncer.sync(full=True)
    assert routes.routes == {RANGE}
    assert await addresses.bound() == frozenset()
    assert not syncer.problems.any_of("route")


async def test_a_range_no_longer_configured_loses_its_route_after_its_vips_are_bound() -> None:
    cluster, journal = Cluster(), list[str]()
    cluster.add("web", "10.96.0.10", "10.244.1.5")
    routes = JournalingRoutes(journal)
    routes.routes = {RANGE, ip_network("10.100.0.0/16")}
    syncer, addresses, _, _, _ = routed_syncer(cluster, journal, routes=routes)
    await syncer.sync(full=True)
    assert routes.routes == {RANGE}
    assert journal[-1] == "route del 10.100.0.0/16"
    journal.clear()
    narrowed, _, _, _, _ = routed_syncer(
        cluster, journal, routes=routes, ranges=(ip_network("10.100.0.0/16"),)
    )
    narrowed._addresses = addresses  # the same host
    await narrowed.sync(full=True)
    assert journal.index("bind 10.96.0.10") < journal.index("route del 10.96.0.0/12")
    assert routes.routes == {ip_network("10.100.0.0/16")}


async def test_the_rotating_check_binds_no_cluster_ip_the_route_makes_local(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At scale a periodic check rotates (`Syncer.check`): a ClusterIP the range's route
    covers is missing from the device by design, and must not be bound then; an externalIP
    unbound by hand is put back."""
    monkeypatch.setattr("ipvsd.reconcile.syncer.ROTATE_ABOVE", 2)
    cluster, journal = Cluster(), list[str]()
    for number in range(3):
        cluster.add(f"svc-{number}", f"10.96.0.{10 + number}", f"10.244.1.{number}")
    cluster.add("edge", "10.96.0.20", "10.244.2.5", external_ips=(parse_address("203.0.113.5"),))
    syncer, addresses, _, _, _ = routed_syncer(cluster, journal)
    await syncer.sync(full=True)
    await addresses.unbind([parse_address("203.0.113.5")])
    journal.clear()

    assert not syncer.periodic_is_full()
    assert await syncer.check_host()
    while True:
        await syncer.check(syncer.rotation_step(100))
        if syncer.rotation_done:
            break
    assert [line for line in journal if line.startswith("bind")] == ["bind 203.0.113.5"]
    assert await addresses.bound() == {parse_address("203.0.113.5")}
