"""`ipvsd explain SERVICE [--node NODE]`: why traffic to a Service goes where it goes.

It reads the Service, its EndpointSlices and the Nodes from the API (with `--kubeconfig`, no
root, no kernel), plans the Service for the node exactly as the daemon does (the same
`desired_service`, the same flags: `--ipvs-scheduler`, `--topology-source`,
`--nodeport-addresses`), and prints, per service port, the virtual servers and every endpoint
kept or left out with its reason. NodePort addresses are the Node's primary addresses from its
status (the daemon uses the host's interfaces, which an operator's laptop does not have).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ipvsd.cli import ExplainRequest
from ipvsd.config import ProxyConfig
from ipvsd.kube.auth import load_credentials
from ipvsd.kube.client import ApiClient, ApiError, ApiUnreachable
from ipvsd.kube.convert import (
    ConversionError,
    endpoint_slice_from_dict,
    node_from_dict,
    service_from_dict,
)
from ipvsd.kube.resources import HEADLESS_LABEL, SERVICE_PROXY_NAME_LABEL
from ipvsd.model.endpoint import EndpointSlice
from ipvsd.model.ipvs import Family
from ipvsd.model.node import Node
from ipvsd.model.service import Service, ServicePort
from ipvsd.plan.context import NodeContext
from ipvsd.plan.desired import DesiredService, DesiredVirtualServer, desired_service
from ipvsd.plan.scheduling import KNOWN_SCHEDULERS

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class ExplainError(Exception):
    """Why there is nothing to explain (not found, API unreachable, not ipvsd's Service)."""


@dataclass(frozen=True, slots=True)
class Cluster:
    """What explain reads from the API for one Service."""

    service: Service
    slices: tuple[EndpointSlice, ...]
    nodes: Mapping[str, Node]


async def explain(config: ProxyConfig, request: ExplainRequest) -> str:
    """The explanation text; raises `ExplainError` with a message for the operator."""
    cluster = await read_cluster(config, request)
    node = cluster.nodes.get(request.node)
    if node is None:
        raise ExplainError(f"node {request.node!r} not found (give one with --node NODE)")
    context = explain_context(config, node, cluster.nodes)
    desired = desired_service(cluster.service, cluster.slices, context)
    return render(cluster.service, desired, context)


async def read_cluster(config: ProxyConfig, request: ExplainRequest) -> Cluster:
    ref = f"{request.namespace}/{request.name}"
    try:
        credentials = load_credentials(kubeconfig=config.kubeconfig, master=config.master)
        async with ApiClient(credentials=credentials, request_timeout=30.0) as client:
            raw = await client.get_json(
                f"/api/v1/namespaces/{request.namespace}/services/{request.name}", {}
            )
            slices = await client.get_json(
                f"/apis/discovery.k8s.io/v1/namespaces/{request.namespace}/endpointslices",
                {"labelSelector": f"{SERVICE_NAME_LABEL}={request.name}"},
            )
            nodes = await client.get_json("/api/v1/nodes", {})
    except ApiError as error:
        if error.code == 404:
            raise ExplainError(f"Service {ref} not found") from error
        raise ExplainError(f"the API server refused: {error}") from error
    except ApiUnreachable as error:
        raise ExplainError(f"the API server is unreachable: {error}") from error
    _check_ours(raw, ref, config.proxy_name)
    try:
        service = service_from_dict(raw)
    except ConversionError as error:
        raise ExplainError(f"Service {ref} is malformed: {error}") from error
    if service is None:
        raise ExplainError(
            f"Service {ref} is headless, ExternalName or has no ClusterIP: ipvsd programs "
            "nothing for it"
        )
    return Cluster(service, _slices(slices), _nodes(nodes))


def explain_context(config: ProxyConfig, node: Node, nodes: Mapping[str, Node]) -> NodeContext:
    primary = node.primary_addresses
    return NodeContext(
        name=node.name,
        zone=node.zone,
        node_port_addresses=tuple(
            a for a in primary if config.nodeport_addresses.allows(a, primary_addresses=primary)
        ),
        families=(Family.INET, Family.INET6),
        default_scheduler=config.ipvs_scheduler,
        schedulers=KNOWN_SCHEDULERS,
        labels=node.labels,
        nodes=nodes,
        topology_source=config.topology_source,
    )


def render(service: Service, desired: DesiredService, node: NodeContext) -> str:
    """The explanation of one planned Service, as plain text."""
    zone = f" (zone {node.zone})" if node.zone else " (no zone label)"
    lines = [f"Service {service.ref} on node {node.name}{zone}"]
    schedulers = sorted({d.server.scheduler for d in desired.virtual_servers})
    distribution = service.traffic_distribution or "(none)"
    lines.append(
        f"  scheduler: {', '.join(schedulers) or '-'}; trafficDistribution: {distribution}; "
        f"topology source: {node.topology_source}"
    )
    lines += [f"  note: {note}" for note in desired.notices]
    lines += [f"  warning: {warning}" for warning in desired.warnings]
    if not desired.virtual_servers:
        lines.append("  no virtual servers on this node (no port of a family this node serves)")
    by_port: dict[ServicePort, list[DesiredVirtualServer]] = {}
    for server in desired.virtual_servers:
        by_port.setdefault(server.port, []).append(server)
    for port in service.ports:
        servers = by_port.get(port)
        if not servers:
            continue
        name = f" {port.name}" if port.name else ""
        lines.append(f"port{name} {port.port}/{port.protocol.name}")
        lines += _port_lines(servers, node)
    return "\n".join(lines) + "\n"


def _port_lines(servers: list[DesiredVirtualServer], node: NodeContext) -> list[str]:
    groups: dict[int, list[DesiredVirtualServer]] = {}
    for server in servers:
        groups.setdefault(id(server.selection), []).append(server)
    lines = []
    for group in groups.values():
        vips = ", ".join(f"{d.server.key} ({d.kind.value})" for d in group)
        lines.append(f"  virtual servers: {vips}")
        selection = group[0].selection
        if selection is None:  # every planned virtual server has one
            continue
        lines.append(f"  real servers: {selection.summary}")
        if not selection.candidates:
            lines.append("    (no endpoints: new connections are refused)")
        for backend, chosen, reason in selection.reasons(node):
            target = f"{backend.address}:{backend.port}"
            if chosen is None:
                lines.append(f"    - {target:<28} {'':<10} {reason}")
            else:
                lines.append(f"    + {target:<28} {'weight ' + str(chosen.weight):<10} {reason}")
    return lines


def _check_ours(raw: dict[str, Any], ref: str, proxy_name: str) -> None:
    labels = (raw.get("metadata") or {}).get("labels") or {}
    if HEADLESS_LABEL in labels:
        raise ExplainError(f"Service {ref} is headless ({HEADLESS_LABEL}): no proxy handles it")
    named = labels.get(SERVICE_PROXY_NAME_LABEL)
    if named is not None and named != proxy_name:
        raise ExplainError(
            f"Service {ref} is handled by proxy {named!r} ({SERVICE_PROXY_NAME_LABEL}), "
            f"not by {proxy_name!r}"
        )


def _slices(listed: dict[str, Any]) -> tuple[EndpointSlice, ...]:
    result = []
    for item in listed.get("items") or ():
        try:
            converted = endpoint_slice_from_dict(item)
        except ConversionError:
            continue  # the daemon skips a malformed slice too
        if converted is not None:
            result.append(converted)
    return tuple(result)


def _nodes(listed: dict[str, Any]) -> dict[str, Node]:
    result = {}
    for item in listed.get("items") or ():
        try:
            node = node_from_dict(item)
        except ConversionError:
            continue
        result[node.name] = node
    return result
