"""Raw API objects to frozen model values: the one place that knows the JSON shapes.

Pure functions, no I/O. A converter returns a model value; returns None when the object is not
for the proxy by rule (ExternalName and headless Services, FQDN slices, slices that name no
Service), exactly as kube-proxy ignores them; or raises `ConversionError` naming the field path
when the object is invalid, so the caller can skip that one object with one clear log line.

Only proxy-relevant fields are kept, normalised (defaults applied, sorted where order carries
no meaning), so that two versions of an object that differ only in irrelevant fields
(resourceVersion, managedFields, unrelated annotations, Node heartbeats) convert to equal
values: equality is the informers' "nothing changed" test.

EndpointSlices are the hot path (100,000 endpoints in a large cluster): that converter avoids
generic helpers per endpoint and interns the strings that repeat across endpoints (node names,
zones), which keeps both sync time and memory small.
"""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from socket import inet_pton
from typing import Any, TypeVar

from ipvsd.model.endpoint import Endpoint, EndpointPort, EndpointSlice
from ipvsd.model.ipvs import Family, IPAddress, Protocol
from ipvsd.model.node import TO_BE_DELETED_TAINT, Node
from ipvsd.model.service import (
    DEFAULT_AFFINITY_TIMEOUT,
    IPNetwork,
    Service,
    ServicePort,
    ServiceRef,
    ServiceType,
    TrafficPolicy,
)

RawObject = dict[str, Any]
"""A decoded API object as the server sent it. Never leaves `ipvsd.kube`."""

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
MAX_ENDPOINTS_PER_SLICE = 1000  # the API's own limit; more means the object is not a real slice
MAX_AFFINITY_TIMEOUT = 86400  # the API's limit for sessionAffinityConfig.clientIP.timeoutSeconds

RELEVANT_ANNOTATION_PREFIXES = ("ipvsd.io/", "kube-router.io/")
RELEVANT_ANNOTATIONS = frozenset(
    {"service.kubernetes.io/topology-mode", "service.kubernetes.io/topology-aware-hints"}
)

_PROTOCOLS = {"TCP": Protocol.TCP, "UDP": Protocol.UDP, "SCTP": Protocol.SCTP}
_SERVICE_TYPES = {kind.value: kind for kind in ServiceType}
_TRAFFIC_POLICIES = {policy.value: policy for policy in TrafficPolicy}


@dataclass(frozen=True, slots=True)
class _AddressFamily:
    """How a slice's addresses are read: inet_pton is strict (no leading zeros, no "1.2.3")
    and five times faster than `ip_address`; the packed bytes also serve as the dedup key."""

    family: Family
    socket_family: int
    make: Callable[[int], IPAddress]


_ADDRESS_FAMILIES = {
    "IPv4": _AddressFamily(Family.INET, socket.AF_INET, IPv4Address),
    "IPv6": _AddressFamily(Family.INET6, socket.AF_INET6, IPv6Address),
}
_SINGLE_HINTS: dict[str, tuple[str]] = {}  # zone or node name → the one-hint tuple, shared
_SINGLE_HINTS_LIMIT = 100_000
_SERVICE_NAME_PATH = f"metadata.labels[{SERVICE_NAME_LABEL}]"
_intern = sys.intern
T = TypeVar("T")

Warn = Callable[[str], None]
"""Receives a note about something dropped from an otherwise valid object."""


class ConversionError(ValueError):
    """An object is invalid; `path` is the offending field (`spec.ports[1].port`)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def _ignore(_note: str) -> None:
    return None


# --- generic field access -------------------------------------------------------------------


def _mapping(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConversionError(path, f"expected an object, got {_describe(value)}")
    return value


def _sequence(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConversionError(path, f"expected a list, got {_describe(value)}")
    return value


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise ConversionError(path, f"expected a string, got {_describe(value)}")
    return value


def _required_string(container: dict[str, Any], key: str, path: str) -> str:
    value = container.get(key)
    if value is None or value == "":
        raise ConversionError(path, "missing")
    return _string(value, path)


def _optional_string(value: Any, path: str) -> str | None:
    return None if value is None else _string(value, path)


def _port(value: Any, path: str, *, lowest: int = 1) -> int:
    if value is None:
        raise ConversionError(path, "missing")
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConversionError(path, f"expected an integer, got {_describe(value)}")
    if not lowest <= value <= 65535:
        raise ConversionError(path, f"{value} out of range")
    return value


def _protocol(value: Any, path: str) -> Protocol:
    if value is None:
        return Protocol.TCP
    protocol = _PROTOCOLS.get(value) if isinstance(value, str) else None
    if protocol is None:
        raise ConversionError(path, f"unknown protocol {value!r}")
    return protocol


def _each(items: Any, path: str, read: Callable[[Any, str], T]) -> tuple[T, ...]:
    """Every item of an optional list read by `read`; a bad one is named `path[i]`."""
    if not items:
        return ()
    return tuple(read(item, f"{path}[{i}]") for i, item in enumerate(_sequence(items, path)))


def _address(value: Any, path: str) -> IPAddress:
    if type(value) is str:  # the usual spellings, read strictly by the C parser
        try:
            return IPv4Address(inet_pton(socket.AF_INET, value))
        except OSError:
            pass
        try:
            return IPv6Address(inet_pton(socket.AF_INET6, value))
        except OSError:
            pass
    text = _string(value, path)
    try:
        return ip_address(text)
    except ValueError:
        raise ConversionError(path, f"{text!r} is not an IP address") from None


def _network(value: Any, path: str) -> IPNetwork:
    text = _string(value, path).strip()
    try:
        return ip_network(text, strict=False)
    except ValueError:
        raise ConversionError(path, f"{text!r} is not a CIDR") from None


def _boolean_or_none(value: Any, path: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ConversionError(path, f"expected a boolean, got {_describe(value)}")


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _metadata(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConversionError("<object>", f"expected an object, got {_describe(raw)}")
    return _mapping(raw.get("metadata"), "metadata")


def object_key(raw: Any, *, namespaced: bool) -> str:
    """`namespace/name` (or `name` for cluster-scoped kinds): the store key of an object."""
    metadata = raw.get("metadata") if type(raw) is dict else None
    if type(metadata) is dict:  # the usual shape, checked inline: this runs for every event
        name = metadata.get("name")
        if type(name) is str and name:
            if not namespaced:
                return name
            namespace = metadata.get("namespace")
            if type(namespace) is str and namespace:
                return f"{namespace}/{name}"
    meta = _metadata(raw)
    name = _required_string(meta, "name", "metadata.name")
    if not namespaced:
        return name
    return f"{_required_string(meta, 'namespace', 'metadata.namespace')}/{name}"


def _malformed(error: Exception) -> ConversionError:
    """A shape the field checks did not anticipate still becomes a named, skippable error."""
    return ConversionError("<object>", f"malformed ({type(error).__name__}: {error})")


# --- Services -------------------------------------------------------------------------------


def service_from_dict(raw: RawObject) -> Service | None:
    """A core/v1 Service as the proxy sees it; None for ExternalName and headless ones."""
    try:
        return _service(raw)
    except ConversionError:
        raise
    except (TypeError, AttributeError, KeyError, ValueError) as error:
        raise _malformed(error) from error


def _created(meta: Mapping[str, Any]) -> str:
    """metadata.creationTimestamp, or "" if absent or not text: it only orders two Services
    that claim one virtual server, so a bad one makes its Service the newest, not invalid."""
    created = meta.get("creationTimestamp")
    return created if isinstance(created, str) else ""


def _service(raw: RawObject) -> Service | None:
    meta = _metadata(raw)
    ref = ServiceRef(
        _required_string(meta, "namespace", "metadata.namespace"),
        _required_string(meta, "name", "metadata.name"),
    )
    spec = _mapping(raw.get("spec"), "spec")
    type_text = spec.get("type") or "ClusterIP"
    if type_text == "ExternalName":
        return None
    service_type = _SERVICE_TYPES.get(type_text) if type(type_text) is str else None
    if service_type is None:
        raise ConversionError("spec.type", f"unknown type {type_text!r}")
    cluster_ips = _cluster_ips(spec)
    if cluster_ips is None:
        return None
    affinity = spec.get("sessionAffinity") or "None"
    if affinity not in ("None", "ClientIP"):
        raise ConversionError("spec.sessionAffinity", f"unknown affinity {affinity!r}")
    status = _mapping(raw.get("status"), "status")
    return Service(
        ref=ref,
        uid=_optional_string(meta.get("uid"), "metadata.uid") or "",
        created=_created(meta),
        type=service_type,
        cluster_ips=cluster_ips,
        ports=_service_ports(spec),
        external_ips=_each(spec.get("externalIPs"), "spec.externalIPs", _address),
        load_balancer_ips=_load_balancer_ips(status),
        load_balancer_source_ranges=_each(
            spec.get("loadBalancerSourceRanges"), "spec.loadBalancerSourceRanges", _network
        ),
        session_affinity=affinity == "ClientIP",
        affinity_timeout=_affinity_timeout(spec),
        external_traffic_policy=_traffic_policy(spec, "externalTrafficPolicy"),
        internal_traffic_policy=_traffic_policy(spec, "internalTrafficPolicy"),
        health_check_node_port=_health_check_node_port(spec),
        traffic_distribution=_optional_string(
            spec.get("trafficDistribution"), "spec.trafficDistribution"
        ),
        annotations=_relevant_annotations(meta),
    )


def _cluster_ips(spec: dict[str, Any]) -> tuple[IPAddress, ...] | None:
    """Every cluster IP (dual-stack lists both); None when the Service is headless."""
    if spec.get("clusterIPs"):
        texts = _sequence(spec["clusterIPs"], "spec.clusterIPs")
        return None if texts[0] in (None, "", "None") else _each(texts, "spec.clusterIPs", _address)
    text = spec.get("clusterIP")
    return None if text in (None, "", "None") else (_address(text, "spec.clusterIP"),)


def _service_ports(spec: dict[str, Any]) -> tuple[ServicePort, ...]:
    ports = []
    for i, item in enumerate(_sequence(spec.get("ports"), "spec.ports")):
        path = f"spec.ports[{i}]"
        port = _mapping(item, path)
        node_port = port.get("nodePort") or 0
        ports.append(
            ServicePort(
                name=_optional_string(port.get("name"), f"{path}.name") or "",
                protocol=_protocol(port.get("protocol"), f"{path}.protocol"),
                port=_port(port.get("port"), f"{path}.port"),
                node_port=0
                if node_port is None
                else _port(node_port, f"{path}.nodePort", lowest=0),
            )
        )
    return tuple(ports)


def _load_balancer_ips(status: dict[str, Any]) -> tuple[IPAddress, ...]:
    """Ingress IPs that traffic arrives on (`ipMode` unset or VIP); Proxy-mode LBs are skipped."""
    balancer = _mapping(status.get("loadBalancer"), "status.loadBalancer")
    addresses = []
    for i, item in enumerate(_sequence(balancer.get("ingress"), "status.loadBalancer.ingress")):
        path = f"status.loadBalancer.ingress[{i}]"
        ingress = _mapping(item, path)
        if ingress.get("ip") and ingress.get("ipMode") in (None, "VIP"):
            addresses.append(_address(ingress["ip"], f"{path}.ip"))
    return tuple(addresses)


def _affinity_timeout(spec: dict[str, Any]) -> int:
    path = "spec.sessionAffinityConfig.clientIP.timeoutSeconds"
    config = _mapping(spec.get("sessionAffinityConfig"), "spec.sessionAffinityConfig")
    client_ip = _mapping(config.get("clientIP"), "spec.sessionAffinityConfig.clientIP")
    timeout = client_ip.get("timeoutSeconds")
    if timeout is None:
        return DEFAULT_AFFINITY_TIMEOUT
    if not isinstance(timeout, int) or isinstance(timeout, bool):
        raise ConversionError(path, f"expected an integer, got {_describe(timeout)}")
    if not 0 < timeout <= MAX_AFFINITY_TIMEOUT:
        raise ConversionError(path, f"{timeout} out of range")
    return timeout


def _traffic_policy(spec: dict[str, Any], field: str) -> TrafficPolicy:
    value = spec.get(field) or "Cluster"
    policy = _TRAFFIC_POLICIES.get(value) if type(value) is str else None
    if policy is None:
        raise ConversionError(f"spec.{field}", f"unknown policy {value!r}")
    return policy


def _health_check_node_port(spec: dict[str, Any]) -> int:
    value = spec.get("healthCheckNodePort")
    return 0 if value is None else _port(value, "spec.healthCheckNodePort", lowest=0)


def _relevant_annotations(meta: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """Only the annotations ipvsd reads, so unrelated ones never look like a change."""
    annotations = _mapping(meta.get("annotations"), "metadata.annotations")
    return tuple(
        sorted(
            (key, _string(value, f"metadata.annotations[{key}]"))
            for key, value in annotations.items()
            if key.startswith(RELEVANT_ANNOTATION_PREFIXES) or key in RELEVANT_ANNOTATIONS
        )
    )


# --- EndpointSlices -------------------------------------------------------------------------


def endpoint_slice_from_dict(raw: RawObject, *, warn: Warn = _ignore) -> EndpointSlice | None:
    """A discovery.k8s.io/v1 EndpointSlice; None for FQDN slices and slices of no Service.

    `warn` hears about endpoints dropped from a slice that is otherwise kept (a duplicate
    address: the first copy wins).
    """
    try:
        return _endpoint_slice(raw, warn)
    except ConversionError:
        raise
    except (TypeError, AttributeError, KeyError, ValueError) as error:
        raise _malformed(error) from error


def _endpoint_slice(raw: RawObject, warn: Warn) -> EndpointSlice | None:
    meta = _metadata(raw)
    namespace = _required_string(meta, "namespace", "metadata.namespace")
    name = _required_string(meta, "name", "metadata.name")
    labels = _mapping(meta.get("labels"), "metadata.labels")
    service_name = labels.get(SERVICE_NAME_LABEL)
    if not service_name:
        return None
    address_type = raw.get("addressType")
    if address_type == "FQDN":
        return None
    family = _ADDRESS_FAMILIES.get(address_type) if isinstance(address_type, str) else None
    if family is None:
        raise ConversionError("addressType", f"unknown address type {address_type!r}")
    annotations = _mapping(meta.get("annotations"), "metadata.annotations")
    return EndpointSlice(
        namespace=namespace,
        name=name,
        service=ServiceRef(
            namespace, _string(service_name, f"metadata.labels[{SERVICE_NAME_LABEL}]")
        ),
        family=family.family,
        ports=_endpoint_ports(raw.get("ports")),
        endpoints=_endpoints(raw.get("endpoints"), family, warn),
        trigger_time=_trigger_time(annotations.get(TRIGGER_TIME_ANNOTATION)),
    )


def _endpoint_ports(items: Any) -> tuple[EndpointPort, ...]:
    """Ports that carry a number (a port without one means "all ports" and is ignored)."""
    ports = []
    for i, item in enumerate(_sequence(items, "ports")):
        port = _mapping(item, f"ports[{i}]")
        if port.get("port") is None:
            continue
        ports.append(
            EndpointPort(
                name=_optional_string(port.get("name"), f"ports[{i}].name") or "",
                protocol=_protocol(port.get("protocol"), f"ports[{i}].protocol"),
                port=_port(port["port"], f"ports[{i}].port"),
            )
        )
    return tuple(ports)


def _endpoints(items: Any, family: _AddressFamily, warn: Warn) -> tuple[Endpoint, ...]:
    items = _sequence(items, "endpoints")
    if len(items) > MAX_ENDPOINTS_PER_SLICE:
        raise ConversionError(
            "endpoints", f"{len(items)} endpoints, more than {MAX_ENDPOINTS_PER_SLICE} allowed"
        )
    pton, socket_family, make, from_bytes = (
        inet_pton,
        family.socket_family,
        family.make,
        int.from_bytes,
    )
    endpoints: list[Endpoint] = []
    seen: set[bytes] = set()  # packed addresses: one spelling per address, cheap to hash
    for i, item in enumerate(items):
        if type(item) is not dict:
            raise ConversionError(f"endpoints[{i}]", f"expected an object, got {_describe(item)}")
        addresses = item.get("addresses")
        if not addresses or type(addresses) is not list:
            raise ConversionError(f"endpoints[{i}].addresses", "missing")
        try:
            packed = pton(socket_family, addresses[0])
        except (OSError, TypeError):
            if _is_address(addresses[0]):
                continue  # the other family: kube-proxy drops it
            raise ConversionError(
                f"endpoints[{i}].addresses[0]", f"{_describe(addresses[0])} is not an IP address"
            ) from None
        if packed in seen:
            warn(
                f"endpoints[{i}].addresses[0]: duplicate address {addresses[0]}, keeping the first"
            )
            continue
        seen.add(packed)
        endpoints.append(_endpoint(item, make(from_bytes(packed)), i))
    return tuple(endpoints)


def _is_address(text: Any) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return isinstance(text, str)


def _endpoint(item: dict[str, Any], address: IPAddress, index: int) -> Endpoint:
    """One endpoint, with the conditions' nil-means-true rules applied.

    The hot loop of a sync (100,000 calls): type checks are inline and field paths are only
    formatted once something is wrong.
    """
    conditions = item.get("conditions")
    if conditions:
        if type(conditions) is not dict:
            raise ConversionError(f"endpoints[{index}].conditions", "expected an object")
        ready = conditions.get("ready")
        serving = conditions.get("serving")
        terminating = conditions.get("terminating")
        if (
            (ready is not None and type(ready) is not bool)
            or (serving is not None and type(serving) is not bool)
            or (terminating is not None and type(terminating) is not bool)
        ):
            _check_conditions(conditions, index)
    else:
        ready = serving = terminating = None
    node_name = item.get("nodeName")
    if node_name is not None:
        if type(node_name) is not str:
            _string(node_name, f"endpoints[{index}].nodeName")
        node_name = _intern(node_name)
    zone = item.get("zone")
    if zone is not None:
        if type(zone) is not str:
            _string(zone, f"endpoints[{index}].zone")
        zone = _intern(zone)
    hints = item.get("hints")
    if hints:
        if type(hints) is not dict:
            raise ConversionError(f"endpoints[{index}].hints", "expected an object")
        zone_hints = _hint_names(hints.get("forZones"), index, "forZones")
        node_hints = _hint_names(hints.get("forNodes"), index, "forNodes")
    else:
        zone_hints = node_hints = ()
    return Endpoint(
        address,
        ready is not False,
        serving is not False,
        terminating is True,
        node_name,
        zone,
        zone_hints,
        node_hints,
    )


def _check_conditions(conditions: dict[str, Any], index: int) -> None:
    for name in ("ready", "serving", "terminating"):
        _boolean_or_none(conditions.get(name), f"endpoints[{index}].conditions.{name}")


def _hint_names(items: Any, index: int, field: str) -> tuple[str, ...]:
    """Sorted hint names. One hint per endpoint is the rule, so that case is a cache hit."""
    if not items:
        return ()
    if type(items) is list and len(items) == 1 and type(items[0]) is dict:
        name = items[0].get("name")
        if type(name) is str and name:
            single = _SINGLE_HINTS.get(name)
            if single is None:
                single = (_intern(name),)
                if len(_SINGLE_HINTS) < _SINGLE_HINTS_LIMIT:
                    _SINGLE_HINTS[name] = single
            return single
    path = f"endpoints[{index}].hints.{field}"
    return tuple(
        sorted(
            _intern(_required_string(_mapping(hint, f"{path}[{i}]"), "name", f"{path}[{i}].name"))
            for i, hint in enumerate(_sequence(items, path))
        )
    )


def _trigger_time(value: Any) -> float | None:
    """The RFC 3339 trigger time as a UNIX timestamp; None when absent or unreadable.

    Only a metric depends on it, so a garbled value must not cost the slice its endpoints.
    """
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


# --- Nodes ----------------------------------------------------------------------------------


def node_from_dict(raw: RawObject) -> Node:
    """A core/v1 Node: its labels and whether it is going away (deleted or autoscaler-tainted)."""
    try:
        return _node(raw)
    except ConversionError:
        raise
    except (TypeError, AttributeError, KeyError, ValueError) as error:
        raise _malformed(error) from error


def _node(raw: RawObject) -> Node:
    meta = _metadata(raw)
    name = _required_string(meta, "name", "metadata.name")
    labels = _mapping(meta.get("labels"), "metadata.labels")
    spec = _mapping(raw.get("spec"), "spec")
    taints = _sequence(spec.get("taints"), "spec.taints")
    tainted = any(
        _mapping(taint, f"spec.taints[{i}]").get("key") == TO_BE_DELETED_TAINT
        for i, taint in enumerate(taints)
    )
    return Node(
        name=name,
        labels=tuple(
            sorted(
                (key, _string(value, f"metadata.labels[{key}]")) for key, value in labels.items()
            )
        ),
        deleting=meta.get("deletionTimestamp") is not None or tainted,
        primary_addresses=_primary_addresses(raw),
        pod_cidrs=_pod_cidrs(spec),
    )


def _pod_cidrs(spec: dict[str, Any]) -> tuple[IPNetwork, ...]:
    """`spec.podCIDRs` (else the older `spec.podCIDR`), in order; entries that are not CIDRs
    are left out rather than costing the Node its other fields (only NodeCIDR detect-local
    reads them)."""
    listed = spec.get("podCIDRs")
    items = listed if isinstance(listed, list) and listed else [spec.get("podCIDR")]
    cidrs = []
    for item in items:
        if isinstance(item, str):
            with contextlib.suppress(ValueError):
                cidrs.append(ip_network(item, strict=False))
    return tuple(cidrs)


def _primary_addresses(raw: RawObject) -> tuple[IPAddress, ...]:
    """The Node's primary address per family: its first InternalIP, else its first ExternalIP
    (what kube-proxy's `--nodeport-addresses primary` serves NodePorts on)."""
    status = _mapping(raw.get("status"), "status")
    entries = _sequence(status.get("addresses"), "status.addresses")
    found: dict[tuple[int, str], IPAddress] = {}
    for i, entry in enumerate(entries):
        item = _mapping(entry, f"status.addresses[{i}]")
        kind = item.get("type")
        if kind not in ("InternalIP", "ExternalIP"):
            continue
        try:
            address = ip_address(_string(item.get("address"), f"status.addresses[{i}].address"))
        except ValueError:
            continue  # a malformed address only loses the NodePort selection by address
        found.setdefault((address.version, kind), address)
    return tuple(
        found[(version, kind)]
        for version in (4, 6)
        for kind in ("InternalIP", "ExternalIP")
        if (version, kind) in found
        and not (kind == "ExternalIP" and (version, "InternalIP") in found)
    )
