"""Which Services' firewall shares make nft refuse the table, found without touching it.

nft loads the table in one transaction: one element the kernel (or nft) refuses fails the
whole load, and with it every Service's rules. When that happens the syncer asks this module
for the culprits: it checks candidate tables with `nft --check` (nothing changes), halving the
group of suspects each time a group is refused, so k refused Services among n cost about
2·k·log2(n) checks instead of n. The syncer then keeps the culprits at their last accepted
share (or without one) and loads the rest.

The search assumes a refusal comes from one Service's share on its own. If every suspect is
accepted alone but not all together (two Services' elements that conflict), or the table
without any suspect is refused (nft or the kernel lacks something the fixed rules use), no
Service is to blame: `culprits` raises `NoCulprit` and the sync fails as a whole.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Protocol

from ipvsd.model.firewall import SET_FIELDS, Firewall, FirewallChanges, FirewallConfig
from ipvsd.model.service import ServiceRef
from ipvsd.plan.firewall_ledger import FirewallLedger
from ipvsd.reconcile.isolation import KernelTally, Problems

log = logging.getLogger(__name__)

KIND = "nftables"

Check = Callable[[Firewall], Awaitable[str | None]]
"""nft's complaint about a table, or None when it would load (`NftFirewall.check`)."""


class NoCulprit(RuntimeError):
    """The refusal is not any single Service's doing."""


def union(config: FirewallConfig, parts: Iterable[Firewall]) -> Firewall:
    """The table that holds every element of `parts`."""
    sets: dict[str, set[object]] = {name: set() for name in SET_FIELDS}
    for part in parts:
        for name in SET_FIELDS:
            sets[name].update(getattr(part, name))
    return Firewall(config=config, **{n: frozenset(v) for n, v in sets.items()})  # type: ignore[arg-type]


async def culprits(
    check: Check,
    config: FirewallConfig,
    parts: Mapping[ServiceRef, Firewall],
    suspects: Iterable[ServiceRef],
) -> dict[ServiceRef, str]:
    """The suspects whose share nft refuses beside the unsuspected shares, with nft's words.

    Raises `NoCulprit` when the unsuspected shares alone are refused or no single suspect is."""
    suspected = sorted(set(suspects) & parts.keys())
    base = [part for ref, part in parts.items() if ref not in set(suspected)]
    complaint = await check(union(config, base))
    if complaint is not None:
        raise NoCulprit(f"the table without the suspected Services is refused too: {complaint}")
    found: dict[ServiceRef, str] = {}

    async def search(group: list[ServiceRef]) -> None:
        complaint = await check(union(config, [*base, *(parts[ref] for ref in group)]))
        if complaint is None:
            return
        if len(group) == 1:
            found[group[0]] = complaint
            return
        half = len(group) // 2
        await search(group[:half])
        await search(group[half:])

    if suspected:
        await search(suspected)
    if not found:
        raise NoCulprit("every Service's share is accepted on its own")
    return found


class FirewallRefused(RuntimeError):
    """nft refused a partial sync's change and the whole table: the next sync must be full."""


class FirewallPort(Protocol):
    """What the syncer needs of the nftables adapter (`dataplane.nft.NftFirewall`)."""

    async def apply(self, firewall: Firewall) -> bool:
        """Make the table exactly `firewall` (True if anything was done)."""
        ...

    async def update(self, changes: FirewallChanges) -> None:
        """Add and delete set elements; raise if the table is not as `changes` assumes."""
        ...

    async def check(self, firewall: Firewall) -> str | None:
        """nft's complaint about `firewall`'s table, or None; changes nothing."""
        ...


class FirewallLoader:
    """Puts the ledger's table into the kernel and keeps one Service's refusal its own.

    Remembers each Service's share as nft last accepted it. A full load that nft refuses is
    searched for culprits (`culprits`); they get their accepted share back (none, for a new
    Service), the rest is loaded, and the culprits are reported to the syncer, which keeps
    their virtual servers and addresses as they were too. A partial update that nft refuses
    falls back to a full load of the ledger's table; if that is refused as well the partial
    sync gives up with `FirewallRefused` and the syncer runs a full one, which searches."""

    def __init__(
        self, port: FirewallPort, ledger: FirewallLedger, tally: KernelTally, problems: Problems
    ) -> None:
        self._port = port
        self._ledger = ledger
        self._tally = tally
        self._problems = problems
        self._accepted: dict[ServiceRef, Firewall] = {}
        self._refused: set[ServiceRef] = set()  # held back by the last full load

    async def replace(self, parts: Mapping[ServiceRef, Firewall]) -> dict[ServiceRef, str]:
        """Load every Service's share; returns the Services held back, with nft's words."""
        previous = self._accepted
        try:
            await self._load(self._ledger.reset(parts))
        except Exception as error:
            try:
                found = await self._culprits(parts)
            except NoCulprit as reason:
                log.error("nftables refuses ipvsd's table: %s (%s)", error, reason)
                raise error from None
            for ref in found:
                self._ledger.set_part(ref, previous.get(ref))
            self._ledger.take_changes()
            await self._load(self._ledger.snapshot())
        else:
            found = {}
        self._refused = set(found)
        accepted = {ref: part for ref, part in parts.items() if ref not in found}
        accepted.update({ref: previous[ref] for ref in found if ref in previous})
        self._accepted = accepted
        for ref, complaint in found.items():
            self._problems.report(
                KIND,
                str(ref),
                f"Service {ref}: nftables refuses its rules ({complaint}); the Service stays as "
                f"it was programmed before; tried again at every full sync",
            )
        self._problems.resolve_all_but(KIND, map(str, found))
        return found

    async def _culprits(self, parts: Mapping[ServiceRef, Firewall]) -> dict[ServiceRef, str]:
        """The Services nft refuses: the ones refused last time first (a held Service is
        tried again at every full sync; at 10,000 Services each check is a whole table, so
        the steady state costs two or three checks, not a search of everything)."""
        config = self._ledger.config
        again = [ref for ref in self._refused if ref in parts]
        if again:
            try:
                return await culprits(self._check, config, parts, again)
            except NoCulprit:
                pass  # something else is refused (too): search every Service
        return await culprits(self._check, config, parts, parts)

    async def update(self, changed: Mapping[ServiceRef, Firewall | None]) -> None:
        """Send the ledger's element changes for the `changed` Services' new shares."""
        changes = self._ledger.take_changes()
        if changes.empty:
            return
        try:
            await self._port.update(changes)
            self._tally.record("nftables_update", ok=True)
        except Exception as error:  # the table is not what the ledger assumed, or a refusal
            self._tally.record("nftables_update", ok=False)
            log.warning("firewall update refused (%s); replacing the table", error)
            try:
                await self._load(self._ledger.snapshot())
            except Exception as again:
                raise FirewallRefused(str(again)) from again
        for ref, part in changed.items():
            if part is None:
                self._accepted.pop(ref, None)
            else:
                self._accepted[ref] = part
            self._problems.resolved(KIND, str(ref))

    async def _load(self, table: Firewall) -> None:
        try:
            changed = await self._port.apply(table)
        except Exception:
            self._tally.record("nftables_replace", ok=False)
            raise
        self._tally.record("nftables_replace", ok=True, count=int(changed))

    async def _check(self, table: Firewall) -> str | None:
        complaint = await self._port.check(table)
        self._tally.record("nftables_check", ok=complaint is None)
        return complaint
