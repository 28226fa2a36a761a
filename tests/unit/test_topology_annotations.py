"""ipvsd.io/topology-mode, -weights and -keys: what is accepted, what is refused and why."""

from __future__ import annotations

import pytest

from ipvsd.model.ipvs import Protocol, parse_address
from ipvsd.model.service import Service, ServicePort, ServiceRef, ServiceType
from ipvsd.plan.topology_annotations import (
    DEFAULT_POLICY,
    TopologyHandling,
    TopologyWeights,
    topology_policy,
)


def service(**annotations: str) -> Service:
    return Service(
        ref=ServiceRef("default", "echo"),
        uid="u1",
        type=ServiceType.CLUSTER_IP,
        cluster_ips=(parse_address("10.96.0.10"),),
        ports=(ServicePort("http", Protocol.TCP, 80),),
        annotations=tuple(sorted((f"ipvsd.io/topology-{k}", v) for k, v in annotations.items())),
    )


def test_no_annotation_is_kube_proxy_exclusion() -> None:
    assert topology_policy(service()) == DEFAULT_POLICY
    assert DEFAULT_POLICY.mode is TopologyHandling.EXCLUDE
    assert DEFAULT_POLICY.weights == TopologyWeights(node=100, zone=10, other=1)


@pytest.mark.parametrize("text", ["weight", " Weight ", "WEIGHT"])
def test_weight_mode_is_case_and_space_tolerant(text: str) -> None:
    policy = topology_policy(service(mode=text))
    assert policy.mode is TopologyHandling.WEIGHT
    assert policy.warnings == ()


def test_unknown_mode_falls_back_to_exclude_with_a_warning() -> None:
    policy = topology_policy(service(mode="prefer"))
    assert policy.mode is TopologyHandling.EXCLUDE
    assert policy.warnings == (
        "annotation ipvsd.io/topology-mode='prefer': not 'exclude' or 'weight'; using 'exclude'",
    )


@pytest.mark.parametrize(
    ("text", "weights"),
    [
        ("node=3,zone=2,other=1", TopologyWeights(3, 2, 1)),
        (" other = 5 ", TopologyWeights(100, 10, 5)),
        ("node=65535", TopologyWeights(65535, 10, 1)),
        ("zone=1,", TopologyWeights(100, 1, 1)),
    ],
)
def test_weights_override_only_the_levels_given(text: str, weights: TopologyWeights) -> None:
    policy = topology_policy(service(weights=text))
    assert (policy.weights, policy.warnings) == (weights, ())


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("node=0", "weight '0' for node is not 1..65535"),
        ("node=65536", "weight '65536' for node is not 1..65535"),
        ("node=-1", "weight '-1' for node is not 1..65535"),
        ("node=1.5", "weight '1.5' for node is not 1..65535"),
        ("region=4", "'region=4' is not node=N, zone=N or other=N"),
        ("node", "'node' is not node=N, zone=N or other=N"),
        ("node=2,node=3", "'node' is given twice"),
    ],
)
def test_invalid_weights_keep_every_default(text: str, problem: str) -> None:
    policy = topology_policy(service(weights=text))
    assert policy.weights == TopologyWeights()
    assert policy.warnings == (
        f"annotation ipvsd.io/topology-weights={text!r}: {problem}; "
        "using the defaults node=100,zone=10,other=1",
    )


def test_keys_keep_their_order() -> None:
    text = "kubernetes.io/hostname, topology.kubernetes.io/zone,topology.kubernetes.io/region,*"
    policy = topology_policy(service(keys=text))
    assert policy.keys == (
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "*",
    )
    assert policy.warnings == ()


def test_sixteen_keys_are_allowed() -> None:
    keys = ",".join(f"example.com/k{i}" for i in range(16))
    assert len(topology_policy(service(keys=keys)).keys) == 16


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (",".join(f"k{i}" for i in range(17)), "17 keys; at most 16 are allowed"),
        ("*,kubernetes.io/hostname", "'*' may only be the last key"),
        ("rack,rack", "a key is given twice"),
        ("", "no keys given"),
        ("kubernetes.io/hostname,,*", "'' is not a label key"),
        ("Bad_Prefix.io/zone", "'Bad_Prefix.io/zone' is not a label key"),
        ("-rack", "'-rack' is not a label key"),
        ("/zone", "'/zone' is not a label key"),
        ("x" * 64, f"{'x' * 64!r} is not a label key"),
    ],
)
def test_invalid_keys_are_ignored_as_a_whole(text: str, problem: str) -> None:
    policy = topology_policy(service(keys=text))
    assert policy.keys == ()
    assert policy.warnings == (f"annotation ipvsd.io/topology-keys={text!r}: {problem}; ignored",)


def test_each_bad_annotation_gets_its_own_warning() -> None:
    policy = topology_policy(service(mode="x", weights="node=0", keys="*,a"))
    assert len(policy.warnings) == 3
