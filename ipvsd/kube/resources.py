"""Which API collections ipvsd watches, and with which selectors.

kube-proxy watches Services and EndpointSlices with the label selector
`!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless`: objects that name
another proxy, and headless Services, are not its business. ipvsd additionally takes the ones
that name *it* (`service-proxy-name=<proxy name>`), so it can run beside kube-proxy and take
Services over one by one. A label selector cannot express "absent or equal to X", hence two
selections per resource, merged by the informer.
"""

from __future__ import annotations

from dataclasses import dataclass

SERVICE_PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"
HEADLESS_LABEL = "service.kubernetes.io/headless"
DEFAULT_PROXY_NAME = "ipvsd"


@dataclass(frozen=True, slots=True)
class Resource:
    """A collection across all namespaces, by its list path."""

    kind: str
    path: str
    namespaced: bool


SERVICES = Resource("Service", "/api/v1/services", namespaced=True)
ENDPOINT_SLICES = Resource(
    "EndpointSlice", "/apis/discovery.k8s.io/v1/endpointslices", namespaced=True
)
NODES = Resource("Node", "/api/v1/nodes", namespaced=False)


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


def proxy_selections(proxy_name: str = DEFAULT_PROXY_NAME) -> tuple[Selection, Selection]:
    """kube-proxy's selection, and the objects that name this proxy explicitly."""
    if not proxy_name or "," in proxy_name or "=" in proxy_name:
        raise ValueError(f"invalid proxy name {proxy_name!r}")
    return (
        Selection(labels=f"!{SERVICE_PROXY_NAME_LABEL},!{HEADLESS_LABEL}"),
        Selection(labels=f"{SERVICE_PROXY_NAME_LABEL}={proxy_name},!{HEADLESS_LABEL}"),
    )


def own_node_selection(node_name: str) -> Selection:
    """Just this node's Node object."""
    if not node_name:
        raise ValueError("the node name is empty")
    return Selection(fields=f"metadata.name={node_name}")
