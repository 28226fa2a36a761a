"""Which Services need other Nodes' labels to be planned (and so make ipvsd watch them).

An endpoint's labels beyond the slice's `zone` come from its Node (`plan.context`). Only
ipvsd's own topology reads them: `ipvsd.io/topology-keys` (any label key), the proximity
weights of `ipvsd.io/topology-mode: weight` (the zone of an endpoint whose slice names none),
and hints derived from `spec.trafficDistribution` (`--topology-source spec|auto`, same).
kube-proxy's own rules read only the slices and the own Node, so a cluster without these
features never needs the other Nodes, and its proxies do not watch them.
"""

from __future__ import annotations

from ipvsd.config.values import TopologySource
from ipvsd.model.service import Service
from ipvsd.plan.selection import ZONE_DISTRIBUTIONS
from ipvsd.plan.topology_annotations import TopologyHandling, topology_policy


def needs_other_nodes(service: Service, topology_source: TopologySource) -> bool:
    """Whether planning `service` may read the labels of Nodes other than this one."""
    policy = topology_policy(service)
    if policy.keys or policy.mode is TopologyHandling.WEIGHT:
        return True
    return topology_source != "hints" and service.traffic_distribution in ZONE_DISTRIBUTIONS
