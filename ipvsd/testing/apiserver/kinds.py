"""Per-kind rules (defaults, validation) for everything except Services (see `services.py`).

A strategy mutates the incoming document in place (defaults) and returns field errors; the
store raises them as one 422. The emulator has no kubelet, node controller or scheduler, so
Pods and Nodes are stored much as given (their creator plays those parts); EndpointSlices get
the API server's real defaults and checks, since ipvsd's correctness depends on them.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from ipvsd.testing.apiserver.errors import FieldError
from ipvsd.testing.apiserver.meta import NameRule, name_problem
from ipvsd.testing.apiserver.resources import (
    ENDPOINT_SLICES,
    EVENTS,
    NAMESPACES,
    NODES,
    PODS,
    ResourceType,
)

Document = dict[str, Any]
PROTOCOLS = ["SCTP", "TCP", "UDP"]


class Strategy:
    """The rules of one kind. The base class accepts any object with valid metadata."""

    name_rule: NameRule = "dns1123-subdomain"
    clears_status_on_create = False

    def __init__(self, resource: ResourceType) -> None:
        self.resource = resource

    def prepare_create(self, document: Document) -> list[FieldError]:
        """Default and validate a new object; may allocate (and must undo that on error)."""
        return []

    def prepare_update(self, document: Document, old: Document) -> list[FieldError]:
        """Default and validate a changed object against its stored version."""
        return self.prepare_create(document)

    def release(self, document: Document) -> None:
        """The object is gone: give back what it held (addresses, ports)."""

    def restore(self, document: Document) -> None:
        """The object was loaded from saved state: take again what it holds."""


class NamespaceStrategy(Strategy):
    name_rule: NameRule = "dns1123-label"

    def prepare_create(self, document: Document) -> list[FieldError]:
        document.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        document["status"] = {"phase": "Active"}
        return []

    def prepare_update(self, document: Document, old: Document) -> list[FieldError]:
        document["status"] = old.get("status", {"phase": "Active"})
        return []


def _ip_problem(address: str, family: str) -> str | None:
    try:
        parsed = ip_address(address)
    except ValueError:
        return "must be a valid IP address"
    wanted = IPv4Address if family == "IPv4" else IPv6Address
    if not isinstance(parsed, wanted) or str(parsed) != address:
        return f"must be a valid {family} address in canonical form"
    return None


def _too_many(path: str, limit: int) -> FieldError:
    return FieldError("FieldValueTooMany", path, f"must have at most {limit} items")


class EndpointSliceStrategy(Strategy):
    """EndpointSlice defaults (port protocol TCP, port name "") and the API server's checks.
    Field types were checked when the body was decoded (`schema.py`)."""

    def prepare_create(self, document: Document) -> list[FieldError]:
        errors: list[FieldError] = []
        address_type = document.get("addressType")
        if address_type is None:
            errors.append(FieldError.required("addressType"))
        elif address_type not in ("IPv4", "IPv6", "FQDN"):
            errors.append(
                FieldError.not_supported("addressType", address_type, ["FQDN", "IPv4", "IPv6"])
            )
        endpoints = document.setdefault("endpoints", [])
        if len(endpoints) > 1000:
            errors.append(_too_many("endpoints", 1000))
        for index, endpoint in enumerate(endpoints):
            errors += _endpoint_errors(endpoint, f"endpoints[{index}]", address_type)
        errors += _slice_port_errors(document.get("ports") or [])
        return errors

    def prepare_update(self, document: Document, old: Document) -> list[FieldError]:
        errors = self.prepare_create(document)
        if document.get("addressType") != old.get("addressType"):
            errors.append(
                FieldError.invalid("addressType", document.get("addressType"), "field is immutable")
            )
        return errors


def _endpoint_errors(endpoint: Document, path: str, address_type: object) -> list[FieldError]:
    errors: list[FieldError] = []
    addresses = endpoint.get("addresses") or []
    if not addresses:
        errors.append(FieldError.required(f"{path}.addresses", "must contain at least 1 address"))
    elif len(addresses) > 100:
        errors.append(_too_many(f"{path}.addresses", 100))
    elif address_type in ("IPv4", "IPv6"):
        for index, address in enumerate(addresses):
            if problem := _ip_problem(address, str(address_type)):
                errors.append(FieldError.invalid(f"{path}.addresses[{index}]", address, problem))
    node_name = endpoint.get("nodeName")
    if node_name is not None and name_problem("dns1123-subdomain", node_name):
        errors.append(FieldError.invalid(f"{path}.nodeName", node_name, "must be a node name"))
    for field in ("forZones", "forNodes"):
        entries = (endpoint.get("hints") or {}).get(field) or []
        if len(entries) > 8:
            errors.append(_too_many(f"{path}.hints.{field}", 8))
        for index, entry in enumerate(entries):
            if not entry.get("name"):
                errors.append(FieldError.required(f"{path}.hints.{field}[{index}].name"))
    return errors


def _slice_port_errors(ports: list[Document]) -> list[FieldError]:
    errors: list[FieldError] = []
    if len(ports) > 100:
        errors.append(_too_many("ports", 100))
    names: set[str] = set()
    for index, port in enumerate(ports):
        path = f"ports[{index}]"
        name = port.setdefault("name", "")
        protocol = port.setdefault("protocol", "TCP")
        if name in names:
            errors.append(FieldError.duplicate(f"{path}.name", name))
        names.add(name)
        if protocol not in PROTOCOLS:
            errors.append(FieldError.not_supported(f"{path}.protocol", protocol, PROTOCOLS))
        number = port.get("port")
        if number is not None and not 0 <= number <= 65535:
            errors.append(
                FieldError.invalid(f"{path}.port", number, "must be between 0 and 65535, inclusive")
            )
    return errors


def simple_strategies() -> dict[ResourceType, Strategy]:
    """Rules for every kind but Services (which need the allocators)."""
    return {
        NAMESPACES: NamespaceStrategy(NAMESPACES),
        ENDPOINT_SLICES: EndpointSliceStrategy(ENDPOINT_SLICES),
        NODES: Strategy(NODES),
        PODS: Strategy(PODS),
        EVENTS: Strategy(EVENTS),
    }
