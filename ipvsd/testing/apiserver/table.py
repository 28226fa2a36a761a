"""Server-side printing: `meta.k8s.io` Tables for `kubectl get` (and `kubectl get --watch`).

kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and would fall back to the
plain list, but then prints only NAME and AGE. With Tables it prints the columns people know
(`TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE` for Services), worded as upstream's printers.
Rows carry the object's metadata (`includeObject=Metadata`, the default) or the whole object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from ipvsd.testing.apiserver.resources import (
    ENDPOINT_SLICES,
    EVENTS,
    NAMESPACES,
    NODES,
    PODS,
    SERVICES,
    ResourceType,
)
from ipvsd.testing.apiserver.storage import Stored

Document = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    cell: Callable[[Document, datetime], object]
    type: str = "string"
    priority: int = 0
    format: str = ""

    def definition(self) -> Document:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.name,
            "priority": self.priority,
        }


def wanted_table_version(accept: str) -> str | None:
    """`v1`/`v1beta1` when the Accept header asks for a meta.k8s.io Table first-choice."""
    for media_range in accept.split(","):
        media, *parameters = (part.strip() for part in media_range.split(";"))
        values = dict(p.split("=", 1) for p in parameters if "=" in p)
        if (
            media == "application/json"
            and values.get("as") == "Table"
            and values.get("g") == "meta.k8s.io"
            and values.get("v") in ("v1", "v1beta1")
        ):
            return values["v"]
    return None


def human_duration(seconds: float) -> str:
    """apimachinery's `duration.HumanDuration`: 45s, 3m20s, 5h, 12d, 2y..."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        return f"{minutes}m{whole % 60}s" if whole % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    years, days = hours // 24 // 365, (hours // 24) % 365
    if hours < 24 * 365 * 8 and days:
        return f"{years}y{days}d"
    return f"{years}y"


def _age(document: Document, now: datetime) -> str:
    created = (document.get("metadata") or {}).get("creationTimestamp")
    if not created:
        return "<unknown>"
    return human_duration(
        (now - datetime.fromisoformat(created.replace("Z", "+00:00"))).total_seconds()
    )


def _name(document: Document, now: datetime) -> str:
    return str(document["metadata"]["name"])


def _spec(document: Document) -> Document:
    return document.get("spec") or {}


def _service_external_ip(document: Document, now: datetime) -> str:
    spec = _spec(document)
    external = list(spec.get("externalIPs") or [])
    kind = spec.get("type")
    if kind == "ExternalName":
        return str(spec.get("externalName", ""))
    if kind == "LoadBalancer":
        ingress = ((document.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        addresses = [
            i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")
        ]
        return ",".join(addresses + external) or "<pending>"
    return ",".join(external) or "<none>"


def _service_ports(document: Document, now: datetime) -> str:
    ports = []
    for port in _spec(document).get("ports") or []:
        node = f":{port['nodePort']}" if port.get("nodePort") else ""
        ports.append(f"{port.get('port')}{node}/{port.get('protocol', 'TCP')}")
    return ",".join(ports) or "<none>"


def _selector(document: Document, now: datetime) -> str:
    selector = _spec(document).get("selector") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>"


def _slice_ports(document: Document, now: datetime) -> str:
    ports = [str(p["port"]) for p in document.get("ports") or [] if p.get("port") is not None]
    return ",".join(ports) or "<unset>"


def _slice_endpoints(document: Document, now: datetime) -> str:
    addresses = [a for e in document.get("endpoints") or [] for a in e.get("addresses") or []]
    if not addresses:
        return "<none>"
    shown = ",".join(addresses[:3])
    return shown + (f" + {len(addresses) - 3} more..." if len(addresses) > 3 else "")


def _node_status(document: Document, now: datetime) -> str:
    for condition in (document.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return "Ready" if condition.get("status") == "True" else "NotReady"
    return "Unknown"


def _node_roles(document: Document, now: datetime) -> str:
    prefix = "node-role.kubernetes.io/"
    labels = (document.get("metadata") or {}).get("labels") or {}
    return ",".join(sorted(k[len(prefix) :] for k in labels if k.startswith(prefix))) or "<none>"


def _pod_ready(document: Document, now: datetime) -> str:
    containers = _spec(document).get("containers") or []
    statuses = (document.get("status") or {}).get("containerStatuses") or []
    return f"{sum(bool(s.get('ready')) for s in statuses)}/{len(containers)}"


def _field(*path: str, default: str = "") -> Callable[[Document, datetime], object]:
    def cell(document: Document, now: datetime) -> object:
        value: Any = document
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        return default if value is None else value

    return cell


def _event_object(document: Document, now: datetime) -> str:
    involved = document.get("involvedObject") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


NAME = Column("Name", _name, format="name")
AGE = Column("Age", _age)
COLUMNS: dict[ResourceType, tuple[Column, ...]] = {
    SERVICES: (
        NAME,
        Column("Type", _field("spec", "type")),
        Column("Cluster-IP", _field("spec", "clusterIP", default="<none>")),
        Column("External-IP", _service_external_ip),
        Column("Port(s)", _service_ports),
        AGE,
        Column("Selector", _selector, priority=1),
    ),
    ENDPOINT_SLICES: (
        NAME,
        Column("AddressType", _field("addressType")),
        Column("Ports", _slice_ports),
        Column("Endpoints", _slice_endpoints),
        AGE,
    ),
    NODES: (
        NAME,
        Column("Status", _node_status),
        Column("Roles", _node_roles),
        AGE,
        Column("Version", _field("status", "nodeInfo", "kubeletVersion")),
    ),
    PODS: (
        NAME,
        Column("Ready", _pod_ready),
        Column("Status", _field("status", "phase", default="Pending")),
        Column("Restarts", lambda d, n: 0, type="integer"),
        AGE,
        Column("IP", _field("status", "podIP", default="<none>"), priority=1),
        Column("Node", _field("spec", "nodeName", default="<none>"), priority=1),
    ),
    NAMESPACES: (NAME, Column("Status", _field("status", "phase")), AGE),
    EVENTS: (
        Column("Last Seen", _age),
        Column("Type", _field("type")),
        Column("Reason", _field("reason")),
        Column("Object", _event_object),
        Column("Message", _field("message")),
    ),
}


def _row(
    resource: ResourceType, stored: Stored, include: str, version: str, now: datetime
) -> Document:
    document = stored.to_dict()
    row: Document = {"cells": [column.cell(document, now) for column in COLUMNS[resource]]}
    if include == "Object":
        row["object"] = document
    elif include != "None":
        row["object"] = {
            "kind": "PartialObjectMetadata",
            "apiVersion": f"meta.k8s.io/{version}",
            "metadata": document["metadata"],
        }
    return row


def render_table(
    resource: ResourceType,
    items: Iterable[Stored],
    metadata: Document,
    *,
    version: str,
    include: str,
    now: datetime,
) -> bytes:
    """A Table of `items` (a list response, or one watch event's object)."""
    return orjson.dumps(
        {
            "kind": "Table",
            "apiVersion": f"meta.k8s.io/{version}",
            "metadata": metadata,
            "columnDefinitions": [column.definition() for column in COLUMNS[resource]],
            "rows": [_row(resource, stored, include, version, now) for stored in items],
        }
    )
