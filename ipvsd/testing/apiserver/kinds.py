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


def _ip_problem(address: object, family: str) -> str | None:
    if not isinstance(address, str):
        return "must be a valid IP address"
    try:
        parsed = ip_address(address)
    except ValueError:
        return "must be a valid IP address"
    wanted = IPv4Address if family == "IPv4" else IPv6Address
    if not isinstance(parsed, wanted) or str(parsed) != address:
        return f"must be a valid {family} address in canonical form"
    return None


class EndpointSliceStrategy(Strategy):
    """EndpointSlice defaults (port protocol TCP, port name "") and the API server's checks."""

    def prepare_create(self, document: Document) -> list[FieldError]:
        errors: list[FieldError] = []
        address_type = document.get("addressType")
        if address_type is None:
            errors.append(FieldError.required("addressType"))
        elif address_type not in ("IPv4", "IPv6", "FQDN"):
            errors.append(
                FieldError.not_supported("addressType", address_type, ["FQDN", "IPv4", "IPv6"])
            )
        endpoints = document.get("endpoints")
        if endpoints is None:
            document["endpoints"] = endpoints = []
        if not isinstance(endpoints, list):
            return [*errors, FieldError.invalid("endpoints", endpoints, "must be a list")]
        if len(endpoints) > 1000:
            errors.append(
                FieldError("FieldValueTooMany", "endpoints", "must have at most 1000 items")
            )
        for index, endpoint in enumerate(endpoints):
            errors += _endpoint_errors(endpoint, f"endpoints[{index}]", address_type)
        errors += _slice_port_errors(document)
        return errors

    def prepare_update(self, document: Document, old: Document) -> list[FieldError]:
        errors = self.prepare_create(document)
        if document.get("addressType") != old.get("addressType"):
            errors.append(
                FieldError.invalid("addressType", document.get("addressType"), "field is immutable")
            )
        return errors


def _endpoint_errors(endpoint: object, path: str, address_type: object) -> list[FieldError]:
    if not isinstance(endpoint, dict):
        return [FieldError.invalid(path, endpoint, "must be an object")]
    errors: list[FieldError] = []
    addresses = endpoint.get("addresses")
    if not isinstance(addresses, list) or not addresses:
        errors.append(FieldError.required(f"{path}.addresses", "must contain at least 1 address"))
    elif len(addresses) > 100:
        errors.append(FieldError("FieldValueTooMany", f"{path}.addresses", "must have at most 100"))
    elif address_type in ("IPv4", "IPv6"):
        for index, address in enumerate(addresses):
            if problem := _ip_problem(address, str(address_type)):
                errors.append(FieldError.invalid(f"{path}.addresses[{index}]", address, problem))
    conditions = endpoint.get("conditions", {})
    if not isinstance(conditions, dict):
        errors.append(FieldError.invalid(f"{path}.conditions", conditions, "must be an object"))
    else:
        for condition in ("ready", "serving", "terminating"):
            value = conditions.get(condition)
            if value is not None and not isinstance(value, bool):
                errors.append(
                    FieldError.invalid(f"{path}.conditions.{condition}", value, "must be a boolean")
                )
    node_name = endpoint.get("nodeName")
    if node_name is not None and (
        not isinstance(node_name, str) or name_problem("dns1123-subdomain", node_name)
    ):
        errors.append(FieldError.invalid(f"{path}.nodeName", node_name, "must be a node name"))
    errors += _hint_errors(endpoint.get("hints"), f"{path}.hints")
    return errors


def _hint_errors(hints: object, path: str) -> list[FieldError]:
    if hints is None:
        return []
    if not isinstance(hints, dict):
        return [FieldError.invalid(path, hints, "must be an object")]
    errors = []
    for field in ("forZones", "forNodes"):
        entries = hints.get(field) or []
        if not isinstance(entries, list) or len(entries) > 8:
            errors.append(FieldError("FieldValueTooMany", f"{path}.{field}", "must have at most 8"))
            continue
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                errors.append(FieldError.required(f"{path}.{field}[{index}].name"))
    return errors


def _slice_port_errors(document: Document) -> list[FieldError]:
    ports = document.get("ports")
    if ports is None:
        return []
    if not isinstance(ports, list):
        return [FieldError.invalid("ports", ports, "must be a list")]
    errors: list[FieldError] = []
    if len(ports) > 100:
        errors.append(FieldError("FieldValueTooMany", "ports", "must have at most 100 items"))
    names: set[str] = set()
    for index, port in enumerate(ports):
        path = f"ports[{index}]"
        if not isinstance(port, dict):
            errors.append(FieldError.invalid(path, port, "must be an object"))
            continue
        port.setdefault("name", "")
        port.setdefault("protocol", "TCP")
        name = port["name"]
        if name in names:
            errors.append(FieldError.duplicate(f"{path}.name", name))
        names.add(name)
        if port["protocol"] not in PROTOCOLS:
            errors.append(FieldError.not_supported(f"{path}.protocol", port["protocol"], PROTOCOLS))
        number = port.get("port")
        if number is not None and (
            not isinstance(number, int) or isinstance(number, bool) or not 0 <= number <= 65535
        ):
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
