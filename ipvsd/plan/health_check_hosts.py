"""Where the per-Service health check listeners listen (`--nodeport-addresses`).

kube-proxy's service health server (`pkg/proxy/healthcheck/service_health.go`) listens on every
address (`0.0.0.0`) unless `--nodeport-addresses` narrows NodePorts for the family, and then
on the node's interface addresses those CIDRs match; `primary` stands for the Node's primary
address of each family (kube-proxy turns it into that address's /32 or /128 at start). A family
without a CIDR of its own (or with a zero-length one, `0.0.0.0/0`) matches everything. The same
rule here, per IP family, over the host's addresses outside the dummy device as the last full
sync saw them (loopback included when a CIDR takes it in, as kube-proxy's interface list does);
unlike kube-proxy, which reads them once at start, ipvsd follows address changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import ip_network

from ipvsd.config.values import NodePortAddresses
from ipvsd.model.ipvs import Family, IPAddress

WILDCARD = {Family.INET: "0.0.0.0", Family.INET6: "::"}


def health_check_hosts(
    node_ports: NodePortAddresses,
    host_addresses: Iterable[IPAddress],
    *,
    primary_addresses: Iterable[IPAddress] = (),
    families: Iterable[Family] = (Family.INET, Family.INET6),
) -> tuple[str, ...] | None:
    """The addresses to listen on; None means every address of every family (nothing narrows
    them). A family whose selection matches no address of this host gets no listener."""
    addresses = list(host_addresses)
    primary = list(primary_addresses)
    hosts: list[str] = []
    narrowed = False
    for family in families:
        version = 4 if family is Family.INET else 6
        selectors = [net for net in node_ports.cidrs if net.version == version]
        if node_ports.primary:
            selectors += [ip_network(ip) for ip in primary if ip.version == version]
        if not selectors or any(net.prefixlen == 0 for net in selectors):
            hosts.append(WILDCARD[family])
            continue
        narrowed = True
        matched = {a for a in addresses if a.version == version and any(a in n for n in selectors)}
        hosts += [str(a) for a in sorted(matched, key=int)]
    return tuple(hosts) if narrowed else None
