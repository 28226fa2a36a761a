"""kube-proxy's CategorizeEndpoints, rule by rule (reference §4), as a table of behaviours."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from ipvsd.model.endpoint import Endpoint
from ipvsd.model.ipvs import parse_address
from ipvsd.plan.topology import PortPolicy, TopologyMode, categorize_endpoints

NODE, ZONE = "node-a", "zone-a"
CLUSTER = PortPolicy()
ITP_LOCAL = PortPolicy(internal_local=True)
ETP_LOCAL = PortPolicy(external_local=True, externally_accessible=True)
ETP_LOCAL_NOT_EXPOSED = PortPolicy(external_local=True, externally_accessible=False)
BOTH_LOCAL = PortPolicy(internal_local=True, external_local=True, externally_accessible=True)


def ep(
    n: int,
    *,
    node: str | None = NODE,
    zone: str | None = ZONE,
    ready: bool = True,
    serving: bool | None = None,
    terminating: bool = False,
    zones: tuple[str, ...] = (),
    nodes: tuple[str, ...] = (),
) -> Endpoint:
    """Endpoint 10.0.0.n; serving defaults to ready (as the API reports it)."""
    return Endpoint(
        parse_address(f"10.0.0.{n}"),
        ready=ready,
        serving=ready if serving is None else serving,
        terminating=terminating,
        node_name=node,
        zone=zone,
        zone_hints=zones,
        node_hints=nodes,
    )


@dataclass
class Case:
    name: str
    endpoints: list[Endpoint]
    policy: PortPolicy = CLUSTER
    node_zone: str | None = ZONE
    cluster: set[int] = field(default_factory=set)
    local: set[int] = field(default_factory=set)
    mode: TopologyMode = TopologyMode.NONE
    has_any: bool = False


def numbers(endpoints: tuple[Endpoint, ...]) -> set[int]:
    return {int(str(e.address).rsplit(".", 1)[1]) for e in endpoints}


REMOTE = "node-b"
CASES = [
    Case("no-endpoints-no-anything", []),
    Case(
        "ready-endpoints-all-in-cluster-set",
        [ep(1), ep(2, node=REMOTE)],
        cluster={1, 2}, has_any=True,
    ),
    Case(
        "unready-endpoints-are-never-used",
        [ep(1), ep(2, ready=False)],
        cluster={1}, has_any=True,
    ),
    Case(
        "serving-terminating-used-only-when-nothing-is-ready",
        [ep(1, ready=False, serving=True, terminating=True), ep(2, ready=False)],
        cluster={1}, has_any=True,
    ),
    Case(
        "serving-terminating-ignored-while-one-is-ready",
        [ep(1, ready=False, serving=True, terminating=True), ep(2, node=REMOTE)],
        cluster={2}, has_any=True,
    ),
    Case(
        "terminating-but-not-serving-is-never-used",
        [ep(1, ready=False, serving=False, terminating=True)],
    ),
    Case(
        "zone-hints-for-this-zone-narrow-to-the-zone",
        [ep(1, zones=("zone-a",)), ep(2, node=REMOTE, zone="zone-b", zones=("zone-b",))],
        cluster={1}, mode=TopologyMode.PREFER_SAME_ZONE, has_any=True,
    ),
    Case(
        "one-ready-endpoint-without-zone-hint-disables-topology",
        [ep(1, zones=("zone-a",)), ep(2, node=REMOTE, zone="zone-b")],
        cluster={1, 2}, has_any=True,
    ),
    Case(
        "only-unready-endpoint-without-hint-does-not-disable-topology",
        [ep(1, zones=("zone-a",)), ep(2, zones=("zone-b",)), ep(3, ready=False)],
        cluster={1}, mode=TopologyMode.PREFER_SAME_ZONE, has_any=True,
    ),
    Case(
        "no-endpoint-hinted-for-this-zone-uses-all",
        [ep(1, zones=("zone-b",)), ep(2, zones=("zone-c",))],
        cluster={1, 2}, has_any=True,
    ),
    Case(
        "node-without-zone-label-never-matches-zone-hints",
        [ep(1, zones=("zone-a",)), ep(2, zones=("zone-b",))],
        node_zone=None, cluster={1, 2}, has_any=True,
    ),
    Case(
        "node-hints-for-this-node-narrow-to-the-node",
        [
            ep(1, zones=("zone-a",), nodes=(NODE,)),
            ep(2, node=REMOTE, zones=("zone-a",), nodes=(REMOTE,)),
        ],
        cluster={1}, mode=TopologyMode.PREFER_SAME_NODE, has_any=True,
    ),
    Case(
        "no-node-hint-for-this-node-falls-back-to-zone-hints",
        [
            ep(1, node="node-c", zones=("zone-a",), nodes=("node-c",)),
            ep(2, node=REMOTE, zone="zone-b", zones=("zone-b",), nodes=(REMOTE,)),
        ],
        cluster={1}, mode=TopologyMode.PREFER_SAME_ZONE, has_any=True,
    ),
    Case(
        "missing-node-hint-on-one-endpoint-falls-back-to-zone-hints",
        [
            ep(1, zones=("zone-a",), nodes=(NODE,)),
            ep(2, zones=("zone-a",)),
            ep(3, zone="zone-b", zones=("zone-b",)),
        ],
        cluster={1, 2}, mode=TopologyMode.PREFER_SAME_ZONE, has_any=True,
    ),
    Case(
        "no-node-or-zone-match-falls-back-to-everything",
        [ep(1, node=REMOTE, zone="zone-b", zones=("zone-b",), nodes=(REMOTE,))],
        cluster={1}, has_any=True,
    ),
    Case(
        "topology-ignored-for-terminating-fallback",
        [ep(1, ready=False, serving=True, terminating=True, zones=("zone-b",))],
        cluster={1}, has_any=True,
    ),
    Case(
        "itp-local-uses-only-local-ready-endpoints",
        [ep(1), ep(2, node=REMOTE)],
        policy=ITP_LOCAL, local={1}, has_any=True,
    ),
    Case(
        "itp-local-without-local-endpoints-has-an-empty-local-set",
        [ep(1, node=REMOTE)],
        policy=ITP_LOCAL, local=set(), has_any=True,
    ),
    Case(
        "local-set-falls-back-to-local-serving-terminating",
        [ep(1, ready=False, serving=True, terminating=True), ep(2, node=REMOTE)],
        policy=ITP_LOCAL, local={1}, has_any=True,
    ),
    Case(
        "local-set-ignores-topology-hints",
        [ep(1, zones=("zone-b",)), ep(2, zone="zone-b", zones=("zone-b",), node=REMOTE)],
        policy=ITP_LOCAL, local={1}, has_any=True,
    ),
    Case(
        "etp-local-keeps-the-cluster-set-for-short-circuiting",
        [ep(1), ep(2, node=REMOTE)],
        policy=ETP_LOCAL, cluster={1, 2}, local={1}, has_any=True,
    ),
    Case(
        "etp-local-on-a-port-that-is-not-externally-accessible-is-ignored",
        [ep(1), ep(2, node=REMOTE)],
        policy=ETP_LOCAL_NOT_EXPOSED, cluster={1, 2}, has_any=True,
    ),
    Case(
        "both-local-still-needs-cluster-endpoints-when-externally-accessible",
        [ep(1), ep(2, node=REMOTE)],
        policy=BOTH_LOCAL, cluster={1, 2}, local={1}, has_any=True,
    ),
    Case(
        "unready-only-endpoints-count-as-none",
        [ep(1, ready=False), ep(2, ready=False, node=REMOTE)],
        policy=ITP_LOCAL, has_any=False,
    ),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_categorize_endpoints(case: Case) -> None:
    got = categorize_endpoints(case.endpoints, case.policy, node_name=NODE, zone=case.node_zone)
    assert numbers(got.cluster) == case.cluster
    assert numbers(got.local) == case.local
    assert got.mode == case.mode
    assert got.has_any_endpoints == case.has_any


def test_local_set_reports_that_it_fell_back_to_terminating_endpoints() -> None:
    endpoints = [ep(1, ready=False, serving=True, terminating=True)]
    got = categorize_endpoints(endpoints, ITP_LOCAL, node_name=NODE, zone=ZONE)
    assert got.local_uses_terminating
    assert not categorize_endpoints(
        [ep(1)], ITP_LOCAL, node_name=NODE, zone=ZONE
    ).local_uses_terminating
