"""The contents of ipvsd's nftables table, as values: what `plan` computes, `dataplane` loads.

The rules of the table are fixed (`ipvsd.dataplane.nft`); everything that depends on Services
is a set element, and `Firewall` holds those sets (`ipvsd.plan.firewall` says what goes into
each one). `FirewallChanges` is the difference a partial sync sends instead of the whole table
(`ipvsd.plan.firewall_ledger` keeps it). They live here, below both layers, so the nftables
adapter needs nothing from `plan`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from ipvsd.model.ipvs import IPAddress
from ipvsd.model.service import IPNetwork

VipPort = tuple[IPAddress, int, int]  # (address, IP protocol number, port)
# (frontend address, protocol, port, the Service's ClusterIP, its port): see `local_redirects`
Redirect = tuple[IPAddress, int, int, IPAddress, int]


DEFAULT_MASQUERADE_BIT = 14  # kube-proxy's --iptables-masquerade-bit


@dataclass(frozen=True, slots=True)
class FirewallConfig:
    """What the fixed rules depend on besides the Services.

    Traffic from this node's pods (kube-proxy's detect-local) is told apart by its source
    address (`pod_cidrs`: the cluster CIDR, or the Node's pod CIDRs when
    `pod_cidrs_from_node`, which the syncer fills in from the Node) or by the interface it
    arrives on (`pod_interface`: a bridge; `pod_interface_prefix`: every interface whose name
    starts so). With none of them, pods cannot be told apart in that IP family.

    `service_cidrs` are the ranges a local route makes the host's (`dataplane.service_routes`):
    the reject of non-service ports covers each of them whole, with or without a Service on
    an address, as it covers each bound VIP.
    """

    pod_cidrs: tuple[IPNetwork, ...] = ()
    pod_cidrs_from_node: bool = False
    pod_interface: str = ""
    pod_interface_prefix: str = ""
    masquerade_all: bool = False
    masquerade_bit: int = DEFAULT_MASQUERADE_BIT
    # Service CIDRs made local by a route (every address of them is the host's): new
    # connections to any of their addresses on a port no Service serves are rejected
    service_cidrs: tuple[IPNetwork, ...] = ()

    @property
    def masquerade_mark(self) -> int:
        return 1 << self.masquerade_bit

    def detects_pods(self, version: int) -> bool:
        """Whether traffic from pods can be told apart in IP `version` (4 or 6)."""
        return bool(self.pod_interface or self.pod_interface_prefix) or any(
            net.version == version for net in self.pod_cidrs
        )


@dataclass(frozen=True, slots=True)
class Firewall:
    """The contents of ipvsd's nftables sets (equal values mean an identical table)."""

    config: FirewallConfig = field(default_factory=FirewallConfig)
    vips: frozenset[IPAddress] = frozenset()
    vip_ports: frozenset[VipPort] = frozenset()
    cluster_ip_ports: frozenset[VipPort] = frozenset()
    masquerade_ports: frozenset[VipPort] = frozenset()
    node_ports: frozenset[tuple[int, int]] = frozenset()  # (protocol, port)
    hairpin: frozenset[VipPort] = frozenset()  # (real server address, protocol, port)
    lb_restricted: frozenset[VipPort] = frozenset()
    lb_allowed: frozenset[tuple[IPAddress, int, int, IPNetwork]] = frozenset()
    health_check_ports: frozenset[int] = frozenset()
    # externalTrafficPolicy: Local frontends (LB IP, externalIP, NodePort address) that this
    # node's pods reach through their Service's ClusterIP, i.e. with the cluster set
    local_redirects: frozenset[Redirect] = frozenset()


SET_FIELDS = tuple(f.name for f in fields(Firewall) if f.name != "config")


@dataclass(frozen=True, slots=True)
class FirewallChanges:
    """Elements to add to and to delete from each set (`config` of both is the ledger's)."""

    added: Firewall = field(default_factory=Firewall)
    removed: Firewall = field(default_factory=Firewall)

    @property
    def empty(self) -> bool:
        return not any(getattr(self.added, n) or getattr(self.removed, n) for n in SET_FIELDS)
