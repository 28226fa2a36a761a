"""Hypothesis strategies for bad API objects: real valid documents, mutated at random paths.

The fuzz tests (`test_fuzz_convert.py`, `test_fuzz_plan.py`) start from documents a real
cluster holds (every Service type, dual-stack, UDP and SCTP, affinity, topology annotations;
slices with conditions, hints and zones; Nodes with labels, taints, addresses and pod CIDRs)
and then replace, delete or add values at random paths: random JSON of any type (a string where
a list is, a list where an object is, null, huge numbers) and values chosen to hit the
converters' edges (ports 0 and 65536, addresses that are almost addresses, the other family,
duplicates, unknown protocols). Structured generators add what mutation rarely reaches: slices
of 1,000 endpoints (and 1,001), duplicated addresses and ports, and mixed families.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

Document = dict[str, Any]
Path = tuple[str | int, ...]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"

# --- values ---------------------------------------------------------------------------------

EDGE_NUMBERS = [0, -1, 1, 65535, 65536, 86400, 86401, 2**31, 2**63, -(2**63), 10**30, 1.5, 80.0]
EDGE_TEXTS = [
    "",
    " ",
    "None",
    "null",
    "80",
    "10.96.0.10",
    "10.96.0.256",
    "010.96.0.10",
    "10.96.0.10 ",
    "10.96.0",
    "10.96.0.10/32",
    "::ffff:10.96.0.10",
    "fd00::10",
    "fd00::10%eth0",
    "fe80::1",
    "0.0.0.0",
    "::",
    "255.255.255.255",
    "10.0.0.0/8",
    "10.0.0.1/33",
    "fd00::/129",
    "TCP",
    "UDP",
    "SCTP",
    "tcp",
    "ICMP",
    "IPv4",
    "IPv6",
    "FQDN",
    "Local",
    "Cluster",
    "ClientIP",
    "ExternalName",
    "LoadBalancer",
    "NodePort",
    "Proxy",
    "VIP",
    "weight",
    "Auto",
    "node=x",
    "PreferClose",
    "PreferSameNode",
    "ToBeDeletedByClusterAutoscaler",
    "²",
    "٣",
    "2026-13-45T99:99:99Z",
    "\x00",
    "é" * 300,
]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(EDGE_NUMBERS),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(EDGE_TEXTS),
)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.text(max_size=8), st.sampled_from(["name", "ip", "port", "key"])),
            children,
            max_size=4,
        ),
    ),
    max_leaves=12,
)
"""Any JSON value (what a watch can carry once nothing validates it)."""

# --- valid documents ------------------------------------------------------------------------


def _service(
    name: str,
    namespace: str,
    cluster_ips: list[str],
    ports: list[Document],
    *,
    type_: str = "ClusterIP",
    **spec: Any,
) -> Document:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "resourceVersion": "100",
            "labels": {"app": name},
            "annotations": spec.pop("annotations", {}),
        },
        "spec": {
            "type": type_,
            "clusterIP": cluster_ips[0],
            "clusterIPs": cluster_ips,
            "ipFamilies": ["IPv6" if ":" in ip else "IPv4" for ip in cluster_ips],
            "ports": ports,
            **spec,
        },
        "status": spec.pop("status", {"loadBalancer": {}}),
    }


def services(namespace: str) -> list[Document]:
    """One valid Service of each shape ipvsd plans differently."""
    return [
        _service(
            "web",
            namespace,
            ["10.96.0.10"],
            [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}],
        ),
        _service(
            "dns",
            namespace,
            ["10.96.0.53"],
            [
                {"name": "dns", "protocol": "UDP", "port": 53, "nodePort": 30053},
                {"name": "dns-tcp", "protocol": "TCP", "port": 53, "nodePort": 30054},
            ],
            type_="NodePort",
            externalTrafficPolicy="Local",
            healthCheckNodePort=32000,
        ),
        _service(
            "shop",
            namespace,
            ["10.96.0.20", "fd00:96::20"],
            [{"name": "https", "protocol": "TCP", "port": 443, "nodePort": 30443}],
            type_="LoadBalancer",
            externalIPs=["192.0.2.10", "2001:db8::10"],
            loadBalancerSourceRanges=["198.51.100.0/24", "2001:db8:1::/48"],
            sessionAffinity="ClientIP",
            sessionAffinityConfig={"clientIP": {"timeoutSeconds": 600}},
            annotations={"ipvsd.io/scheduler": "wrr", "ipvsd.io/topology-mode": "weight"},
            status={"loadBalancer": {"ingress": [{"ip": "203.0.113.10", "ipMode": "VIP"}]}},
        ),
        _service(
            "signal",
            namespace,
            ["10.96.0.30"],
            [{"name": "sctp", "protocol": "SCTP", "port": 9999}],
            internalTrafficPolicy="Local",
            trafficDistribution="PreferClose",
            annotations={"service.kubernetes.io/topology-mode": "Auto"},
        ),
    ]


def _endpoint(address: str, node: str, zone: str | None, **conditions: bool) -> Document:
    """A ready endpoint on `node` with hints for its zone and node (no zone: neither)."""
    endpoint: Document = {
        "addresses": [address],
        "conditions": {"ready": True, "serving": True, "terminating": False, **conditions},
        "nodeName": node,
    }
    if zone is not None:
        endpoint["zone"] = zone
        endpoint["hints"] = {"forZones": [{"name": zone}], "forNodes": [{"name": node}]}
    return endpoint


def _slice(  # noqa: PLR0917  # a fixture: the six parts every slice has, in order
    service: str,
    namespace: str,
    suffix: str,
    family: str,
    ports: list[Document],
    endpoints: list[Document],
) -> Document:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-{suffix}",
            "namespace": namespace,
            "resourceVersion": "101",
            "labels": {SERVICE_NAME_LABEL: service},
            "annotations": {
                "endpoints.kubernetes.io/last-change-trigger-time": "2026-12-04T20:00:00Z"
            },
        },
        "addressType": family,
        "ports": ports,
        "endpoints": endpoints,
    }


def endpoint_slices(namespace: str, subnet: int = 1) -> list[Document]:
    """The slices of `services(namespace)`; pod addresses in 10.`subnet`.x.x / fd0`subnet`::."""
    v4 = f"10.{subnet}"
    v6 = f"fd0{subnet}:"
    return [
        _slice(
            "web",
            namespace,
            "a",
            "IPv4",
            [{"name": "http", "protocol": "TCP", "port": 8080}],
            [
                _endpoint(f"{v4}.1.1", "node-a", "zone-a"),
                _endpoint(f"{v4}.2.1", "node-b", "zone-b"),
                _endpoint(f"{v4}.2.2", "node-b", "zone-b", ready=False, terminating=True),
            ],
        ),
        _slice(
            "dns",
            namespace,
            "a",
            "IPv4",
            [
                {"name": "dns", "protocol": "UDP", "port": 5353},
                {"name": "dns-tcp", "protocol": "TCP", "port": 5353},
            ],
            [_endpoint(f"{v4}.1.53", "node-a", "zone-a"), _endpoint(f"{v4}.3.53", "node-c", None)],
        ),
        _slice(
            "shop",
            namespace,
            "v4",
            "IPv4",
            [{"name": "https", "protocol": "TCP", "port": 8443}],
            [_endpoint(f"{v4}.1.20", "node-a", "zone-a"), _endpoint(f"{v4}.2.20", "node-b", None)],
        ),
        _slice(
            "shop",
            namespace,
            "v6",
            "IPv6",
            [{"name": "https", "protocol": "TCP", "port": 8443}],
            [_endpoint(f"{v6}:1:20", "node-a", "zone-a")],
        ),
        _slice(
            "signal",
            namespace,
            "a",
            "IPv4",
            [{"name": "sctp", "protocol": "SCTP", "port": 9999}],
            [_endpoint(f"{v4}.1.30", "node-a", "zone-a"), _endpoint(f"{v4}.2.30", "node-b", "b")],
        ),
    ]


def node(name: str = "node-a", zone: str = "zone-a") -> Document:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "resourceVersion": "102",
            "labels": {
                "topology.kubernetes.io/zone": zone,
                "topology.kubernetes.io/region": "region-1",
                "kubernetes.io/hostname": name,
            },
        },
        "spec": {
            "podCIDR": "10.1.1.0/24",
            "podCIDRs": ["10.1.1.0/24", "fd01::/64"],
            "taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
        },
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": "192.168.1.10"},
                {"type": "InternalIP", "address": "fd00:1::10"},
                {"type": "Hostname", "address": name},
            ]
        },
    }


# --- mutations ------------------------------------------------------------------------------


def paths(value: Any, prefix: Path = ()) -> list[Path]:
    """Every path into a document, the root's children first and the leaves too."""
    found: list[Path] = []
    if isinstance(value, dict):
        for key, child in value.items():
            found.append((*prefix, key))
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.append((*prefix, index))
            found += paths(child, (*prefix, index))
    return found


def _parent(document: Any, path: Path) -> Any:
    for step in path[:-1]:
        document = document[step]
    return document


@st.composite
def mutated(draw: st.DrawFn, base: Document, *, max_mutations: int = 3) -> Document:
    """`base` with 1 to `max_mutations` random changes: a value replaced by any JSON or an edge
    value, a field deleted, a field added, a list item duplicated, or the whole object replaced."""
    document: Any = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, max_mutations))):
        if not isinstance(document, dict | list) or not paths(document):
            break
        path = draw(st.sampled_from(paths(document)))
        parent = _parent(document, path)
        action = draw(st.sampled_from(["replace", "edge", "delete", "add", "duplicate"]))
        if action == "replace":
            parent[path[-1]] = draw(json_values)
        elif action == "edge":
            parent[path[-1]] = draw(st.sampled_from(EDGE_NUMBERS + EDGE_TEXTS + [None, [], {}]))
        elif action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent[path[-1]], dict):
            parent[path[-1]][draw(st.text(max_size=10))] = draw(json_values)
        elif isinstance(parent[path[-1]], list) and parent[path[-1]]:
            items = parent[path[-1]]
            items.append(copy.deepcopy(draw(st.sampled_from(items))))
    if draw(st.integers(0, 40)) == 0:
        return draw(json_values)  # type: ignore[no-any-return]  # not even an object
    return document  # type: ignore[no-any-return]


def any_mutated(documents: list[Document], **options: Any) -> st.SearchStrategy[Document]:
    return st.sampled_from(documents).flatmap(lambda base: mutated(base, **options))


# --- structured bad input -------------------------------------------------------------------


@st.composite
def big_slice(draw: st.DrawFn, namespace: str, service: str) -> Document:
    """A slice of about 1,000 endpoints (the API's limit; 1,001 is over it), some duplicated,
    some of the other family, a few with bad addresses or conditions."""
    count = draw(st.sampled_from([999, 1000, 1001]))
    family = draw(st.sampled_from(["IPv4", "IPv6"]))

    def address(i: int) -> str:
        return f"10.9.{i // 250}.{i % 250 + 1}" if family == "IPv4" else f"fd09::{i:x}"

    endpoints = [
        {
            "addresses": [address(i)],
            "conditions": {"ready": i % 7 != 0},
            "nodeName": f"node-{i % 5}",
            "zone": f"zone-{i % 3}",
        }
        for i in range(count)
    ]
    for _ in range(draw(st.integers(0, 3))):
        index = draw(st.integers(0, count - 1))
        endpoints[index] = draw(
            st.sampled_from(
                [
                    {"addresses": [address(0)]},  # a duplicate of the first
                    {"addresses": ["fd09::1" if family == "IPv4" else "10.9.0.1"]},
                    {"addresses": ["not-an-address"]},
                    {"addresses": []},
                    {"addresses": [address(index)], "conditions": {"ready": "yes"}},
                    {"addresses": [address(index)], "hints": {"forZones": "zone-a"}},
                ]
            )
        )
    return _slice(
        service,
        namespace,
        f"big-{count}",
        family,
        [{"name": "http", "protocol": "TCP", "port": 8080}],
        endpoints,
    )


@st.composite
def colliding_service(draw: st.DrawFn, namespace: str, name: str) -> Document:
    """A Service with duplicated ports, mixed or repeated cluster IPs, and edge numbers: each
    field valid on its own, the whole nonsense (what an API server's validation would refuse)."""
    ip = st.sampled_from(["10.96.0.10", "10.96.0.77", "fd00:96::77", "10.96.0.10"])
    port = st.sampled_from([0, 1, 53, 80, 65535, 65536])
    ports = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "name": st.sampled_from(["", "http", "http", "dns"]),
                    "protocol": st.sampled_from(["TCP", "UDP", "SCTP"]),
                    "port": port,
                    "nodePort": st.sampled_from([0, 30080, 30080, 65536]),
                }
            ),
            max_size=4,
        )
    )
    cluster_ips = draw(st.lists(ip, min_size=1, max_size=3))
    return _service(
        name,
        namespace,
        cluster_ips,
        ports,
        type_=draw(st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer"])),
        externalIPs=draw(st.lists(ip, max_size=3)),
        externalTrafficPolicy=draw(st.sampled_from(["Cluster", "Local"])),
        healthCheckNodePort=draw(st.sampled_from([0, 32000, 65536])),
    )


@st.composite
def colliding_slice(draw: st.DrawFn, namespace: str, service: str) -> Document:
    """Endpoints of both families in one slice, the same address twice, duplicated ports."""
    address = st.sampled_from(["10.1.1.1", "10.1.1.1", "10.1.1.2", "fd01::1", "10.1.1.1 "])
    family = draw(st.sampled_from(["IPv4", "IPv6"]))
    ports = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "name": st.sampled_from(["http", "http", "dns", ""]),
                    "protocol": st.sampled_from(["TCP", "UDP", "SCTP"]),
                    "port": st.sampled_from([0, 53, 8080, 65535, 65536]),
                }
            ),
            max_size=3,
        )
    )
    endpoints = [
        {"addresses": draw(st.lists(address, min_size=1, max_size=2)), "nodeName": "node-a"}
        for _ in range(draw(st.integers(0, 4)))
    ]
    return _slice(service, namespace, draw(st.sampled_from(["x", "y"])), family, ports, endpoints)
