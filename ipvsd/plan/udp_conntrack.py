"""Which conntrack entries of UDP Services are stale, and which Services to look at (pure).

UDP has no connection to end: a client that keeps sending from one source port (a resolver, a
syslog shipper) refreshes its conntrack entry forever, and packets matching an entry follow
that entry, not IPVS's current table. Two kinds of entries then blackhole a flow:

- the reply source is a pod that is no longer an endpoint (the pod went away);
- the reply source is not a pod at all: the entry was made while no real server took the flow
  (a Service with no endpoint yet, a virtual server missing during a restart), so the host
  answered or nobody did, and the entry stays un-NATed after the endpoint arrives.

As kube-proxy does (`pkg/proxy/conntrack/cleanup.go`), an entry is stale when its original
destination is a UDP frontend (ClusterIP, externalIP, load-balancer IP or NodePort, at the
service port) of a Service port that has serving endpoints, and its reply source is none of
them. Frontends without a serving endpoint are left alone: there is nowhere better to send the
flow. Traffic policies and topology are not applied: an existing flow to a serving endpoint
stays, like a TCP connection would.

Where ipvsd differs from kube-proxy, on purpose: a NodePort frontend is the node address and
port IPVS serves (kube-proxy matches the port on any destination, which also hits flows that
merely pass through the node to that port elsewhere); an endpoint is an address *and* port (a
changed targetPort leaves the old port stale); and the first sync after ipvsd starts looks at
every UDP frontend, for entries made while ipvsd was not running.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ipvsd.model.ipvs import Protocol
from ipvsd.model.tracked_flow import FlowEnd, TrackedFlow
from ipvsd.plan.desired import DesiredVirtualServer

Frontends = Mapping[FlowEnd, frozenset[FlowEnd]]
"""A UDP frontend (virtual server address and port) → the serving endpoints behind it."""


def udp_frontends(
    virtual_servers: Iterable[DesiredVirtualServer],
) -> dict[FlowEnd, frozenset[FlowEnd]]:
    """The UDP frontends among `virtual_servers` that have serving endpoints."""
    frontends: dict[FlowEnd, frozenset[FlowEnd]] = {}
    for desired in virtual_servers:
        key = desired.server.key
        if key.protocol != Protocol.UDP or key.address is None:
            continue
        serving = serving_endpoints(desired)
        if serving:
            frontends[FlowEnd(key.address, key.port)] = serving
    return frontends


def serving_endpoints(desired: DesiredVirtualServer) -> frozenset[FlowEnd]:
    """Every serving endpoint of the virtual server's service port (in its family), whatever
    the traffic policy or topology chose as real servers."""
    if desired.selection is None:
        return frozenset(FlowEnd(real.address, real.port) for real in desired.real_servers)
    return frozenset(
        FlowEnd(backend.address, backend.port)
        for backend in desired.selection.candidates
        if backend.endpoint.serving
    )


def frontends_to_check(before: Frontends, after: Frontends) -> dict[FlowEnd, frozenset[FlowEnd]]:
    """The frontends of `after` whose serving endpoints are new or changed since `before`:
    an endpoint went away (its flows must move), or the first ones came (flows made before
    them must be made again)."""
    return {
        frontend: serving for frontend, serving in after.items() if before.get(frontend) != serving
    }


def stale_flows(frontends: Frontends, flows: Iterable[TrackedFlow]) -> list[TrackedFlow]:
    """The UDP entries sent to one of `frontends` whose reply comes from none of its serving
    endpoints."""
    stale = []
    for flow in flows:
        if flow.protocol != Protocol.UDP:
            continue
        serving = frontends.get(flow.original.destination)
        if serving is not None and flow.reply.source not in serving:
            stale.append(flow)
    return stale
