"""Which backends of one service port become real servers on this node, with what weight, why.

The steps, per service port (reference §4 plus ipvsd's own topology):

1. Where hints come from (`--topology-source`): the EndpointSlices' hints (`hints`, kube-proxy),
   or hints derived here from `spec.trafficDistribution` and the endpoints' `nodeName`/`zone`
   exactly as the EndpointSlice controller would write them (`spec`), or the slices' hints when
   any endpoint carries one and the spec otherwise (`auto`) — for clusters whose controller
   writes no hints.
2. kube-proxy's `CategorizeEndpoints` (`plan.topology`) gives the cluster and local sets;
   hints narrow the cluster set only in `exclude` mode without topology keys.
3. `ipvsd.io/topology-keys` narrows the usable cluster endpoints to the first key that matches.
4. `ipvsd.io/topology-mode: weight` weights each chosen endpoint by its proximity; otherwise
   every real server has weight 1. The local set (traffic policy Local) is never narrowed
   further nor weighted: it is this node's endpoints only.

A `PortSelection` keeps what was considered, so `reasons()` can say for every endpoint why it
was kept or left out (for `ipvsd explain`) without slowing the sync path down.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from ipvsd.plan.backends import Backend
from ipvsd.plan.context import NodeContext
from ipvsd.plan.topology import Categorized, PortPolicy, TopologyMode, categorize_endpoints
from ipvsd.plan.topology_annotations import (
    ANY_KEY,
    TOPOLOGY_KEYS,
    Proximity,
    TopologyHandling,
    TopologyPolicy,
)

# The trafficDistribution values the EndpointSlice controller writes zone hints for.
ZONE_DISTRIBUTIONS = frozenset({"PreferClose", "PreferSameZone", "PreferSameNode"})
NODE_DISTRIBUTION = "PreferSameNode"


class Chosen(NamedTuple):
    """A backend that became a real server (a NamedTuple: one per real server per plan)."""

    backend: Backend
    weight: int
    proximity: Proximity


@dataclass(frozen=True, slots=True)
class PortSelection:
    """The real servers of one service port's virtual servers of one kind (cluster or local).

    `candidates` are the backends as considered (with derived hints under `--topology-source
    spec`); `hint_mode` is what the hints decided; `key` the topology key that won, with this
    node's value (`("*", None)` for the wildcard), `no_key_matched` when none did; `fallback`
    says that a topology preference could not be honoured at its first level.
    """

    chosen: tuple[Chosen, ...]
    candidates: tuple[Backend, ...]
    local: bool = False
    summary: str = ""
    fallback: bool = False
    terminating: bool = False
    hint_mode: TopologyMode = TopologyMode.NONE
    key: tuple[str, str | None] | None = None
    no_key_matched: bool = False
    weighted: bool = False

    def reasons(self, node: NodeContext) -> list[tuple[Backend, Chosen | None, str]]:
        """Every candidate with its real server (None when left out) and why."""
        kept = {chosen.backend: chosen for chosen in self.chosen}
        return [
            (backend, kept.get(backend), self._reason(backend, kept.get(backend), node))
            for backend in self.candidates
        ]

    def _reason(self, backend: Backend, chosen: Chosen | None, node: NodeContext) -> str:
        if self.local:
            return _local_reason(backend, chosen, self.terminating, node)
        readiness = _readiness_reason(backend, self.terminating)
        if readiness is not None:
            return readiness
        if chosen is None:
            return self._topology_reason(backend, node)
        why = "serving and terminating, no endpoint is ready" if self.terminating else "ready"
        where = self._topology_reason(backend, node)
        if self.weighted:
            return f"{why}, {where} ({chosen.proximity.value} weight {chosen.weight})"
        return f"{why}, {where}" if where else why

    def _topology_reason(self, backend: Backend, node: NodeContext) -> str:
        if self.no_key_matched:
            return "no topology key matched this node and there is no '*'"
        if self.key is not None:
            key, value = self.key
            if value is None:
                return "any endpoint ('*'): no earlier topology key matched"
            theirs = node.endpoint_label(backend.endpoint, key)
            if theirs == value:
                return f"{key}={value} like this node"
            return f"{key}={theirs or '(unset)'}, this node has {value}"
        if self.weighted:
            return {
                Proximity.NODE: "on this node",
                Proximity.ZONE: f"in this node's zone {node.zone}",
                Proximity.OTHER: f"in {_where(backend, node)}",
            }[node.proximity(backend.endpoint)]
        if self.hint_mode is TopologyMode.PREFER_SAME_NODE:
            if node.name in backend.node_hints:
                return "hinted for this node"
            return f"hinted for {_names(backend.node_hints)}, not this node"
        if self.hint_mode is TopologyMode.PREFER_SAME_ZONE:
            if node.zone in backend.zone_hints:
                return f"hinted for this node's zone {node.zone}"
            return f"hinted for zone {_names(backend.zone_hints)}, not {node.zone}"
        return ""


@dataclass(frozen=True, slots=True)
class PortSelections:
    cluster: PortSelection
    local: PortSelection


def select_port(
    backends: Sequence[Backend],
    policy: PortPolicy,
    *,
    topology: TopologyPolicy,
    distribution: str | None,
    node: NodeContext,
) -> PortSelections:
    """The cluster and local real servers of one service port on `node`."""
    candidates, source = _with_hints(backends, distribution, node)
    exclude = topology.mode is TopologyHandling.EXCLUDE and not topology.keys
    sets = categorize_endpoints(
        candidates, policy, node_name=node.name, zone=node.zone, use_hints=exclude
    )
    return PortSelections(
        cluster=_cluster(candidates, sets, topology, source, node),
        local=_local(candidates, sets, node),
    )


def derived_hints(
    backends: Sequence[Backend], distribution: str | None, node: NodeContext
) -> tuple[Backend, ...]:
    """The hints the EndpointSlice controller would write for `distribution`: every ready
    endpoint gets its zone (and for PreferSameNode its node); others and unknown
    distributions get none."""
    result = []
    for backend in backends:
        endpoint = backend.endpoint
        zones: tuple[str, ...] = ()
        nodes: tuple[str, ...] = ()
        if endpoint.ready and distribution in ZONE_DISTRIBUTIONS:
            zones = (node.endpoint_zone(endpoint) or "",)
            if distribution == NODE_DISTRIBUTION and endpoint.node_name:
                nodes = (endpoint.node_name,)
        if zones == endpoint.zone_hints and nodes == endpoint.node_hints:
            result.append(backend)
        else:
            changed = endpoint._replace(zone_hints=zones, node_hints=nodes)
            result.append(Backend(changed, backend.port))
    return tuple(result)


def _with_hints(
    backends: Sequence[Backend], distribution: str | None, node: NodeContext
) -> tuple[tuple[Backend, ...], str]:
    source = node.topology_source
    if source == "auto":
        hinted = any(b.zone_hints or b.node_hints for b in backends)
        source = "hints" if hinted else "spec"
    if source == "spec":
        return derived_hints(backends, distribution, node), "spec"
    return tuple(backends), "hints"


def _cluster(
    candidates: tuple[Backend, ...],
    sets: Categorized[Backend],
    topology: TopologyPolicy,
    source: str,
    node: NodeContext,
) -> PortSelection:
    usable = sets.cluster
    terminating = bool(usable) and not any(b.ready for b in usable)
    weighted = topology.mode is TopologyHandling.WEIGHT
    key: tuple[str, str | None] | None = None
    no_match = False
    fallback = False
    if topology.keys:
        usable, key = _by_keys(usable, topology.keys, node)
        no_match = key is None
        fallback = no_match or key != _first_key(topology.keys, node)
        summary = _keys_summary(topology.keys, key, fallback)
    elif weighted:
        summary = f"weights {topology.weights} (ipvsd.io/topology-mode: weight)"
        fallback = bool(usable) and all(
            node.proximity(b.endpoint) is Proximity.OTHER for b in usable
        )
    else:
        summary, fallback = _hints_summary(candidates, sets.mode, source, node)
    if terminating:
        summary += "; no endpoint is ready, so serving-terminating ones are used"
    chosen = []
    for backend in usable:
        place = node.proximity(backend.endpoint)
        chosen.append(Chosen(backend, topology.weights.of(place) if weighted else 1, place))
    return PortSelection(
        chosen=tuple(chosen),
        candidates=candidates,
        summary=summary,
        fallback=fallback,
        terminating=terminating,
        hint_mode=sets.mode,
        key=key,
        no_key_matched=no_match,
        weighted=weighted,
    )


def _local(
    candidates: tuple[Backend, ...], sets: Categorized[Backend], node: NodeContext
) -> PortSelection:
    summary = "traffic policy Local: this node's endpoints only, no fallback to other nodes"
    if sets.local_uses_terminating:
        summary += "; none is ready, so serving-terminating ones are used"
    return PortSelection(
        chosen=tuple(Chosen(b, 1, Proximity.NODE) for b in sets.local),
        candidates=candidates,
        local=True,
        summary=summary,
        terminating=sets.local_uses_terminating,
    )


def _by_keys(
    usable: tuple[Backend, ...], keys: tuple[str, ...], node: NodeContext
) -> tuple[tuple[Backend, ...], tuple[str, str | None] | None]:
    for key in keys:
        if key == ANY_KEY:
            return usable, (ANY_KEY, None)
        value = node.label(key)
        if value is None:
            continue
        matched = tuple(b for b in usable if node.endpoint_label(b.endpoint, key) == value)
        if matched:
            return matched, (key, value)
    return (), None


def _first_key(keys: tuple[str, ...], node: NodeContext) -> tuple[str, str | None]:
    return keys[0], (None if keys[0] == ANY_KEY else node.label(keys[0]))


def _keys_summary(keys: tuple[str, ...], key: tuple[str, str | None] | None, fallback: bool) -> str:
    given = f"{TOPOLOGY_KEYS}={','.join(keys)}"
    if key is None:
        return f"{given}: no key matched and there is no '*', so no real servers (dropped)"
    name, value = key
    matched = "'*' (any endpoint)" if value is None else f"{name}={value}"
    return f"{given}: {matched}{' (fallback from earlier keys)' if fallback else ''}"


def _hints_summary(
    candidates: tuple[Backend, ...], mode: TopologyMode, source: str, node: NodeContext
) -> tuple[str, bool]:
    origin = "hints" if source == "hints" else "hints derived from spec.trafficDistribution"
    ready = [b for b in candidates if b.ready]
    if any(b.node_hints for b in ready):
        wanted = TopologyMode.PREFER_SAME_NODE
    elif any(b.zone_hints for b in ready):
        wanted = TopologyMode.PREFER_SAME_ZONE
    else:
        return "no topology: no endpoint carries hints", False
    if mode is TopologyMode.PREFER_SAME_NODE:
        return f"{origin}: PreferSameNode, this node {node.name}", False
    if mode is TopologyMode.PREFER_SAME_ZONE:
        fallback = wanted is TopologyMode.PREFER_SAME_NODE
        note = " (fallback: no endpoint is hinted for this node)" if fallback else ""
        return f"{origin}: PreferSameZone, zone {node.zone}{note}", fallback
    why = "this node has no zone" if node.zone is None else f"nothing is hinted for {node.zone}"
    return (
        f"{origin} ignored ({why}, or not every ready endpoint has hints): "
        "every ready endpoint (fallback)",
        True,
    )


def _readiness_reason(backend: Backend, terminating: bool) -> str | None:
    if backend.ready:
        return None
    if backend.is_serving_terminating:
        return None if terminating else "terminating, and ready endpoints exist"
    return "terminating, not serving" if backend.endpoint.terminating else "not ready"


def _local_reason(
    backend: Backend, chosen: Chosen | None, terminating: bool, node: NodeContext
) -> str:
    if backend.node_name != node.name:
        return f"on {_where(backend, node)}, not this node (traffic policy Local)"
    if chosen is not None:
        return (
            "on this node, serving and terminating (none is ready)"
            if terminating
            else ("on this node, ready")
        )
    readiness = _readiness_reason(backend, terminating)
    return f"on this node, {readiness or 'not chosen'}"


def _where(backend: Backend, node: NodeContext) -> str:
    name = backend.node_name or "an unknown node"
    zone = node.endpoint_zone(backend.endpoint)
    return f"node {name} (zone {zone})" if zone else f"node {name}"


def _names(names: tuple[str, ...]) -> str:
    return ",".join(names) if names else "(none)"
