"""What ipvsd's nftables table must contain: sets derived from the desired services.

IPVS balances but cannot masquerade or filter, so kube-proxy surrounded it with iptables rules
and ipsets (reference §3). ipvsd keeps the rules fixed (`dataplane.nft`) and expresses
everything that depends on Services as set contents, computed here:

- `cluster_ip_ports`: ClusterIP virtual servers; traffic to them that is not from a pod (per
  the detect-local mode: the node itself, other hosts) is masqueraded, or all of it with
  --masquerade-all; where pods cannot be told apart, traffic whose source is a ClusterIP
  (the node's own: it leaves from the address on kube-ipvs0) and whose destination port is
  that Service's;
- `masquerade_ports`: externalIP and load-balancer virtual servers of Services with
  externalTrafficPolicy Cluster (masqueraded always: the reply must come back through here);
- `node_ports`: NodePorts of Services with externalTrafficPolicy Cluster (same);
- `hairpin`: every real server on this node (or of unknown node), so a pod reaching itself
  through a VIP is masqueraded and its reply does not bypass IPVS. A pod on another node
  sends through its own node's IPVS, never this one's, so remote real servers are left out,
  as kube-proxy does (`IsLocal()` for KUBE-LOOP-BACK): at 10,000 Services the set holds this
  node's share of the endpoints, not all of them;
- `vips` / `vip_ports`: new connections to a VIP on a port that is not a service port are
  rejected (every VIP is a local address; otherwise every host port is reachable through it);
  a ClusterIP inside a routed Service CIDR (`FirewallConfig.service_cidrs`) is left out of
  `vips`: the rule over the whole range covers it (50,000 elements fewer at that scale);
- `lb_restricted` / `lb_allowed`: loadBalancerSourceRanges, per LB VIP and port;
- `health_check_ports`: the healthCheckNodePorts ipvsd answers on;
- `local_redirects`: the externalTrafficPolicy: Local frontends (LB IPs, externalIPs, NodePorts)
  with the ClusterIP and port of their Service: traffic from this node's pods (per the
  detect-local mode) to such a frontend is sent to the ClusterIP instead, so it gets the
  cluster set as in kube-proxy's iptables and nftables modes, while other clients keep the
  local set (kube-proxy's IPVS mode gave everyone the cluster set when the local one was
  empty, and external clients lost their address and their replies).
"""

from __future__ import annotations

from collections.abc import Iterable

from ipvsd.model.firewall import Firewall, FirewallConfig, Redirect, VipPort
from ipvsd.model.ipvs import Family, IPAddress, RealServer
from ipvsd.model.service import IPNetwork, Service, TrafficPolicy
from ipvsd.plan.desired import DesiredService, DesiredVirtualServer, VipKind
from ipvsd.plan.topology_annotations import Proximity


def firewall_for(
    services: Iterable[tuple[Service, DesiredService]], config: FirewallConfig
) -> Firewall:
    """The firewall for every (Service, its desired objects) pair on this node."""
    vips: set[IPAddress] = set()
    vip_ports: set[VipPort] = set()
    cluster_ip_ports: set[VipPort] = set()
    masquerade_ports: set[VipPort] = set()
    node_ports: set[tuple[int, int]] = set()
    hairpin: set[VipPort] = set()
    lb_restricted: set[VipPort] = set()
    lb_allowed: set[tuple[IPAddress, int, int, IPNetwork]] = set()
    health: set[int] = set()
    redirects: set[Redirect] = set()
    routed = config.service_cidrs
    for service, desired in services:
        external_cluster = service.external_traffic_policy is TrafficPolicy.CLUSTER
        if service.health_check_node_port:
            health.add(service.health_check_node_port)
        redirects.update(_local_redirects(desired))
        for entry in desired.virtual_servers:
            key = entry.server.key
            assert key.address is not None  # ipvsd makes no fwmark services
            element = (key.address, key.protocol, key.port)
            hairpin.update((real.address, key.protocol, real.port) for real in _local(entry))
            if entry.kind is VipKind.NODE_PORT:
                if external_cluster:
                    node_ports.add((key.protocol, key.port))
                continue
            if not (entry.kind is VipKind.CLUSTER_IP and _routed(key.address, routed)):
                vips.add(key.address)
            vip_ports.add(element)
            if entry.kind is VipKind.CLUSTER_IP:
                cluster_ip_ports.add(element)
                continue
            if external_cluster:
                masquerade_ports.add(element)
            if entry.kind is VipKind.LOAD_BALANCER and service.load_balancer_source_ranges:
                lb_restricted.add(element)
                lb_allowed.update(
                    (*element, network)
                    for network in service.load_balancer_source_ranges
                    if network.version == key.address.version
                )
    return Firewall(
        config=config,
        vips=frozenset(vips),
        vip_ports=frozenset(vip_ports),
        cluster_ip_ports=frozenset(cluster_ip_ports),
        masquerade_ports=frozenset(masquerade_ports),
        node_ports=frozenset(node_ports),
        hairpin=frozenset(hairpin),
        lb_restricted=frozenset(lb_restricted),
        lb_allowed=frozenset(lb_allowed),
        health_check_ports=frozenset(health),
        local_redirects=frozenset(redirects),
    )


def _routed(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def _local_redirects(desired: DesiredService) -> Iterable[Redirect]:
    """Each externally local frontend of `desired` with the ClusterIP virtual server of the
    same port and family, where that one holds the cluster set (with iTP=Local too it holds
    the local set, and sending pods there would change nothing)."""
    cluster = {
        (d.port, d.server.key.family): d.server.key
        for d in desired.virtual_servers
        if d.kind is VipKind.CLUSTER_IP and not d.uses_local_endpoints
    }
    for entry in desired.virtual_servers:
        key = entry.server.key
        target = cluster.get((entry.port, key.family))
        if entry.kind is VipKind.CLUSTER_IP or not entry.uses_local_endpoints or target is None:
            continue
        assert key.address is not None  # ipvsd makes no fwmark services
        assert target.address is not None
        yield (key.address, key.protocol, key.port, target.address, target.port)


def masquerade_decision(
    service: Service, entry: DesiredVirtualServer, config: FirewallConfig
) -> str:
    """Whether traffic to `entry` is masqueraded (source-NATed to this node), and why: the
    rules `firewall_for`'s sets feed, in words (`ipvsd explain`)."""
    if entry.kind is VipKind.CLUSTER_IP:
        if config.masquerade_all:
            return "masqueraded (--masquerade-all)"
        pods = _pods_in_words(config, entry.server.key.family)
        if pods:
            return f"masqueraded unless the source is a pod ({pods})"
        return (
            "masqueraded only from the node itself (its source is a Service address; no "
            "detect-local of this family tells pods from other sources)"
        )
    if service.external_traffic_policy is TrafficPolicy.CLUSTER:
        return "masqueraded (externalTrafficPolicy Cluster: replies must come back through here)"
    return "not masqueraded: clients keep their address (externalTrafficPolicy Local)"


def _pods_in_words(config: FirewallConfig, family: Family) -> str:
    """How this node's pods are recognised in `family` (empty: they are not)."""
    if config.pod_interface:
        return f"arriving on {config.pod_interface}"
    if config.pod_interface_prefix:
        return f"arriving on {config.pod_interface_prefix}*"
    return ", ".join(str(n) for n in config.pod_cidrs if Family.of(n.network_address) is family)


def _local(entry: DesiredVirtualServer) -> Iterable[RealServer]:
    """The real servers that may be pods of this node (the only ones that can hairpin). A
    loopback address is never a pod's, and masquerading a loopback connection to itself
    breaks it: with an API server advertised on 127.0.0.1 (the test emulator's default, in
    `default/kubernetes`), every new connection of this node to the API would hang once the
    table is loaded (as the critical Services are, before the informers list)."""
    if entry.selection is None:
        return (real for real in entry.real_servers if not real.address.is_loopback)
    return (
        real
        for real, chosen in zip(entry.real_servers, entry.selection.chosen, strict=True)
        if (chosen.proximity is Proximity.NODE or chosen.backend.node_name is None)
        and not real.address.is_loopback
    )
