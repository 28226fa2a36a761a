"""Which endpoints of a service port this node sends traffic to: kube-proxy's exact rules.

`categorize_endpoints` is kube-proxy's `CategorizeEndpoints` (pkg/proxy/topology.go), rule for
rule, as a pure function of values:

- The *cluster* set (for traffic policy Cluster): Ready endpoints, narrowed by topology hints
  when the hints allow it; if no Ready endpoint exists anywhere, the serving-and-terminating
  ones (topology ignored). The hints decide a *mode* for the whole port, never per endpoint:
  PreferSameNode when every Ready endpoint has node hints and one is hinted for this node,
  else PreferSameZone when every Ready endpoint has zone hints and one is hinted for this zone,
  else no topology at all. That is the only fallback there is.
- The *local* set (for traffic policy Local): this node's Ready endpoints, or if it has none,
  its serving-and-terminating ones. Topology never applies.

What the proxy does with an empty local set is not decided here (ipvsd drops, where
kube-proxy's IPVS mode fell back to the cluster set; see `plan.desired`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar


class Conditioned(Protocol):
    """What topology looks at: an endpoint's conditions, location and hints.

    `model.endpoint.Endpoint` is one; so is the planner's backend (an endpoint with the port
    of the service port it serves).
    """

    @property
    def ready(self) -> bool: ...
    @property
    def node_name(self) -> str | None: ...
    @property
    def zone_hints(self) -> tuple[str, ...]: ...
    @property
    def node_hints(self) -> tuple[str, ...]: ...
    @property
    def is_serving_terminating(self) -> bool: ...


E = TypeVar("E", bound=Conditioned)


class TopologyMode(enum.Enum):
    """The topology a port's cluster set was narrowed by (from the endpoints' hints)."""

    NONE = "none"
    PREFER_SAME_NODE = "PreferSameNode"
    PREFER_SAME_ZONE = "PreferSameZone"


@dataclass(frozen=True, slots=True)
class PortPolicy:
    """The traffic policies of one service port, for one IP family.

    `externally_accessible`: the port has a nodePort, or an external or load-balancer IP of
    this family. An external policy of Local only counts for such ports, as in kube-proxy.
    """

    internal_local: bool = False
    external_local: bool = False
    externally_accessible: bool = False

    @property
    def uses_cluster_endpoints(self) -> bool:
        # Even with eTP=Local, external traffic from pods on this node is short-circuited to
        # the cluster set, so an externally accessible port always needs it.
        return not self.internal_local or self.externally_accessible

    @property
    def uses_local_endpoints(self) -> bool:
        return self.internal_local or (self.external_local and self.externally_accessible)


@dataclass(frozen=True, slots=True)
class Categorized(Generic[E]):
    """The endpoint sets of one service port on one node."""

    cluster: tuple[E, ...] = ()
    local: tuple[E, ...] = ()
    mode: TopologyMode = TopologyMode.NONE
    has_any_endpoints: bool = False
    local_uses_terminating: bool = False


def topology_mode(
    endpoints: Sequence[Conditioned], *, node_name: str, zone: str | None
) -> TopologyMode:
    """The hint-driven mode, looking only at Ready endpoints (none Ready: no topology)."""
    all_node_hints = all_zone_hints = True
    hinted_for_node = hinted_for_zone = False
    for endpoint in endpoints:
        if not endpoint.ready:
            continue
        if not endpoint.node_hints:
            all_node_hints = False
        elif node_name in endpoint.node_hints:
            hinted_for_node = True
        if not endpoint.zone_hints:
            all_zone_hints = False
        elif zone and zone in endpoint.zone_hints:  # a node without a zone never matches
            hinted_for_zone = True
        if not all_node_hints and not all_zone_hints:
            return TopologyMode.NONE  # decided: the usual case of a port without hints
    if all_node_hints and hinted_for_node:
        return TopologyMode.PREFER_SAME_NODE
    if all_zone_hints and hinted_for_zone:
        return TopologyMode.PREFER_SAME_ZONE
    return TopologyMode.NONE


def is_available_for(
    endpoint: Conditioned, mode: TopologyMode, *, node_name: str, zone: str | None
) -> bool:
    """Whether `endpoint` may be used under `mode` by this node."""
    if mode is TopologyMode.PREFER_SAME_NODE:
        return node_name in endpoint.node_hints
    if mode is TopologyMode.PREFER_SAME_ZONE:
        return zone is not None and zone in endpoint.zone_hints
    return True


def _select(endpoints: Sequence[E], keep: Callable[[E], bool]) -> tuple[E, ...]:
    return tuple(endpoint for endpoint in endpoints if keep(endpoint))


def categorize_endpoints(
    endpoints: Sequence[E],
    policy: PortPolicy,
    *,
    node_name: str,
    zone: str | None,
    use_hints: bool = True,
) -> Categorized[E]:
    """The cluster and local endpoint sets of one service port, as kube-proxy computes them.

    `use_hints=False` leaves the cluster set un-narrowed by hints (ipvsd's weight mode and
    topology keys decide topology themselves).
    """
    cluster: tuple[E, ...] = ()
    mode = TopologyMode.NONE
    has_any = False
    if policy.uses_cluster_endpoints:
        if use_hints:
            mode = topology_mode(endpoints, node_name=node_name, zone=zone)
        if mode is TopologyMode.NONE:
            cluster = tuple(e for e in endpoints if e.ready)
        else:
            cluster = _select(
                endpoints,
                lambda e: e.ready and is_available_for(e, mode, node_name=node_name, zone=zone),
            )
        if not cluster:  # no Ready endpoint anywhere (topology would have been dropped)
            cluster = _select(endpoints, lambda e: e.is_serving_terminating)
        has_any = bool(cluster)
    if not policy.uses_local_endpoints:
        return Categorized(cluster=cluster, mode=mode, has_any_endpoints=has_any)

    local_ready = _select(endpoints, lambda e: e.ready and e.node_name == node_name)
    local = local_ready or _select(
        endpoints, lambda e: e.is_serving_terminating and e.node_name == node_name
    )
    has_any = has_any or any(e.ready or e.is_serving_terminating for e in endpoints)
    return Categorized(
        cluster=cluster,
        local=local,
        mode=mode,
        has_any_endpoints=has_any,
        local_uses_terminating=bool(local) and not local_ready,
    )
