"""Routed Service CIDRs with real packets: one local route serves every ClusterIP of the range.

The syncer runs over the real adapters (IPVS, rtnetlink addresses and routes, nftables) with
`--service-cluster-ip-range` 10.96.0.0/12 routed. The VM's root namespace plays the node;
`pod-a` (10.200.1.2, in the cluster CIDR) serves HTTP on 8080 and `client` (10.200.2.2) is
an outside host (`tests/kernel/firewall_support.py`). What is shown: ClusterIPs of the range are
served to a client, to a pod and to the host without any address on kube-ipvs0; a host port is
refused on an address of the range with a Service and without one (and is reachable there
without ipvsd's table, so the refusal is the table's doing); the route exists once; and
10,000 ClusterIPs are programmed without one per-address rtnetlink request.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from ipaddress import ip_network

import pytest

from ipvsd.dataplane.addresses import RtnlAddresses
from ipvsd.dataplane.nft import NftFirewall
from ipvsd.dataplane.service_routes import PROTOCOL, RtnlServiceRoutes
from ipvsd.model.endpoint import Endpoint, EndpointPort, EndpointSlice
from ipvsd.model.firewall import FirewallConfig
from ipvsd.model.ipvs import Family, IPAddress, Protocol, parse_address
from ipvsd.model.service import Service, ServicePort, ServiceRef, ServiceType
from ipvsd.reconcile.syncer import Syncer, SyncSettings
from ipvsd.testing.netns import Lab, entered, http_get
from tests.kernel.firewall_support import DEVICE, POD_ADDRESS, firewall_lab, kernel_syncer

pytestmark = pytest.mark.kernel

RANGE = ip_network("10.96.0.0/12")
CONFIG = FirewallConfig(pod_cidrs=(ip_network("10.200.1.0/24"),), service_cidrs=(RANGE,))
HOST_PORT = 9999  # a host service listening on every address


@pytest.fixture(scope="module")
def net() -> Iterator[Lab]:
    yield from firewall_lab()
    subprocess.run(["ip", "route", "flush", "table", "local", "proto", str(PROTOCOL)], check=False)


class CountingAddresses(RtnlAddresses):
    """The real adapter, counting the addresses each bind and unbind request carries."""

    def __init__(self) -> None:
        super().__init__()
        self.bound_count = 0
        self.unbound_count = 0

    async def bind(self, addresses: Iterable[IPAddress]) -> None:
        wanted = list(addresses)
        self.bound_count += len(wanted)
        await super().bind(wanted)

    async def unbind(self, addresses: Iterable[IPAddress]) -> None:
        unwanted = list(addresses)
        self.unbound_count += len(unwanted)
        await super().unbind(unwanted)


@dataclass
class Node:
    services: dict[ServiceRef, Service] = field(default_factory=dict)
    slices: dict[ServiceRef, list[EndpointSlice]] = field(default_factory=dict)

    def add(self, name: str, cluster_ip: str) -> None:
        ref = ServiceRef("default", name)
        self.services[ref] = Service(
            ref, name, ServiceType.CLUSTER_IP, (parse_address(cluster_ip),),
            (ServicePort("http", Protocol.TCP, 80),),
        )  # fmt: skip
        endpoint = Endpoint(parse_address(POD_ADDRESS), node_name="node-a")
        port = (EndpointPort("http", Protocol.TCP, 8080),)
        self.slices[ref] = [
            EndpointSlice("default", f"{name}-1", ref, Family.INET, port, (endpoint,))
        ]

    def slices_of(self, ref: ServiceRef) -> list[EndpointSlice]:
        return self.slices.get(ref, [])


@dataclass
class Programmed:
    node: Node
    syncer: Syncer
    addresses: CountingAddresses
    firewall: NftFirewall


@pytest.fixture
async def routed(net: Lab) -> AsyncIterator[Programmed]:
    addresses = CountingAddresses()
    routes = RtnlServiceRoutes()
    node = Node()
    settings = SyncSettings(
        node_name="node-a", families=(Family.INET,), service_routes=(RANGE,), firewall=CONFIG
    )
    async with kernel_syncer(settings, node.services, node.slices_of, addresses, routes=routes) as (
        syncer,
        firewall,
    ):
        yield Programmed(node, syncer, addresses, firewall)
        await routes.remove(await routes.present())
        subprocess.run(["ip", "link", "del", DEVICE], check=False)
        await routes.close()


def ipvsd_routes() -> list[str]:
    shown = subprocess.run(
        ["ip", "-4", "route", "show", "table", "local", "proto", str(PROTOCOL)],
        capture_output=True,
        text=True,
        check=True,
    )
    return shown.stdout.splitlines()


def addresses_on_device() -> list[str]:
    shown = subprocess.run(
        ["ip", "-o", "addr", "show", "dev", DEVICE], capture_output=True, text=True, check=False
    )
    return shown.stdout.splitlines()


def host_listener() -> socket.socket:
    listener = socket.create_server(("0.0.0.0", HOST_PORT))

    def accept_all() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=accept_all, daemon=True).start()
    return listener


def close_listener(listener: socket.socket) -> None:
    """Stop listening for good: shutdown wakes the thread blocked in accept(), whose call
    otherwise keeps the socket listening after close() (and the port taken for later tests)."""
    listener.shutdown(socket.SHUT_RDWR)
    listener.close()


def connects(namespace: str | None, address: str, port: int) -> bool:
    """Whether a TCP connection to address:port is accepted; False when refused (the
    firewall's reject); a timeout is an error (nothing here should drop silently)."""
    if namespace is None:
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    else:
        with entered(namespace):
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with probe:
        probe.settimeout(5.0)
        code = probe.connect_ex((address, port))
    assert code in (0, 111), f"connect to {address}:{port} gave errno {code}"
    return code == 0


def host_get(address: str, port: int) -> str:
    with socket.create_connection((address, port), timeout=3) as sock:
        sock.sendall(f"GET / HTTP/1.0\r\nHost: {address}\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).partition(b"\r\n\r\n")[2].decode()


async def test_cluster_ips_of_the_range_are_served_with_no_address_bound(
    routed: Programmed,
) -> None:
    routed.node.add("web", "10.96.0.10")
    routed.node.add("api", "10.100.7.20")
    report = await routed.syncer.sync(full=True)
    assert report.failures == ()
    assert addresses_on_device() == [], "no ClusterIP is bound on kube-ipvs0"
    assert routed.addresses.bound_count == 0
    assert len(ipvsd_routes()) == 1
    assert ipvsd_routes()[0].startswith("local 10.96.0.0/12 dev lo")
    for cluster_ip in ("10.96.0.10", "10.100.7.20"):
        assert http_get("client", cluster_ip, 80).split()[0] == "pod-a"
        assert http_get("pod-a", cluster_ip, 80).split()[0] == "pod-a"  # hairpin
        assert host_get(cluster_ip, 80).split()[0] == "pod-a"  # from the node itself
    await routed.syncer.sync(full=True)
    assert len(ipvsd_routes()) == 1, "a second full sync leaves the one route as it is"


async def test_a_host_port_is_refused_on_the_range_with_and_without_a_service(
    routed: Programmed,
) -> None:
    routed.node.add("web", "10.96.0.10")
    await routed.syncer.sync(full=True)
    listener = host_listener()
    try:
        for address in ("10.96.0.10", "10.96.77.77", "10.111.255.254"):  # Service, none, none
            assert not connects("client", address, HOST_PORT), f"{address} from a client"
            assert not connects("pod-a", address, HOST_PORT), f"{address} from a pod"
            assert not connects(None, address, HOST_PORT), f"{address} from the host"
        assert http_get("client", "10.96.0.10", 80).split()[0] == "pod-a"
        # The control: without ipvsd's table the route alone exposes the host port, so the
        # refusals above are the table's.
        await routed.firewall.cleanup()
        assert connects("client", "10.96.77.77", HOST_PORT)
    finally:
        close_listener(listener)


@pytest.mark.timeout(600)  # a hang guard: one full sync of 10,000 took 23 s, 120+ s under load
async def test_ten_thousand_cluster_ips_do_no_per_address_rtnetlink_work(
    routed: Programmed,
) -> None:
    for n in range(10_000):
        routed.node.add(f"s{n}", f"10.96.{n // 250}.{n % 250 + 1}")
    started = time.monotonic()
    report = await routed.syncer.sync(full=True)
    took = time.monotonic() - started
    assert report.failures == ()
    assert routed.addresses.bound_count == 0
    assert routed.addresses.unbound_count == 0
    assert addresses_on_device() == []
    assert len(ipvsd_routes()) == 1
    assert http_get("client", "10.96.39.250", 80).split()[0] == "pod-a"  # the last one
    print(f"10,000 ClusterIPs programmed by one full sync in {took:.1f} s, no address bound")
