"""JSON types of the fields the emulator interprets, checked as the API server's decoder would.

The real server decodes a body into Go structs before anything else looks at it: a number
where a string belongs is a 400 BadRequest (`json: cannot unmarshal number into Go struct
field ServiceSpec.spec.externalIPs of type string`), and `null` leaves a field unset. Doing
the same here keeps every later rule free of type checks, and keeps a malformed body from
ever reaching them. Fields the emulator does not interpret are not described and pass as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ipvsd.testing.apiserver.errors import bad_request
from ipvsd.testing.apiserver.resources import (
    ENDPOINT_SLICES,
    EVENTS,
    NAMESPACES,
    NODES,
    PODS,
    SERVICES,
    ResourceType,
)


@dataclass(frozen=True, slots=True)
class Shape:
    """A field's JSON type: scalar (`go` names it in errors), list, map or struct."""

    go: str
    kind: str  # "string", "integer", "boolean", "int-or-string", "any", "list", "map", "struct"
    item: Shape | None = None
    fields: tuple[tuple[str, Shape], ...] = ()


STRING = Shape("string", "string")
INTEGER = Shape("int32", "integer")
BOOLEAN = Shape("bool", "boolean")
INT_OR_STRING = Shape("intstr.IntOrString", "int-or-string")
ANY = Shape("interface {}", "any")


def list_of(item: Shape) -> Shape:
    return Shape(f"[]{item.go}", "list", item)


def map_of(item: Shape) -> Shape:
    return Shape(f"map[string]{item.go}", "map", item)


def struct(go: str, **fields: Shape) -> Shape:
    return Shape(go, "struct", fields=tuple(fields.items()))


STRINGS = list_of(STRING)
LABELS = map_of(STRING)
METADATA = struct(
    "ObjectMeta",
    name=STRING,
    generateName=STRING,
    namespace=STRING,
    uid=STRING,
    resourceVersion=STRING,
    labels=LABELS,
    annotations=LABELS,
    finalizers=STRINGS,
    ownerReferences=list_of(map_of(ANY)),
)
SERVICE_PORT = struct(
    "ServicePort",
    name=STRING,
    protocol=STRING,
    appProtocol=STRING,
    port=INTEGER,
    targetPort=INT_OR_STRING,
    nodePort=INTEGER,
)
SERVICE = struct(
    "Service",
    metadata=METADATA,
    spec=struct(
        "ServiceSpec",
        type=STRING,
        ports=list_of(SERVICE_PORT),
        selector=LABELS,
        clusterIP=STRING,
        clusterIPs=STRINGS,
        ipFamilies=STRINGS,
        ipFamilyPolicy=STRING,
        externalName=STRING,
        externalIPs=STRINGS,
        externalTrafficPolicy=STRING,
        internalTrafficPolicy=STRING,
        healthCheckNodePort=INTEGER,
        sessionAffinity=STRING,
        sessionAffinityConfig=struct(
            "SessionAffinityConfig",
            clientIP=struct("ClientIPConfig", timeoutSeconds=INTEGER),
        ),
        loadBalancerIP=STRING,
        loadBalancerClass=STRING,
        loadBalancerSourceRanges=STRINGS,
        allocateLoadBalancerNodePorts=BOOLEAN,
        publishNotReadyAddresses=BOOLEAN,
        trafficDistribution=STRING,
    ),
    status=struct(
        "ServiceStatus",
        loadBalancer=struct(
            "LoadBalancerStatus",
            ingress=list_of(
                struct("LoadBalancerIngress", ip=STRING, hostname=STRING, ipMode=STRING)
            ),
        ),
    ),
)
FOR_NAME = list_of(struct("ForZone", name=STRING))
ENDPOINT_SLICE = struct(
    "EndpointSlice",
    metadata=METADATA,
    addressType=STRING,
    endpoints=list_of(
        struct(
            "Endpoint",
            addresses=STRINGS,
            conditions=struct(
                "EndpointConditions", ready=BOOLEAN, serving=BOOLEAN, terminating=BOOLEAN
            ),
            hostname=STRING,
            nodeName=STRING,
            zone=STRING,
            hints=struct("EndpointHints", forZones=FOR_NAME, forNodes=FOR_NAME),
            targetRef=map_of(ANY),
        )
    ),
    ports=list_of(
        struct("EndpointPort", name=STRING, protocol=STRING, port=INTEGER, appProtocol=STRING)
    ),
)
NODE = struct(
    "Node",
    metadata=METADATA,
    spec=struct("NodeSpec", unschedulable=BOOLEAN, podCIDR=STRING, podCIDRs=STRINGS),
    status=struct(
        "NodeStatus",
        allocatable=map_of(ANY),
        capacity=map_of(ANY),
        conditions=list_of(struct("NodeCondition", type=STRING, status=STRING)),
        addresses=list_of(struct("NodeAddress", type=STRING, address=STRING)),
    ),
)
POD = struct(
    "Pod",
    metadata=METADATA,
    spec=struct("PodSpec", nodeName=STRING, hostNetwork=BOOLEAN),
    status=struct("PodStatus", phase=STRING, podIP=STRING),
)
EVENT = struct(
    "Event",
    metadata=METADATA,
    involvedObject=map_of(ANY),
    reason=STRING,
    message=STRING,
    type=STRING,
)
NAMESPACE = struct("Namespace", metadata=METADATA)
SHAPES: dict[ResourceType, Shape] = {
    SERVICES: SERVICE,
    ENDPOINT_SLICES: ENDPOINT_SLICE,
    NODES: NODE,
    PODS: POD,
    EVENTS: EVENT,
    NAMESPACES: NAMESPACE,
}
_JSON_NAMES = {
    bool: "bool",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def _matches(shape: Shape, value: Any) -> bool:
    match shape.kind:
        case "string":
            return isinstance(value, str)
        case "integer":
            return isinstance(value, int) and not isinstance(value, bool)
        case "boolean":
            return isinstance(value, bool)
        case "int-or-string":
            return isinstance(value, str) or (
                isinstance(value, int) and not isinstance(value, bool)
            )
        case "list":
            return isinstance(value, list)
        case "map" | "struct":
            return isinstance(value, dict)
    return True


class _Mismatch(Exception):
    """A value of the wrong JSON type (the message is the Go decoder's)."""


def _decoded(shape: Shape, value: Any, owner: str, path: str) -> Any:
    if not _matches(shape, value):
        found = _JSON_NAMES.get(type(value), "value")
        raise _Mismatch(
            f"json: cannot unmarshal {found} into Go struct field {owner}.{path} of type {shape.go}"
        )
    if shape.kind in ("list", "map"):
        assert shape.item is not None
        if shape.kind == "list":
            return [_decoded(shape.item, v, owner, path) for v in value if v is not None]
        return {
            k: _decoded(shape.item, v, owner, f"{path}.{k}")
            for k, v in value.items()
            if v is not None
        }
    if shape.kind == "struct":
        known = dict(shape.fields)
        result = {}
        for key, item in value.items():
            if item is None:
                continue  # null leaves a Go field at its zero value: unset
            inner = known.get(key)
            child = f"{path}.{key}".lstrip(".")
            result[key] = item if inner is None else _decoded(inner, item, shape.go, child)
        return result
    return value


def decode(resource: ResourceType, document: dict[str, Any]) -> dict[str, Any]:
    """`document` as the API server's decoder leaves it; 400 BadRequest on a type mismatch."""
    try:
        decoded: dict[str, Any] = _decoded(SHAPES[resource], document, resource.kind, "")
    except _Mismatch as mismatch:
        raise bad_request(
            f'{resource.kind} in version "{resource.version}" cannot be handled as a'
            f" {resource.kind}: {mismatch}"
        ) from None
    return decoded
