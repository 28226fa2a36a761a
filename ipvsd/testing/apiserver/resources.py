"""The resource types the emulator serves, described once for routing, discovery and storage.

Everything that differs between Services, EndpointSlices, Nodes... as a matter of data (names,
scope, short names, selectable fields, subresources) lives here; behaviour that differs
(defaults, validation, allocation) lives in the admission modules.
"""

from __future__ import annotations

from dataclasses import dataclass

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
COMMON_FIELDS = ("metadata.name", "metadata.namespace")


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One REST resource: `services` in the core group, `endpointslices` in discovery.k8s.io."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    has_status: bool = False
    field_labels: tuple[str, ...] = COMMON_FIELDS
    categories: tuple[str, ...] = ()
    returns_deleted: bool = False  # DELETE answers the object (else a Status), as upstream

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version_path(self) -> str:
        """`/api/v1` or `/apis/discovery.k8s.io/v1`."""
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def kind_prefix(self) -> bytes:
        """The opening of a stored object's JSON: `{"kind":...,"apiVersion":...,`."""
        return f'{{"kind":"{self.kind}","apiVersion":"{self.api_version}",'.encode()

    def document(self, body: bytes) -> bytes:
        """A stored body (kept without kind/apiVersion) as the full object a client receives."""
        return self.kind_prefix + body[1:] if body != b"{}" else self.kind_prefix[:-1] + b"}"

    def names(self) -> tuple[str, ...]:
        """Every name a caller may use for this type (kubectl-style: plural, kind, short)."""
        return (self.plural, self.singular, self.kind, self.kind.lower(), *self.short_names)


NAMESPACES = ResourceType(
    "",
    "v1",
    "namespaces",
    "namespace",
    "Namespace",
    namespaced=False,
    short_names=("ns",),
    has_status=True,
    field_labels=("metadata.name", "status.phase"),
    returns_deleted=True,
)
SERVICES = ResourceType(
    "",
    "v1",
    "services",
    "service",
    "Service",
    namespaced=True,
    short_names=("svc",),
    has_status=True,
    field_labels=(*COMMON_FIELDS, "spec.clusterIP", "spec.type"),
    categories=("all",),
    returns_deleted=True,
)
ENDPOINT_SLICES = ResourceType(
    "discovery.k8s.io", "v1", "endpointslices", "endpointslice", "EndpointSlice", namespaced=True
)
NODES = ResourceType(
    "",
    "v1",
    "nodes",
    "node",
    "Node",
    namespaced=False,
    short_names=("no",),
    has_status=True,
    field_labels=("metadata.name", "spec.unschedulable"),
)
PODS = ResourceType(
    "",
    "v1",
    "pods",
    "pod",
    "Pod",
    namespaced=True,
    short_names=("po",),
    has_status=True,
    field_labels=(
        *COMMON_FIELDS,
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    categories=("all",),
    returns_deleted=True,
)
EVENTS = ResourceType(
    "",
    "v1",
    "events",
    "event",
    "Event",
    namespaced=True,
    short_names=("ev",),
    field_labels=(
        *COMMON_FIELDS,
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
)

RESOURCES: tuple[ResourceType, ...] = (NAMESPACES, SERVICES, ENDPOINT_SLICES, NODES, PODS, EVENTS)

_BY_PATH = {(rt.group, rt.version, rt.plural): rt for rt in RESOURCES}
_BY_NAME = {name: rt for rt in RESOURCES for name in rt.names()}
_BY_KIND = {(rt.api_version, rt.kind): rt for rt in RESOURCES}


def by_path(group: str, version: str, plural: str) -> ResourceType | None:
    return _BY_PATH.get((group, version, plural))


def by_kind(api_version: str, kind: str) -> ResourceType | None:
    return _BY_KIND.get((api_version, kind))


def lookup(resource: str | ResourceType) -> ResourceType:
    """A type from any of its names (`services`, `svc`, `Service`); KeyError when unknown."""
    if isinstance(resource, ResourceType):
        return resource
    return _BY_NAME[resource]


def group_versions() -> list[tuple[str, str]]:
    """Every (group, version) served, core first, in a stable order."""
    seen: dict[tuple[str, str], None] = {}
    for rt in RESOURCES:
        seen[(rt.group, rt.version)] = None
    return list(seen)


def in_group_version(group: str, version: str) -> list[ResourceType]:
    return [rt for rt in RESOURCES if rt.group == group and rt.version == version]
