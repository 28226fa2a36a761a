"""After a sync: delete the conntrack entries that keep UDP flows away from the new table.

The syncer calls `after_sync` once IPVS has been changed and new VIPs are bound (an entry
deleted earlier could be re-made the old way by the flow's next packet). Which frontends to
look at and which entries are stale are `plan.udp_conntrack`'s pure decisions; this module
keeps what they need between syncs (each Service's frontends as of the last cleanup) and does
the I/O: one dump per family that has a frontend to check, then one batched deletion.

Only frontends whose serving endpoints changed are looked at, so a periodic full sync in which
nothing changed costs no dump; the first sync after start looks at all of them, and a full sync
that puts back a UDP virtual server or a VIP the kernel had lost (deleted by hand) looks at
those. A failure
(no ctnetlink, a refusal) never fails the sync: it is logged once until a cleanup succeeds
again, reported for the metrics, and its frontends are looked at again on the next sync.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass

from ipvsd.dataplane.conntrack import Conntrack
from ipvsd.model.ipvs import Family, IPAddress, Protocol
from ipvsd.model.service import ServiceRef
from ipvsd.model.tracked_flow import FlowEnd
from ipvsd.plan.desired import DesiredService
from ipvsd.plan.udp_conntrack import frontends_to_check, stale_flows, udp_frontends

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CleanupOutcome:
    """What one cleanup did: entries deleted, and whether it failed (retried next sync)."""

    deleted: int = 0
    failed: bool = False


NO_CLEANUP = CleanupOutcome()


class UdpConntrackCleaner:
    """Remembers each Service's UDP frontends and cleans up after the syncs that change them."""

    def __init__(self, conntrack: Conntrack) -> None:
        self._conntrack = conntrack
        self._frontends: dict[ServiceRef, dict[FlowEnd, frozenset[FlowEnd]]] = {}
        self._pending: dict[FlowEnd, frozenset[FlowEnd]] = {}  # a failed cleanup's frontends
        self._complaint: str | None = None  # the failure logged last (logged once)

    async def after_sync(
        self,
        planned: Mapping[ServiceRef, DesiredService],
        changed: Iterable[ServiceRef] | None = None,
        *,
        put_back: Set[FlowEnd] = frozenset(),
        bound: Set[IPAddress] = frozenset(),
    ) -> CleanupOutcome:
        """Clean up after a sync that planned `planned` (every Service after a full sync; the
        changed ones' new plans after a partial one, `changed` naming them). `put_back` (UDP
        virtual servers the sync added) and `bound` (addresses it bound) are checked too,
        endpoints changed or not: a full sync that puts back what the kernel lost (`ipvsadm
        -C`, a VIP removed by hand) must also free the flows blackholed meanwhile."""
        refs = (planned.keys() | self._frontends.keys()) if changed is None else set(changed)
        check = dict(self._pending)
        for ref in refs:
            desired = planned.get(ref)
            after = udp_frontends(desired.virtual_servers) if desired is not None else {}
            check.update(frontends_to_check(self._frontends.get(ref, {}), after))
            if after:
                self._frontends[ref] = after
            else:
                self._frontends.pop(ref, None)
        if put_back or bound:
            for frontends in self._frontends.values():
                for frontend, serving in frontends.items():
                    if frontend in put_back or frontend.address in bound:
                        check.setdefault(frontend, serving)
        if not check:
            return NO_CLEANUP
        try:
            deleted = await self._clean(check)
        except Exception as error:
            self._pending = check
            complaint = str(error)
            if complaint != self._complaint:
                log.error("UDP conntrack cleanup failed (retried on the next sync): %s", error)
                self._complaint = complaint
            return CleanupOutcome(failed=True)
        self._pending = {}
        if self._complaint is not None:
            log.info("UDP conntrack cleanup works again")
            self._complaint = None
        return CleanupOutcome(deleted=deleted)

    async def _clean(self, frontends: Mapping[FlowEnd, frozenset[FlowEnd]]) -> int:
        stale = []
        for family in sorted({Family.of(frontend.address) for frontend in frontends}):
            stale += stale_flows(frontends, await self._conntrack.flows(family, Protocol.UDP))
        if not stale:
            return 0
        for flow in stale:
            log.debug("stale UDP conntrack entry: %s", flow)
        deleted = await self._conntrack.delete(stale)
        log.info("deleted %d stale UDP conntrack entries", deleted)
        return deleted
