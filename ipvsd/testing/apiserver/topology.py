"""The EndpointSlice controller's hint rules, as pure functions over endpoint lists.

- `trafficDistribution: PreferClose | PreferSameZone`: every *ready* endpoint (`ready: true`
  explicitly) gets `forZones: [{name: its zone}]`; `PreferSameNode` adds `forNodes: [{name:
  its node}]`. Not-ready endpoints are left as they are. No (known) distribution: every hint
  is removed. (upstream: staging/src/k8s.io/endpointslice/trafficdist)
- annotation `service.kubernetes.io/topology-mode: Auto` (or the older
  `service.kubernetes.io/topology-aware-hints: auto`) overrides `trafficDistribution` and
  allocates zones in proportion to the allocatable CPU of ready, non-control-plane Nodes: each
  ready endpoint first gets its own zone, then zones holding more than their share give
  endpoints to zones holding less, endpoint by endpoint (upstream: topologycache). All hints
  are removed when the allocation is impossible, as upstream does: fewer than two zones, a
  node without zone or CPU, more zones than ready endpoints, a zone whose minimum share
  (share / 1.2, rounded up) cannot be met, or a ready endpoint without a zone.
  Simplified: every slice is recomputed from scratch (upstream keeps unchanged slices'
  hints when they still fit), and ties are broken by zone name instead of map order, so
  the result is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

Endpoint = dict[str, Any]
Policy = Literal["zone", "node", "auto"]
TOPOLOGY_MODE = "service.kubernetes.io/topology-mode"
TOPOLOGY_AWARE_HINTS = "service.kubernetes.io/topology-aware-hints"
ZONE_LABEL = "topology.kubernetes.io/zone"
_EXCLUDED_NODE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
_OVERLOAD = 0.2


def hint_policy(service: Mapping[str, Any]) -> Policy | None:
    """Which hints a Service asks the controller for (None: remove them)."""
    annotations = (service.get("metadata") or {}).get("annotations") or {}
    mode = annotations.get(TOPOLOGY_MODE, annotations.get(TOPOLOGY_AWARE_HINTS))
    if mode in ("Auto", "auto"):
        return "auto"
    distribution = (service.get("spec") or {}).get("trafficDistribution")
    if distribution in ("PreferClose", "PreferSameZone"):
        return "zone"
    if distribution == "PreferSameNode":
        return "node"
    return None


def is_ready(endpoint: Endpoint) -> bool:
    return (endpoint.get("conditions") or {}).get("ready") is True


def without_hints(endpoints: list[Endpoint]) -> list[Endpoint]:
    return [{k: v for k, v in e.items() if k != "hints"} for e in endpoints]


def with_close_hints(endpoints: list[Endpoint], *, node_hints: bool) -> list[Endpoint]:
    """PreferClose/PreferSameZone (`node_hints` False) and PreferSameNode (True)."""
    result = []
    for original in endpoints:
        endpoint = dict(original)
        if is_ready(endpoint):
            hints: dict[str, Any] = {}
            if endpoint.get("zone") is not None:
                hints["forZones"] = [{"name": endpoint["zone"]}]
            if node_hints and endpoint.get("nodeName") is not None:
                hints["forNodes"] = [{"name": endpoint["nodeName"]}]
            if hints:
                endpoint["hints"] = hints
            else:
                endpoint.pop("hints", None)
        result.append(endpoint)
    return result


def cpu_millis(quantity: object) -> int:
    """A CPU quantity ("4", "3500m", "0.5") in millicores; 0 when missing or unreadable."""
    text = str(quantity or "")
    try:
        if text.endswith("m"):
            return int(Decimal(text[:-1]))
        return int(Decimal(text) * 1000)
    except InvalidOperation:
        return 0


def _node_ready(node: Mapping[str, Any]) -> bool:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def zone_cpu_ratios(nodes: Iterable[Mapping[str, Any]]) -> dict[str, float] | None:
    """Each zone's share of allocatable CPU, or None when the node information is insufficient."""
    by_zone: dict[str, int] = {}
    for node in nodes:
        labels = (node.get("metadata") or {}).get("labels") or {}
        if any(label in labels for label in _EXCLUDED_NODE_LABELS) or not _node_ready(node):
            continue
        zone = labels.get(ZONE_LABEL, "")
        cpu = cpu_millis(((node.get("status") or {}).get("allocatable") or {}).get("cpu"))
        if not zone or cpu == 0:
            return None
        by_zone[zone] = by_zone.get(zone, 0) + cpu
    total = sum(by_zone.values())
    if total == 0 or len(by_zone) < 2:
        return None
    return {zone: cpu / total for zone, cpu in sorted(by_zone.items())}


def _allocations(ratios: dict[str, float], ready: int) -> dict[str, float] | None:
    """Desired endpoints per zone, or None when the overload threshold cannot be met."""
    if len(ratios) > ready:
        return None
    desired: dict[str, float] = {}
    remaining = ready
    for zone, ratio in ratios.items():
        share = ratio * ready
        minimum = math.ceil(share * (1 / (1 + _OVERLOAD)))
        desired[zone] = max(share, float(minimum))
        remaining -= minimum
        if remaining < 0:
            return None
    return desired


def _most(amounts: dict[str, float]) -> tuple[str, float]:
    zone, most = "", 0.0
    for candidate in sorted(amounts):
        if amounts[candidate] > most:
            zone, most = candidate, amounts[candidate]
    return zone, most


def _transfers(
    desired: dict[str, float], held: dict[str, int]
) -> tuple[dict[str, int], dict[str, int]]:
    """How many endpoints each zone gives away and receives (upstream's rounding rules)."""
    surplus = {z: held.get(z, 0) - d for z, d in desired.items() if held.get(z, 0) > d}
    deficit = {z: d - held.get(z, 0) for z, d in desired.items() if held.get(z, 0) < d}
    giving: dict[str, int] = {}
    receiving: dict[str, int] = {}
    while True:
        giver, to_give = _most(surplus)
        taker, to_take = _most(deficit)
        if (
            not giver
            or not taker
            or (to_give < 1 and to_take < 1)
            or to_give < 0.5
            or to_take < 0.5
        ):
            return giving, receiving
        giving[giver] = giving.get(giver, 0) + 1
        surplus[giver] -= 1
        receiving[taker] = receiving.get(taker, 0) + 1
        deficit[taker] -= 1


def with_auto_hints(
    slices: list[list[Endpoint]], ratios: dict[str, float] | None
) -> list[list[Endpoint]]:
    """Topology-aware hints for the slices of one Service and address type."""
    ready = sum(is_ready(e) for endpoints in slices for e in endpoints)
    desired = _allocations(ratios, ready) if ratios else None
    if desired is None or any(
        is_ready(e) and not e.get("zone") for endpoints in slices for e in endpoints
    ):
        return [without_hints(endpoints) for endpoints in slices]
    result = [[dict(e) for e in endpoints] for endpoints in slices]
    held: dict[str, int] = {}
    for endpoints in result:
        for endpoint in endpoints:
            if is_ready(endpoint):
                held[endpoint["zone"]] = held.get(endpoint["zone"], 0) + 1
                endpoint["hints"] = {"forZones": [{"name": endpoint["zone"]}]}
    giving, receiving = _transfers(desired, held)
    for endpoints in result:
        for endpoint in endpoints:
            if not giving or not receiving:
                return result
            if not is_ready(endpoint) or giving.get(endpoint["zone"], 0) <= 0:
                continue
            taker = sorted(receiving)[0]
            endpoint["hints"] = {"forZones": [{"name": taker}]}
            giving[endpoint["zone"]] -= 1
            if giving[endpoint["zone"]] == 0:
                del giving[endpoint["zone"]]
            receiving[taker] -= 1
            if receiving[taker] == 0:
                del receiving[taker]
    return result
