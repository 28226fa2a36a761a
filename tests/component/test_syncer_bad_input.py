"""A Service that asks twice for one virtual server (what only a store that validates nothing
delivers) is programmed once, and every other Service with it, on the fakes."""

from __future__ import annotations

from ipvsd.dataplane.addresses import FakeAddresses
from ipvsd.dataplane.ipvs_fake import FakeIpvs
from ipvsd.model.ipvs import Protocol, parse_address
from ipvsd.model.service import ServicePort, ServiceRef
from tests.component.test_syncer import Cluster, RecordingFirewall, syncer_with, table


async def test_a_repeated_cluster_ip_or_port_is_programmed_once_beside_the_others() -> None:
    kernel, cluster = FakeIpvs(), Cluster()
    addresses = FakeAddresses(host=[(parse_address("192.168.1.10"), "eth0")])
    cluster.add("good", "10.96.0.10", "10.244.1.5")
    twice = parse_address("10.96.0.20")
    cluster.add("twice", "10.96.0.20", "10.244.1.6", cluster_ips=(twice, twice))
    cluster.add(
        "ports",
        "10.96.0.30",
        "10.244.1.7",
        ports=(ServicePort("http", Protocol.TCP, 80), ServicePort("again", Protocol.TCP, 80)),
    )
    syncer = syncer_with(RecordingFirewall(), kernel, addresses, cluster)

    report = await syncer.sync(full=True)

    assert report.failures == ()
    assert table(kernel) == [
        "-A -t 10.96.0.10:80 -s rr",
        "-a -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 1",
        "-A -t 10.96.0.20:80 -s rr",
        "-a -t 10.96.0.20:80 -r 10.244.1.6:8080 -m -w 1",
        "-A -t 10.96.0.30:80 -s rr",
        "-a -t 10.96.0.30:80 -r 10.244.1.7:8080 -m -w 1",
    ]
    assert report.duplicates == {
        ServiceRef("default", "ports"): (
            "TCP 10.96.0.30:80: asked for again by port 'again' (ClusterIP); "
            "port 'http' (ClusterIP) keeps it",
        ),
        ServiceRef("default", "twice"): (
            "TCP 10.96.0.20:80: asked for again by port 'http' (ClusterIP); "
            "port 'http' (ClusterIP) keeps it",
        ),
    }
