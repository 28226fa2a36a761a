"""From the desired table and the kernel's table to the operations that make them equal.

Pure: the reconciler passes both tables and two predicates, and applies what comes back.

- Ownership: an observed virtual server that is not desired is deleted only when `owns(key)`
  says ipvsd owns it; keepalived's or hand-made entries are never touched.
- In place: a changed scheduler, flag, timeout or netmask is an UpdateService (the VIP stays
  up); a changed weight, forwarding method or threshold is an UpdateRealServer (connections
  stay). A draining real server that is wanted again gets its weight back in place instead of
  kube-proxy's delete-and-add, which killed its connections.
- Draining: an unwanted real server is deleted at once when it has no connections, or when it
  serves UDP or SCTP (a datagram flow has nothing to finish; stale entries would keep sending
  to a dead pod). A TCP one with connections is set to weight 0 (no new connections) and
  deleted once its connections are gone or `drain_expired` says its grace period is over.
- Order: a virtual server is added before its real servers; everything else follows the
  desired table's sorted order, deletions of whole virtual servers last.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from ipvsd.model.ipvs import (
    AddRealServer,
    AddService,
    DeleteRealServer,
    DeleteService,
    IPAddress,
    ObservedRealServer,
    ObservedVirtualServer,
    Operation,
    Protocol,
    RealServer,
    ServiceKey,
    UpdateRealServer,
    UpdateService,
    VirtualServer,
)

DesiredTable = Mapping[ServiceKey, tuple[VirtualServer, tuple[RealServer, ...]]]
Endpoint = tuple[IPAddress, int]


def diff_tables(
    desired: DesiredTable,
    observed: Iterable[ObservedVirtualServer],
    *,
    owns: Callable[[ServiceKey], bool],
    drain_expired: Callable[[ServiceKey, Endpoint], bool] = lambda key, endpoint: False,
) -> list[Operation]:
    """The operations that turn `observed` into `desired` (only for keys in `desired`, plus
    deletion of owned virtual servers that are no longer desired)."""
    seen = {entry.key: entry for entry in observed}
    ops: list[Operation] = []
    for key in sorted(desired, key=ServiceKey.sort_key):
        server, real_servers = desired[key]
        current = seen.get(key)
        if current is None:
            ops.extend(creation(server, real_servers))
        else:
            ops.extend(diff_service(server, real_servers, current, drain_expired=drain_expired))
    stale = [key for key in seen if key not in desired and owns(key)]
    ops.extend(DeleteService(key) for key in sorted(stale, key=ServiceKey.sort_key))
    return ops


def creation(server: VirtualServer, real_servers: Iterable[RealServer]) -> list[Operation]:
    """A virtual server the kernel does not have: it first, then its real servers."""
    return [AddService(server), *(AddRealServer(server.key, real) for real in real_servers)]


def diff_service(
    server: VirtualServer,
    real_servers: tuple[RealServer, ...],
    current: ObservedVirtualServer,
    *,
    drain_expired: Callable[[ServiceKey, Endpoint], bool] = lambda key, endpoint: False,
) -> list[Operation]:
    """The operations that turn one observed virtual server into the desired one."""
    key = server.key
    ops: list[Operation] = []
    if not server.same_attributes(current.server):
        ops.append(UpdateService(server))
    present = {real.server.endpoint: real for real in current.real_servers}
    for real in real_servers:
        existing = present.get(real.endpoint)
        if existing is None:
            ops.append(AddRealServer(key, real))
        elif existing.server != real:
            ops.append(UpdateRealServer(key, real))
    wanted = {real.endpoint for real in real_servers}
    for endpoint, existing in present.items():
        if endpoint not in wanted:
            ops.extend(_retire(key, existing, expired=drain_expired(key, endpoint)))
    return ops


def _retire(key: ServiceKey, existing: ObservedRealServer, *, expired: bool) -> list[Operation]:
    real = existing.server
    busy = existing.active_connections + existing.inactive_connections > 0
    datagrams = key.protocol in (Protocol.UDP, Protocol.SCTP)
    if datagrams or not busy or expired:
        return [DeleteRealServer(key, real.address, real.port)]
    if real.weight != 0:
        return [UpdateRealServer(key, real._replace(weight=0))]
    return []  # already draining: wait for its connections to end
