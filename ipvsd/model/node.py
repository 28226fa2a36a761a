"""Nodes: the own node's eligibility and every node's topology labels."""

from __future__ import annotations

from dataclasses import dataclass

from ipvsd.model.ipvs import IPAddress
from ipvsd.model.service import IPNetwork

ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"
HOSTNAME_LABEL = "kubernetes.io/hostname"
TO_BE_DELETED_TAINT = "ToBeDeletedByClusterAutoscaler"


@dataclass(frozen=True, slots=True)
class Node:
    """A Node's name, its labels (sorted pairs) and whether it is going away.

    `deleting` is set when the Node has a deletionTimestamp or carries the cluster autoscaler's
    ToBeDeletedByClusterAutoscaler taint: kube-proxy then reports the node as not eligible.
    """

    name: str
    labels: tuple[tuple[str, str], ...] = ()
    deleting: bool = False
    primary_addresses: tuple[IPAddress, ...] = ()  # first InternalIP per family, else ExternalIP
    pod_cidrs: tuple[IPNetwork, ...] = ()  # spec.podCIDRs (--detect-local-mode=NodeCIDR)

    def label(self, key: str) -> str | None:
        for name, value in self.labels:
            if name == key:
                return value
        return None

    @property
    def zone(self) -> str | None:
        return self.label(ZONE_LABEL)
