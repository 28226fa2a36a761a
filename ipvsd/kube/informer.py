"""A store of model values per resource, kept current by one or more watches, with handlers.

An `Informer` merges the watches of several selections of one resource (ipvsd needs two per
resource, see `resources`) into one store keyed `namespace/name`. Each watch keeps its own
claims (key → version and value); the store holds, per key, the claim with the newest
resourceVersion. An object whose labels move it from one selection to the other therefore stays
stored whichever stream reports first: an ADDED in the new stream before the DELETED in the old
one changes nothing, and a DELETED first waits (bounded by `move_grace`) until the other watch
has caught up with its version, so the move is silent in that order too.

Handlers hear about a key only when its *converted* value changes (add, update with old and
new, delete), so resourceVersion bumps, heartbeats and unrelated annotations cost nothing
downstream. Snapshots (the first list and every re-list) are collected whole, then compared
with the watch's previous claims, and only then applied: a re-list never makes an object
vanish and come back, and objects gone from the new snapshot are deleted.

Bad objects never stop anything: one log line names the object and the field, the object is
skipped, and an object already stored keeps its last valid version.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import aclosing
from types import MappingProxyType
from typing import Generic, Protocol, TypeVar

from ipvsd.kube.convert import ConversionError, RawObject, Warn, object_key
from ipvsd.kube.watch import (
    Change,
    ResourceWatch,
    SnapshotEnded,
    SnapshotItem,
    SnapshotStarted,
    WatchEvent,
)

log = logging.getLogger(__name__)

V = TypeVar("V")
V_contra = TypeVar("V_contra", contravariant=True)
V_co = TypeVar("V_co", covariant=True)

Claim = tuple[int, V]  # (resourceVersion as a number, value)


class EventHandler(Protocol[V_contra]):
    """What changed, in kube-proxy's terms (OnServiceAdd/Update/Delete)."""

    def on_add(self, new: V_contra) -> None: ...

    def on_update(self, old: V_contra, new: V_contra) -> None: ...

    def on_delete(self, old: V_contra) -> None: ...


class Converter(Protocol[V_co]):
    """Raw object → value; None when the object is not for the proxy; raises ConversionError."""

    def __call__(self, raw: RawObject, warn: Warn, /) -> V_co | None: ...


def _version(obj: RawObject) -> int:
    """resourceVersion as a number for ordering claims; 0 when it is not one (then: last wins)."""
    metadata = obj.get("metadata")
    return _number(metadata.get("resourceVersion") if isinstance(metadata, dict) else None)


def _number(text: object) -> int:
    """A resource version as a number, 0 when it is not one. ASCII digits only: `str.isdigit`
    also accepts "²", which `int` refuses."""
    return int(text) if isinstance(text, str) and text.isascii() and text.isdigit() else 0


class Informer(Generic[V]):
    """The store of one resource across its watches; `synced` once every watch has listed."""

    def __init__(
        self,
        *,
        kind: str,
        namespaced: bool,
        watches: Sequence[ResourceWatch],
        convert: Converter[V],
        observe_latency: Callable[[float], None] | None = None,
        move_grace: float = 1.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """`observe_latency` hears, per watch event, the seconds from its last byte read to the
        handlers' return (`clock` must be the one the ApiClient stamps lines with).
        `move_grace` bounds how long a deletion waits for the other watches (see `_release`)."""
        if not watches:
            raise ValueError("an informer needs at least one watch")
        self.kind = kind
        self._namespaced = namespaced
        self._watches = tuple(watches)
        self._convert = convert
        self._observe_latency = observe_latency
        self._move_grace = move_grace
        self._clock = clock
        self._moving: dict[str, tuple[int, int, float]] = {}  # key → (watch, version, deadline)
        self._timer: asyncio.TimerHandle | None = None
        self._items: dict[str, V] = {}
        self._claims: list[dict[str, Claim[V]]] = [{} for _ in self._watches]
        self._snapshots: list[dict[str, Claim[V]] | None] = [None for _ in self._watches]
        self._listed = [False for _ in self._watches]
        self._invalid: dict[str, str] = {}
        self._handlers: list[EventHandler[V]] = []
        self.store: Mapping[str, V] = MappingProxyType(self._items)
        self.synced = asyncio.Event()

    @property
    def watches(self) -> tuple[ResourceWatch, ...]:
        return self._watches

    @property
    def invalid(self) -> Mapping[str, str]:
        """Objects whose latest version could not be converted (key → why): skipped, or kept at
        their last valid version. They leave once a valid version arrives or they are gone."""
        return MappingProxyType(self._invalid)

    def add_handler(self, handler: EventHandler[V]) -> None:
        self._handlers.append(handler)

    async def run(self) -> None:
        """Follow every watch until cancelled."""
        async with asyncio.TaskGroup() as group:
            for index, watch in enumerate(self._watches):
                group.create_task(self._follow(index, watch), name=watch.name)

    async def _follow(self, index: int, watch: ResourceWatch) -> None:
        async with aclosing(watch.events()) as events:
            async for event in events:
                try:
                    self.handle(index, event)
                except Exception:  # a bug here must not end the watch: log it and go on
                    log.exception("%s: failed to process %s", watch.name, type(event).__name__)

    def handle(self, index: int, event: WatchEvent) -> None:
        """Apply one event of watch `index` (public so tests can drive an informer directly)."""
        if isinstance(event, Change):
            self._change(index, event)
        elif isinstance(event, SnapshotItem):
            self._snapshot_item(index, event.obj)
        elif isinstance(event, SnapshotStarted):
            self._snapshots[index] = {}
        elif isinstance(event, SnapshotEnded):
            self._snapshot_ended(index, event.resource_version)
        if self._moving:
            self._settle_moves()

    # --- changes ------------------------------------------------------------------------------

    def _change(self, index: int, event: Change) -> None:
        key = self._key(event.obj)
        if key is None:
            return
        claims = self._claims[index]
        if event.type == "DELETED":
            claims.pop(key, None)
            self._invalid.pop(key, None)
            self._release(index, key, _version(event.obj))
        else:
            claim = self._claim(key, event.obj, claims.get(key))
            if claim is None:
                claims.pop(key, None)
            else:
                claims[key] = claim
            self._settle(key)
        if self._observe_latency is not None:
            self._observe_latency(self._clock() - event.received_at)

    def _claim(self, key: str, obj: RawObject, previous: Claim[V] | None) -> Claim[V] | None:
        """The claim for a new version of `obj`: converted, or the previous one if it is bad."""
        try:
            value = self._convert(obj, lambda note: self._warn(key, note))
        except ConversionError as error:
            self._reject(key, error, kept=previous is not None)
            return previous
        self._invalid.pop(key, None)
        return None if value is None else (_version(obj), value)

    # --- snapshots ----------------------------------------------------------------------------

    def _snapshot_item(self, index: int, obj: RawObject) -> None:
        snapshot = self._snapshots[index]
        key = self._key(obj)
        if snapshot is None or key is None:
            return
        claim = self._claim(key, obj, self._claims[index].get(key))
        if claim is not None:
            snapshot[key] = claim

    def _snapshot_ended(self, index: int, resource_version: str) -> None:
        snapshot = self._snapshots[index]
        if snapshot is None:
            return
        previous = self._claims[index]
        self._claims[index] = snapshot
        self._snapshots[index] = None
        for key, claim in snapshot.items():
            if previous.get(key) is not claim:
                self._settle(key)
        version = _number(resource_version)
        for key in previous.keys() - snapshot.keys():
            self._invalid.pop(key, None)
            self._release(index, key, version)
        if not self._listed[index]:
            log.info("%s listed: %d objects", self._watches[index].name, len(snapshot))
        self._listed[index] = True
        if all(self._listed) and not self.synced.is_set():
            self.synced.set()

    # --- objects moving between watches -------------------------------------------------------

    def _release(self, index: int, key: str, version: int) -> None:
        """Watch `index` no longer sees `key` as of `version`: settle it now, or, if another
        watch may be about to report it (its labels moved it there), once that watch has caught
        up with `version` or `move_grace` has passed. Without this, every label move whose
        DELETED arrives first would flap the object out of the store and back."""
        if self._may_be_moving(index, key, version):
            self._moving[key] = (index, version, self._clock() + self._move_grace)
            self._arm_timer(self._move_grace)
        else:
            self._settle(key)

    def _may_be_moving(self, index: int, key: str, version: int) -> bool:
        if self._move_grace <= 0 or len(self._watches) == 1 or not version:
            return False
        if key not in self._items or any(key in claims for claims in self._claims):
            return False  # nothing to lose, or another watch holds it already
        return not self._others_caught_up(index, version)

    def _others_caught_up(self, index: int, version: int) -> bool:
        for other, watch in enumerate(self._watches):
            seen = watch.resource_version
            if other != index and _number(seen) < version:  # None or no number: not yet
                return False
        return True

    def _settle_moves(self) -> None:
        now = self._clock()
        for key, (index, version, deadline) in list(self._moving.items()):
            claimed = any(key in claims for claims in self._claims)
            if claimed or deadline <= now or self._others_caught_up(index, version):
                del self._moving[key]
                self._settle(key)
        if self._moving:
            self._arm_timer(min(deadline for _, _, deadline in self._moving.values()) - now)

    def _arm_timer(self, delay: float) -> None:
        """Make sure `_settle_moves` runs even if no further event arrives."""
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # driven by hand (tests): the next event settles what is due
        self._timer = loop.call_later(max(delay, 0.0) + 0.001, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        try:
            self._settle_moves()
        except Exception:
            log.exception("%s informer: failed to settle moved objects", self.kind)

    # --- the store and the handlers -----------------------------------------------------------

    def _settle(self, key: str) -> None:
        """Store the newest claim for `key` across watches; tell handlers if the value changed."""
        best: Claim[V] | None = None
        for claims in self._claims:
            claim = claims.get(key)
            if claim is not None and (best is None or claim[0] >= best[0]):
                best = claim
        old = self._items.get(key)
        if best is None:
            if old is not None:
                del self._items[key]
                self._emit(lambda handler: handler.on_delete(old))
            return
        new = best[1]
        if old is None:
            self._items[key] = new
            self._emit(lambda handler: handler.on_add(new))
        elif old is not new and old != new:
            self._items[key] = new
            self._emit(lambda handler: handler.on_update(old, new))

    def _emit(self, call: Callable[[EventHandler[V]], None]) -> None:
        for handler in self._handlers:
            try:
                call(handler)
            except Exception:  # one broken handler must not starve the others
                log.exception("%s handler %r failed", self.kind, handler)

    # --- bad input ----------------------------------------------------------------------------

    def _key(self, obj: RawObject) -> str | None:
        try:
            return object_key(obj, namespaced=self._namespaced)
        except ConversionError as error:
            log.warning("skipping a %s without a usable name: %s", self.kind, error)
            return None

    def _reject(self, key: str, error: ConversionError, *, kept: bool) -> None:
        message = str(error)
        if self._invalid.get(key) == message:
            return  # said once already (a re-list or a resync repeats the same object)
        self._invalid[key] = message
        if kept:
            log.warning("%s %s: %s; keeping its last valid version", self.kind, key, message)
        else:
            log.warning("skipping %s %s: %s", self.kind, key, message)

    def _warn(self, key: str, note: str) -> None:
        log.warning("%s %s: %s", self.kind, key, note)
