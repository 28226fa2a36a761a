"""Read once, without watching: one Service with its EndpointSlices, or the whole cluster.

For `ipvsd explain` (one Service: it runs on an operator's machine and must not list the whole
cluster's Services and slices) and `--dry-run` (every Service this proxy handles). Both read
each collection once and fail at the first error, with a message for the operator, where the
daemon's informers would retry. The raw API objects end here, converted by the daemon's own
converters; a malformed object is skipped, as the informers skip it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ipvsd.kube.client import ApiClient, ApiError, ApiUnreachable
from ipvsd.kube.convert import (
    SERVICE_NAME_LABEL,
    ConversionError,
    endpoint_slice_from_dict,
    node_from_dict,
    service_from_dict,
)
from ipvsd.kube.resources import ENDPOINT_SLICES, NODES, SERVICES, not_handled_because
from ipvsd.model.endpoint import EndpointSlice
from ipvsd.model.node import Node
from ipvsd.model.service import Service, ServiceRef

T = TypeVar("T")


class ServiceUnavailable(Exception):
    """Why there is no Service to look at, worded for an operator."""


@dataclass(frozen=True, slots=True)
class ServiceView:
    service: Service
    slices: tuple[EndpointSlice, ...]
    nodes: Mapping[str, Node]


@dataclass(frozen=True, slots=True)
class ClusterView:
    """Every Service this proxy handles, their EndpointSlices, and every Node."""

    services: tuple[Service, ...]
    slices: Mapping[ServiceRef, tuple[EndpointSlice, ...]]
    nodes: Mapping[str, Node]


async def _answer(request: Awaitable[dict[str, Any]], missing: str = "") -> dict[str, Any]:
    """The answer to one request; `ServiceUnavailable` worded for an operator (`missing` for a
    404, when that means something)."""
    try:
        return await request
    except ApiError as error:
        if error.code == 404 and missing:
            raise ServiceUnavailable(missing) from error
        raise ServiceUnavailable(f"the API server refused: {error}") from error
    except ApiUnreachable as error:
        raise ServiceUnavailable(f"the API server is unreachable: {error}") from error


async def read_cluster_view(client: ApiClient, proxy_name: str) -> ClusterView:
    """Every Service and EndpointSlice of this proxy (kube-proxy's selection and the objects
    naming `proxy_name`, as the informers select them) and every Node, each listed once."""
    services = await _answer(client.get_json(SERVICES.path, {}))
    slices = await _answer(client.get_json(ENDPOINT_SLICES.path, {}))
    nodes = await _answer(client.get_json(NODES.path, {}))
    by_service: dict[ServiceRef, list[EndpointSlice]] = {}
    for item in _converted(_handled(slices, proxy_name), endpoint_slice_from_dict):
        if item is not None:
            by_service.setdefault(item.service, []).append(item)
    return ClusterView(
        tuple(
            s
            for s in _converted(_handled(services, proxy_name), service_from_dict)
            if s is not None
        ),
        {ref: tuple(items) for ref, items in by_service.items()},
        {node.name: node for node in _converted(nodes, node_from_dict)},
    )


def _handled(listed: dict[str, Any], proxy_name: str) -> dict[str, Any]:
    return {
        "items": [
            item
            for item in listed.get("items") or ()
            if isinstance(item, dict) and not_handled_because(_labels(item), proxy_name) is None
        ]
    }


def _labels(raw: dict[str, Any]) -> dict[str, Any]:
    """An object's labels; none when its metadata or labels are not objects (the converter
    then names what is wrong, and the object is skipped)."""
    metadata = raw.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    return labels if isinstance(labels, dict) else {}


async def read_service_view(client: ApiClient, ref: ServiceRef, proxy_name: str) -> ServiceView:
    """`ref` with its slices and all Nodes; `ServiceUnavailable` when that is not possible or
    the Service is none of this proxy's business."""
    raw = await _answer(
        client.get_json(f"{SERVICES.in_namespace(ref.namespace)}/{ref.name}", {}),
        missing=f"Service {ref} not found",
    )
    slices = await _answer(
        client.get_json(
            ENDPOINT_SLICES.in_namespace(ref.namespace),
            {"labelSelector": f"{SERVICE_NAME_LABEL}={ref.name}"},
        )
    )
    nodes = await _answer(client.get_json(NODES.path, {}))
    why_not = not_handled_because(_labels(raw), proxy_name)
    if why_not is not None:
        raise ServiceUnavailable(f"Service {ref}: {why_not}")
    try:
        service = service_from_dict(raw)
    except ConversionError as error:
        raise ServiceUnavailable(f"Service {ref} is malformed: {error}") from error
    if service is None:
        raise ServiceUnavailable(
            f"Service {ref} is headless, ExternalName or has no ClusterIP: ipvsd programs "
            "nothing for it"
        )
    return ServiceView(
        service,
        tuple(s for s in _converted(slices, endpoint_slice_from_dict) if s is not None),
        {node.name: node for node in _converted(nodes, node_from_dict)},
    )


def _converted(listed: dict[str, Any], convert: Callable[[Any], T]) -> Iterable[T]:
    for item in listed.get("items") or ():
        try:
            yield convert(item)
        except ConversionError:
            continue
