"""An in-memory conntrack table with the kernel's rules for what the cleanup does to it.

For host tests of the cleanup (`reconcile.udp_conntrack`) and the syncer. The contract suite
runs the same checks on this fake and on `NetlinkConntrack` in the VM. An entry is identified
as the kernel identifies it: by family, protocol, original tuple and zone; its id changes
when a new flow replaces it, so deleting a stale copy leaves the new one (the kernel's usual
case; it can also hand the new entry the old id, see `conntrack_wire.delete_request`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from ipvsd.dataplane.conntrack import ConntrackError
from ipvsd.model.ipvs import Family
from ipvsd.model.tracked_flow import FlowTuple, TrackedFlow

FlowKey = tuple[Family, int, FlowTuple, int]


def _key(flow: TrackedFlow) -> FlowKey:
    return (flow.family, flow.protocol, flow.original, flow.zone)


class FakeConntrack:
    """`Conntrack` in memory. `track` adds (or replaces) an entry as traffic would; `refuse`
    makes the next calls fail with that errno (a fault, as a kernel without ctnetlink)."""

    def __init__(self) -> None:
        self._entries: dict[FlowKey, TrackedFlow] = {}
        self._ids = itertools.count(1)
        self.refuse: int | None = None
        self.dumps = 0  # how many `flows` calls were made (tests check work is skipped)

    def track(self, flow: TrackedFlow) -> TrackedFlow:
        """Add `flow` as a new entry (replacing one with the same tuple); the stored copy."""
        stored = flow._replace(entry_id=next(self._ids))
        self._entries[_key(stored)] = stored
        return stored

    @property
    def entries(self) -> list[TrackedFlow]:
        return list(self._entries.values())

    async def flows(self, family: Family, protocol: int) -> list[TrackedFlow]:
        self._check()
        self.dumps += 1
        return [f for f in self._entries.values() if f.family == family and f.protocol == protocol]

    async def delete(self, flows: Sequence[TrackedFlow]) -> int:
        self._check()
        deleted = 0
        for flow in flows:
            present = self._entries.get(_key(flow))
            if present is None or (flow.entry_id is not None and present.entry_id != flow.entry_id):
                continue  # gone, or a new flow with the same tuple: the kernel's ENOENT
            del self._entries[_key(flow)]
            deleted += 1
        return deleted

    async def close(self) -> None:
        pass

    def _check(self) -> None:
        if self.refuse is not None:
            raise ConntrackError(self.refuse, "refused (fake)")
