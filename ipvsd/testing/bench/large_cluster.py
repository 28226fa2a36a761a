"""A large, realistic cluster as API documents, for the informer benchmark.

Deterministic (seeded) so runs compare: Services of every type with one to three ports, some
with session affinity, topology annotations, traffic distribution or the ipvsd proxy-name
label; one EndpointSlice per Service whose endpoints spread over nodes and zones, mostly ready,
some not ready, some terminating, with zone hints where the Service asks for them.
"""

from __future__ import annotations

import random
from ipaddress import IPv4Address
from typing import Any

Document = dict[str, Any]

ZONES = ("zone-a", "zone-b", "zone-c")
POD_NETWORK = int(IPv4Address("10.128.0.0"))
PORT_SETS = (
    (("http", "TCP", 80, 8080),),
    (("http", "TCP", 80, 8080), ("https", "TCP", 443, 8443)),
    (("grpc", "TCP", 9090, 9090), ("metrics", "TCP", 9100, 9100)),
    (("dns", "UDP", 53, 5353), ("dns-tcp", "TCP", 53, 5353)),
    (("http", "TCP", 80, 8080), ("https", "TCP", 443, 8443), ("admin", "TCP", 8081, 8081)),
)
TRIGGER_TIME = "2026-11-22T12:00:00Z"


NAMESPACES = 100
NODE_PORT_SERVICES = 1_000  # Services with node ports, at most


def namespaces() -> list[Document]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"ns-{i}"}}
        for i in range(NAMESPACES)
    ]


def nodes(count: int) -> list[Document]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": f"node-{i}",
                "labels": {
                    "kubernetes.io/hostname": f"node-{i}",
                    "topology.kubernetes.io/zone": ZONES[i % len(ZONES)],
                },
            },
        }
        for i in range(count)
    ]


def services_and_slices(
    count: int, *, endpoints_per_slice: int, node_count: int, seed: int = 1
) -> tuple[list[Document], list[Document]]:
    """`count` Services and one EndpointSlice each (namespaces ns-0..ns-99)."""
    rng = random.Random(seed)
    services, slices = [], []
    # One Service in ten has node ports, as many as the default range (30000-32767) holds: at
    # two ports each on average, a thousand of them (a real cluster cannot have more either).
    node_port_share = min(0.10, NODE_PORT_SERVICES / max(count, 1))
    for i in range(count):
        namespace, name = f"ns-{i % NAMESPACES}", f"svc-{i}"
        ports = PORT_SETS[rng.randrange(len(PORT_SETS))]
        service = _service(rng, namespace, name, ports, node_port_share)
        services.append(service)
        hinted = "trafficDistribution" in service["spec"]
        first = POD_NETWORK + i * endpoints_per_slice
        slices.append(
            endpoint_slice(
                rng,
                namespace,
                name,
                ports,
                [first + j for j in range(endpoints_per_slice)],
                node_count=node_count,
                hinted=hinted,
                labels=service["metadata"]["labels"],
            )
        )
    return services, slices


def _service(
    rng: random.Random,
    namespace: str,
    name: str,
    ports: tuple[tuple[str, str, int, int], ...],
    node_port_share: float,
) -> Document:
    roll = rng.random() / node_port_share * 0.10  # 0.03 / 0.10 of those with node ports are LBs
    service_type = "LoadBalancer" if roll < 0.03 else "NodePort" if roll < 0.10 else "ClusterIP"
    labels = {"app": name}
    if rng.random() < 0.05:
        labels["service.kubernetes.io/service-proxy-name"] = "ipvsd"
    annotations = {"kubectl.kubernetes.io/last-applied-configuration": "{}"}
    if rng.random() < 0.05:
        annotations["ipvsd.io/scheduler"] = "mh"
    spec: Document = {
        "type": service_type,
        "selector": {"app": name},
        "ports": [
            {"name": port, "protocol": protocol, "port": number, "targetPort": target}
            for port, protocol, number, target in ports
        ],
    }
    if rng.random() < 0.1:
        spec["sessionAffinity"] = "ClientIP"
    if rng.random() < 0.2:
        spec["trafficDistribution"] = "PreferClose"
    if service_type == "LoadBalancer" and rng.random() < 0.5:
        spec["externalTrafficPolicy"] = "Local"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "namespace": namespace,
            "name": name,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": spec,
    }


def endpoint_slice(
    rng: random.Random,
    namespace: str,
    service_name: str,
    ports: tuple[tuple[str, str, int, int], ...],
    addresses: list[int],
    *,
    node_count: int,
    hinted: bool,
    labels: dict[str, str],
) -> Document:
    endpoints = []
    for number in addresses:
        node = rng.randrange(node_count)
        zone = ZONES[node % len(ZONES)]
        endpoint: Document = {
            "addresses": [str(IPv4Address(number))],
            "conditions": _conditions(rng.random()),
            "nodeName": f"node-{node}",
            "zone": zone,
            "targetRef": {
                "kind": "Pod",
                "namespace": namespace,
                "name": f"{service_name}-{number:x}",
                "uid": f"{number:08x}-0000-4000-8000-000000000000",
            },
        }
        if hinted:
            endpoint["hints"] = {"forZones": [{"name": zone}]}
        endpoints.append(endpoint)
    own_labels = {
        "kubernetes.io/service-name": service_name,
        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
    }
    proxy_name = labels.get("service.kubernetes.io/service-proxy-name")
    if proxy_name:
        own_labels["service.kubernetes.io/service-proxy-name"] = proxy_name
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "namespace": namespace,
            "name": f"{service_name}-abcde",
            "labels": own_labels,
            "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": TRIGGER_TIME},
        },
        "addressType": "IPv4",
        "ports": [
            {"name": port, "protocol": protocol, "port": target}
            for port, protocol, _number, target in ports
        ],
        "endpoints": endpoints,
    }


def _conditions(roll: float) -> dict[str, bool]:
    if roll < 0.90:
        return {"ready": True, "serving": True, "terminating": False}
    if roll < 0.95:
        return {"ready": False, "serving": False, "terminating": False}
    return {"ready": False, "serving": True, "terminating": True}
