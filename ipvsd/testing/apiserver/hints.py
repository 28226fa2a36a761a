"""The EndpointSlice controller's hint writing, run inside the emulator (`--hint-controller`).

It reacts to commits, as the real controller reacts to its informers: when a Service's hint
policy (see `topology.hint_policy`) changes, when one of its slices changes, or (for
topology-mode Auto) when Nodes change, it rewrites the hints of the Service's slices and
stores each slice that changed as an ordinary update (a new resource version, a MODIFIED event
after the event that caused it). It runs synchronously after the triggering commit, so a
client sees the hints as soon as its own write has returned; deterministic tests need no
polling. Its own writes trigger it again and find nothing to change.

A Service's slices are those labelled `kubernetes.io/service-name: <service>` in its namespace
and either managed by `endpointslice-controller.k8s.io` or carrying no `managed-by` label
(slices a test writes by hand); slices another controller manages are left alone, as upstream.
"""

from __future__ import annotations

import logging
from typing import Any

from ipvsd.testing.apiserver import topology
from ipvsd.testing.apiserver.errors import ApiError
from ipvsd.testing.apiserver.resources import ENDPOINT_SLICES, NODES, SERVICES
from ipvsd.testing.apiserver.storage import Event, Key, Stored
from ipvsd.testing.apiserver.store import Store

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
log = logging.getLogger(__name__)


def _owner(stored: Stored | None) -> Key | None:
    """The Service whose hints this slice carries, or None when the controller ignores it."""
    if stored is None:
        return None
    service = stored.labels.get(SERVICE_NAME_LABEL)
    managed_by = stored.labels.get(MANAGED_BY_LABEL, CONTROLLER_NAME)
    if not service or managed_by != CONTROLLER_NAME:
        return None
    return (stored.namespace, service)


class HintController:
    """Keeps EndpointSlice hints in line with their Services' traffic distribution."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._slices: dict[Key, set[str]] = {}  # Service key -> names of its slices
        self._auto: set[Key] = set()  # Services with topology-mode Auto
        store.storage.listen(self._on_event)
        self.resync()

    def resync(self) -> None:
        """Rebuild the indexes from storage and reconcile every Service (after a restore)."""
        storage = self._store.storage
        self._slices.clear()
        self._auto.clear()
        for stored in storage.items(ENDPOINT_SLICES):
            owner = _owner(stored)
            if owner is not None:
                self._slices.setdefault(owner, set()).add(stored.name)
        for service in storage.items(SERVICES):
            self._reconcile(service.key)

    def _on_event(self, event: Event) -> None:
        try:
            if event.resource is SERVICES:
                self._reconcile(event.obj.key)
            elif event.resource is ENDPOINT_SLICES:
                self._index_slice(event)
                owner = _owner(event.obj)
                if owner is not None and event.type != "DELETED":
                    self._reconcile(owner)
            elif event.resource is NODES:
                for key in sorted(self._auto):
                    self._reconcile(key)
        except ApiError as error:  # a concurrent change; the next event reconciles again
            log.warning("hint controller: %s", error.message)

    def _index_slice(self, event: Event) -> None:
        before, after = _owner(event.old), _owner(event.obj)
        if before is not None and (before != after or event.type == "DELETED"):
            names = self._slices.get(before, set())
            names.discard(event.obj.name)
            if not names:
                self._slices.pop(before, None)
        if after is not None and event.type != "DELETED":
            self._slices.setdefault(after, set()).add(event.obj.name)

    def _reconcile(self, key: Key) -> None:
        storage = self._store.storage
        service = storage.get(SERVICES, key)
        if service is None:
            self._auto.discard(key)
            return
        policy = topology.hint_policy(service.to_dict())
        if policy == "auto":
            self._auto.add(key)
        else:
            self._auto.discard(key)
        slices = [
            stored.to_dict()
            for name in sorted(self._slices.get(key, ()))
            if (stored := storage.get(ENDPOINT_SLICES, (key[0], name))) is not None
        ]
        for document, endpoints in zip(slices, self._desired(policy, slices), strict=True):
            if endpoints != (document.get("endpoints") or []):
                document["endpoints"] = endpoints
                self._store.replace_stored(
                    ENDPOINT_SLICES, key[0], document["metadata"]["name"], document
                )

    def _desired(
        self, policy: topology.Policy | None, slices: list[dict[str, Any]]
    ) -> list[list[Any]]:
        current = [list(document.get("endpoints") or []) for document in slices]
        if policy is None:
            return [topology.without_hints(endpoints) for endpoints in current]
        if policy != "auto":
            return [
                topology.with_close_hints(endpoints, node_hints=policy == "node")
                for endpoints in current
            ]
        ratios = topology.zone_cpu_ratios(s.to_dict() for s in self._store.storage.items(NODES))
        result: list[list[Any]] = [[] for _ in slices]
        for address_type in sorted({str(d.get("addressType")) for d in slices}):
            members = [i for i, d in enumerate(slices) if str(d.get("addressType")) == address_type]
            hinted = topology.with_auto_hints([current[i] for i in members], ratios)
            for index, endpoints in zip(members, hinted, strict=True):
                result[index] = endpoints
        return result
