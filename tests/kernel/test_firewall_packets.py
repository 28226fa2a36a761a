"""nftables + IPVS with real packets: masquerade, client address preservation, filtering.

The VM's root namespace plays the node (VIPs on the dummy interface, IPVS, ipvsd's nftables
table); namespaces play pods (`pod-a`, 10.200.1.2, the cluster CIDR is 10.200.1.0/24) and an
outside client (`client`, 10.200.2.2). The tables are built by the same pure planning code the
daemon uses and applied through the real dataplane adapters.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from ipaddress import ip_network

import pytest

from ipvsd.dataplane.addresses import RtnlAddresses
from ipvsd.dataplane.ipvs_netlink import NetlinkIpvs
from ipvsd.dataplane.nft import NftFirewall
from ipvsd.model.endpoint import Endpoint, EndpointPort, EndpointSlice
from ipvsd.model.firewall import FirewallConfig
from ipvsd.model.ipvs import Family, Protocol, parse_address
from ipvsd.model.service import Service, ServiceType, TrafficPolicy
from ipvsd.plan.desired import NodeContext, desired_service
from ipvsd.plan.diff import diff_tables
from ipvsd.plan.firewall import firewall_for
from ipvsd.testing.netns import Lab, entered, http_get
from tests.kernel.firewall_support import CLUSTER_IP, EXTERNAL_IP, REF, firewall_lab, web

pytestmark = pytest.mark.kernel

NODE = NodeContext("node-a")
CONFIG = FirewallConfig(pod_cidrs=(ip_network("10.200.1.0/24"),))


@pytest.fixture(scope="module")
def net() -> Iterator[Lab]:
    yield from firewall_lab()


@pytest.fixture
async def program(net: Lab) -> AsyncIterator[object]:
    ipvs = await NetlinkIpvs.open()
    addresses = RtnlAddresses()
    firewall = NftFirewall()

    async def apply(service: Service, config: FirewallConfig = CONFIG) -> None:
        slices = [
            EndpointSlice(
                "default", "web-1", REF, Family.INET, (EndpointPort("http", Protocol.TCP, 8080),),
                (Endpoint(parse_address("10.200.1.2"), node_name="node-a"),),
            )
        ]  # fmt: skip
        desired = desired_service(service, slices, NODE)
        table = {d.server.key: (d.server, d.real_servers) for d in desired.virtual_servers}
        ops = diff_tables(table, await ipvs.dump(), owns=lambda key: True)
        (await ipvs.apply(ops)).raise_first()
        await addresses.ensure_device()
        await addresses.bind(desired.bound_addresses)
        await firewall.apply(firewall_for([(service, desired)], config))

    yield apply
    subprocess.run(["ipvsadm", "-C"], check=True)
    await firewall.cleanup()
    await addresses.close()
    await ipvs.close()


def seen_by_pod(namespace: str, address: str) -> str:
    """The client address the pod saw (its answer is `<name> <client ip>`)."""
    return http_get(namespace, address, 80).split()[1]


async def test_external_traffic_is_masqueraded_with_policy_cluster(program) -> None:  # type: ignore[no-untyped-def]
    await program(web())
    assert seen_by_pod("client", EXTERNAL_IP) == "10.200.1.1"  # the node's address on the pod link


async def test_external_traffic_keeps_the_client_address_with_policy_local(program) -> None:  # type: ignore[no-untyped-def]
    await program(web(external_traffic_policy=TrafficPolicy.LOCAL))
    assert seen_by_pod("client", EXTERNAL_IP) == "10.200.2.2"


async def test_cluster_ip_from_outside_the_cluster_cidr_is_masqueraded(program) -> None:  # type: ignore[no-untyped-def]
    await program(web())
    assert seen_by_pod("client", CLUSTER_IP) == "10.200.1.1"


async def test_a_pod_reaches_itself_through_its_service_hairpin(program) -> None:  # type: ignore[no-untyped-def]
    await program(web())
    assert seen_by_pod("pod-a", CLUSTER_IP) == "10.200.1.1"  # masqueraded, so the reply returns


async def test_a_non_service_port_on_a_vip_is_rejected(program) -> None:  # type: ignore[no-untyped-def]
    listener = socket.create_server(("0.0.0.0", 9999))  # a host service on every address

    def accept() -> None:
        with contextlib.suppress(OSError):  # woken by the shutdown below (EINVAL)
            listener.accept()

    threading.Thread(target=accept, daemon=True).start()
    try:
        await program(web())
        with entered("client"), pytest.raises(ConnectionRefusedError):
            socket.create_connection((CLUSTER_IP, 9999), timeout=3).close()
    finally:
        # shutdown wakes the accept() thread, whose blocked call would otherwise keep port
        # 9999 listening in this namespace after close(), for the tests that come later
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()


async def test_load_balancer_source_ranges_admit_listed_clients_only(program) -> None:  # type: ignore[no-untyped-def]
    lb = web(
        type=ServiceType.LOAD_BALANCER,
        external_ips=(),
        load_balancer_ips=(parse_address(EXTERNAL_IP),),
        load_balancer_source_ranges=(ip_network("192.0.2.0/24"),),
    )
    await program(lb)
    with pytest.raises(TimeoutError):  # dropped, not refused
        http_get("client", EXTERNAL_IP, 80, timeout=2)
    await program(replace(lb, load_balancer_source_ranges=(ip_network("10.200.2.0/24"),)))
    assert seen_by_pod("client", EXTERNAL_IP) == "10.200.1.1"


@pytest.mark.parametrize(
    ("detection", "seen"),
    [
        (FirewallConfig(pod_interface="vclient"), "10.200.2.2"),  # a pod: keeps its address
        (FirewallConfig(pod_interface_prefix="vpod"), "10.200.1.1"),  # not a pod: masqueraded
        (FirewallConfig(pod_cidrs=(ip_network("10.200.2.0/24"),)), "10.200.2.2"),
    ],
    ids=["BridgeInterface", "InterfaceNamePrefix", "pod-CIDRs"],
)
async def test_detect_local_modes_tell_pods_from_other_cluster_ip_clients(  # type: ignore[no-untyped-def]
    program, detection: FirewallConfig, seen: str
) -> None:
    """`client` comes in on interface vclient from 10.200.2.2: a pod by that interface (or
    its address), not one under the prefix vpod (pod-a's link is vpod-a)."""
    await program(web(), detection)
    assert seen_by_pod("client", CLUSTER_IP) == seen
