"""The IPVS objects one Service needs on one node: virtual servers, real servers, bound VIPs.

Per service port, in each IP family of the Service's ClusterIPs (reference §2):

| source                        | virtual server             | real servers                 |
|-------------------------------|----------------------------|------------------------------|
| each ClusterIP of the family  | clusterIP:port             | local if iTP=Local, else cluster |
| each externalIP of the family | ip:port                    | local if eTP=Local, else cluster |
| each LB ingress IP (VIP mode) | ip:port                    | same                         |
| nodePort                      | each node address:nodePort | same                         |

ClusterIPs, externalIPs and LB IPs are bound on the dummy interface (NodePort addresses are
the node's own). Only the externalIPs `plan.external_ips` admits are planned; the others are
named in `external_ip_warnings`.

Where kube-proxy's IPVS mode gave an empty local set the cluster set, ipvsd
gives no real servers: external clients of an eTP=Local Service are not answered from another
node (their source address would be lost and replies blackholed), and iTP=Local drops, as the
API documents. Which endpoints become real servers, and with what weight (1, unless the
Service asks for `ipvsd.io/topology-mode: weight`), is `plan.selection`'s job; every real server
is NAT. A virtual server exists even without real servers (the kernel then refuses new
connections, which is what a client should see).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from ipvsd.model.endpoint import EndpointSlice
from ipvsd.model.ipvs import (
    Family,
    IPAddress,
    RealServer,
    ServiceFlag,
    ServiceKey,
    VirtualServer,
)
from ipvsd.model.service import Service, ServicePort, TrafficPolicy
from ipvsd.plan.backends import Backend, backends_for_port
from ipvsd.plan.context import NodeContext
from ipvsd.plan.scheduling import SchedulerChoice, choose_scheduler, weighted_scheduler
from ipvsd.plan.selection import PortSelection, select_port
from ipvsd.plan.topology import PortPolicy
from ipvsd.plan.topology_annotations import (
    Proximity,
    TopologyHandling,
    TopologyPolicy,
    topology_policy,
)

__all__ = ["DesiredService", "DesiredVirtualServer", "NodeContext", "VipKind", "desired_service"]


class VipKind(enum.Enum):
    """Where a virtual server's address comes from."""

    CLUSTER_IP = "ClusterIP"
    EXTERNAL_IP = "ExternalIP"
    LOAD_BALANCER = "LoadBalancer"
    NODE_PORT = "NodePort"


@dataclass(frozen=True, slots=True)
class DesiredVirtualServer:
    """One virtual server with its real servers, and why it exists (for explain and metrics).

    With a `selection`, `real_servers[i]` is the real server of `selection.chosen[i]`.
    """

    server: VirtualServer
    real_servers: tuple[RealServer, ...]
    kind: VipKind
    port: ServicePort
    uses_local_endpoints: bool
    selection: PortSelection | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class DesiredService:
    """Everything one Service needs on this node; `warnings` become log lines and Events."""

    virtual_servers: tuple[DesiredVirtualServer, ...] = ()
    bound_addresses: tuple[IPAddress, ...] = ()
    warnings: tuple[str, ...] = ()
    notices: tuple[str, ...] = ()  # worth a log line and a Normal Event, not a warning
    external_ip_warnings: tuple[str, ...] = ()  # externalIPs not served, and why
    unavailable: tuple[str, ...] = ()  # what this node lacks (a scheduler): a Warning Event
    duplicates: tuple[str, ...] = ()  # virtual servers asked for twice, and who keeps each

    def real_servers_by_proximity(self) -> dict[str, int]:
        """Distinct real servers over every virtual server, counted by proximity name."""
        seen = {
            (chosen.backend.address, chosen.backend.port): chosen.proximity.value
            for d in self.virtual_servers
            if d.selection is not None
            for chosen in d.selection.chosen
        }
        counts = dict.fromkeys((p.value for p in Proximity), 0)
        for proximity in seen.values():
            counts[proximity] += 1
        return counts

    def local_ready_endpoints(self) -> int:
        """What the healthCheckNodePort reports: this node's *ready* endpoints that serve the
        Service's externally local virtual servers.

        Serving-terminating endpoints still take traffic when no ready one is left (the
        fallback of `select_port`), but they do not count here, as in kube-proxy: a node whose
        pods are all terminating answers 503, so the load balancer moves new clients to nodes
        that will keep serving them while a rollout runs.
        """
        return len(
            {
                (chosen.backend.address, chosen.backend.port)
                for d in self.virtual_servers
                if d.kind is not VipKind.CLUSTER_IP
                and d.uses_local_endpoints
                and d.selection is not None
                for chosen in d.selection.chosen
                if chosen.backend.ready
            }
        )

    @property
    def topology_fallback(self) -> bool:
        return any(d.selection is not None and d.selection.fallback for d in self.virtual_servers)


def desired_service(
    service: Service, slices: Iterable[EndpointSlice], node: NodeContext
) -> DesiredService:
    """The desired IPVS objects of `service` on `node`, sorted by virtual-server key."""
    slices = tuple(slices)
    topology = topology_policy(service)
    scheduling = choose_scheduler(
        service,
        default=node.default_scheduler,
        available=node.schedulers,
        missing=node.missing_schedulers,
    )
    notices: tuple[str, ...] = ()
    if topology.mode is TopologyHandling.WEIGHT:
        scheduling, notices = _weighted(scheduling, node)
    servers: list[DesiredVirtualServer] = []
    bound: set[IPAddress] = set()
    service_families = {Family.of(ip) for ip in service.cluster_ips}
    for family in node.families:
        if family not in service_families:  # a single-stack Service is not in the other family
            continue
        vips = _vips(service, family, node)
        bound.update(address for kind, address in vips if kind is not VipKind.NODE_PORT)
        for port in service.ports:
            backends = backends_for_port(slices, port, family)
            servers.extend(
                _port_servers(
                    service,
                    port,
                    vips,
                    backends,
                    node=node,
                    scheduling=scheduling,
                    topology=topology,
                )
            )
    servers, duplicates = _first_of_each_key(servers)
    servers.sort(key=lambda d: d.server.key.sort_key())
    return DesiredService(
        virtual_servers=tuple(servers),
        bound_addresses=tuple(sorted(bound, key=lambda a: (a.version, int(a)))),
        warnings=scheduling.warnings + topology.warnings,
        notices=notices,
        unavailable=scheduling.unavailable,
        external_ip_warnings=node.external_ips.warnings(service.external_ips),
        duplicates=duplicates,
    )


def _weighted(
    scheduling: SchedulerChoice, node: NodeContext
) -> tuple[SchedulerChoice, tuple[str, ...]]:
    """Weight mode needs a scheduler that honours weights: rr, lc and dh would spread evenly."""
    sibling = weighted_scheduler(scheduling.name)
    if sibling is None:
        return scheduling, ()
    if sibling not in node.schedulers or sibling in node.missing_schedulers:
        warning = (
            f"ipvsd.io/topology-mode: weight: scheduler {scheduling.name!r} ignores weights and "
            f"this node has no {sibling!r}; traffic is spread evenly"
        )
        return replace(scheduling, warnings=(*scheduling.warnings, warning)), ()
    notice = (
        f"ipvsd.io/topology-mode: weight needs a weighted scheduler; "
        f"using {sibling!r} instead of {scheduling.name!r}"
    )
    return replace(scheduling, name=sibling), (notice,)


def _vips(service: Service, family: Family, node: NodeContext) -> list[tuple[VipKind, IPAddress]]:
    version = 4 if family is Family.INET else 6
    vips = [(VipKind.CLUSTER_IP, ip) for ip in service.cluster_ips if ip.version == version]
    vips += [
        (VipKind.LOAD_BALANCER, ip) for ip in service.load_balancer_ips if ip.version == version
    ]  # before externalIPs: an address in both keeps its loadBalancerSourceRanges
    external_ips = node.external_ips.admitted(service.external_ips)  # plan.external_ips
    vips += [(VipKind.EXTERNAL_IP, ip) for ip in external_ips if ip.version == version]
    vips += [(VipKind.NODE_PORT, ip) for ip in node.node_port_addresses if ip.version == version]
    return vips


def _port_servers(
    service: Service,
    port: ServicePort,
    vips: list[tuple[VipKind, IPAddress]],
    backends: tuple[Backend, ...],
    *,
    node: NodeContext,
    scheduling: SchedulerChoice,
    topology: TopologyPolicy,
) -> list[DesiredVirtualServer]:
    exposed = port.node_port != 0 or any(
        kind in (VipKind.EXTERNAL_IP, VipKind.LOAD_BALANCER) for kind, _ in vips
    )
    policy = PortPolicy(
        internal_local=service.internal_traffic_policy is TrafficPolicy.LOCAL,
        external_local=exposed and service.external_traffic_policy is TrafficPolicy.LOCAL,
        externally_accessible=exposed,
    )
    sets = select_port(
        backends,
        policy,
        topology=topology,
        distribution=service.traffic_distribution,
        node=node,
    )
    result = []
    for kind, address in vips:
        if kind is VipKind.NODE_PORT:
            if not port.node_port:
                continue
            number = port.node_port
        else:
            number = port.port
        local = policy.internal_local if kind is VipKind.CLUSTER_IP else policy.external_local
        key = ServiceKey.for_protocol(port.protocol, address, number)
        selection = sets.local if local else sets.cluster
        result.append(
            DesiredVirtualServer(
                server=_virtual_server(service, key, scheduling),
                real_servers=_real_servers(selection),
                kind=kind,
                port=port,
                uses_local_endpoints=local,
                selection=selection,
            )
        )
    return result


def _virtual_server(
    service: Service, key: ServiceKey, scheduling: SchedulerChoice
) -> VirtualServer:
    flags = scheduling.flags
    timeout = 0
    if service.session_affinity:
        flags |= ServiceFlag.PERSISTENT
        timeout = service.affinity_timeout
    return VirtualServer(key, scheduling.name, flags, timeout)


def _real_servers(selection: PortSelection) -> tuple[RealServer, ...]:
    return tuple(RealServer(c.backend.address, c.backend.port, c.weight) for c in selection.chosen)


def _first_of_each_key(
    servers: list[DesiredVirtualServer],
) -> tuple[list[DesiredVirtualServer], tuple[str, ...]]:
    """One virtual server per key, the first asked for (in port order, then ClusterIP, LB,
    externalIP, NodePort), with a warning for each one dropped.

    The API refuses a Service that asks for one twice (a repeated clusterIP or externalIP, two
    ports with one port number and protocol, an externalIP equal to a node address on a port
    equal to a nodePort), but a store that validates nothing, or an older server, can still
    deliver one. Planned twice, one key got two plans (the later's real servers winning) and
    every full sync of the node failed (its early additions took the key twice).
    """
    kept: dict[ServiceKey, DesiredVirtualServer] = {}
    warnings = []
    for entry in servers:
        first = kept.setdefault(entry.server.key, entry)
        if first is not entry:
            warnings.append(
                f"{entry.server.key}: asked for again by port {entry.port.name!r} "
                f"({entry.kind.value}); port {first.port.name!r} ({first.kind.value}) keeps it"
            )
    return list(kept.values()), tuple(dict.fromkeys(warnings))
