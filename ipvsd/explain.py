"""`ipvsd explain SERVICE [--node NODE]`: why traffic to a Service goes where it goes.

It reads the Service, its EndpointSlices and the Nodes from the API (`kube.service_view`,
with `--kubeconfig`; no root, no kernel), plans the Service for the node exactly as the daemon
does (the same `desired_service`, the same flags: `--ipvs-scheduler`, `--topology-source`,
`--nodeport-addresses`), and prints, per service port, the virtual servers and every endpoint
kept or left out with its reason. NodePort addresses are the Node's primary addresses from its
status (the daemon uses the host's interfaces, which an operator's laptop does not have).
"""

from __future__ import annotations

from collections.abc import Mapping

from ipvsd.config.command_line import ExplainRequest
from ipvsd.config.settings import ProxyConfig
from ipvsd.kube.auth import load_credentials
from ipvsd.kube.client import ApiClient
from ipvsd.kube.service_view import ServiceUnavailable, read_service_view
from ipvsd.model.ipvs import KNOWN_SCHEDULERS, Family
from ipvsd.model.node import Node
from ipvsd.model.service import Service, ServicePort, ServiceRef
from ipvsd.plan.context import NodeContext
from ipvsd.plan.desired import DesiredService, DesiredVirtualServer, desired_service


class ExplainError(Exception):
    """Why there is nothing to explain (not found, API unreachable, not ipvsd's Service)."""


async def explain(config: ProxyConfig, request: ExplainRequest) -> str:
    """The explanation text; raises `ExplainError` with a message for the operator."""
    ref = ServiceRef(request.namespace, request.name)
    try:
        credentials = load_credentials(kubeconfig=config.kubeconfig, master=config.master)
        async with ApiClient(credentials=credentials, request_timeout=30.0) as client:
            view = await read_service_view(client, ref, config.proxy_name)
    except ServiceUnavailable as error:
        raise ExplainError(str(error)) from error
    node = view.nodes.get(request.node)
    if node is None:
        raise ExplainError(f"node {request.node!r} not found (give one with --node NODE)")
    context = explain_context(config, node, view.nodes)
    desired = desired_service(view.service, view.slices, context)
    return render(view.service, desired, context)


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
