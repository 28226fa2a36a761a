"""Raw API objects to model values: every rule kube-proxy applies, every kind of bad input.

Each table row starts from a valid object, changes one thing and names the behaviour.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any

import pytest

from ipvsd.kube.convert import (
    ConversionError,
    RawObject,
    endpoint_slice_from_dict,
    node_from_dict,
    object_key,
    service_from_dict,
)
from ipvsd.model.endpoint import Endpoint, EndpointPort
from ipvsd.model.ipvs import Family, Protocol
from ipvsd.model.service import ServicePort, ServiceRef, ServiceType, TrafficPolicy

Mutation = Callable[[RawObject], object]


def a_service() -> RawObject:
    return {
        "kind": "Service",
        "metadata": {
            "namespace": "web",
            "name": "shop",
            "uid": "u-1",
            "resourceVersion": "41",
            "labels": {"app": "shop"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10"],
            "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}],
        },
    }


def a_slice() -> RawObject:
    return {
        "kind": "EndpointSlice",
        "metadata": {
            "namespace": "web",
            "name": "shop-abc12",
            "labels": {"kubernetes.io/service-name": "shop"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
        "endpoints": [
            {"addresses": ["10.0.1.1"], "conditions": {"ready": True}, "nodeName": "node-a"},
            {"addresses": ["10.0.1.2"], "conditions": {"ready": True}, "nodeName": "node-b"},
        ],
    }


def a_node() -> RawObject:
    return {
        "kind": "Node",
        "metadata": {
            "name": "node-a",
            "labels": {"topology.kubernetes.io/zone": "zone-a", "kubernetes.io/os": "linux"},
        },
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }


def changed(make: Callable[[], RawObject], mutate: Mutation) -> RawObject:
    raw = copy.deepcopy(make())
    mutate(raw)
    return raw


def spec(**fields: Any) -> Mutation:
    return lambda raw: raw["spec"].update(fields)


def first_endpoint(**fields: Any) -> Mutation:
    return lambda raw: raw["endpoints"][0].update(fields)


# --- Services -------------------------------------------------------------------------------


def test_a_plain_cluster_ip_service_converts_with_defaults() -> None:
    service = service_from_dict(a_service())

    assert service is not None
    assert service.ref == ServiceRef("web", "shop")
    assert service.uid == "u-1"
    assert service.type is ServiceType.CLUSTER_IP
    assert service.cluster_ips == (IPv4Address("10.96.0.10"),)
    assert service.ports == (ServicePort("http", Protocol.TCP, 80),)
    assert service.session_affinity is False
    assert service.affinity_timeout == 10800
    assert service.external_traffic_policy is TrafficPolicy.CLUSTER
    assert service.internal_traffic_policy is TrafficPolicy.CLUSTER
    assert service.annotations == ()


SKIPPED_SERVICES: list[tuple[str, Mutation]] = [
    ("external-name-is-skipped", spec(type="ExternalName", clusterIP="", clusterIPs=[])),
    ("headless-none-is-skipped", spec(clusterIP="None", clusterIPs=["None"])),
    ("empty-cluster-ip-is-skipped", spec(clusterIP="", clusterIPs=[])),
    ("absent-cluster-ip-is-skipped", lambda raw: raw["spec"].pop("clusterIPs")),
]


@pytest.mark.parametrize(
    "mutate", [m for _, m in SKIPPED_SERVICES], ids=[n for n, _ in SKIPPED_SERVICES]
)
def test_services_kube_proxy_ignores_convert_to_none(mutate: Mutation) -> None:
    raw = changed(a_service, mutate)
    if "clusterIPs" not in raw["spec"]:
        raw["spec"].pop("clusterIP")

    assert service_from_dict(raw) is None


SERVICE_RULES: list[tuple[str, Mutation, Callable[[Any], object], object]] = [
    (
        "dual-stack-keeps-both-cluster-ips",
        spec(clusterIPs=["10.96.0.10", "fd00::10"]),
        lambda s: s.cluster_ips,
        (IPv4Address("10.96.0.10"), IPv6Address("fd00::10")),
    ),
    (
        "cluster-ip-alone-is-enough-for-old-objects",
        lambda raw: raw["spec"].pop("clusterIPs"),
        lambda s: s.cluster_ips,
        (IPv4Address("10.96.0.10"),),
    ),
    (
        "type-defaults-to-cluster-ip",
        lambda raw: raw["spec"].pop("type"),
        lambda s: s.type,
        ServiceType.CLUSTER_IP,
    ),
    (
        "protocol-defaults-to-tcp-and-name-to-empty",
        spec(ports=[{"port": 53}]),
        lambda s: s.ports,
        (ServicePort("", Protocol.TCP, 53),),
    ),
    (
        "udp-and-sctp-ports-with-node-ports",
        spec(
            type="NodePort",
            ports=[
                {"name": "dns", "protocol": "UDP", "port": 53, "nodePort": 30053},
                {"name": "sig", "protocol": "SCTP", "port": 2905, "nodePort": 30905},
            ],
        ),
        lambda s: (s.type, s.ports),
        (
            ServiceType.NODE_PORT,
            (
                ServicePort("dns", Protocol.UDP, 53, 30053),
                ServicePort("sig", Protocol.SCTP, 2905, 30905),
            ),
        ),
    ),
    (
        "client-ip-affinity-timeout-defaults-to-10800",
        spec(sessionAffinity="ClientIP"),
        lambda s: (s.session_affinity, s.affinity_timeout),
        (True, 10800),
    ),
    (
        "client-ip-affinity-timeout-is-read",
        spec(
            sessionAffinity="ClientIP",
            sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}},
        ),
        lambda s: (s.session_affinity, s.affinity_timeout),
        (True, 60),
    ),
    (
        "external-ips-are-kept",
        spec(externalIPs=["192.0.2.1", "2001:db8::1"]),
        lambda s: s.external_ips,
        (IPv4Address("192.0.2.1"), IPv6Address("2001:db8::1")),
    ),
    (
        "lb-ingress-ip-with-ip-mode-unset-or-vip-is-kept-proxy-and-hostname-skipped",
        lambda raw: raw.update(
            status={
                "loadBalancer": {
                    "ingress": [
                        {"ip": "192.0.2.10"},
                        {"ip": "192.0.2.11", "ipMode": "VIP"},
                        {"ip": "192.0.2.12", "ipMode": "Proxy"},
                        {"hostname": "lb.example.com"},
                    ]
                }
            }
        ),
        lambda s: s.load_balancer_ips,
        (IPv4Address("192.0.2.10"), IPv4Address("192.0.2.11")),
    ),
    (
        "lb-source-ranges-parse-sloppily",
        spec(loadBalancerSourceRanges=[" 10.0.0.1/8", "2001:db8::/32"]),
        lambda s: s.load_balancer_source_ranges,
        (ip_network("10.0.0.0/8"), ip_network("2001:db8::/32")),
    ),
    (
        "traffic-policies-and-health-check-port",
        spec(
            type="LoadBalancer",
            externalTrafficPolicy="Local",
            internalTrafficPolicy="Local",
            healthCheckNodePort=32000,
        ),
        lambda s: (s.external_traffic_policy, s.internal_traffic_policy, s.health_check_node_port),
        (TrafficPolicy.LOCAL, TrafficPolicy.LOCAL, 32000),
    ),
    (
        "traffic-distribution-is-kept",
        spec(trafficDistribution="PreferSameZone"),
        lambda s: s.traffic_distribution,
        "PreferSameZone",
    ),
    (
        "only-ipvsd-kube-router-and-topology-annotations-are-kept-sorted",
        lambda raw: raw["metadata"].update(
            annotations={
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "kube-router.io/service.scheduler": "mh",
                "ipvsd.io/scheduler": "wrr",
                "service.kubernetes.io/topology-mode": "Auto",
                "service.kubernetes.io/topology-aware-hints": "auto",
                "service.kubernetes.io/other": "x",
                "example.com/ipvsd.io/x": "y",
            }
        ),
        lambda s: s.annotations,
        (
            ("ipvsd.io/scheduler", "wrr"),
            ("kube-router.io/service.scheduler", "mh"),
            ("service.kubernetes.io/topology-aware-hints", "auto"),
            ("service.kubernetes.io/topology-mode", "Auto"),
        ),
    ),
]


@pytest.mark.parametrize(
    ("mutate", "pick", "expected"),
    [(m, p, e) for _, m, p, e in SERVICE_RULES],
    ids=[n for n, *_ in SERVICE_RULES],
)
def test_service_rules(mutate: Mutation, pick: Callable[[Any], object], expected: object) -> None:
    service = service_from_dict(changed(a_service, mutate))

    assert service is not None
    assert pick(service) == expected


INVALID_SERVICES: list[tuple[str, Mutation, str]] = [
    (
        "port-out-of-range",
        spec(ports=[{"port": 80}, {"port": 70000}]),
        "spec.ports[1].port: 70000 out of range",
    ),
    ("port-missing", spec(ports=[{"name": "x"}]), "spec.ports[0].port: missing"),
    ("port-zero", spec(ports=[{"port": 0}]), "spec.ports[0].port: 0 out of range"),
    (
        "port-not-a-number",
        spec(ports=[{"port": "80"}]),
        "spec.ports[0].port: expected an integer, got '80'",
    ),
    ("port-boolean", spec(ports=[{"port": True}]), "spec.ports[0].port: expected an integer"),
    (
        "node-port-out-of-range",
        spec(ports=[{"port": 80, "nodePort": 65536}]),
        "spec.ports[0].nodePort: 65536 out of range",
    ),
    (
        "unknown-protocol",
        spec(ports=[{"port": 80, "protocol": "ICMP"}]),
        "spec.ports[0].protocol: unknown protocol 'ICMP'",
    ),
    (
        "bad-cluster-ip",
        spec(clusterIPs=["10.96.0.300"]),
        "spec.clusterIPs[0]: '10.96.0.300' is not an IP address",
    ),
    (
        "bad-second-cluster-ip",
        spec(clusterIPs=["10.96.0.1", "nope"]),
        "spec.clusterIPs[1]: 'nope' is not an IP address",
    ),
    (
        "bad-external-ip",
        spec(externalIPs=["1.2.3"]),
        "spec.externalIPs[0]: '1.2.3' is not an IP address",
    ),
    (
        "bad-lb-ip",
        lambda raw: raw.update(status={"loadBalancer": {"ingress": [{"ip": "x"}]}}),
        "status.loadBalancer.ingress[0].ip: 'x' is not an IP address",
    ),
    (
        "bad-source-range",
        spec(loadBalancerSourceRanges=["10.0.0.0/33"]),
        "spec.loadBalancerSourceRanges[0]: '10.0.0.0/33' is not a CIDR",
    ),
    ("unknown-type", spec(type="Magic"), "spec.type: unknown type 'Magic'"),
    (
        "unknown-affinity",
        spec(sessionAffinity="Cookie"),
        "spec.sessionAffinity: unknown affinity 'Cookie'",
    ),
    (
        "affinity-timeout-out-of-range",
        spec(sessionAffinityConfig={"clientIP": {"timeoutSeconds": 86401}}),
        "spec.sessionAffinityConfig.clientIP.timeoutSeconds: 86401 out of range",
    ),
    (
        "unknown-traffic-policy",
        spec(externalTrafficPolicy="Nearby"),
        "spec.externalTrafficPolicy: unknown policy 'Nearby'",
    ),
    ("ports-not-a-list", spec(ports={"port": 80}), "spec.ports: expected a list"),
    ("name-missing", lambda raw: raw["metadata"].pop("name"), "metadata.name: missing"),
    (
        "namespace-missing",
        lambda raw: raw["metadata"].pop("namespace"),
        "metadata.namespace: missing",
    ),
    ("spec-not-an-object", lambda raw: raw.update(spec=[]), "spec: expected an object"),
]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [(m, msg) for _, m, msg in INVALID_SERVICES],
    ids=[n for n, *_ in INVALID_SERVICES],
)
def test_invalid_services_raise_with_the_field_path(mutate: Mutation, message: str) -> None:
    with pytest.raises(ConversionError) as caught:
        service_from_dict(changed(a_service, mutate))

    assert str(caught.value).startswith(message)


def test_irrelevant_changes_convert_to_an_equal_value() -> None:
    def irrelevant(raw: RawObject) -> None:
        raw["metadata"]["resourceVersion"] = "99"
        raw["metadata"]["annotations"] = {"example.com/owner": "team-b"}
        raw["metadata"]["labels"]["tier"] = "frontend"
        raw["spec"]["selector"] = {"app": "shop-v2"}

    assert service_from_dict(changed(a_service, irrelevant)) == service_from_dict(a_service())


@pytest.mark.parametrize(
    ("stamp", "created"),
    [("2026-12-05T01:02:03Z", "2026-12-05T01:02:03Z"), (None, ""), (12345, ""), ({"t": 1}, "")],
)
def test_the_creation_timestamp_orders_claims_and_a_bad_one_only_makes_it_newest(
    stamp: object, created: str
) -> None:
    """A bad creationTimestamp does not make the Service invalid (it only decides which of
    two Services sharing a virtual server keeps it: see `reconcile.claims`)."""

    def stamped(raw: RawObject) -> None:
        if stamp is not None:
            raw["metadata"]["creationTimestamp"] = stamp

    service = service_from_dict(changed(a_service, stamped))
    assert service is not None
    assert service.created == created


def test_a_shape_nobody_expected_is_still_a_conversion_error() -> None:
    raw = changed(a_service, spec(sessionAffinityConfig={"clientIP": "oops"}))

    with pytest.raises(ConversionError, match="clientIP"):
        service_from_dict(raw)


# --- EndpointSlices -------------------------------------------------------------------------


def test_a_slice_converts_with_ports_endpoints_and_conditions() -> None:
    slice_ = endpoint_slice_from_dict(a_slice())

    assert slice_ is not None
    assert (slice_.namespace, slice_.name) == ("web", "shop-abc12")
    assert slice_.service == ServiceRef("web", "shop")
    assert slice_.family is Family.INET
    assert slice_.ports == (EndpointPort("http", Protocol.TCP, 8080),)
    assert slice_.endpoints == (
        Endpoint(IPv4Address("10.0.1.1"), node_name="node-a"),
        Endpoint(IPv4Address("10.0.1.2"), node_name="node-b"),
    )
    assert slice_.trigger_time is None


SKIPPED_SLICES: list[tuple[str, Mutation]] = [
    ("fqdn-slice-is-skipped", lambda raw: raw.update(addressType="FQDN")),
    ("slice-without-service-name-label-is-skipped", lambda raw: raw["metadata"].pop("labels")),
    (
        "slice-with-empty-service-name-is-skipped",
        lambda raw: raw["metadata"]["labels"].update({"kubernetes.io/service-name": ""}),
    ),
]


@pytest.mark.parametrize(
    "mutate", [m for _, m in SKIPPED_SLICES], ids=[n for n, _ in SKIPPED_SLICES]
)
def test_slices_kube_proxy_ignores_convert_to_none(mutate: Mutation) -> None:
    assert endpoint_slice_from_dict(changed(a_slice, mutate)) is None


def endpoints_of(raw: RawObject) -> tuple[Endpoint, ...]:
    slice_ = endpoint_slice_from_dict(raw)
    assert slice_ is not None
    return slice_.endpoints


A = IPv4Address("10.0.1.1")
SLICE_RULES: list[tuple[str, Mutation, Callable[[RawObject], object], object]] = [
    (
        "conditions-absent-mean-ready-serving-not-terminating",
        first_endpoint(conditions={}),
        lambda raw: endpoints_of(raw)[0],
        Endpoint(A, ready=True, serving=True, terminating=False, node_name="node-a"),
    ),
    (
        "conditions-null-mean-ready-serving-not-terminating",
        first_endpoint(conditions={"ready": None, "serving": None, "terminating": None}),
        lambda raw: endpoints_of(raw)[0],
        Endpoint(A, ready=True, serving=True, terminating=False, node_name="node-a"),
    ),
    (
        "terminating-serving-endpoint",
        first_endpoint(conditions={"ready": False, "serving": True, "terminating": True}),
        lambda raw: endpoints_of(raw)[0],
        Endpoint(A, ready=False, serving=True, terminating=True, node_name="node-a"),
    ),
    (
        "not-serving-is-read",
        first_endpoint(conditions={"ready": False, "serving": False, "terminating": False}),
        lambda raw: endpoints_of(raw)[0],
        Endpoint(A, ready=False, serving=False, terminating=False, node_name="node-a"),
    ),
    (
        "zone-node-and-hints-sorted",
        first_endpoint(
            zone="zone-a",
            hints={
                "forZones": [{"name": "zone-b"}, {"name": "zone-a"}],
                "forNodes": [{"name": "n1"}],
            },
        ),
        lambda raw: endpoints_of(raw)[0],
        Endpoint(
            A,
            node_name="node-a",
            zone="zone-a",
            zone_hints=("zone-a", "zone-b"),
            node_hints=("n1",),
        ),
    ),
    (
        "only-the-first-address-is-used",
        first_endpoint(addresses=["10.0.1.1", "10.0.1.9"]),
        lambda raw: endpoints_of(raw)[0].address,
        A,
    ),
    (
        "wrong-family-address-is-dropped",
        first_endpoint(addresses=["fd00::1"]),
        lambda raw: [e.address for e in endpoints_of(raw)],
        [IPv4Address("10.0.1.2")],
    ),
    (
        "ipv6-slice-parses-ipv6-and-drops-ipv4",
        lambda raw: raw.update(
            addressType="IPv6", endpoints=[{"addresses": ["fd00::1"]}, {"addresses": ["10.0.0.1"]}]
        ),
        lambda raw: [e.address for e in endpoints_of(raw)],
        [IPv6Address("fd00::1")],
    ),
    (
        "ports-without-a-number-are-ignored",
        lambda raw: raw.update(
            ports=[{"name": "all"}, {"name": "dns", "protocol": "UDP", "port": 53}]
        ),
        lambda raw: endpoint_slice_from_dict(raw).ports,  # type: ignore[union-attr]
        (EndpointPort("dns", Protocol.UDP, 53),),
    ),
    (
        "null-ports-and-endpoints-are-empty",
        lambda raw: raw.update(ports=None, endpoints=None),
        lambda raw: (endpoint_slice_from_dict(raw).ports, endpoints_of(raw)),  # type: ignore[union-attr]
        ((), ()),
    ),
    (
        "trigger-time-annotation-is-a-unix-timestamp",
        lambda raw: raw["metadata"].update(
            annotations={"endpoints.kubernetes.io/last-change-trigger-time": "2025-01-02T03:04:05Z"}
        ),
        lambda raw: endpoint_slice_from_dict(raw).trigger_time,  # type: ignore[union-attr]
        datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp(),
    ),
    (
        "unreadable-trigger-time-is-ignored",
        lambda raw: raw["metadata"].update(
            annotations={"endpoints.kubernetes.io/last-change-trigger-time": "yesterday"}
        ),
        lambda raw: endpoint_slice_from_dict(raw).trigger_time,  # type: ignore[union-attr]
        None,
    ),
    (
        "exactly-1000-endpoints-are-fine",
        lambda raw: raw.update(
            endpoints=[{"addresses": [str(ip_address("10.1.0.0") + i)]} for i in range(1000)]
        ),
        lambda raw: len(endpoints_of(raw)),
        1000,
    ),
]


@pytest.mark.parametrize(
    ("mutate", "pick", "expected"),
    [(m, p, e) for _, m, p, e in SLICE_RULES],
    ids=[n for n, *_ in SLICE_RULES],
)
def test_slice_rules(
    mutate: Mutation, pick: Callable[[RawObject], object], expected: object
) -> None:
    assert pick(changed(a_slice, mutate)) == expected


INVALID_SLICES: list[tuple[str, Mutation, str]] = [
    (
        "bad-address",
        first_endpoint(addresses=["10.0.1.300"]),
        "endpoints[0].addresses[0]: '10.0.1.300' is not an IP address",
    ),
    (
        "address-not-a-string",
        first_endpoint(addresses=[17]),
        "endpoints[0].addresses[0]: 17 is not an IP address",
    ),
    ("no-addresses", first_endpoint(addresses=[]), "endpoints[0].addresses: missing"),
    (
        "port-out-of-range",
        lambda raw: raw.update(ports=[{"port": 70000}]),
        "ports[0].port: 70000 out of range",
    ),
    (
        "unknown-protocol",
        lambda raw: raw.update(ports=[{"port": 80, "protocol": "GRE"}]),
        "ports[0].protocol: unknown protocol 'GRE'",
    ),
    (
        "unknown-address-type",
        lambda raw: raw.update(addressType="IPv5"),
        "addressType: unknown address type 'IPv5'",
    ),
    (
        "missing-address-type",
        lambda raw: raw.pop("addressType"),
        "addressType: unknown address type None",
    ),
    (
        "condition-not-a-boolean",
        first_endpoint(conditions={"ready": "yes"}),
        "endpoints[0].conditions.ready: expected a boolean, got 'yes'",
    ),
    (
        "zone-hint-without-name",
        first_endpoint(hints={"forZones": [{}]}),
        "endpoints[0].hints.forZones[0].name: missing",
    ),
    ("name-missing", lambda raw: raw["metadata"].pop("name"), "metadata.name: missing"),
    (
        "endpoint-not-an-object",
        lambda raw: raw["endpoints"].append("10.0.0.1"),
        "endpoints[2]: expected an object",
    ),
    (
        "more-than-1000-endpoints",
        lambda raw: raw.update(
            endpoints=[{"addresses": [f"10.1.{i // 256}.{i % 256}"]} for i in range(1001)]
        ),
        "endpoints: 1001 endpoints, more than 1000 allowed",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [(m, msg) for _, m, msg in INVALID_SLICES],
    ids=[n for n, *_ in INVALID_SLICES],
)
def test_invalid_slices_raise_with_the_field_path(mutate: Mutation, message: str) -> None:
    with pytest.raises(ConversionError) as caught:
        endpoint_slice_from_dict(changed(a_slice, mutate))

    assert str(caught.value).startswith(message)


def test_duplicate_endpoints_keep_the_first_and_warn() -> None:
    notes: list[str] = []
    raw = changed(
        a_slice,
        lambda raw: raw["endpoints"].append(
            {"addresses": ["10.0.1.1"], "conditions": {"ready": False}, "nodeName": "node-z"}
        ),
    )

    slice_ = endpoint_slice_from_dict(raw, warn=notes.append)

    assert slice_ is not None
    assert [(e.address, e.node_name) for e in slice_.endpoints] == [
        (A, "node-a"),
        (IPv4Address("10.0.1.2"), "node-b"),
    ]
    assert notes == ["endpoints[2].addresses[0]: duplicate address 10.0.1.1, keeping the first"]


def test_slice_metadata_churn_converts_to_an_equal_value() -> None:
    def churn(raw: RawObject) -> None:
        raw["metadata"]["resourceVersion"] = "100"
        raw["metadata"]["generation"] = 7
        raw["endpoints"][0]["targetRef"] = {"kind": "Pod", "name": "shop-1"}

    assert endpoint_slice_from_dict(changed(a_slice, churn)) == endpoint_slice_from_dict(a_slice())


# --- Nodes and keys -------------------------------------------------------------------------


NODE_RULES: list[tuple[str, Mutation, object]] = [
    ("healthy-node-is-not-deleting", lambda raw: None, False),
    (
        "deletion-timestamp-means-deleting",
        lambda raw: raw["metadata"].update(deletionTimestamp="2025-01-01T00:00:00Z"),
        True,
    ),
    (
        "autoscaler-taint-means-deleting",
        lambda raw: raw["spec"].update(
            taints=[{"key": "ToBeDeletedByClusterAutoscaler", "effect": "NoSchedule"}]
        ),
        True,
    ),
    (
        "other-taints-do-not",
        lambda raw: raw["spec"].update(taints=[{"key": "dedicated", "effect": "NoSchedule"}]),
        False,
    ),
]


@pytest.mark.parametrize(
    ("mutate", "deleting"),
    [(m, d) for _, m, d in NODE_RULES],
    ids=[n for n, *_ in NODE_RULES],
)
def test_node_deleting(mutate: Mutation, deleting: bool) -> None:
    assert node_from_dict(changed(a_node, mutate)).deleting is deleting


def test_node_keeps_sorted_labels_and_ignores_status_churn() -> None:
    node = node_from_dict(a_node())
    heartbeat = changed(a_node, lambda raw: raw["status"].update(conditions=[]))

    assert node.name == "node-a"
    assert node.labels == (("kubernetes.io/os", "linux"), ("topology.kubernetes.io/zone", "zone-a"))
    assert node.zone == "zone-a"
    assert node_from_dict(heartbeat) == node


def test_node_without_a_name_is_invalid() -> None:
    with pytest.raises(ConversionError, match=r"^metadata\.name: missing"):
        node_from_dict(changed(a_node, lambda raw: raw["metadata"].pop("name")))


def test_object_keys() -> None:
    assert object_key(a_service(), namespaced=True) == "web/shop"
    assert object_key(a_node(), namespaced=False) == "node-a"
    with pytest.raises(ConversionError, match=r"metadata\.namespace: missing"):
        object_key({"metadata": {"name": "x"}}, namespaced=True)
    with pytest.raises(ConversionError, match="<object>: expected an object"):
        object_key("nope", namespaced=True)


def _addr(kind: str, address: str) -> dict[str, str]:
    return {"type": kind, "address": address}


@pytest.mark.parametrize(
    ("addresses", "primary"),
    [
        ([_addr("ExternalIP", "203.0.113.9"), _addr("InternalIP", "10.0.0.5"),
          _addr("InternalIP", "10.0.0.6")], ["10.0.0.5"]),
        ([_addr("ExternalIP", "203.0.113.9"), _addr("Hostname", "n1")], ["203.0.113.9"]),
        ([_addr("InternalIP", "fd00::5"), _addr("InternalIP", "10.0.0.5"),
          _addr("InternalIP", "not-an-ip")], ["10.0.0.5", "fd00::5"]),
        ([], []),
    ],
    ids=["first-internal-ip-wins", "external-ip-when-no-internal", "one-per-family", "none"],
)  # fmt: skip
def test_node_primary_addresses(addresses: list[dict[str, str]], primary: list[str]) -> None:
    node = node_from_dict(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "n1"},
            "status": {"addresses": addresses},
        }
    )
    assert [str(a) for a in node.primary_addresses] == primary


@pytest.mark.parametrize(
    "text",
    [
        "10.96.0.10",
        "0.0.0.0",
        "255.255.255.255",
        "fd00::a",
        "FD00:0:0::A",
        "::ffff:10.96.0.10",
        "fe80::1%eth0",
        "010.96.0.10",
        "10.96.0.1 ",
        "1.2.3",
        "10.96.0.256",
        "fd00::g",
        "",
    ],
)
def test_service_addresses_read_exactly_as_the_ipaddress_module_reads_them(text: str) -> None:
    """The converter reads addresses with inet_pton first (fast) and `ip_address` for what
    that refuses: every spelling gets the value, or the refusal, `ip_address` gives."""
    raw = a_service()
    raw["spec"]["externalIPs"] = [text]
    try:
        expected = ip_address(text)
    except ValueError:
        with pytest.raises(ConversionError, match=r"spec\.externalIPs\[0\]: .* is not an IP"):
            service_from_dict(raw)
        return
    service = service_from_dict(raw)
    assert service is not None
    (got,) = service.external_ips
    assert got == expected
    assert type(got) is type(expected)
    assert str(got) == str(expected)
