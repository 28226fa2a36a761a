"""Which Services make a proxy watch the other Nodes (their labels): only ipvsd's own
topology; kube-proxy's rules never need them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ipvsd.config.values import TopologySource
from ipvsd.model.ipvs import Protocol, parse_address
from ipvsd.model.service import Service, ServicePort, ServiceRef, ServiceType
from ipvsd.plan.node_labels import needs_other_nodes

PLAIN = Service(
    ref=ServiceRef("default", "echo"),
    uid="u1",
    type=ServiceType.CLUSTER_IP,
    cluster_ips=(parse_address("10.96.0.10"),),
    ports=(ServicePort("http", Protocol.TCP, 80),),
)


def annotated(**annotations: str) -> Service:
    pairs = tuple(sorted((f"ipvsd.io/topology-{k}", v) for k, v in annotations.items()))
    return replace(PLAIN, annotations=pairs)


@pytest.mark.parametrize(
    ("service", "source", "needed"),
    [
        (PLAIN, "hints", False),
        (replace(PLAIN, traffic_distribution="PreferSameZone"), "hints", False),
        (replace(PLAIN, traffic_distribution="PreferSameZone"), "spec", True),
        (replace(PLAIN, traffic_distribution="PreferClose"), "auto", True),
        (replace(PLAIN, traffic_distribution="Unknown"), "spec", False),
        (annotated(keys="topology.kubernetes.io/region,*"), "hints", True),
        (annotated(mode="weight"), "hints", True),
        (annotated(mode="exclude"), "hints", False),
        (annotated(mode="bogus"), "hints", False),
        (annotated(weights="node=5"), "hints", False),
    ],
    ids=[
        "kube-proxy-service",
        "distribution-from-hints-reads-slices-only",
        "distribution-derived-here-reads-node-zones",
        "auto-may-derive",
        "unknown-distribution",
        "topology-keys",
        "weight-mode",
        "explicit-exclude",
        "invalid-mode-is-exclude",
        "weights-without-weight-mode",
    ],
)
def test_only_ipvsds_own_topology_needs_other_nodes(
    service: Service, source: TopologySource, needed: bool
) -> None:
    assert needs_other_nodes(service, source) is needed
