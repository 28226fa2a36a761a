"""Stale UDP conntrack entries deleted by the syncer, on the fake kernel and fake conntrack.

The same cleanup with real packets on the real kernel: `tests/kernel/test_conntrack.py`.
"""

from __future__ import annotations

import logging
from ipaddress import ip_network
from typing import Any

import pytest

from ipvsd.dataplane.addresses import FakeAddresses
from ipvsd.dataplane.conntrack_fake import FakeConntrack
from ipvsd.dataplane.ipvs_fake import FakeIpvs
from ipvsd.dataplane.service_routes import FakeServiceRoutes
from ipvsd.model.endpoint import Endpoint, EndpointPort, EndpointSlice
from ipvsd.model.ipvs import DeleteService, Family, Protocol, parse_address
from ipvsd.model.service import Service, ServicePort, ServiceRef, ServiceType
from ipvsd.model.tracked_flow import FlowEnd, FlowTuple, TrackedFlow
from ipvsd.reconcile.syncer import Syncer, SyncSettings
from tests.component.test_syncer import Cluster, RecordingFirewall, syncer_with

DNS = ServiceRef("default", "dns")
VIP = FlowEnd(parse_address("10.96.0.10"), 53)
POD_A = FlowEnd(parse_address("10.244.1.5"), 5353)
POD_B = FlowEnd(parse_address("10.244.1.6"), 5353)


def dns_with(cluster: Cluster, *pods: FlowEnd) -> None:
    cluster.services[DNS] = Service(
        DNS, "dns", ServiceType.CLUSTER_IP, (VIP.address,), (ServicePort("dns", Protocol.UDP, 53),)
    )
    endpoints = tuple(Endpoint(p.address, node_name="node-a") for p in pods)
    ports = (EndpointPort("dns", Protocol.UDP, 5353),)
    cluster.slices[DNS] = [EndpointSlice("default", "dns-1", DNS, Family.INET, ports, endpoints)]


def flow_from(client_port: int, answered_by: FlowEnd) -> TrackedFlow:
    client = FlowEnd(parse_address("10.244.9.9"), client_port)
    return TrackedFlow(Family.INET, 17, FlowTuple(client, VIP), FlowTuple(answered_by, client))


@pytest.fixture
def cluster() -> Cluster:
    return Cluster()


@pytest.fixture
def conntrack() -> FakeConntrack:
    return FakeConntrack()


def dns_syncer(
    cluster: Cluster,
    conntrack: FakeConntrack,
    ipvs: FakeIpvs | None = None,
    addresses: FakeAddresses | None = None,
    **extra: Any,
) -> Syncer:
    """A syncer for node-a over fakes (these, or new ones) that cleans `conntrack`."""
    return syncer_with(
        RecordingFirewall(),
        ipvs or FakeIpvs(),
        addresses or FakeAddresses(host=[(parse_address("192.168.1.10"), "eth0")]),
        cluster,
        conntrack=conntrack,
        **extra,
    )


@pytest.fixture
def syncer(cluster: Cluster, conntrack: FakeConntrack) -> Syncer:
    return dns_syncer(cluster, conntrack)


async def test_a_removed_pods_entries_are_deleted_and_the_live_pods_kept(
    syncer: Syncer, cluster: Cluster, conntrack: FakeConntrack
) -> None:
    dns_with(cluster, POD_A, POD_B)
    await syncer.sync(full=True)
    to_a, to_b = conntrack.track(flow_from(40001, POD_A)), conntrack.track(flow_from(40002, POD_B))
    dns_with(cluster, POD_B)
    report = await syncer.sync(full=False, services=[DNS])
    assert conntrack.entries == [to_b]
    assert (report.conntrack.deleted, report.conntrack.failed) == (1, False)
    assert to_a not in conntrack.entries


async def test_the_first_sync_deletes_entries_made_while_nothing_took_the_flow(
    syncer: Syncer, cluster: Cluster, conntrack: FakeConntrack
) -> None:
    """A restart (or a flushed table) leaves entries the host answered, reply from the VIP."""
    blackhole = conntrack.track(flow_from(40001, VIP))
    dns_with(cluster, POD_A)
    report = await syncer.sync(full=True)
    assert blackhole not in conntrack.entries
    assert report.conntrack.deleted == 1


async def test_a_service_getting_its_first_endpoint_is_cleaned(
    syncer: Syncer, cluster: Cluster, conntrack: FakeConntrack
) -> None:
    dns_with(cluster)
    await syncer.sync(full=True)
    blackhole = conntrack.track(flow_from(40001, VIP))
    await syncer.sync(full=True)
    assert blackhole in conntrack.entries  # no endpoint: nowhere better to send it
    dns_with(cluster, POD_A)
    await syncer.sync(full=False, services=[DNS])
    assert blackhole not in conntrack.entries


async def test_syncs_that_change_no_udp_endpoint_read_nothing(
    syncer: Syncer, cluster: Cluster, conntrack: FakeConntrack
) -> None:
    dns_with(cluster, POD_A)
    await syncer.sync(full=True)
    dumps = conntrack.dumps
    await syncer.sync(full=True)  # the periodic check
    await syncer.sync(full=False, services=[DNS])  # e.g. an annotation changed
    assert conntrack.dumps == dumps


async def test_a_failed_cleanup_is_logged_once_reported_and_retried(
    syncer: Syncer, cluster: Cluster, conntrack: FakeConntrack, caplog: pytest.LogCaptureFixture
) -> None:
    dns_with(cluster, POD_A)
    await syncer.sync(full=True)
    stale = conntrack.track(flow_from(40001, POD_A))
    dns_with(cluster, POD_B)
    conntrack.refuse = 95  # EOPNOTSUPP: no ctnetlink
    with caplog.at_level(logging.ERROR, logger="ipvsd.reconcile.udp_conntrack"):
        first = await syncer.sync(full=False, services=[DNS])
        second = await syncer.sync(full=True)
    assert (first.conntrack.failed, second.conntrack.failed) == (True, True)
    assert first.operations > 0  # IPVS was changed all the same
    assert first.failures == ()
    assert len(caplog.records) == 1
    conntrack.refuse = None
    third = await syncer.sync(full=True)  # nothing changed since, but the failed work is retried
    assert (third.conntrack.deleted, third.conntrack.failed) == (1, False)
    assert stale not in conntrack.entries


async def test_a_virtual_server_deleted_by_hand_is_put_back_and_its_blackhole_deleted(
    cluster: Cluster, conntrack: FakeConntrack
) -> None:
    """`ipvsadm -C` on a node: until the next full sync the host answers the VIP (or nobody
    does) and a client that keeps sending from one port keeps that entry alive; the full sync
    that adds the virtual server again must delete it, though no endpoint changed."""
    ipvs = FakeIpvs()
    syncer = dns_syncer(cluster, conntrack, ipvs=ipvs)
    dns_with(cluster, POD_A)
    await syncer.sync(full=True)
    await ipvs.apply([DeleteService(server.key) for server in await ipvs.dump()])
    blackhole = conntrack.track(flow_from(40001, VIP))
    live = conntrack.track(flow_from(40002, POD_A))

    await syncer.sync(full=True)  # the periodic check

    assert [server.key.address for server in await ipvs.dump()] == [VIP.address]
    assert blackhole not in conntrack.entries
    assert conntrack.entries == [live]


async def test_a_vip_removed_by_hand_is_bound_again_and_its_blackhole_deleted(
    cluster: Cluster, conntrack: FakeConntrack
) -> None:
    addresses = FakeAddresses(host=[(parse_address("192.168.1.10"), "eth0")])
    syncer = dns_syncer(cluster, conntrack, addresses=addresses)
    dns_with(cluster, POD_A)
    await syncer.sync(full=True)
    await addresses.unbind([VIP.address])  # ip addr del 10.96.0.10/32 dev kube-ipvs0
    blackhole = conntrack.track(flow_from(40001, VIP))

    await syncer.sync(full=True)

    assert VIP.address in await addresses.bound()
    assert blackhole not in conntrack.entries


async def test_a_service_route_removed_by_hand_is_put_back_and_its_blackholes_deleted(
    cluster: Cluster, conntrack: FakeConntrack
) -> None:
    """The routed Service CIDR's version of the above: `ip route del local 10.96.0.0/12` by
    hand makes every ClusterIP of the range unserved at once; the full sync that puts the
    route back deletes the blackhole entries made meanwhile."""
    routes = FakeServiceRoutes()
    routed = (ip_network("10.96.0.0/12"),)
    settings = SyncSettings(node_name="node-a", families=(Family.INET,), service_routes=routed)
    syncer = dns_syncer(cluster, conntrack, settings=settings, routes=routes)
    dns_with(cluster, POD_A)
    await syncer.sync(full=True)
    await syncer.sync(full=True)  # steady: the route stays, nothing is put back
    await routes.remove(await routes.present())
    blackhole = conntrack.track(flow_from(40001, VIP))

    await syncer.sync(full=True)

    assert await routes.present() == {ip_network("10.96.0.0/12")}
    assert blackhole not in conntrack.entries
