"""EndpointSlices as the proxy needs them: ports by name, endpoints with conditions and hints.

Condition semantics are applied at conversion, as kube-proxy applies them: `ready` and
`serving` are true when the API leaves them unset; `terminating` only when set true. Only an
endpoint's first address is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from ipvsd.model.ipvs import Family, IPAddress, Protocol
from ipvsd.model.service import ServiceRef


@dataclass(frozen=True, slots=True)
class EndpointPort:
    name: str
    protocol: Protocol
    port: int


class Endpoint(NamedTuple):
    """One backend address with its conditions, location and topology hints.

    A NamedTuple rather than a frozen dataclass: a large cluster has 100,000 of them, built
    on every list, and a tuple is built without an `object.__setattr__` per field and hashed
    in C.
    """

    address: IPAddress
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str | None = None
    zone: str | None = None
    zone_hints: tuple[str, ...] = ()
    node_hints: tuple[str, ...] = ()

    @property
    def is_serving_terminating(self) -> bool:
        return self.serving and self.terminating


@dataclass(frozen=True, slots=True)
class EndpointSlice:
    """A discovery.k8s.io/v1 EndpointSlice of address type IPv4 or IPv6 (FQDN is dropped).

    Its endpoints have distinct addresses (the converter keeps the first copy of a duplicate),
    which the planner relies on to skip deduplication when one slice serves a port.

    `trigger_time` is the `endpoints.kubernetes.io/last-change-trigger-time` annotation as a
    UNIX timestamp, for the network-programming latency metric.
    """

    namespace: str
    name: str
    service: ServiceRef
    family: Family
    ports: tuple[EndpointPort, ...]
    endpoints: tuple[Endpoint, ...]
    trigger_time: float | None = None
