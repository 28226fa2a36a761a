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


@dataclass(frozen=True, slots=True)
class FirewallConfig:
    cluster_cidrs: tuple[IPNetwork, ...] = ()
    masquerade_all: bool = False


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


SET_FIELDS = tuple(f.name for f in fields(Firewall) if f.name != "config")


@dataclass(frozen=True, slots=True)
class FirewallChanges:
    """Elements to add to and to delete from each set (`config` of both is the ledger's)."""

    added: Firewall = field(default_factory=Firewall)
    removed: Firewall = field(default_factory=Firewall)

    @property
    def empty(self) -> bool:
        return not any(getattr(self.added, n) or getattr(self.removed, n) for n in SET_FIELDS)
