"""Which API collections ipvsd watches, and with which selectors.

kube-proxy watches Services and EndpointSlices with the label selector
`!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless`: objects that name
another proxy, and headless Services, are not its business. ipvsd additionally takes the ones
that name *it* (`service-proxy-name=<proxy name>`), so it can run beside kube-proxy and take
Services over one by one. A label selector cannot express "absent or equal to X", hence two
selections per resource, merged by the informer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SERVICE_PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"
HEADLESS_LABEL = "service.kubernetes.io/headless"
DEFAULT_PROXY_NAME = "ipvsd"


# What client-go's metadata client asks for: each object's metadata only (kind
# PartialObjectMetadata), falling back to the whole object where a server cannot.
METADATA_LIST_ACCEPT = (
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
)
METADATA_WATCH_ACCEPT = (
    "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
)


@dataclass(frozen=True, slots=True)
class Resource:
    """A collection across all namespaces, by its list path; with `metadata_only`, read as
    its objects' metadata (`METADATA_*_ACCEPT`), which leaves out spec and status."""

    kind: str
    path: str
    namespaced: bool
    metadata_only: bool = False

    @property
    def list_accept(self) -> str | None:
        return METADATA_LIST_ACCEPT if self.metadata_only else None

    @property
    def watch_accept(self) -> str | None:
        return METADATA_WATCH_ACCEPT if self.metadata_only else None

    def in_namespace(self, namespace: str) -> str:
        """The collection's path within one namespace (`/api/v1/namespaces/NS/services`)."""
        head, _, plural = self.path.rpartition("/")
        return f"{head}/namespaces/{namespace}/{plural}"


SERVICES = Resource("Service", "/api/v1/services", namespaced=True)
ENDPOINT_SLICES = Resource(
    "EndpointSlice", "/apis/discovery.k8s.io/v1/endpointslices", namespaced=True
)
NODES = Resource("Node", "/api/v1/nodes", namespaced=False)
NODE_METADATA = Resource("Node", "/api/v1/nodes", namespaced=False, metadata_only=True)


@dataclass(frozen=True, slots=True)
class Selection:
    """Label and field selectors as the API spells them ("" selects everything)."""

    labels: str = ""
    fields: str = ""

    def params(self) -> dict[str, str]:
        params = {}
        if self.labels:
            params["labelSelector"] = self.labels
        if self.fields:
            params["fieldSelector"] = self.fields
        return params

    def __str__(self) -> str:
        parts = []
        if self.labels:
            parts.append(f"labels {self.labels}")
        if self.fields:
            parts.append(f"fields {self.fields}")
        return ", ".join(parts) or "everything"


EVERYTHING = Selection()


def proxy_selections(
    proxy_name: str = DEFAULT_PROXY_NAME, *, only_labelled: bool = False
) -> tuple[Selection, ...]:
    """kube-proxy's selection, and the objects that name this proxy explicitly; with
    `only_labelled` (`--serve-only-labelled`, beside a live kube-proxy) only the latter."""
    if not proxy_name or "," in proxy_name or "=" in proxy_name:
        raise ValueError(f"invalid proxy name {proxy_name!r}")
    labelled = Selection(labels=f"{SERVICE_PROXY_NAME_LABEL}={proxy_name},!{HEADLESS_LABEL}")
    if only_labelled:
        return (labelled,)
    return (Selection(labels=f"!{SERVICE_PROXY_NAME_LABEL},!{HEADLESS_LABEL}"), labelled)


def not_handled_because(labels: Mapping[str, str], proxy_name: str) -> str | None:
    """Why an object with these labels is outside `proxy_selections` (None: it is inside)."""
    if HEADLESS_LABEL in labels:
        return f"it is headless ({HEADLESS_LABEL}): no proxy handles it"
    named = labels.get(SERVICE_PROXY_NAME_LABEL)
    if named is not None and named != proxy_name:
        return f"proxy {named!r} handles it ({SERVICE_PROXY_NAME_LABEL}), not {proxy_name!r}"
    return None


def own_node_selection(node_name: str) -> Selection:
    """Just this node's Node object."""
    if not node_name:
        raise ValueError("the node name is empty")
    return Selection(fields=f"metadata.name={node_name}")
