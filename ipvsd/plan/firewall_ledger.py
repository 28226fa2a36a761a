"""The firewall sets kept current one Service at a time, and what changed since the last sync.

Rebuilding every set from every Service on each change costs time in proportion to the
cluster (at 10,000 Services, 100,000 hairpin elements: hundreds of milliseconds) although one
EndpointSlice change touches a handful of elements. The ledger keeps each Service's share
(`firewall_for` of that Service alone) and counts, per set element, how many Services want it:
two Services may share an element (the same pod behind both: one hairpin element), so an
element goes only when its last Service lets go of it. Each element whose presence flipped
since the last `take_changes()` is reported once, so the nftables adapter can add and delete
exactly those (`dataplane.nft.render_changes`).

Pure bookkeeping: no I/O. The syncer replaces the table whole on full syncs (`snapshot()`) and
sends changes on partial ones.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping

from ipvsd.model.firewall import SET_FIELDS, Firewall, FirewallChanges, FirewallConfig
from ipvsd.model.service import ServiceRef


class FirewallLedger:
    def __init__(self, config: FirewallConfig) -> None:
        self.config = config
        self._clear()

    def _clear(self) -> None:
        self._parts: dict[ServiceRef, Firewall] = {}
        self._counts: dict[str, dict[Hashable, int]] = {name: {} for name in SET_FIELDS}
        self._added: dict[str, set[Hashable]] = {name: set() for name in SET_FIELDS}
        self._removed: dict[str, set[Hashable]] = {name: set() for name in SET_FIELDS}

    def reset(self, parts: Mapping[ServiceRef, Firewall]) -> Firewall:
        """Start afresh from every Service's share; returns the whole firewall."""
        self._clear()
        self._parts = dict(parts)
        for name in SET_FIELDS:
            counts = self._counts[name]
            for part in parts.values():
                for element in getattr(part, name):
                    counts[element] = counts.get(element, 0) + 1
        return self.snapshot()

    def set_part(self, ref: ServiceRef, part: Firewall | None) -> None:
        """Service `ref` now wants `part` (None: it is gone)."""
        before = self._parts.pop(ref, None)
        if part is not None:
            self._parts[ref] = part
        if before == part:
            return
        for name in SET_FIELDS:
            old: frozenset[Hashable] = getattr(before, name) if before is not None else frozenset()
            new: frozenset[Hashable] = getattr(part, name) if part is not None else frozenset()
            if old != new:
                self._count(name, old - new, -1)
                self._count(name, new - old, +1)

    def _count(self, name: str, elements: Iterable[Hashable], step: int) -> None:
        counts, added, removed = self._counts[name], self._added[name], self._removed[name]
        for element in elements:
            count = counts.get(element, 0) + step
            if count:
                counts[element] = count
            else:
                del counts[element]
            if count == (1 if step > 0 else 0):  # presence flipped
                appeared, gone = (added, removed) if step > 0 else (removed, added)
                if element in gone:
                    gone.discard(element)  # flipped back within one sync: nothing to do
                else:
                    appeared.add(element)

    def take_changes(self) -> FirewallChanges:
        """What flipped since the last call, and start recording afresh."""
        changes = FirewallChanges(
            added=self._firewall(self._added), removed=self._firewall(self._removed)
        )
        for name in SET_FIELDS:
            self._added[name] = set()
            self._removed[name] = set()
        return changes

    def snapshot(self) -> Firewall:
        """The whole firewall the ledger describes."""
        return self._firewall(self._counts)

    def _firewall(self, sets: Mapping[str, Iterable[Hashable]]) -> Firewall:
        values = {name: frozenset(sets[name]) for name in SET_FIELDS}
        return Firewall(config=self.config, **values)  # type: ignore[arg-type]
