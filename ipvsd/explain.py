"""`ipvsd explain SERVICE [--node NODE]` and `ipvsd --dry-run`: plans read from the API.

Both read from the API once (`kube.service_view`, with `--kubeconfig`; no root, no kernel),
plan for the node exactly as the daemon does (the same `desired_service`, the same flags:
`--ipvs-scheduler`, `--topology-source`, `--nodeport-addresses`, `--service-external-ip-range`
and `--feature-gates`) and change nothing. `explain`
prints, per service port of one Service, the virtual servers and every endpoint kept or left
out with its reason; `--dry-run` prints the whole table the node would get, in `ipvsadm -Sn`
form, and the invalid annotations the daemon would report. NodePort addresses are the Node's
primary addresses from its status, narrowed by `--nodeport-addresses` (the daemon uses the
host's interfaces, which an operator's laptop does not have), so both show the table of the
named node wherever they run. Both fail at once, with one message, where the daemon would
retry: the API unreachable, a refused token, an unknown node.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from ipvsd.config.command_line import ExplainRequest
from ipvsd.config.settings import ProxyConfig
from ipvsd.dataplane.ipvsadm_format import ServiceRules, rules_lines, scheduler_flag_names
from ipvsd.kube.auth import load_credentials
from ipvsd.kube.client import ApiClient
from ipvsd.kube.service_view import (
    ServiceUnavailable,
    read_cluster_view,
    read_service_view,
)
from ipvsd.model.firewall import FirewallConfig
from ipvsd.model.ipvs import KNOWN_SCHEDULERS, Family, ServiceFlag
from ipvsd.model.node import Node
from ipvsd.model.service import Service, ServicePort, ServiceRef
from ipvsd.plan.context import NodeContext
from ipvsd.plan.desired import DesiredService, DesiredVirtualServer, desired_service
from ipvsd.plan.external_ips import ExternalIPPolicy
from ipvsd.plan.firewall import masquerade_decision
from ipvsd.reconcile.claims import Claims

T = TypeVar("T")
PERSISTENT = ServiceFlag.PERSISTENT


class ExplainError(Exception):
    """Why there is nothing to explain (not found, API unreachable, not ipvsd's Service)."""


@dataclass(frozen=True, slots=True)
class NodeTable:
    """`--dry-run`'s answer: the table in `ipvsadm -Sn` form, and what the daemon would log
    of the Services: their warnings (invalid annotations) and notes (a scheduler swapped)."""

    rules: str
    messages: tuple[str, ...]


async def _read(config: ProxyConfig, read: Callable[[ApiClient], Awaitable[T]]) -> T:
    """One read from the API; `ExplainError` when it fails (no retry: a person is waiting)."""
    credentials = load_credentials(kubeconfig=config.kubeconfig, master=config.master)
    try:
        async with ApiClient(credentials=credentials, request_timeout=30.0) as client:
            return await read(client)
    except ServiceUnavailable as error:
        raise ExplainError(str(error)) from error


def _node(nodes: Mapping[str, Node], name: str, flag: str) -> Node:
    node = nodes.get(name)
    if node is None:
        raise ExplainError(f"node {name!r} not found (give one with {flag} NODE)")
    return node


async def explain(config: ProxyConfig, request: ExplainRequest) -> str:
    """The explanation text; raises `ExplainError` with a message for the operator."""
    ref = ServiceRef(request.namespace, request.name)
    view = await _read(config, lambda client: read_service_view(client, ref, config.proxy_name))
    node = _node(view.nodes, request.node, "--node")
    context = explain_context(config, node, view.nodes)
    desired = desired_service(view.service, view.slices, context)
    return render(view.service, desired, context, config.firewall_config)


async def node_table(config: ProxyConfig) -> NodeTable:
    """The table `config.node_name` would get, as sorted `ipvsadm -Sn` lines (`--dry-run`)."""
    view = await _read(config, lambda client: read_cluster_view(client, config.proxy_name))
    node = _node(view.nodes, config.node_name, "--hostname-override")
    context = explain_context(config, node, view.nodes)
    created = {s.ref: s.created for s in view.services}
    planned = Claims(created=created.__getitem__).resolve_all(  # as the daemon settles it
        {s.ref: desired_service(s, view.slices.get(s.ref, ()), context) for s in view.services}
    )
    entries: list[ServiceRules] = []
    messages: list[str] = []
    for ref, desired in sorted(planned.items()):
        entries += [ServiceRules(d.server, d.real_servers) for d in desired.virtual_servers]
        messages += [f"warning: Service {ref}: {text}" for text in desired.warnings]
        messages += [f"warning: Service {ref}: {text}" for text in desired.external_ip_warnings]
        messages += [f"warning: Service {ref}: {text}" for text in desired.duplicates]
        messages += [f"note: Service {ref}: {text}" for text in desired.notices]
    entries.sort(key=lambda e: e.server.key.sort_key())
    return NodeTable("".join(f"{line}\n" for line in rules_lines(entries)), tuple(messages))


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
        external_ips=ExternalIPPolicy(
            allowed=config.allow_service_external_ips, ranges=config.service_external_ip_ranges
        ),
    )


def render(
    service: Service,
    desired: DesiredService,
    node: NodeContext,
    firewall: FirewallConfig | None = None,
) -> str:
    """The explanation of one planned Service, as plain text."""
    firewall = firewall if firewall is not None else FirewallConfig()
    zone = f" (zone {node.zone})" if node.zone else " (no zone label)"
    lines = [f"Service {service.ref} on node {node.name}{zone}"]
    distribution = service.traffic_distribution or "(none)"
    lines.append(
        f"  scheduler: {_schedulers(desired)}; trafficDistribution: {distribution}; "
        f"topology source: {node.topology_source}"
    )
    lines += _service_lines(service, desired)
    lines += [f"  note: {note}" for note in desired.notices]
    lines += [f"  warning: {warning}" for warning in desired.warnings]
    lines += [f"  warning: {warning}" for warning in desired.external_ip_warnings]
    lines += [f"  warning: {warning}" for warning in desired.duplicates]
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
        lines += _port_lines(service, servers, node, firewall)
    return "\n".join(lines) + "\n"


def _schedulers(desired: DesiredService) -> str:
    """Each scheduler with its flags as ipvsadm names them (`mh (mh-fallback, mh-port)`)."""
    named = set()
    for d in desired.virtual_servers:
        flags = scheduler_flag_names(d.server.scheduler, d.server.flags)
        named.add(f"{d.server.scheduler} ({', '.join(flags)})" if flags else d.server.scheduler)
    return ", ".join(sorted(named)) or "-"


def _service_lines(service: Service, desired: DesiredService) -> list[str]:
    """Persistence, source ranges and the health check: what the virtual servers' lines do
    not show."""
    persistent = sorted(
        {d.server.timeout for d in desired.virtual_servers if d.server.flags & PERSISTENT}
    )
    if persistent:
        seconds = ", ".join(str(t) for t in persistent)
        lines = [
            f"  session affinity: ClientIP, timeout {seconds} s (persistent virtual servers: "
            "a client keeps its real server while it returns within the timeout)"
        ]
    else:
        lines = ["  session affinity: None"]
    if service.load_balancer_source_ranges:
        ranges = ", ".join(str(network) for network in service.load_balancer_source_ranges)
        lines.append(
            f"  loadBalancerSourceRanges: {ranges} (only these sources reach the load-balancer "
            "IPs; others are dropped)"
        )
    if service.health_check_node_port:
        count = desired.local_ready_endpoints()
        answer = (
            f"200 ({count} local ready endpoint{'s' if count != 1 else ''}) while ipvsd is healthy"
            if count
            else "503 (no local ready endpoint: load balancers send this node no traffic)"
        )
        lines.append(f"  healthCheckNodePort {service.health_check_node_port}: answers {answer}")
    return lines


def _port_lines(
    service: Service,
    servers: list[DesiredVirtualServer],
    node: NodeContext,
    firewall: FirewallConfig,
) -> list[str]:
    groups: dict[int, list[DesiredVirtualServer]] = {}
    for server in servers:
        groups.setdefault(id(server.selection), []).append(server)
    lines = []
    for group in groups.values():
        vips = ", ".join(f"{d.server.key} ({d.kind.value})" for d in group)
        lines.append(f"  virtual servers: {vips}")
        lines += [f"    {d.server.key}: {masquerade_decision(service, d, firewall)}" for d in group]
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
