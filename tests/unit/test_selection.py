"""Real servers per service port: weight mode, topology keys, topology source, and the reasons.

The cluster: this node `node-a` in zone-a/region r1; `node-b` in zone-a; `node-c` in zone-b;
`node-d` in zone-c of region r2. One endpoint per node, address 10.0.0.<n>.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from ipvsd.config.values import TopologySource
from ipvsd.model.endpoint import Endpoint
from ipvsd.model.ipvs import parse_address
from ipvsd.model.node import HOSTNAME_LABEL, REGION_LABEL, ZONE_LABEL, Node
from ipvsd.plan.backends import Backend
from ipvsd.plan.context import NodeContext
from ipvsd.plan.selection import PortSelection, select_port
from ipvsd.plan.topology import PortPolicy
from ipvsd.plan.topology_annotations import (
    Proximity,
    TopologyHandling,
    TopologyPolicy,
    TopologyWeights,
)


def node(name: str, zone: str, region: str) -> Node:
    labels = {HOSTNAME_LABEL: name, ZONE_LABEL: zone, REGION_LABEL: region, "rack": f"r-{name}"}
    return Node(name, labels=tuple(sorted(labels.items())))


NODES = {
    n.name: n
    for n in (
        node("node-a", "zone-a", "r1"),
        node("node-b", "zone-a", "r1"),
        node("node-c", "zone-b", "r1"),
        node("node-d", "zone-c", "r2"),
    )
}
HERE = NodeContext(name="node-a", zone="zone-a", labels=NODES["node-a"].labels, nodes=NODES)
WHERE = {"1": "node-a", "2": "node-b", "3": "node-c", "4": "node-d"}
ZONES = {"node-a": "zone-a", "node-b": "zone-a", "node-c": "zone-b", "node-d": "zone-c"}


def ep(n: str, *, ready: bool = True, terminating: bool = False, **changes: object) -> Backend:
    where = WHERE[n]
    endpoint = Endpoint(
        parse_address(f"10.0.0.{n}"),
        ready=ready,
        terminating=terminating,
        node_name=where,
        zone=ZONES[where],
    )
    return Backend(endpoint._replace(**changes), 5678)  # type: ignore[arg-type]


DEFAULT_WEIGHTS = TopologyWeights()
ALL = (ep("1"), ep("2"), ep("3"), ep("4"))


def zone_hinted(*backends: Backend) -> tuple[Backend, ...]:
    """Hints as the controller writes them for PreferSameZone."""
    return tuple(
        Backend(b.endpoint._replace(zone_hints=(b.endpoint.zone or "",)), b.port) for b in backends
    )


def cluster(
    backends: tuple[Backend, ...],
    *,
    mode: TopologyHandling = TopologyHandling.EXCLUDE,
    weights: TopologyWeights = DEFAULT_WEIGHTS,
    keys: tuple[str, ...] = (),
    distribution: str | None = None,
    source: TopologySource = "hints",
    here: NodeContext = HERE,
) -> PortSelection:
    return select_port(
        backends,
        PortPolicy(),
        topology=TopologyPolicy(mode, weights, keys),
        distribution=distribution,
        node=replace(here, topology_source=source),
    ).cluster


def chosen(selection: PortSelection) -> dict[str, int]:
    """Last address octet -> weight of every real server."""
    return {str(c.backend.address).rsplit(".", 1)[1]: c.weight for c in selection.chosen}


@dataclass(frozen=True)
class Case:
    name: str
    backends: tuple[Backend, ...]
    want: dict[str, int]
    fallback: bool = False
    options: dict[str, object] = field(default_factory=dict)


WEIGHT = TopologyHandling.WEIGHT
NEAR_FIRST = (
    "kubernetes.io/hostname",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
)

CASES = [
    # --- weight mode ---------------------------------------------------------------------------
    Case(
        "weight: node, zone, other by default",
        ALL,
        {"1": 100, "2": 10, "3": 1, "4": 1},
        options={"mode": WEIGHT},
    ),
    Case(
        "weight: custom weights",
        ALL,
        {"1": 3, "2": 2, "3": 1, "4": 1},
        options={"mode": WEIGHT, "weights": TopologyWeights(3, 2, 1)},
    ),
    Case(
        "weight: hints do not exclude anything",
        zone_hinted(*ALL),
        {"1": 100, "2": 10, "3": 1, "4": 1},
        options={"mode": WEIGHT},
    ),
    Case(
        "weight: not-ready endpoints still left out",
        (ep("1", ready=False), ep("3")),
        {"3": 1},
        fallback=True,
        options={"mode": WEIGHT},
    ),
    Case(
        "weight: only other zones is a fallback",
        (ep("3"), ep("4")),
        {"3": 1, "4": 1},
        fallback=True,
        options={"mode": WEIGHT},
    ),
    Case(
        "weight: terminating only when nothing is ready",
        (ep("1", ready=False, terminating=True), ep("3", ready=False, terminating=True)),
        {"1": 100, "3": 1},
        options={"mode": WEIGHT},
    ),
    # --- topology keys -------------------------------------------------------------------------
    Case("keys: this node's endpoint wins", ALL, {"1": 1}, options={"keys": NEAR_FIRST}),
    Case("keys: then this zone", ALL[1:], {"2": 1}, fallback=True, options={"keys": NEAR_FIRST}),
    Case(
        "keys: then this region",
        (ep("3"), ep("4")),
        {"3": 1},
        fallback=True,
        options={"keys": NEAR_FIRST},
    ),
    Case(
        "keys: no match without '*' drops",
        (ep("4"),),
        {},
        fallback=True,
        options={"keys": NEAR_FIRST},
    ),
    Case(
        "keys: '*' takes any endpoint",
        (ep("4"),),
        {"4": 1},
        fallback=True,
        options={"keys": (*NEAR_FIRST, "*")},
    ),
    Case(
        "keys: a custom label of the endpoints' Nodes", ALL, {"1": 1}, options={"keys": ("rack",)}
    ),
    Case(
        "keys: not-ready endpoints never match",
        (ep("1", ready=False), ep("2")),
        {"2": 1},
        fallback=True,
        options={"keys": NEAR_FIRST},
    ),
    Case(
        "keys: the slice's zone field wins over the Node's label",
        (ep("3", zone="zone-a"),),
        {"3": 1},
        fallback=False,
        options={"keys": ("topology.kubernetes.io/zone",), "here": replace(HERE, nodes={})},
    ),
    Case(
        "keys: an unknown Node has no labels",
        (ep("2"),),
        {},
        fallback=True,
        options={"keys": ("topology.kubernetes.io/region",), "here": replace(HERE, nodes={})},
    ),
    Case(
        "keys: with weights inside the winning key",
        ALL,
        {"1": 100, "2": 10},
        options={"keys": ("topology.kubernetes.io/zone",), "mode": WEIGHT},
    ),
    # --- where hints come from -----------------------------------------------------------------
    Case(
        "hints source: spec alone does nothing (kube-proxy)",
        ALL,
        {"1": 1, "2": 1, "3": 1, "4": 1},
        options={"distribution": "PreferSameZone"},
    ),
    Case(
        "spec source: PreferSameZone from the endpoints' zones",
        ALL,
        {"1": 1, "2": 1},
        options={"distribution": "PreferSameZone", "source": "spec"},
    ),
    Case(
        "spec source: PreferClose is PreferSameZone",
        ALL,
        {"1": 1, "2": 1},
        options={"distribution": "PreferClose", "source": "spec"},
    ),
    Case(
        "spec source: PreferSameNode",
        ALL,
        {"1": 1},
        options={"distribution": "PreferSameNode", "source": "spec"},
    ),
    Case(
        "spec source: PreferSameNode falls back to the zone",
        ALL[1:],
        {"2": 1},
        fallback=True,
        options={"distribution": "PreferSameNode", "source": "spec"},
    ),
    Case(
        "spec source: no local zone falls back to everything",
        (ep("3"), ep("4")),
        {"3": 1, "4": 1},
        fallback=True,
        options={"distribution": "PreferSameZone", "source": "spec"},
    ),
    Case(
        "spec source: slice hints are ignored",
        zone_hinted(ep("1"), ep("3")),
        {"1": 1, "3": 1},
        options={"source": "spec"},
    ),
    Case(
        "auto: hints when an endpoint has them",
        zone_hinted(ep("1"), ep("3")),
        {"1": 1},
        options={"distribution": "PreferSameNode", "source": "auto"},
    ),
    Case(
        "auto: the spec when none has",
        ALL,
        {"1": 1},
        options={"distribution": "PreferSameNode", "source": "auto"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_cluster_selection(case: Case) -> None:
    selection = cluster(case.backends, **case.options)  # type: ignore[arg-type]
    assert chosen(selection) == case.want
    assert selection.fallback is case.fallback


def test_derived_zone_comes_from_the_node_when_the_slice_has_none() -> None:
    no_zone = (ep("1", zone=None), ep("3", zone=None))
    assert chosen(cluster(no_zone, distribution="PreferSameZone", source="spec")) == {"1": 1}


def test_local_policy_is_never_weighted_nor_narrowed_by_keys() -> None:
    sets = select_port(
        ALL,
        PortPolicy(internal_local=True),
        topology=TopologyPolicy(WEIGHT, keys=("rack",)),
        distribution=None,
        node=HERE,
    )
    assert chosen(sets.local) == {"1": 1}
    assert [c.proximity for c in sets.local.chosen] == [Proximity.NODE]


def test_proximity_of_each_real_server_is_kept_for_metrics() -> None:
    got = cluster(ALL, mode=WEIGHT)
    assert [c.proximity for c in got.chosen] == [
        Proximity.NODE,
        Proximity.ZONE,
        Proximity.OTHER,
        Proximity.OTHER,
    ]


def reasons(selection: PortSelection) -> dict[str, str]:
    return {str(b.address).rsplit(".", 1)[1]: why for b, _, why in selection.reasons(HERE)}


def test_reasons_under_hints() -> None:
    got = cluster(zone_hinted(ep("1"), ep("3"), ep("4", ready=False)))
    assert got.summary == "hints: PreferSameZone, zone zone-a"
    assert reasons(got) == {
        "1": "ready, hinted for this node's zone zone-a",
        "3": "hinted for zone zone-b, not zone-a",
        "4": "not ready",
    }


def test_reasons_when_hints_cannot_be_used() -> None:
    got = cluster(zone_hinted(ep("3"), ep("4")))
    assert got.fallback
    assert got.summary == (
        "hints ignored (nothing is hinted for zone-a, or not every ready endpoint has hints): "
        "every ready endpoint (fallback)"
    )
    assert reasons(got) == {"3": "ready", "4": "ready"}


def test_reasons_under_weights() -> None:
    got = cluster(ALL, mode=WEIGHT, weights=TopologyWeights(3, 2, 1))
    assert got.summary == "weights node=3,zone=2,other=1 (ipvsd.io/topology-mode: weight)"
    assert reasons(got) == {
        "1": "ready, on this node (node weight 3)",
        "2": "ready, in this node's zone zone-a (zone weight 2)",
        "3": "ready, in node node-c (zone zone-b) (other weight 1)",
        "4": "ready, in node node-d (zone zone-c) (other weight 1)",
    }


def test_reasons_under_keys() -> None:
    got = cluster((ep("2"), ep("3"), ep("4", ready=False, terminating=True)), keys=NEAR_FIRST)
    assert got.summary == (
        "ipvsd.io/topology-keys=kubernetes.io/hostname,topology.kubernetes.io/zone,"
        "topology.kubernetes.io/region: topology.kubernetes.io/zone=zone-a "
        "(fallback from earlier keys)"
    )
    assert reasons(got) == {
        "2": "ready, topology.kubernetes.io/zone=zone-a like this node",
        "3": "topology.kubernetes.io/zone=zone-b, this node has zone-a",
        "4": "terminating, and ready endpoints exist",
    }


def test_reasons_when_no_key_matches() -> None:
    got = cluster((ep("4"),), keys=("topology.kubernetes.io/zone",))
    assert got.chosen == ()
    assert "no key matched and there is no '*', so no real servers (dropped)" in got.summary
    assert reasons(got) == {"4": "no topology key matched this node and there is no '*'"}


def test_reasons_of_the_local_set() -> None:
    sets = select_port(
        (ep("1", ready=False, terminating=True), ep("2")),
        PortPolicy(internal_local=True),
        topology=TopologyPolicy(),
        distribution=None,
        node=HERE,
    )
    assert sets.local.summary == (
        "traffic policy Local: this node's endpoints only, no fallback to other nodes; "
        "none is ready, so serving-terminating ones are used"
    )
    assert reasons(sets.local) == {
        "1": "on this node, serving and terminating (none is ready)",
        "2": "on node node-b (zone zone-a), not this node (traffic policy Local)",
    }


def test_reasons_when_only_terminating_endpoints_serve() -> None:
    got = cluster((ep("3", ready=False, terminating=True), ep("4", ready=False)))
    assert got.summary.endswith("no endpoint is ready, so serving-terminating ones are used")
    assert reasons(got) == {
        "3": "serving and terminating, no endpoint is ready",
        "4": "not ready",
    }
