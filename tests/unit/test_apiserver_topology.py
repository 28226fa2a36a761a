"""The EndpointSlice controller's hint rules, table-driven (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from ipvsd.testing.apiserver.topology import (
    cpu_millis,
    hint_policy,
    with_auto_hints,
    with_close_hints,
    zone_cpu_ratios,
)


def ep(
    ip: str,
    zone: str | None = None,
    node: str | None = None,
    ready: bool | None = True,
    **extra: Any,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "addresses": [ip],
        "conditions": {} if ready is None else {"ready": ready},
        **extra,
    }
    if zone is not None:
        result["zone"] = zone
    if node is not None:
        result["nodeName"] = node
    return result


def service(distribution: str | None = None, **annotations: str) -> dict[str, Any]:
    spec = {} if distribution is None else {"trafficDistribution": distribution}
    return {"metadata": {"annotations": annotations}, "spec": spec}


@pytest.mark.parametrize(
    ("document", "policy"),
    [
        (service(), None),
        (service("PreferClose"), "zone"),
        (service("PreferSameZone"), "zone"),
        (service("PreferSameNode"), "node"),
        (service("PreferSameNode", **{"service.kubernetes.io/topology-mode": "Auto"}), "auto"),
        (service(None, **{"service.kubernetes.io/topology-aware-hints": "auto"}), "auto"),
        (service("PreferClose", **{"service.kubernetes.io/topology-mode": "Disabled"}), "zone"),
        (
            service(
                None,
                **{
                    "service.kubernetes.io/topology-mode": "Disabled",
                    "service.kubernetes.io/topology-aware-hints": "auto",
                },
            ),
            None,
        ),
    ],
    ids=[
        "none",
        "prefer-close",
        "prefer-same-zone",
        "prefer-same-node",
        "annotation-overrides",
        "old-annotation",
        "disabled-annotation",
        "mode-wins-over-old",
    ],
)
def test_hint_policy(document: dict[str, Any], policy: str | None) -> None:
    assert hint_policy(document) == policy


def test_close_hints_for_ready_endpoints_only() -> None:
    stale = {"forZones": [{"name": "elsewhere"}]}
    endpoints = [
        ep("10.0.0.1", "a", "n1"),
        ep("10.0.0.2", "b", "n2", ready=False, hints=stale),
        ep("10.0.0.3", None, "n3"),
        ep("10.0.0.4", None, None, hints=stale),
        ep("10.0.0.5", "c", "n5", ready=None),
    ]
    zone = with_close_hints(endpoints, node_hints=False)
    assert zone[0]["hints"] == {"forZones": [{"name": "a"}]}
    assert zone[1]["hints"] == stale  # not ready: left alone
    assert "hints" not in zone[2]
    assert "hints" not in zone[3]
    assert "hints" not in zone[4]  # ready must be explicitly true
    node = with_close_hints(endpoints, node_hints=True)
    assert node[0]["hints"] == {"forZones": [{"name": "a"}], "forNodes": [{"name": "n1"}]}
    assert node[2]["hints"] == {"forNodes": [{"name": "n3"}]}


def nodes(**cpu_by_zone: str) -> list[dict[str, Any]]:
    return [
        {
            "metadata": {"labels": {"topology.kubernetes.io/zone": zone}},
            "status": {
                "allocatable": {"cpu": cpu},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }
        for zone, cpu in cpu_by_zone.items()
    ]


def test_cpu_quantities_and_zone_ratios() -> None:
    assert [cpu_millis(q) for q in ("4", "3500m", "0.5", "", None, "junk")] == [
        4000,
        3500,
        500,
        0,
        0,
        0,
    ]
    assert zone_cpu_ratios(nodes(a="3", b="1")) == {"a": 0.75, "b": 0.25}
    assert zone_cpu_ratios(nodes(a="3")) is None  # one zone
    broken = nodes(a="3", b="1")
    del broken[1]["metadata"]["labels"]["topology.kubernetes.io/zone"]
    assert zone_cpu_ratios(broken) is None
    control_plane = nodes(a="3", b="1", c="8")
    control_plane[2]["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] = ""
    assert zone_cpu_ratios(control_plane) == {"a": 0.75, "b": 0.25}


def zones_of(slices: list[list[dict[str, Any]]]) -> list[str | None]:
    return [e["hints"]["forZones"][0]["name"] if "hints" in e else None for s in slices for e in s]


def test_auto_hints_keep_own_zone_when_balanced() -> None:
    slices = [[ep("10.0.0.1", "a"), ep("10.0.0.2", "b")]]
    assert zones_of(with_auto_hints(slices, {"a": 0.5, "b": 0.5})) == ["a", "b"]


def test_auto_hints_move_endpoints_to_zones_with_more_cpu() -> None:
    zones = [["a", "a", "a", "a", "b"], ["a", "b", "b"]]  # 5 in a, 3 in b; b has 3/4 of the CPU
    slices = [
        [ep(f"10.0.{s}.{i}", zone) for i, zone in enumerate(names)] for s, names in enumerate(zones)
    ]
    hinted = zones_of(with_auto_hints(slices, {"a": 0.25, "b": 0.75}))
    assert hinted.count("a") == 2
    assert hinted.count("b") == 6
    assert [hinted[i] for i in (4, 6, 7)] == ["b", "b", "b"]  # zone b's own endpoints stay


def test_auto_hints_give_up_when_a_zone_would_be_overloaded() -> None:
    slices = [[ep(f"10.0.0.{i}", "a") for i in range(4)] + [ep("10.0.1.1", "b")]]
    assert zones_of(with_auto_hints(slices, {"a": 0.25, "b": 0.75})) == [None] * 5


def test_auto_hints_are_removed_when_allocation_is_impossible() -> None:
    hinted = [ep("10.0.0.1", "a", hints={"forZones": [{"name": "a"}]})]
    assert zones_of(with_auto_hints([hinted], None)) == [None]
    assert zones_of(with_auto_hints([hinted], {"a": 0.5, "b": 0.5})) == [
        None
    ]  # 2 zones, 1 endpoint
    no_zone = [ep("10.0.0.1", "a"), ep("10.0.0.2", None), ep("10.0.0.3", "b")]
    assert zones_of(with_auto_hints([no_zone], {"a": 0.5, "b": 0.5})) == [None, None, None]
