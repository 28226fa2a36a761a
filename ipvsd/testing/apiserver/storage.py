"""Objects, the global resource version, the event history and the fan-out to watchers.

This is the emulator's etcd plus watch cache, and it decides nothing about API semantics
(defaults, validation, conflicts live in `store.py`). Each object is kept as the JSON bytes a
client receives (without kind/apiVersion, which are per type) plus the few fields selectors
need, so a list of 10,000 objects is a join of bytes, not 10,000 serializations, and nothing
handed out can alias stored state: readers parse their own copy.

Resource versions are one counter for everything, as etcd's revision is. The history keeps the
last `history_size` events; a watch or exact read from before that window is answered with
410 Gone by the layers above, so clients exercise their relist path.
"""

from __future__ import annotations

import asyncio
import bisect
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from ipvsd.testing.apiserver.resources import RESOURCES, ResourceType

Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped types
EventType = Literal["ADDED", "MODIFIED", "DELETED"]
_NO_LABELS: Mapping[str, str] = {}


@dataclass(frozen=True, slots=True)
class Stored:
    """One version of one object. `body` is its JSON without kind/apiVersion."""

    resource: ResourceType
    namespace: str
    name: str
    rv: int
    labels: Mapping[str, str]
    body: bytes

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @property
    def document(self) -> bytes:
        """The full JSON object, as GET returns it."""
        return self.resource.document(self.body)

    def to_dict(self) -> dict[str, Any]:
        """A fresh, caller-owned dict of the full object."""
        loaded: dict[str, Any] = orjson.loads(self.body)
        return {"kind": self.resource.kind, "apiVersion": self.resource.api_version, **loaded}

    @staticmethod
    def of(resource: ResourceType, document: Mapping[str, Any], rv: int) -> Stored:
        """Serialize `document` as version `rv` (its metadata.resourceVersion is set to it)."""
        metadata = dict(document.get("metadata") or {})
        metadata["resourceVersion"] = str(rv)
        content = {k: v for k, v in document.items() if k not in {"kind", "apiVersion"}}
        content["metadata"] = metadata
        labels = metadata.get("labels")
        if not isinstance(labels, Mapping):  # only an unvalidated store (a fault) lets one in
            labels = _NO_LABELS
        return Stored(
            resource,
            metadata.get("namespace", "") if resource.namespaced else "",
            metadata["name"],
            rv,
            labels,
            orjson.dumps(content),
        )

    def stamped(self, rv: int) -> Stored:
        """The same content carrying another resource version (deletions report theirs)."""
        return Stored.of(self.resource, self.to_dict(), rv)


@dataclass(frozen=True, slots=True)
class Event:
    """A change at `rv`. For DELETED, `obj` is the last state stamped with the deletion's rv."""

    rv: int
    type: EventType
    obj: Stored
    old: Stored | None

    @property
    def resource(self) -> ResourceType:
        return self.obj.resource


@dataclass(eq=False)
class Subscription:
    """One watcher's inbox: events are appended as they commit, in commit order.

    A watcher that falls `limit` events behind is ended, as the API server ends watchers
    whose buffer overflows; the client resumes from the last version it saw (or relists).
    """

    resource: ResourceType
    pending: deque[Event] = field(default_factory=deque)
    closing: str | None = None  # "abort" or "end" once the watch must stop
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    limit: int = 100_000

    def offer(self, event: Event) -> None:
        if self.closing is not None:
            return
        if len(self.pending) >= self.limit:
            self.pending.clear()
            self.close("end")
            return
        self.pending.append(event)
        self.ready.set()

    def close(self, how: str) -> None:
        self.closing = how
        self.ready.set()


Listener = Callable[[Event], None]


class Storage:
    """Every object of every type, one resource-version counter and a bounded event history."""

    def __init__(self, *, history_size: int = 10_000) -> None:
        self._tables: dict[ResourceType, dict[Key, Stored]] = {rt: {} for rt in RESOURCES}
        self._sorted: dict[ResourceType, list[Key] | None] = dict.fromkeys(RESOURCES)
        self._rv = 0
        self._history: deque[Event] = deque(maxlen=history_size)
        self._compacted = 0  # every event with rv > this is still in the history
        self._subscriptions: dict[ResourceType, set[Subscription]] = {rt: set() for rt in RESOURCES}
        self._listeners: list[Listener] = []
        self._undispatched: deque[Event] = deque()
        self._dispatching = False

    @property
    def resource_version(self) -> int:
        return self._rv

    @property
    def oldest_resource_version(self) -> int:
        """The oldest version a watch may start from (older ones get 410 Gone)."""
        return self._compacted

    def get(self, resource: ResourceType, key: Key) -> Stored | None:
        return self._tables[resource].get(key)

    def count(self, resource: ResourceType) -> int:
        return len(self._tables[resource])

    def items(self, resource: ResourceType, namespace: str | None = None) -> list[Stored]:
        """Current objects sorted by (namespace, name), optionally of one namespace."""
        table = self._tables[resource]
        keys = self._sorted_keys(resource)
        if namespace is not None:
            start = bisect.bisect_left(keys, (namespace, ""))
            stop = bisect.bisect_left(keys, (namespace + "\x00", ""))
            keys = keys[start:stop]
        return [table[key] for key in keys]

    def _sorted_keys(self, resource: ResourceType) -> list[Key]:
        keys = self._sorted[resource]
        if keys is None:
            keys = self._sorted[resource] = sorted(self._tables[resource])
        return keys

    def write(self, resource: ResourceType, document: Mapping[str, Any]) -> Stored:
        """Store `document` as the next resource version; ADDED or MODIFIED to watchers."""
        self._rv += 1
        stored = Stored.of(resource, document, self._rv)
        table = self._tables[resource]
        old = table.get(stored.key)
        table[stored.key] = stored
        if old is None:
            self._sorted[resource] = None
        self._record(Event(self._rv, "MODIFIED" if old else "ADDED", stored, old))
        return stored

    def remove(self, resource: ResourceType, key: Key) -> Stored:
        """Delete an object at the next resource version; returns the stamped last state."""
        old = self._tables[resource].pop(key)
        self._sorted[resource] = None
        self._rv += 1
        tombstone = old.stamped(self._rv)
        self._record(Event(self._rv, "DELETED", tombstone, old))
        return tombstone

    def _record(self, event: Event) -> None:
        if len(self._history) == self._history.maxlen:
            self._compacted = self._history[0].rv
        self._history.append(event)
        for subscription in self._subscriptions[event.resource]:
            subscription.offer(event)
        self._undispatched.append(event)
        if self._dispatching:
            return  # a listener's own write: the loop below picks it up next
        self._dispatching = True
        try:
            while self._undispatched:
                pending = self._undispatched.popleft()
                for listener in self._listeners:
                    listener(pending)
        finally:
            self._dispatching = False

    def listen(self, listener: Listener) -> None:
        """Call `listener` after every commit, in order; its own writes are queued, not nested."""
        self._listeners.append(listener)

    def events_after(self, resource: ResourceType, rv: int) -> list[Event]:
        """Events of `resource` newer than `rv`; the caller checks `rv` against the window."""
        newer: list[Event] = []
        for event in reversed(self._history):
            if event.rv <= rv:
                break
            if event.resource is resource:
                newer.append(event)
        newer.reverse()
        return newer

    def items_at(self, resource: ResourceType, rv: int) -> list[Stored]:
        """The objects as they were at `rv` (within the history window), sorted by key."""
        undo = self.events_after(resource, rv)
        if not undo:
            return self.items(resource)
        table = dict(self._tables[resource])
        for event in reversed(undo):
            if event.type == "ADDED":
                del table[event.obj.key]
            else:
                assert event.old is not None
                table[event.old.key] = event.old
        return [table[key] for key in sorted(table)]

    def subscribe(self, resource: ResourceType) -> Subscription:
        subscription = Subscription(resource)
        self._subscriptions[resource].add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions[subscription.resource].discard(subscription)

    def subscriptions(self) -> list[Subscription]:
        return [s for group in self._subscriptions.values() for s in group]

    def compact(self, rv: int | None = None) -> int:
        """Forget history up to `rv` (default: all of it); returns the new oldest valid version."""
        target = self._rv if rv is None else min(rv, self._rv)
        while self._history and self._history[0].rv <= target:
            self._history.popleft()
        self._compacted = max(self._compacted, target)
        return self._compacted

    def dump(self) -> bytes:
        """Every object and the counter, as JSON (the `--state-file` format)."""
        documents = [s.document for table in self._tables.values() for s in table.values()]
        return b"".join(
            (
                b'{"resourceVersion":',
                str(self._rv).encode(),
                b',"objects":[',
                b",".join(documents),
                b"]}",
            )
        )

    def restore(
        self, resource_version: int, objects: Iterable[tuple[ResourceType, dict[str, Any]]]
    ) -> None:
        """Replace everything with saved objects (keeping their versions); history starts empty."""
        for table in self._tables.values():
            table.clear()
        self._sorted = dict.fromkeys(RESOURCES)
        top = resource_version
        for resource, document in objects:
            rv = int(document["metadata"]["resourceVersion"])
            top = max(top, rv)
            stored = Stored.of(resource, document, rv)
            self._tables[resource][stored.key] = stored
        self._rv = top
        self._history.clear()
        self._compacted = top
