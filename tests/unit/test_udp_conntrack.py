"""Which UDP conntrack entries are stale (kube-proxy's CleanStaleEntries, for IPVS)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ipvsd.model.endpoint import Endpoint, EndpointPort, EndpointSlice
from ipvsd.model.ipvs import Family, Protocol, parse_address
from ipvsd.model.service import Service, ServicePort, ServiceRef, ServiceType, TrafficPolicy
from ipvsd.model.tracked_flow import FlowEnd, FlowTuple, TrackedFlow
from ipvsd.plan.desired import NodeContext, desired_service
from ipvsd.plan.udp_conntrack import frontends_to_check, stale_flows, udp_frontends

REF = ServiceRef("default", "dns")
NODE = NodeContext(
    name="node-a",
    zone="zone-a",
    node_port_addresses=(parse_address("192.168.1.10"),),
    families=(Family.INET, Family.INET6),
)
CLUSTER_IP = "10.96.0.10"


def end(address: str, port: int) -> FlowEnd:
    return FlowEnd(parse_address(address), port)


def service(**changes: object) -> Service:
    base = Service(
        ref=REF,
        uid="u1",
        type=ServiceType.CLUSTER_IP,
        cluster_ips=(parse_address(CLUSTER_IP),),
        ports=(ServicePort("dns", Protocol.UDP, 53), ServicePort("dns-tcp", Protocol.TCP, 53)),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def pods(*endpoints: Endpoint) -> list[EndpointSlice]:
    ports = (EndpointPort("dns", Protocol.UDP, 5353), EndpointPort("dns-tcp", Protocol.TCP, 5353))
    return [EndpointSlice("default", "dns-1", REF, Family.INET, ports, endpoints)]


def pod(
    address: str,
    node: str = "node-a",
    *,
    ready: bool = True,
    serving: bool = True,
    terminating: bool = False,
) -> Endpoint:
    return Endpoint(parse_address(address), ready, serving, terminating, node_name=node)


def frontends(svc: Service, *endpoints: Endpoint) -> dict[FlowEnd, frozenset[FlowEnd]]:
    return udp_frontends(desired_service(svc, pods(*endpoints), NODE).virtual_servers)


def flow(
    client: str, frontend: FlowEnd, answered_by: FlowEnd, protocol: Protocol = Protocol.UDP
) -> TrackedFlow:
    source = end(client, 40053)
    return TrackedFlow(
        Family.INET, int(protocol), FlowTuple(source, frontend), FlowTuple(answered_by, source)
    )


POD_A, POD_B = end("10.244.1.5", 5353), end("10.244.2.7", 5353)
VIP = end(CLUSTER_IP, 53)


def test_frontends_are_the_udp_virtual_servers_with_their_serving_endpoints() -> None:
    svc = service(
        type=ServiceType.NODE_PORT,
        ports=(ServicePort("dns", Protocol.UDP, 53, node_port=30053),),
        external_ips=(parse_address("203.0.113.7"),),
    )
    got = frontends(svc, pod("10.244.1.5"), pod("10.244.2.7", "node-b"))
    both = frozenset({POD_A, POD_B})
    assert got == {VIP: both, end("203.0.113.7", 53): both, end("192.168.1.10", 30053): both}


def test_tcp_ports_have_no_frontends() -> None:
    assert end(CLUSTER_IP, 53) in frontends(service(), pod("10.244.1.5"))
    tcp_only = service(ports=(ServicePort("dns-tcp", Protocol.TCP, 53),))
    assert frontends(tcp_only, pod("10.244.1.5")) == {}


@pytest.mark.parametrize(
    ("endpoints", "serving"),
    [
        pytest.param((), None, id="no-endpoints-no-frontend"),
        pytest.param(
            (pod("10.244.1.5", ready=False, serving=False),), None, id="unready-is-not-serving"
        ),
        pytest.param(
            (pod("10.244.1.5", ready=False, serving=True, terminating=True), pod("10.244.2.7")),
            {POD_A, POD_B},
            id="serving-terminating-still-serves",
        ),
    ],
)
def test_only_serving_endpoints_count(
    endpoints: tuple[Endpoint, ...], serving: set[FlowEnd] | None
) -> None:
    got = frontends(service(), *endpoints)
    assert got.get(VIP) == (frozenset(serving) if serving is not None else None)


def test_traffic_policy_local_still_counts_every_serving_endpoint() -> None:
    """As kube-proxy: a flow to a remote serving pod stays, like a TCP connection would."""
    svc = service(internal_traffic_policy=TrafficPolicy.LOCAL)
    desired = desired_service(svc, pods(pod("10.244.1.5"), pod("10.244.2.7", "node-b")), NODE)
    (udp,) = [d for d in desired.virtual_servers if d.server.key.protocol == Protocol.UDP]
    assert [real.address for real in udp.real_servers] == [parse_address("10.244.1.5")]
    assert udp_frontends(desired.virtual_servers) == {VIP: frozenset({POD_A, POD_B})}


@pytest.mark.parametrize(
    ("entry", "stale"),
    [
        pytest.param(flow("10.244.9.9", VIP, POD_B), False, id="answered-by-a-serving-pod"),
        pytest.param(flow("10.244.9.9", VIP, POD_A), True, id="answered-by-a-removed-pod"),
        pytest.param(flow("10.244.9.9", VIP, VIP), True, id="made-while-no-real-server-took-it"),
        pytest.param(flow("10.244.9.9", VIP, end("10.244.2.7", 9999)), True, id="old-target-port"),
        pytest.param(flow("10.244.9.9", end(CLUSTER_IP, 54), POD_A), False, id="another-port"),
        pytest.param(flow("10.244.9.9", end("10.96.0.11", 53), POD_A), False, id="another-address"),
        pytest.param(flow("10.244.9.9", VIP, POD_A, Protocol.TCP), False, id="tcp-is-left-alone"),
    ],
)
def test_stale_entries_go_to_a_frontend_and_come_back_from_no_serving_endpoint(
    entry: TrackedFlow, stale: bool
) -> None:
    assert stale_flows({VIP: frozenset({POD_B})}, [entry]) == ([entry] if stale else [])


def test_only_new_or_changed_frontends_are_checked() -> None:
    before = {VIP: frozenset({POD_A}), end("10.96.0.11", 53): frozenset({POD_B})}
    after = {
        VIP: frozenset({POD_B}),  # pod cycled
        end("10.96.0.11", 53): frozenset({POD_B}),  # unchanged
        end("10.96.0.12", 53): frozenset({POD_A}),  # 0 -> 1 endpoint
    }
    assert frontends_to_check(before, after) == {
        VIP: frozenset({POD_B}),
        end("10.96.0.12", 53): frozenset({POD_A}),
    }
    assert frontends_to_check(after, after) == {}
