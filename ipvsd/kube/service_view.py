"""One Service read once, without watching: itself, its EndpointSlices and every Node.

For `ipvsd explain`, which runs on an operator's machine and must not list the whole cluster's
Services and slices. The raw API objects end here, converted by the daemon's own converters;
a malformed slice or Node is skipped, as the informers skip it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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


async def read_service_view(client: ApiClient, ref: ServiceRef, proxy_name: str) -> ServiceView:
    """`ref` with its slices and all Nodes; `ServiceUnavailable` when that is not possible or
    the Service is none of this proxy's business."""
    try:
        raw = await client.get_json(f"{SERVICES.in_namespace(ref.namespace)}/{ref.name}", {})
        slices = await client.get_json(
            ENDPOINT_SLICES.in_namespace(ref.namespace),
            {"labelSelector": f"{SERVICE_NAME_LABEL}={ref.name}"},
        )
        nodes = await client.get_json(NODES.path, {})
    except ApiError as error:
        if error.code == 404:
            raise ServiceUnavailable(f"Service {ref} not found") from error
        raise ServiceUnavailable(f"the API server refused: {error}") from error
    except ApiUnreachable as error:
        raise ServiceUnavailable(f"the API server is unreachable: {error}") from error
    why_not = not_handled_because((raw.get("metadata") or {}).get("labels") or {}, proxy_name)
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
