"""Which Service owns each virtual server when two Services ask for the same one.

Two Services can ask for the same (address, protocol, port), e.g. both listing one externalIP on
one port. The older Service (by metadata.creationTimestamp, then namespace/name) keeps it and
the newer one is told, where kube-proxy's last-writer-wins would flap between them. Age, not
name, so that a Service created later cannot take over an address an established one serves
(the interception of CVE-2020-8554), whatever it is called; a Service without a timestamp
counts as the newest. `Claims` remembers the owner of every programmed virtual server, so a
partial sync settles only the changed Services' keys instead of re-sorting every Service on
the node (10,000 of them in the benchmark, on every change).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

from ipvsd.model.ipvs import ServiceKey
from ipvsd.model.service import ServiceRef
from ipvsd.plan.desired import DesiredService

log = logging.getLogger(__name__)

NEWEST = "~"  # sorts after every RFC 3339 timestamp: no creationTimestamp, no precedence


class Claims:
    """`created(ref)`: the Service's creationTimestamp ("" if unknown) — its precedence."""

    def __init__(self, created: Callable[[ServiceRef], str]) -> None:
        self._owners: dict[ServiceKey, ServiceRef] = {}
        self._created = created

    def _rank(self, ref: ServiceRef) -> tuple[str, ServiceRef]:
        return (self._created(ref) or NEWEST, ref)

    def resolve_all(
        self, planned: Mapping[ServiceRef, DesiredService]
    ) -> dict[ServiceRef, DesiredService]:
        """Every Service afresh: drop virtual servers an older Service already claims."""
        self._owners = {}
        return self._settle(dict(planned), sorted(planned, key=self._rank))

    def resolve(
        self,
        planned: dict[ServiceRef, DesiredService],
        changed: Iterable[ServiceRef],
        *,
        previous: Mapping[ServiceRef, DesiredService],
    ) -> tuple[dict[ServiceRef, DesiredService], set[ServiceRef]]:
        """Settle the `changed` Services' claims in `planned` (the others are settled already;
        `previous` is what was programmed). Returns the result and the unchanged Services that
        lost a virtual server to an older changed one. After a failed sync the owners are
        unknown: the next sync must `resolve_all`."""
        changed = sorted(changed, key=self._rank)
        for ref in changed:
            before = previous.get(ref)
            for entry in before.virtual_servers if before is not None else ():
                if self._owners.get(entry.server.key) == ref:
                    del self._owners[entry.server.key]
        losers: set[ServiceRef] = set()
        return self._settle(planned, changed, losers=losers), losers

    def _settle(
        self,
        planned: dict[ServiceRef, DesiredService],
        order: list[ServiceRef],
        *,
        losers: set[ServiceRef] | None = None,
    ) -> dict[ServiceRef, DesiredService]:
        for ref in order:
            desired = planned.get(ref)
            if desired is None:
                continue
            kept = []
            for entry in desired.virtual_servers:
                key = entry.server.key
                owner = self._owners.setdefault(key, ref)
                if owner == ref:
                    kept.append(entry)
                elif self._rank(owner) < self._rank(ref) or losers is None:
                    log.warning("Service %s: %s is already used by %s; skipped", ref, key, owner)
                else:  # an unchanged newer Service held it: the older one wins, as in a full sync
                    self._owners[key] = ref
                    kept.append(entry)
                    planned[owner] = _without(planned[owner], key)
                    losers.add(owner)
                    log.warning("Service %s: %s is already used by %s; skipped", owner, key, ref)
            if len(kept) != len(desired.virtual_servers):
                planned[ref] = replace(desired, virtual_servers=tuple(kept))
        return planned


def _without(desired: DesiredService, key: ServiceKey) -> DesiredService:
    kept = tuple(entry for entry in desired.virtual_servers if entry.server.key != key)
    return replace(desired, virtual_servers=kept)
