"""Service spec defaults and validation, as the real API server applies them (pure functions).

What a client sees after create is what ipvsd will see from a real cluster: `type: ClusterIP`,
`sessionAffinity: None`, `internalTrafficPolicy: Cluster`, every port with `protocol: TCP` and
`targetPort` = `port`, `externalTrafficPolicy: Cluster` and `allocateLoadBalancerNodePorts:
true` where the type calls for them. On update, fields a type change makes meaningless are
dropped and values the server allocated are carried over when the client left them out (a PUT
of an object without `clusterIP`), both as upstream's service REST storage does.
"""

from __future__ import annotations

import re
from ipaddress import ip_address, ip_network
from typing import Any

from ipvsd.testing.apiserver.errors import FieldError
from ipvsd.testing.apiserver.kinds import PROTOCOLS
from ipvsd.testing.apiserver.meta import name_problem, validate_labels

Spec = dict[str, Any]  # field types already checked when the body was decoded (schema.py)
SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
IP_FAMILY_POLICIES = ["PreferDualStack", "RequireDualStack", "SingleStack"]
TRAFFIC_DISTRIBUTIONS = ["PreferClose", "PreferSameNode", "PreferSameZone"]
_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def needs_cluster_ip(spec: Spec) -> bool:
    return bool(spec.get("type", "ClusterIP") != "ExternalName")


def needs_node_ports(spec: Spec) -> bool:
    return spec.get("type") in ("NodePort", "LoadBalancer")


def allocates_node_ports(spec: Spec) -> bool:
    """Whether missing node ports get allocated (LoadBalancer may opt out)."""
    if spec.get("type") == "NodePort":
        return True
    return (
        spec.get("type") == "LoadBalancer"
        and spec.get("allocateLoadBalancerNodePorts") is not False
    )


def needs_health_check_node_port(spec: Spec) -> bool:
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def is_externally_accessible(spec: Spec) -> bool:
    return needs_node_ports(spec) or bool(spec.get("externalIPs"))


def is_headless(spec: Spec) -> bool:
    return spec.get("clusterIP") == "None"


def _ports(spec: Spec) -> list[dict[str, Any]]:
    return list(spec.get("ports") or [])


def apply_defaults(spec: Spec) -> None:
    """The defaults the API server fills in (mutates `spec`)."""
    if not spec.get("type"):
        spec["type"] = "ClusterIP"
    if not spec.get("sessionAffinity"):
        spec["sessionAffinity"] = "None"
    if spec["sessionAffinity"] == "ClientIP":
        config = spec.setdefault("sessionAffinityConfig", {}) or {}
        spec["sessionAffinityConfig"] = config
        client_ip = config.setdefault("clientIP", {}) or {}
        config["clientIP"] = client_ip
        client_ip.setdefault("timeoutSeconds", 10800)
    if spec["type"] != "ExternalName" and not spec.get("internalTrafficPolicy"):
        spec["internalTrafficPolicy"] = "Cluster"
    if needs_node_ports(spec) and not spec.get("externalTrafficPolicy"):
        spec["externalTrafficPolicy"] = "Cluster"
    if spec["type"] == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        spec["allocateLoadBalancerNodePorts"] = True
    for port in _ports(spec):
        if not port.get("protocol"):
            port["protocol"] = "TCP"
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")


def drop_type_dependent_fields(spec: Spec, old: Spec) -> None:
    """Clear what the new type no longer uses, when the client left it unchanged."""
    if (
        not needs_cluster_ip(spec)
        and needs_cluster_ip(old)
        and _same(spec, old, "clusterIP")
        and _same(spec, old, "clusterIPs")
    ):
        for field in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            spec.pop(field, None)
    if not needs_node_ports(spec) and _node_ports(spec) == _node_ports(old)[: len(_ports(spec))]:
        for port in _ports(spec):
            port.pop("nodePort", None)
    if not needs_health_check_node_port(spec) and _same(spec, old, "healthCheckNodePort"):
        spec.pop("healthCheckNodePort", None)
    if spec.get("type") != "LoadBalancer":
        for field in ("allocateLoadBalancerNodePorts", "loadBalancerClass"):
            if _same(spec, old, field):
                spec.pop(field, None)
    if not is_externally_accessible(spec) and _same(spec, old, "externalTrafficPolicy"):
        spec.pop("externalTrafficPolicy", None)


def carry_over_allocations(spec: Spec, old: Spec) -> None:
    """Keep allocated IPs and ports the client omitted (as upstream's patchAllocatedValues)."""
    if needs_cluster_ip(spec) and needs_cluster_ip(old):
        if not spec.get("clusterIP") and old.get("clusterIP"):
            spec["clusterIP"] = old["clusterIP"]
        if not spec.get("clusterIPs") and old.get("clusterIPs"):
            spec["clusterIPs"] = list(old["clusterIPs"])
        for field in ("ipFamilyPolicy", "ipFamilies"):
            if not spec.get(field) and old.get(field):
                spec[field] = old[field]
    if needs_node_ports(spec) and needs_node_ports(old):
        previous = {
            (p.get("protocol", "TCP"), p.get("port")): p["nodePort"]
            for p in _ports(old)
            if p.get("nodePort")
        }
        for port in _ports(spec):
            if not port.get("nodePort"):
                carried = previous.get((port.get("protocol") or "TCP", port.get("port")))
                if carried:
                    port["nodePort"] = carried
    if (
        needs_health_check_node_port(spec)
        and needs_health_check_node_port(old)
        and not spec.get("healthCheckNodePort")
        and old.get("healthCheckNodePort")
    ):
        spec["healthCheckNodePort"] = old["healthCheckNodePort"]


def _same(spec: Spec, old: Spec, field: str) -> bool:
    return spec.get(field) == old.get(field)


def _node_ports(spec: Spec) -> list[object]:
    return [p.get("nodePort") or 0 for p in _ports(spec)]


def _is_port_number(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def _target_port_errors(value: object, path: str) -> list[FieldError]:
    if isinstance(value, str):
        if (
            len(value) > 15
            or not _IANA_SVC_NAME.match(value)
            or "--" in value
            or not re.search("[a-z]", value)
        ):
            return [FieldError.invalid(path, value, "must be a valid IANA_SVC_NAME")]
        return []
    if not _is_port_number(value):
        return [FieldError.invalid(path, value, "must be between 1 and 65535, inclusive")]
    return []


def _port_errors(spec: Spec) -> list[FieldError]:
    errors: list[FieldError] = []
    names: set[str] = set()
    seen: set[tuple[object, object]] = set()
    ports = _ports(spec)
    for index, port in enumerate(ports):
        path = f"spec.ports[{index}]"
        name = port.get("name") or ""
        if len(ports) > 1 and not name:
            errors.append(FieldError.required(f"{path}.name"))
        elif name and (problem := name_problem("dns1123-label", name)):
            errors.append(FieldError.invalid(f"{path}.name", name, problem))
        elif name in names:
            errors.append(FieldError.duplicate(f"{path}.name", name))
        names.add(name)
        if not _is_port_number(port.get("port")):
            errors.append(
                FieldError.invalid(
                    f"{path}.port", port.get("port"), "must be between 1 and 65535, inclusive"
                )
            )
        if port["protocol"] not in PROTOCOLS:
            errors.append(FieldError.not_supported(f"{path}.protocol", port["protocol"], PROTOCOLS))
        errors += _target_port_errors(port.get("targetPort"), f"{path}.targetPort")
        node_port = port.get("nodePort")
        if node_port and not needs_node_ports(spec):
            errors.append(
                FieldError.forbidden(
                    f"{path}.nodePort", f"may not be used when `type` is '{spec['type']}'"
                )
            )
        elif node_port and not _is_port_number(node_port):
            errors.append(
                FieldError.invalid(f"{path}.nodePort", node_port, "must be between 1 and 65535")
            )
        identity = (port.get("port"), port["protocol"])
        if identity in seen:
            errors.append(
                FieldError.duplicate(path, {"port": identity[0], "protocol": identity[1]})
            )
        seen.add(identity)
    return errors


def _choice(spec: Spec, field: str, choices: list[str]) -> list[FieldError]:
    value = spec.get(field)
    if value is not None and value not in choices:
        return [FieldError.not_supported(f"spec.{field}", value, choices)]
    return []


def _address_errors(spec: Spec) -> list[FieldError]:
    errors: list[FieldError] = []
    for index, address in enumerate(spec.get("externalIPs") or []):
        try:
            ip_address(address)
        except ValueError:
            errors.append(
                FieldError.invalid(
                    f"spec.externalIPs[{index}]", address, "must be a valid IP address"
                )
            )
    ranges = spec.get("loadBalancerSourceRanges") or []
    if ranges and spec["type"] != "LoadBalancer":
        errors.append(
            FieldError.forbidden(
                "spec.loadBalancerSourceRanges", "may only be used when `type` is 'LoadBalancer'"
            )
        )
    for index, cidr in enumerate(ranges):
        try:
            ip_network(cidr, strict=False)
        except ValueError:
            errors.append(
                FieldError.invalid(
                    f"spec.loadBalancerSourceRanges[{index}]", cidr, "must be a valid CIDR"
                )
            )
    for index, address in enumerate(spec.get("clusterIPs") or []):
        if address == "None" and index == 0:
            continue
        try:
            ip_address(address)
        except ValueError:
            errors.append(
                FieldError.invalid(
                    f"spec.clusterIPs[{index}]",
                    address,
                    "must be empty, 'None', or a valid IP address",
                )
            )
    return errors


def _external_name_errors(spec: Spec) -> list[FieldError]:
    if spec["type"] != "ExternalName":
        return []
    errors = []
    name = spec.get("externalName")
    if not name:
        errors.append(FieldError.required("spec.externalName"))
    elif name_problem("dns1123-subdomain", str(name).rstrip(".")):
        errors.append(FieldError.invalid("spec.externalName", name, "must be a DNS name"))
    if spec.get("clusterIP"):
        errors.append(
            FieldError.invalid(
                "spec.clusterIP", spec["clusterIP"], "may not be set for ExternalName services"
            )
        )
    return errors


def _policy_errors(spec: Spec) -> list[FieldError]:
    errors = _choice(spec, "internalTrafficPolicy", ["Cluster", "Local"])
    errors += _choice(spec, "externalTrafficPolicy", ["Cluster", "Local"])
    if spec.get("externalTrafficPolicy") and not is_externally_accessible(spec):
        errors.append(
            FieldError.invalid(
                "spec.externalTrafficPolicy",
                spec["externalTrafficPolicy"],
                "may only be set for externally-accessible services",
            )
        )
    health = spec.get("healthCheckNodePort")
    if health and not needs_health_check_node_port(spec):
        errors.append(
            FieldError.invalid(
                "spec.healthCheckNodePort",
                health,
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is"
                " 'Local'",
            )
        )
    errors += _choice(spec, "trafficDistribution", TRAFFIC_DISTRIBUTIONS)
    errors += _choice(spec, "sessionAffinity", ["ClientIP", "None"])
    timeout = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get(
        "timeoutSeconds"
    )
    if spec["sessionAffinity"] == "ClientIP" and not (
        isinstance(timeout, int) and 0 < timeout <= 86400
    ):
        errors.append(
            FieldError.invalid(
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                timeout,
                "must be greater than 0 and less than 86400",
            )
        )
    errors += _choice(spec, "ipFamilyPolicy", IP_FAMILY_POLICIES)
    families = spec.get("ipFamilies") or []
    for index, family in enumerate(families):
        if family not in ("IPv4", "IPv6"):
            errors.append(
                FieldError.not_supported(f"spec.ipFamilies[{index}]", family, ["IPv4", "IPv6"])
            )
    if len(families) > 2 or len(set(families)) != len(families):
        errors.append(
            FieldError.invalid("spec.ipFamilies", families, "must be one or two distinct families")
        )
    return errors


def validate_spec(spec: Spec) -> list[FieldError]:
    """Every static check of a defaulted spec (families and allocation come later)."""
    if spec["type"] not in SERVICE_TYPES:
        return [FieldError.not_supported("spec.type", spec["type"], SERVICE_TYPES)]
    errors: list[FieldError] = []
    if not spec.get("ports") and spec["type"] != "ExternalName" and not is_headless(spec):
        errors.append(FieldError.required("spec.ports"))
    errors += _port_errors(spec)
    errors += _external_name_errors(spec)
    errors += _policy_errors(spec)
    errors += _address_errors(spec)
    errors += validate_labels(spec.get("selector"), "spec.selector")
    return errors
