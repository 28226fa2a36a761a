"""Which virtual servers ipvsd owns, and so may delete when no Service wants them any more.

kube-proxy deleted every virtual server it had not created in its current sync, which wiped
keepalived's and hand-made entries (#59507). ipvsd's rule is stateless, so it survives a
restart and takes over the table a kube-proxy left behind:

- a virtual server on an address bound to the proxy's dummy interface (`kube-ipvs0`): only a
  service proxy puts addresses there (ClusterIPs, externalIPs, load-balancer IPs);
- a virtual server on an address of a Service CIDR that ipvsd's local route makes the host's
  (`--service-cluster-ip-range`, `dataplane.service_routes`): only ClusterIPs live there;
- a virtual server on one of the NodePort addresses with a port in the NodePort range;
- never anything inside `--ipvs-exclude-cidrs`, and never a fwmark service (ipvsd makes none).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ipvsd.config.settings import DEFAULT_NODE_PORT_RANGE
from ipvsd.model.ipvs import IPAddress, ServiceKey
from ipvsd.model.service import IPNetwork


@dataclass(frozen=True, slots=True)
class Ownership:
    """The facts ownership is decided on; `owns` is the predicate the diff takes."""

    bound_addresses: frozenset[IPAddress]
    node_port_addresses: frozenset[IPAddress]
    node_port_range: tuple[int, int] = DEFAULT_NODE_PORT_RANGE
    excluded: tuple[IPNetwork, ...] = ()
    routed: tuple[IPNetwork, ...] = ()

    @staticmethod
    def of(
        *,
        bound: Iterable[IPAddress],
        node_port_addresses: Iterable[IPAddress],
        node_port_range: tuple[int, int] = DEFAULT_NODE_PORT_RANGE,
        excluded: Iterable[IPNetwork] = (),
        routed: Iterable[IPNetwork] = (),
    ) -> Ownership:
        return Ownership(
            frozenset(bound),
            frozenset(node_port_addresses),
            node_port_range,
            tuple(excluded),
            tuple(routed),
        )

    def owns(self, key: ServiceKey) -> bool:
        address = key.address
        if key.fwmark or address is None:
            return False
        if any(address.version == net.version and address in net for net in self.excluded):
            return False
        if address in self.bound_addresses:
            return True
        if any(address.version == net.version and address in net for net in self.routed):
            return True
        low, high = self.node_port_range
        return address in self.node_port_addresses and low <= key.port <= high
