"""A Service as the proxy needs it: only the fields that decide what gets programmed.

Built from raw API objects in `ipvsd.kube.convert`; everything downstream sees these values.
Service ports are matched to EndpointSlice ports by name (as kube-proxy does), so a port's
targetPort is not needed here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network

from ipvsd.model.ipvs import IPAddress, Protocol

IPNetwork = IPv4Network | IPv6Network

DEFAULT_AFFINITY_TIMEOUT = 10800  # seconds; the API's default for sessionAffinityConfig


class ServiceType(enum.Enum):
    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"


class TrafficPolicy(enum.Enum):
    CLUSTER = "Cluster"
    LOCAL = "Local"


@dataclass(frozen=True, slots=True, order=True)
class ServiceRef:
    """namespace/name of a Service; the key that joins Services and their EndpointSlices."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class ServicePort:
    """One port of a Service; `node_port` is 0 when the Service has none."""

    name: str
    protocol: Protocol
    port: int
    node_port: int = 0


@dataclass(frozen=True, slots=True)
class Service:
    """The proxy-relevant part of a core/v1 Service (ExternalName and headless never get here).

    `annotations` keeps only the annotations ipvsd reads (ipvsd.io/*, kube-router.io/*,
    service.kubernetes.io/topology-*), sorted, so equality means "nothing relevant changed".
    """

    ref: ServiceRef
    uid: str
    type: ServiceType
    cluster_ips: tuple[IPAddress, ...]
    ports: tuple[ServicePort, ...]
    external_ips: tuple[IPAddress, ...] = ()
    load_balancer_ips: tuple[IPAddress, ...] = ()
    load_balancer_source_ranges: tuple[IPNetwork, ...] = ()
    session_affinity: bool = False
    affinity_timeout: int = DEFAULT_AFFINITY_TIMEOUT
    external_traffic_policy: TrafficPolicy = TrafficPolicy.CLUSTER
    internal_traffic_policy: TrafficPolicy = TrafficPolicy.CLUSTER
    health_check_node_port: int = 0
    traffic_distribution: str | None = None
    annotations: tuple[tuple[str, str], ...] = ()
    # metadata.creationTimestamp as the API wrote it (RFC 3339 in UTC, so text order is time
    # order); "" when absent. Decides which of two Services asking for one virtual server
    # keeps it (`reconcile.claims`): the older one.
    created: str = ""

    def annotation(self, key: str) -> str | None:
        for name, value in self.annotations:
            if name == key:
                return value
        return None
