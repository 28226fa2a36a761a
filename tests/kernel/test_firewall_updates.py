"""Partial syncs change nftables set elements in place: checked in the kernel and with packets.

The syncer replaces ipvsd's table whole on full syncs and, between them, adds and deletes only
the changed elements (`plan.firewall_ledger`, `nft.render_changes`). Here the real syncer runs
against the real kernel (IPVS, addresses, nftables) for node `node-a`; the lab of
`firewall_support` plays the pod (`pod-a`, in the cluster CIDR) and an outside client.
Each test reads the sets back with `nft -j list`, checks that the table was not replaced (its
handle stays), and sends real traffic through the changed rules.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from ipaddress import ip_network
from typing import Any

import pytest

from ipvsd.model.endpoint import Endpoint, EndpointPort, EndpointSlice
from ipvsd.model.firewall import FirewallConfig
from ipvsd.model.ipvs import Family, Protocol, parse_address
from ipvsd.model.service import Service, ServiceRef, ServiceType, TrafficPolicy
from ipvsd.reconcile.syncer import Syncer, SyncSettings
from ipvsd.testing.netns import Lab, http_get
from tests.kernel.firewall_support import (
    CLUSTER_IP,
    EXTERNAL_IP,
    REF,
    firewall_lab,
    kernel_syncer,
    web,
)

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def net() -> Iterator[Lab]:
    yield from firewall_lab()


class Cluster:
    def __init__(self) -> None:
        self.services: dict[ServiceRef, Service] = {}

    def slices(self, ref: ServiceRef) -> list[EndpointSlice]:
        endpoints = (Endpoint(parse_address("10.200.1.2"), node_name="node-a"),)
        port = (EndpointPort("http", Protocol.TCP, 8080),)
        return [EndpointSlice("default", "web-1", ref, Family.INET, port, endpoints)]


@pytest.fixture
async def synced(net: Lab) -> AsyncIterator[tuple[Syncer, Cluster]]:
    cluster = Cluster()
    settings = SyncSettings(
        node_name="node-a",
        families=(Family.INET,),
        firewall=FirewallConfig(pod_cidrs=(ip_network("10.200.1.0/24"),)),
    )
    async with kernel_syncer(settings, cluster.services, cluster.slices) as (syncer, _):
        yield syncer, cluster


def nft_json(*what: str) -> list[dict[str, Any]]:
    out = subprocess.run(["nft", "-j", "list", *what], check=True, capture_output=True, text=True)
    items: list[dict[str, Any]] = json.loads(out.stdout)["nftables"]
    return items


def table_handle() -> int:
    return int(
        next(i["table"]["handle"] for i in nft_json("table", "inet", "ipvsd") if "table" in i)
    )


def elements(name: str) -> list[str]:
    """The set's elements as nft prints them in JSON, one string each (concatenations too)."""
    found = next(i["set"] for i in nft_json("set", "inet", "ipvsd", name) if "set" in i)
    return [json.dumps(element) for element in found.get("elem", [])]


def seen_by_pod(address: str) -> str:
    return http_get("client", address, 80).split()[1]


async def test_a_policy_change_adds_the_masquerade_element_in_place(
    synced: tuple[Syncer, Cluster],
) -> None:
    syncer, cluster = synced
    cluster.services[REF] = web(external_traffic_policy=TrafficPolicy.LOCAL)
    await syncer.sync(full=True)
    handle = table_handle()
    assert elements("masquerade_ports4") == []
    assert seen_by_pod(EXTERNAL_IP) == "10.200.2.2"  # the client's own address

    cluster.services[REF] = web()  # externalTrafficPolicy Cluster: masquerade
    await syncer.sync(full=False, services=[REF])
    assert elements("masquerade_ports4") == [json.dumps({"concat": [EXTERNAL_IP, "tcp", 80]})]
    assert table_handle() == handle  # changed in place, not replaced
    assert seen_by_pod(EXTERNAL_IP) == "10.200.1.1"  # the node's address on the pod link

    cluster.services[REF] = web(external_traffic_policy=TrafficPolicy.LOCAL)
    await syncer.sync(full=False, services=[REF])
    assert elements("masquerade_ports4") == []
    assert seen_by_pod(EXTERNAL_IP) == "10.200.2.2"


async def test_source_ranges_are_swapped_in_place_in_the_interval_set(
    synced: tuple[Syncer, Cluster],
) -> None:
    syncer, cluster = synced
    lb = web(
        type=ServiceType.LOAD_BALANCER,
        external_ips=(),
        load_balancer_ips=(parse_address(EXTERNAL_IP),),
        load_balancer_source_ranges=(ip_network("192.0.2.0/24"),),
    )
    cluster.services[REF] = lb
    await syncer.sync(full=True)
    handle = table_handle()
    with pytest.raises(TimeoutError):  # dropped: the client is not in the range
        http_get("client", EXTERNAL_IP, 80, timeout=2)

    cluster.services[REF] = replace(lb, load_balancer_source_ranges=(ip_network("10.200.2.0/24"),))
    await syncer.sync(full=False, services=[REF])
    allowed = elements("lb_allowed4")
    assert len(allowed) == 1
    assert "10.200.2.0" in allowed[0]
    assert "192.0.2.0" not in allowed[0]
    assert table_handle() == handle
    assert seen_by_pod(EXTERNAL_IP) == "10.200.1.1"


async def test_a_deleted_service_leaves_no_element_and_its_vip_refuses(
    synced: tuple[Syncer, Cluster],
) -> None:
    syncer, cluster = synced
    cluster.services[REF] = web()
    await syncer.sync(full=True)
    handle = table_handle()
    assert seen_by_pod(CLUSTER_IP) == "10.200.1.1"
    del cluster.services[REF]
    await syncer.sync(full=False, services=[REF])
    for name in ("vips4", "vip_ports4", "cluster_ip_ports4", "masquerade_ports4", "hairpin4"):
        assert elements(name) == [], name
    assert table_handle() == handle
    with pytest.raises(OSError, match=r"timed out|refused|unreachable|No route"):  # no VIP
        http_get("client", CLUSTER_IP, 80, timeout=2)


async def test_a_table_deleted_behind_ipvsds_back_is_rebuilt_by_the_next_change(
    synced: tuple[Syncer, Cluster],
) -> None:
    syncer, cluster = synced
    cluster.services[REF] = web(external_traffic_policy=TrafficPolicy.LOCAL)
    await syncer.sync(full=True)
    subprocess.run(["nft", "delete", "table", "inet", "ipvsd"], check=True)
    cluster.services[REF] = web()
    await syncer.sync(full=False, services=[REF])  # the update is refused: replaced whole
    assert elements("masquerade_ports4") == [json.dumps({"concat": [EXTERNAL_IP, "tcp", 80]})]
    assert seen_by_pod(EXTERNAL_IP) == "10.200.1.1"
