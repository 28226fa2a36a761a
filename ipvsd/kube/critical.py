"""The few Services a new node needs first, read on their own while the bulk lists run.

A node's pods reach the API through `default/kubernetes` and names through the cluster DNS
Service (`kube-system/kube-dns`); `--critical-services` names more. Listing 50,000 Services
and their EndpointSlices takes seconds, so these are read by name beside the lists (one GET
per Service, one list of its EndpointSlices by the `kubernetes.io/service-name` label) and
programmed before the bulk: the time until the node reaches the API and DNS does not grow with
the cluster. Objects outside this proxy's selection (headless, another proxy's) are left out,
as the informers would leave them; a Service that does not exist is simply not returned.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from ipvsd.kube.client import ApiClient, ApiError
from ipvsd.kube.convert import (
    SERVICE_NAME_LABEL,
    ConversionError,
    endpoint_slice_from_dict,
    node_from_dict,
    service_from_dict,
)
from ipvsd.kube.resources import (
    SERVICE_PROXY_NAME_LABEL,
    not_handled_because,
)
from ipvsd.model.endpoint import EndpointSlice
from ipvsd.model.node import Node
from ipvsd.model.service import Service

log = logging.getLogger(__name__)

DEFAULT_CRITICAL = (("default", "kubernetes"), ("kube-system", "kube-dns"))


def critical_names(extra: Iterable[tuple[str, str]] = ()) -> tuple[tuple[str, str], ...]:
    """The API's and the cluster DNS's Services, then `extra` (`--critical-services`), once each."""
    return tuple(dict.fromkeys((*DEFAULT_CRITICAL, *extra)))


async def read_critical(
    client: ApiClient,
    names: Iterable[tuple[str, str]],
    *,
    proxy_name: str,
    only_labelled: bool = False,
) -> list[tuple[Service, list[EndpointSlice]]]:
    """Each named Service this proxy serves, with its EndpointSlices (those it serves)."""
    found = []
    for namespace, name in names:
        try:
            raw = await client.get_json(f"/api/v1/namespaces/{namespace}/services/{name}", {})
        except ApiError as error:
            if error.code != 404:
                log.warning("critical Service %s/%s: %s", namespace, name, error)
            continue
        if not _served(raw, proxy_name, only_labelled):
            continue
        try:
            service = service_from_dict(raw)
        except ConversionError as error:
            log.warning("critical Service %s/%s: %s", namespace, name, error)
            continue
        if service is None:
            continue
        listed = await client.get_json(
            f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
            {"labelSelector": f"{SERVICE_NAME_LABEL}={name}"},
        )
        slices = []
        for item in listed.get("items") or ():
            if not isinstance(item, dict) or not _served(item, proxy_name, only_labelled):
                continue
            try:
                endpoint_slice = endpoint_slice_from_dict(item)
            except ConversionError as error:
                log.warning("a slice of critical Service %s/%s: %s", namespace, name, error)
                continue
            if endpoint_slice is not None:
                slices.append(endpoint_slice)
        found.append((service, slices))
    return found


async def read_node(client: ApiClient, name: str) -> Node | None:
    """The own Node, or None when it does not exist."""
    try:
        raw = await client.get_json(f"/api/v1/nodes/{name}", {})
    except ApiError as error:
        if error.code == 404:
            return None
        raise
    return node_from_dict(raw)


def _served(raw: Mapping[str, object], proxy_name: str, only_labelled: bool) -> bool:
    metadata = raw.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    labels = labels if isinstance(labels, dict) else {}
    if not_handled_because(labels, proxy_name) is not None:
        return False
    return not only_labelled or labels.get(SERVICE_PROXY_NAME_LABEL) == proxy_name
