"""Change tracking: informer events only record *which* Services need work; syncs do it.

As in kube-proxy, an event never touches the kernel. The tracker keeps the EndpointSlices
indexed by Service (the planner needs a Service's slices together), marks the Service of every
changed Service or slice dirty, and remembers the earliest change-trigger time per Service for
the network-programming latency metric. A change to the own Node (zone, labels, eligibility)
affects every Service's topology, so it asks for a full sync; so does a Node appearing,
going away or changing its labels anywhere in the cluster (endpoints' topology labels come from
their Nodes), while the frequent status-only updates of other Nodes cost nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ipvsd.model.endpoint import EndpointSlice
from ipvsd.model.node import Node
from ipvsd.model.service import Service, ServiceRef


@dataclass(frozen=True, slots=True)
class Pending:
    """The work taken by one sync: everything if `full`, else only `services`."""

    full: bool
    services: frozenset[ServiceRef]
    trigger_times: Mapping[ServiceRef, float] = field(default_factory=dict)
    service_changes: int = 0
    endpoint_changes: int = 0


def _noop() -> None:
    return None


class ChangeTracker:
    """Collects changes between syncs; `notify` is called whenever there is new work."""

    def __init__(self, *, notify: Callable[[], None] = _noop) -> None:
        self._notify = notify
        self._slices: dict[ServiceRef, dict[tuple[str, str], EndpointSlice]] = {}
        self._dirty: set[ServiceRef] = set()
        self._full = True  # the first sync always looks at everything
        self._triggers: dict[ServiceRef, float] = {}
        self._service_changes = 0
        self._endpoint_changes = 0
        self.services = _ServiceEvents(self)
        self.endpoint_slices = _SliceEvents(self)
        self.node = _NodeEvents(self)
        self.nodes = _ClusterNodeEvents(self)

    def set_notify(self, notify: Callable[[], None]) -> None:
        """Who to tell about new work (the runner, once it exists)."""
        self._notify = notify

    def slices_of(self, ref: ServiceRef) -> Mapping[tuple[str, str], EndpointSlice]:
        """The EndpointSlices of `ref` by (namespace, name)."""
        return MappingProxyType(self._slices.get(ref, {}))

    @property
    def has_work(self) -> bool:
        return self._full or bool(self._dirty)

    @property
    def has_work_full(self) -> bool:
        """Whether the next sync must be full (the first one, a Node change, a failure)."""
        return self._full

    @property
    def pending_counts(self) -> tuple[int, int]:
        """(service changes, endpoint changes) not yet taken by a sync."""
        return self._service_changes, self._endpoint_changes

    def take(self) -> Pending:
        """Hand the recorded work to a sync and start recording afresh."""
        pending = Pending(
            full=self._full,
            services=frozenset(self._dirty),
            trigger_times=dict(self._triggers),
            service_changes=self._service_changes,
            endpoint_changes=self._endpoint_changes,
        )
        self._full = False
        self._dirty.clear()
        self._triggers.clear()
        self._service_changes = self._endpoint_changes = 0
        return pending

    def give_back(self, pending: Pending) -> None:
        """A sync that could not finish returns its work, so nothing is forgotten."""
        self._full = self._full or pending.full
        self._dirty.update(pending.services)
        for ref, when in pending.trigger_times.items():
            self._triggers[ref] = min(when, self._triggers.get(ref, when))
        self._notify()

    def request_full(self) -> None:
        self._full = True
        self._notify()

    def service_changed(self, ref: ServiceRef) -> None:
        self._dirty.add(ref)
        self._service_changes += 1
        self._notify()

    def slice_changed(self, old: EndpointSlice | None, new: EndpointSlice | None) -> None:
        if old is not None and (new is None or new.service != old.service):
            self._forget(old)
        if new is not None:
            self._slices.setdefault(new.service, {})[(new.namespace, new.name)] = new
            self._dirty.add(new.service)
            if new.trigger_time is not None:
                previous = self._triggers.get(new.service, new.trigger_time)
                self._triggers[new.service] = min(previous, new.trigger_time)
        self._endpoint_changes += 1
        self._notify()

    def _forget(self, old: EndpointSlice) -> None:
        slices = self._slices.get(old.service, {})
        slices.pop((old.namespace, old.name), None)
        if not slices:
            self._slices.pop(old.service, None)
        self._dirty.add(old.service)


class _ServiceEvents:
    def __init__(self, tracker: ChangeTracker) -> None:
        self._tracker = tracker

    def on_add(self, new: Service) -> None:
        self._tracker.service_changed(new.ref)

    def on_update(self, old: Service, new: Service) -> None:
        self._tracker.service_changed(new.ref)

    def on_delete(self, old: Service) -> None:
        self._tracker.service_changed(old.ref)


class _SliceEvents:
    def __init__(self, tracker: ChangeTracker) -> None:
        self._tracker = tracker

    def on_add(self, new: EndpointSlice) -> None:
        self._tracker.slice_changed(None, new)

    def on_update(self, old: EndpointSlice, new: EndpointSlice) -> None:
        self._tracker.slice_changed(old, new)

    def on_delete(self, old: EndpointSlice) -> None:
        self._tracker.slice_changed(old, None)


class _NodeEvents:
    def __init__(self, tracker: ChangeTracker) -> None:
        self._tracker = tracker

    def on_add(self, new: Node) -> None:
        self._tracker.request_full()

    def on_update(self, old: Node, new: Node) -> None:
        self._tracker.request_full()

    def on_delete(self, old: Node) -> None:
        self._tracker.request_full()


class _ClusterNodeEvents:
    """Every Node of the cluster: only what changes topology labels matters."""

    def __init__(self, tracker: ChangeTracker) -> None:
        self._tracker = tracker

    def on_add(self, new: Node) -> None:
        self._tracker.request_full()

    def on_update(self, old: Node, new: Node) -> None:
        if old.labels != new.labels:
            self._tracker.request_full()

    def on_delete(self, old: Node) -> None:
        self._tracker.request_full()
