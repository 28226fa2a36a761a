"""Service admission: IP families, cluster IPs, node ports and health-check node ports.

The family rules follow the API server's `initIPFamilyFields`: `ipFamilyPolicy` defaults to
SingleStack (RequireDualStack for selector-less headless Services on a dual-stack cluster);
PreferDualStack takes both families when the cluster has both; RequireDualStack is refused on
a single-stack cluster; `clusterIPs` imply their families; `clusterIPs[0]` and `ipFamilies[0]`
never change; setting SingleStack on update releases the secondary IP. Allocation is a small
transaction: everything taken for a request is given back if any part of it fails.
"""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

from ipvsd.testing.apiserver import service_spec as rules
from ipvsd.testing.apiserver.allocators import AllocationError, IPFamily, IPRange, PortRange
from ipvsd.testing.apiserver.errors import FieldError, internal_error
from ipvsd.testing.apiserver.kinds import Document, Strategy
from ipvsd.testing.apiserver.meta import NameRule
from ipvsd.testing.apiserver.resources import SERVICES

Spec = dict[str, Any]


def _family_of(address: str) -> IPFamily:
    return "IPv4" if ip_address(address).version == 4 else "IPv6"


def held_ips(spec: Spec) -> list[str]:
    return [ip for ip in spec.get("clusterIPs") or [] if ip and ip != "None"]


def held_ports(spec: Spec) -> set[int]:
    ports = {p["nodePort"] for p in spec.get("ports") or [] if p.get("nodePort")}
    if spec.get("healthCheckNodePort"):
        ports.add(spec["healthCheckNodePort"])
    return ports


class _Transaction:
    """What one request allocated, so a failure can give all of it back."""

    def __init__(self) -> None:
        self.ips: list[tuple[IPRange, str]] = []
        self.ports: list[int] = []

    def rollback(self, node_ports: PortRange) -> None:
        for ip_range, ip in self.ips:
            ip_range.release(ip)
        for port in self.ports:
            node_ports.release(port)


class ServiceStrategy(Strategy):
    name_rule: NameRule = "dns1035-label"
    clears_status_on_create = True

    def __init__(self, ip_ranges: list[IPRange], node_ports: PortRange) -> None:
        super().__init__(SERVICES)
        if not ip_ranges or len({r.family for r in ip_ranges}) != len(ip_ranges):
            raise ValueError("service CIDRs: one or two, of different families")
        self.ranges: dict[IPFamily, IPRange] = {r.family: r for r in ip_ranges}
        self.primary: IPFamily = ip_ranges[0].family
        self.node_ports = node_ports

    @property
    def is_dual_stack(self) -> bool:
        return len(self.ranges) == 2

    def prepare_create(self, document: Document) -> list[FieldError]:
        document["status"] = {"loadBalancer": {}}
        return self._prepare(document, None)

    def prepare_update(self, document: Document, old: Document) -> list[FieldError]:
        return self._prepare(document, old.get("spec") or {})

    def _prepare(self, document: Document, old: Spec | None) -> list[FieldError]:
        spec = document.setdefault("spec", {})
        if old is not None:
            rules.drop_type_dependent_fields(spec, old)
            rules.carry_over_allocations(spec, old)
        rules.apply_defaults(spec)
        errors = rules.validate_spec(spec)
        if not errors:
            errors = self._resolve_families(spec, old)
        if not errors and old is not None:
            errors = _immutable_errors(spec, old)
        if errors:
            return errors
        return self._allocate(spec, old or {})

    def _resolve_families(self, spec: Spec, old: Spec | None) -> list[FieldError]:
        if not rules.needs_cluster_ip(spec):
            for field in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                spec.pop(field, None)
            return []
        if spec.get("clusterIP") and not spec.get("clusterIPs"):
            spec["clusterIPs"] = [spec["clusterIP"]]
        elif spec.get("clusterIPs") and not spec.get("clusterIP"):
            spec["clusterIP"] = spec["clusterIPs"][0]
        if spec.get("clusterIPs") and spec["clusterIP"] != spec["clusterIPs"][0]:
            return [
                FieldError.invalid(
                    "spec.clusterIPs", spec["clusterIPs"], "element [0] must match clusterIP"
                )
            ]
        headless = rules.is_headless(spec)
        policy = spec.get("ipFamilyPolicy")
        if old is not None:
            errors = _downgrade(spec, old, policy)
            if errors:
                return errors
        families: list[IPFamily] = list(spec.get("ipFamilies") or [])
        ips = [] if headless else list(spec.get("clusterIPs") or [])
        for index, ip in enumerate(ips):
            family = _family_of(ip)
            if index < len(families) and families[index] != family:
                return [
                    FieldError.invalid(
                        f"spec.ipFamilies[{index}]",
                        families[index],
                        f"does not match IP family of spec.clusterIPs[{index}]",
                    )
                ]
            if index >= len(families):
                families.append(family)
        selectorless_headless = headless and not spec.get("selector")
        if policy is None:
            if selectorless_headless and self.is_dual_stack:
                policy = "RequireDualStack"
            elif len(families) == 2:
                return [
                    FieldError.invalid(
                        "spec.ipFamilyPolicy",
                        "SingleStack",
                        "must be RequireDualStack or PreferDualStack when "
                        "multiple IP families are specified",
                    )
                ]
            else:
                policy = "SingleStack"
        if policy == "SingleStack" and len(families) > 1:
            return [
                FieldError.invalid(
                    "spec.ipFamilies",
                    families,
                    "when ipFamilyPolicy is SingleStack only one family may be specified",
                )
            ]
        if policy == "RequireDualStack" and not self.is_dual_stack:
            return [
                FieldError.invalid(
                    "spec.ipFamilyPolicy",
                    policy,
                    "this cluster is not configured for dual-stack services",
                )
            ]
        if not families:
            families = [self.primary]
        if policy != "SingleStack" and len(families) == 1 and self.is_dual_stack:
            families.append("IPv6" if families[0] == "IPv4" else "IPv4")
        for index, family in enumerate(families):
            if family not in self.ranges:
                return [
                    FieldError.invalid(
                        f"spec.ipFamilies[{index}]", family, "not configured on this cluster"
                    )
                ]
        spec["ipFamilyPolicy"] = policy
        spec["ipFamilies"] = families
        return []

    def _allocate(self, spec: Spec, old: Spec) -> list[FieldError]:
        transaction = _Transaction()
        try:
            errors = self._allocate_ips(spec, old, transaction)
            errors += self._allocate_ports(spec, old, transaction)
        except BaseException:
            transaction.rollback(self.node_ports)
            raise
        if errors:
            transaction.rollback(self.node_ports)
            return errors
        for ip in set(held_ips(old)) - set(held_ips(spec)):
            self.ranges[_family_of(ip)].release(ip)
        for port in held_ports(old) - held_ports(spec):
            self.node_ports.release(port)
        return []

    def _allocate_ips(self, spec: Spec, old: Spec, transaction: _Transaction) -> list[FieldError]:
        if not rules.needs_cluster_ip(spec):
            return []
        if rules.is_headless(spec):
            spec["clusterIPs"] = ["None"]
            return []
        given = list(spec.get("clusterIPs") or [])
        previous = set(held_ips(old))
        allocated: list[str] = []
        errors: list[FieldError] = []
        for index, family in enumerate(spec["ipFamilies"]):
            wanted = given[index] if index < len(given) and given[index] else None
            if wanted is not None and wanted in previous:
                allocated.append(wanted)
                continue
            ip_range = self.ranges[family]
            try:
                ip = ip_range.allocate(wanted)
            except AllocationError as error:
                if wanted is None:
                    raise internal_error(str(error)) from error
                errors.append(FieldError.invalid("spec.clusterIPs", given, str(error)))
                continue
            transaction.ips.append((ip_range, ip))
            allocated.append(ip)
        if not errors:
            spec["clusterIPs"] = allocated
            spec["clusterIP"] = allocated[0]
        return errors

    def _take_port(
        self, wanted: int | None, path: str, transaction: _Transaction
    ) -> tuple[int | None, list[FieldError]]:
        try:
            port = self.node_ports.allocate(wanted)
        except AllocationError as error:
            if wanted is None:
                raise internal_error(str(error)) from error
            return None, [FieldError.invalid(path, wanted, str(error))]
        transaction.ports.append(port)
        return port, []

    def _allocate_ports(self, spec: Spec, old: Spec, transaction: _Transaction) -> list[FieldError]:
        previous = held_ports(old)
        claimed: dict[int, str] = {}  # node port -> protocol, within this Service
        errors: list[FieldError] = []
        for index, port in enumerate(spec.get("ports") or []):
            wanted = port.get("nodePort") or None
            path = f"spec.ports[{index}].nodePort"
            if wanted is None and not rules.allocates_node_ports(spec):
                continue
            if wanted is not None and wanted in claimed:
                if claimed[wanted] == port["protocol"]:
                    errors.append(FieldError.duplicate(path, wanted))
                continue
            if wanted is None or wanted not in previous:
                wanted, problems = self._take_port(wanted, path, transaction)
                errors += problems
            if wanted is not None:
                port["nodePort"] = wanted
                claimed[wanted] = port["protocol"]
        if rules.needs_health_check_node_port(spec):
            wanted = spec.get("healthCheckNodePort") or None
            path = "spec.healthCheckNodePort"
            if wanted is not None and wanted in claimed:
                errors.append(FieldError.duplicate(path, wanted))
            elif wanted is None or wanted not in previous:
                wanted, problems = self._take_port(wanted, path, transaction)
                errors += problems
            if wanted is not None:
                spec["healthCheckNodePort"] = wanted
        return errors

    def release(self, document: Document) -> None:
        spec = document.get("spec") or {}
        for ip in held_ips(spec):
            family = _family_of(ip)
            if family in self.ranges:
                self.ranges[family].release(ip)
        for port in held_ports(spec):
            self.node_ports.release(port)

    def restore(self, document: Document) -> None:
        spec = document.get("spec") or {}
        for ip in held_ips(spec):
            family = _family_of(ip)
            if family in self.ranges:
                self.ranges[family].reserve(ip)
        for port in held_ports(spec):
            self.node_ports.reserve(port)


def _downgrade(spec: Spec, old: Spec, policy: str | None) -> list[FieldError]:
    """SingleStack on update trims the secondary IP and family; shrinking otherwise is refused."""
    same_ips = spec.get("clusterIPs") == old.get("clusterIPs")
    same_families = spec.get("ipFamilies") == old.get("ipFamilies")
    if policy == "SingleStack":
        if same_ips and len(spec.get("clusterIPs") or []) > 1:
            spec["clusterIPs"] = spec["clusterIPs"][:1]
        if same_families and len(spec.get("ipFamilies") or []) > 1:
            spec["ipFamilies"] = spec["ipFamilies"][:1]
        return []
    errors = []
    if len(spec.get("clusterIPs") or []) < len(old.get("clusterIPs") or []):
        errors.append(
            FieldError.invalid(
                "spec.ipFamilyPolicy",
                policy,
                "must be 'SingleStack' to release the secondary cluster IP",
            )
        )
    if len(spec.get("ipFamilies") or []) < len(old.get("ipFamilies") or []):
        errors.append(
            FieldError.invalid(
                "spec.ipFamilyPolicy",
                policy,
                "must be 'SingleStack' to release the secondary IP family",
            )
        )
    return errors


def _immutable_errors(spec: Spec, old: Spec) -> list[FieldError]:
    if not (rules.needs_cluster_ip(spec) and rules.needs_cluster_ip(old)):
        return []
    errors = []
    for field in ("clusterIPs", "ipFamilies"):
        new_values, old_values = spec.get(field) or [], old.get(field) or []
        for index in range(min(len(new_values), len(old_values))):
            if new_values[index] != old_values[index]:
                errors.append(
                    FieldError.invalid(
                        f"spec.{field}[{index}]", new_values[index], "may not change once set"
                    )
                )
    return errors
