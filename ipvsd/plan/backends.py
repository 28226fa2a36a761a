"""The backends of one service port: endpoints joined with the port number their slice gives.

A Service port is served by the EndpointSlice port of the same name and protocol, as in
kube-proxy; the number may differ between slices (pods of a rollout can expose a named port
on different numbers), so a backend is an endpoint *and* a port. When two slices list the same
address and port (an endpoint moving between slices), the copy that is not terminating wins.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from ipvsd.model.endpoint import Endpoint, EndpointSlice
from ipvsd.model.ipvs import Family, IPAddress
from ipvsd.model.service import ServicePort


class Backend(NamedTuple):
    """An endpoint serving one service port on `port` (satisfies `topology.Conditioned`).

    One per endpoint and port on every plan: a NamedTuple is cheaper to build than a frozen
    dataclass (see `model.endpoint.Endpoint`).
    """

    endpoint: Endpoint
    port: int

    @property
    def address(self) -> IPAddress:
        return self.endpoint.address

    @property
    def ready(self) -> bool:
        return self.endpoint.ready

    @property
    def node_name(self) -> str | None:
        return self.endpoint.node_name

    @property
    def zone_hints(self) -> tuple[str, ...]:
        return self.endpoint.zone_hints

    @property
    def node_hints(self) -> tuple[str, ...]:
        return self.endpoint.node_hints

    @property
    def is_serving_terminating(self) -> bool:
        return self.endpoint.is_serving_terminating

    def sort_key(self) -> tuple[int, int, int]:
        return (self.address.version, int(self.address), self.port)


def backends_for_port(
    slices: Iterable[EndpointSlice], port: ServicePort, family: Family
) -> tuple[Backend, ...]:
    """Every backend of `port` among `slices` of `family`, deduplicated, sorted by address."""
    serving = [
        (slice_, number)
        for slice_ in slices
        if slice_.family == family and (number := _port_number(slice_, port)) is not None
    ]
    if len(serving) == 1:  # the usual case: a slice's addresses are distinct already
        slice_, number = serving[0]
        single = [Backend(endpoint, number) for endpoint in slice_.endpoints]
        single.sort(key=_address_order)
        return tuple(single)
    chosen: dict[tuple[IPAddress, int], Backend] = {}
    for slice_, number in serving:
        for endpoint in slice_.endpoints:
            key = (endpoint.address, number)
            previous = chosen.get(key)
            if previous is None or (previous.endpoint.terminating and not endpoint.terminating):
                chosen[key] = Backend(endpoint, number)
    return tuple(sorted(chosen.values(), key=Backend.sort_key))


def _port_number(slice_: EndpointSlice, port: ServicePort) -> int | None:
    """The number `slice_` gives the service port (same name and protocol), if any."""
    for candidate in slice_.ports:
        if candidate.name == port.name and candidate.protocol == port.protocol:
            return candidate.port
    return None


def _address_order(backend: Backend) -> int:
    return int(backend.endpoint.address)
