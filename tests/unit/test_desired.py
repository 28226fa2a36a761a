"""The desired table of one Service on one node: every row of reference §2, each policy."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ipvsd.dataplane.ipvsadm_format import ServiceRules, rules_lines
from ipvsd.model.endpoint import Endpoint, EndpointPort, EndpointSlice
from ipvsd.model.ipvs import Family, Protocol, parse_address
from ipvsd.model.service import (
    Service,
    ServicePort,
    ServiceRef,
    ServiceType,
    TrafficPolicy,
)
from ipvsd.plan.desired import DesiredService, NodeContext, VipKind, desired_service

REF = ServiceRef("default", "echo")
NODE = NodeContext(
    name="node-a",
    zone="zone-a",
    node_port_addresses=(parse_address("192.168.1.10"), parse_address("fd00:1::10")),
    families=(Family.INET, Family.INET6),
)
HTTP = ServicePort("http", Protocol.TCP, 80, node_port=30080)


def service(**changes: object) -> Service:
    base = Service(
        ref=REF,
        uid="u1",
        type=ServiceType.CLUSTER_IP,
        cluster_ips=(parse_address("10.96.0.10"),),
        ports=(ServicePort("http", Protocol.TCP, 80),),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def slices(*endpoints: tuple[str, str], family: Family = Family.INET) -> list[EndpointSlice]:
    """One slice: (address, node) pairs, port http -> 5678."""
    eps = tuple(Endpoint(parse_address(a), node_name=n) for a, n in endpoints)
    port = (EndpointPort("http", Protocol.TCP, 5678),)
    return [EndpointSlice("default", "echo-abc", REF, family, port, eps)]


LOCAL_AND_REMOTE = slices(("10.244.1.5", "node-a"), ("10.244.2.7", "node-b"))


def table(desired: DesiredService) -> list[str]:
    """The virtual servers as `ipvsadm -Sn` lines (the same text the kernel would print)."""
    return rules_lines(ServiceRules(d.server, d.real_servers) for d in desired.virtual_servers)


def test_cluster_ip_gets_every_ready_endpoint_with_nat_and_weight_one() -> None:
    got = desired_service(service(), LOCAL_AND_REMOTE, NODE)
    assert table(got) == [
        "-A -t 10.96.0.10:80 -s rr",
        "-a -t 10.96.0.10:80 -r 10.244.1.5:5678 -m -w 1",
        "-a -t 10.96.0.10:80 -r 10.244.2.7:5678 -m -w 1",
    ]
    assert got.bound_addresses == (parse_address("10.96.0.10"),)


def test_service_without_endpoints_still_has_its_virtual_server() -> None:
    assert table(desired_service(service(), [], NODE)) == ["-A -t 10.96.0.10:80 -s rr"]


def test_node_port_listens_on_every_node_address_of_the_family_and_is_not_bound() -> None:
    got = desired_service(
        service(type=ServiceType.NODE_PORT, ports=(HTTP,)), LOCAL_AND_REMOTE, NODE
    )
    assert [(d.kind, str(d.server.key)) for d in got.virtual_servers] == [
        (VipKind.CLUSTER_IP, "TCP 10.96.0.10:80"),
        (VipKind.NODE_PORT, "TCP 192.168.1.10:30080"),
    ]
    assert got.bound_addresses == (parse_address("10.96.0.10"),)


def test_external_and_load_balancer_ips_are_virtual_servers_and_bound() -> None:
    svc = service(
        type=ServiceType.LOAD_BALANCER,
        external_ips=(parse_address("203.0.113.5"),),
        load_balancer_ips=(parse_address("198.51.100.7"),),
    )
    got = desired_service(svc, LOCAL_AND_REMOTE, NODE)
    kinds = {str(d.server.key): d.kind for d in got.virtual_servers}
    assert kinds == {
        "TCP 10.96.0.10:80": VipKind.CLUSTER_IP,
        "TCP 203.0.113.5:80": VipKind.EXTERNAL_IP,
        "TCP 198.51.100.7:80": VipKind.LOAD_BALANCER,
    }
    assert {str(a) for a in got.bound_addresses} == {"10.96.0.10", "203.0.113.5", "198.51.100.7"}


def test_etp_local_external_servers_get_only_local_endpoints_cluster_ip_keeps_all() -> None:
    svc = service(
        type=ServiceType.NODE_PORT,
        ports=(HTTP,),
        external_traffic_policy=TrafficPolicy.LOCAL,
    )
    got = {
        str(d.server.key): d for d in desired_service(svc, LOCAL_AND_REMOTE, NODE).virtual_servers
    }
    assert [str(r.address) for r in got["TCP 192.168.1.10:30080"].real_servers] == ["10.244.1.5"]
    assert len(got["TCP 10.96.0.10:80"].real_servers) == 2


def test_etp_local_without_a_local_endpoint_has_no_real_servers_unlike_kube_proxy_ipvs() -> None:
    svc = service(
        type=ServiceType.NODE_PORT, ports=(HTTP,), external_traffic_policy=TrafficPolicy.LOCAL
    )
    remote_only = slices(("10.244.2.7", "node-b"))
    got = {str(d.server.key): d for d in desired_service(svc, remote_only, NODE).virtual_servers}
    assert got["TCP 192.168.1.10:30080"].real_servers == ()
    assert len(got["TCP 10.96.0.10:80"].real_servers) == 1


def test_itp_local_cluster_ip_gets_only_local_endpoints_and_none_without_them() -> None:
    svc = service(internal_traffic_policy=TrafficPolicy.LOCAL)
    (with_local,) = desired_service(svc, LOCAL_AND_REMOTE, NODE).virtual_servers
    assert [str(r.address) for r in with_local.real_servers] == ["10.244.1.5"]
    (without,) = desired_service(svc, slices(("10.244.2.7", "node-b")), NODE).virtual_servers
    assert without.real_servers == ()


def test_session_affinity_is_persistence_with_the_service_timeout() -> None:
    svc = service(session_affinity=True, affinity_timeout=600)
    assert table(desired_service(svc, [], NODE)) == ["-A -t 10.96.0.10:80 -s rr -p 600"]


def test_dual_stack_service_gets_one_server_per_family_with_that_family_endpoints() -> None:
    svc = service(cluster_ips=(parse_address("10.96.0.10"), parse_address("fd00:96::10")))
    both = LOCAL_AND_REMOTE + slices(("fd00:244::5", "node-a"), family=Family.INET6)
    assert table(desired_service(svc, both, NODE)) == [
        "-A -t 10.96.0.10:80 -s rr",
        "-a -t 10.96.0.10:80 -r 10.244.1.5:5678 -m -w 1",
        "-a -t 10.96.0.10:80 -r 10.244.2.7:5678 -m -w 1",
        "-A -t [fd00:96::10]:80 -s rr",
        "-a -t [fd00:96::10]:80 -r [fd00:244::5]:5678 -m -w 1",
    ]


def test_a_family_the_node_does_not_serve_is_left_out() -> None:
    svc = service(cluster_ips=(parse_address("10.96.0.10"), parse_address("fd00:96::10")))
    v4_only = replace(NODE, families=(Family.INET,))
    assert [str(d.server.key) for d in desired_service(svc, [], v4_only).virtual_servers] == [
        "TCP 10.96.0.10:80"
    ]


def test_udp_and_sctp_ports_become_servers_of_their_protocol() -> None:
    ports = (ServicePort("dns", Protocol.UDP, 53), ServicePort("sig", Protocol.SCTP, 9000))
    assert table(desired_service(service(ports=ports), [], NODE)) == [
        "-A -u 10.96.0.10:53 -s rr",
        "-A --sctp-service 10.96.0.10:9000 -s rr",
    ]


def test_scheduler_annotation_applies_to_every_server_of_the_service() -> None:
    svc = service(
        annotations=(("ipvsd.io/scheduler", "mh"),), ports=(HTTP,), type=ServiceType.NODE_PORT
    )
    got = desired_service(svc, [], NODE)
    assert {d.server.scheduler for d in got.virtual_servers} == {"mh"}
    assert table(got)[0] == "-A -t 10.96.0.10:80 -s mh -b mh-port"


# --- ipvsd's topology annotations ------------------------------------------------------------

WEIGHTED = (("ipvsd.io/topology-mode", "weight"),)
ZONED = [
    EndpointSlice(
        "default",
        "echo-abc",
        REF,
        Family.INET,
        (EndpointPort("http", Protocol.TCP, 5678),),
        (
            Endpoint(parse_address("10.244.1.5"), node_name="node-a", zone="zone-a"),
            Endpoint(parse_address("10.244.2.7"), node_name="node-b", zone="zone-a"),
            Endpoint(parse_address("10.244.3.9"), node_name="node-c", zone="zone-b"),
        ),
    )
]


def test_weight_mode_weights_real_servers_and_swaps_rr_for_wrr() -> None:
    got = desired_service(service(annotations=WEIGHTED), ZONED, NODE)
    assert table(got) == [
        "-A -t 10.96.0.10:80 -s wrr",
        "-a -t 10.96.0.10:80 -r 10.244.1.5:5678 -m -w 100",
        "-a -t 10.96.0.10:80 -r 10.244.2.7:5678 -m -w 10",
        "-a -t 10.96.0.10:80 -r 10.244.3.9:5678 -m -w 1",
    ]
    assert got.notices == (
        "ipvsd.io/topology-mode: weight needs a weighted scheduler; using 'wrr' instead of 'rr'",
    )
    assert got.warnings == ()


@pytest.mark.parametrize(
    ("scheduler", "used"),
    [("lc", "wlc"), ("dh", "lblc"), ("sh", "sh"), ("mh", "mh"), ("wlc", "wlc")],
)
def test_weight_mode_keeps_schedulers_that_honour_weights(scheduler: str, used: str) -> None:
    annotations = (*WEIGHTED, ("ipvsd.io/scheduler", scheduler))
    got = desired_service(service(annotations=annotations), ZONED, NODE)
    assert {d.server.scheduler for d in got.virtual_servers} == {used}
    assert bool(got.notices) is (scheduler != used)


def test_weight_mode_without_the_weighted_scheduler_warns() -> None:
    node = replace(NODE, schedulers=frozenset({"rr"}))
    got = desired_service(service(annotations=WEIGHTED), ZONED, node)
    assert {d.server.scheduler for d in got.virtual_servers} == {"rr"}
    assert got.notices == ()
    assert got.warnings == (
        "ipvsd.io/topology-mode: weight: scheduler 'rr' ignores weights and this node has no "
        "'wrr'; traffic is spread evenly",
    )


def test_topology_keys_narrow_every_vip_of_the_port_but_not_local_policies() -> None:
    keys = (("ipvsd.io/topology-keys", "topology.kubernetes.io/zone"),)
    got = desired_service(
        service(
            type=ServiceType.NODE_PORT,
            ports=(HTTP,),
            external_traffic_policy=TrafficPolicy.LOCAL,
            annotations=keys,
        ),
        ZONED,
        NODE,
    )
    assert table(got) == [
        "-A -t 10.96.0.10:80 -s rr",
        "-a -t 10.96.0.10:80 -r 10.244.1.5:5678 -m -w 1",
        "-a -t 10.96.0.10:80 -r 10.244.2.7:5678 -m -w 1",
        "-A -t 192.168.1.10:30080 -s rr",
        "-a -t 192.168.1.10:30080 -r 10.244.1.5:5678 -m -w 1",
    ]


def test_invalid_topology_annotations_are_warnings_and_change_nothing() -> None:
    bad = (("ipvsd.io/topology-keys", "*,x"), ("ipvsd.io/topology-mode", "nearest"))
    got = desired_service(service(annotations=bad), ZONED, NODE)
    assert table(got) == table(desired_service(service(), ZONED, NODE))
    assert len(got.warnings) == 2


def test_every_virtual_server_carries_the_selection_it_came_from() -> None:
    got = desired_service(service(annotations=WEIGHTED), ZONED, NODE)
    (server,) = got.virtual_servers
    assert server.selection is not None
    assert [c.weight for c in server.selection.chosen] == [r.weight for r in server.real_servers]


def test_real_servers_are_counted_once_by_proximity_for_metrics() -> None:
    nodeport = service(type=ServiceType.NODE_PORT, ports=(HTTP,), annotations=WEIGHTED)
    got = desired_service(nodeport, ZONED, NODE)  # two virtual servers, same real servers
    assert got.real_servers_by_proximity() == {"node": 1, "zone": 1, "other": 1}
    assert not got.topology_fallback
    only_remote = [replace(ZONED[0], endpoints=ZONED[0].endpoints[2:])]
    assert desired_service(nodeport, only_remote, NODE).topology_fallback


@pytest.mark.parametrize(
    ("conditions", "served", "counted"),
    [
        pytest.param({}, True, 1, id="ready-local-endpoint-counts"),
        pytest.param(
            {"ready": False, "serving": True, "terminating": True},
            True,
            0,
            id="serving-terminating-serves-but-does-not-count",
        ),
        pytest.param({"ready": False, "serving": False}, False, 0, id="unready-neither"),
    ],
)
def test_health_check_counts_only_ready_local_endpoints(
    conditions: dict[str, bool], served: bool, counted: int
) -> None:
    local = Endpoint(parse_address("10.244.1.5"), node_name="node-a", **conditions)
    remote = Endpoint(parse_address("10.244.2.7"), node_name="node-b")
    port = (EndpointPort("http", Protocol.TCP, 5678),)
    endpoints = [EndpointSlice("default", "echo-abc", REF, Family.INET, port, (local, remote))]
    lb = service(
        type=ServiceType.NODE_PORT,
        ports=(HTTP,),
        external_traffic_policy=TrafficPolicy.LOCAL,
        health_check_node_port=31000,
    )
    got = desired_service(lb, endpoints, NODE)
    node_port = next(d for d in got.virtual_servers if d.kind is VipKind.NODE_PORT)
    assert [str(r.address) for r in node_port.real_servers] == (["10.244.1.5"] if served else [])
    assert got.local_ready_endpoints() == counted
