"""The node a plan is made for, and where the planner learns other nodes' topology labels.

An endpoint's location comes from the EndpointSlice (`nodeName`, `zone`) and, for any other
label (`topology.kubernetes.io/region`, custom keys) or a slice without `zone`, from the labels
of the Node it runs on. Nodes the proxy has not seen have no labels: an endpoint there matches
no topology key but `*` and is never "same zone".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ipvsd.config.values import TopologySource
from ipvsd.model.endpoint import Endpoint
from ipvsd.model.ipvs import KNOWN_SCHEDULERS, Family, IPAddress
from ipvsd.model.node import HOSTNAME_LABEL, ZONE_LABEL, Node
from ipvsd.plan.external_ips import ExternalIPPolicy
from ipvsd.plan.topology_annotations import Proximity

_NO_NODES: Mapping[str, Node] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class NodeContext:
    """What the plan needs to know about this node, the cluster's nodes and the proxy's
    configuration. `labels` are this node's own; `nodes` every Node the proxy watches;
    `external_ips` which Service externalIPs the proxy serves."""

    name: str
    zone: str | None = None
    node_port_addresses: tuple[IPAddress, ...] = ()
    families: tuple[Family, ...] = (Family.INET,)
    default_scheduler: str = "rr"
    schedulers: frozenset[str] = KNOWN_SCHEDULERS
    missing_schedulers: frozenset[str] = frozenset()  # refused by this node's kernel
    labels: tuple[tuple[str, str], ...] = ()
    nodes: Mapping[str, Node] = field(default_factory=lambda: _NO_NODES, compare=False)
    topology_source: TopologySource = "hints"
    external_ips: ExternalIPPolicy = field(default_factory=ExternalIPPolicy)
    _node_zones: dict[str, str | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def label(self, key: str) -> str | None:
        """This node's value for a label key (its own name stands in for the hostname)."""
        for name, value in self.labels:
            if name == key:
                return value
        if key == ZONE_LABEL:
            return self.zone
        if key == HOSTNAME_LABEL:
            return self.name
        return None

    def endpoint_label(self, endpoint: Endpoint, key: str) -> str | None:
        """An endpoint's value for a label key: the slice's zone field, else its Node's label."""
        if key == ZONE_LABEL and endpoint.zone:
            return endpoint.zone
        node = self.nodes.get(endpoint.node_name) if endpoint.node_name else None
        if node is not None:
            value = node.label(key)
            if value is not None:
                return value
        if key == HOSTNAME_LABEL and endpoint.node_name == self.name:
            return self.label(HOSTNAME_LABEL)
        return None

    def endpoint_zone(self, endpoint: Endpoint) -> str | None:
        """`endpoint_label(endpoint, ZONE_LABEL)`, with each Node's zone looked up once per
        context (asked for every endpoint of every Service; a Node whose labels change
        triggers a full sync, which makes a new context)."""
        if endpoint.zone:
            return endpoint.zone
        name = endpoint.node_name
        if name is None:
            return None
        zones = self._node_zones
        if name not in zones:
            node = self.nodes.get(name)
            zones[name] = node.label(ZONE_LABEL) if node is not None else None
        return zones[name]

    def proximity(self, endpoint: Endpoint) -> Proximity:
        if endpoint.node_name == self.name:
            return Proximity.NODE
        if self.zone is not None and self.endpoint_zone(endpoint) == self.zone:
            return Proximity.ZONE
        return Proximity.OTHER
