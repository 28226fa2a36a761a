"""Backends of a service port: matched by port name and protocol, deduplicated as kube-proxy."""

from __future__ import annotations

from ipvsd.model.endpoint import Endpoint, EndpointPort, EndpointSlice
from ipvsd.model.ipvs import Family, Protocol, parse_address
from ipvsd.model.service import ServicePort, ServiceRef
from ipvsd.plan.backends import Backend, backends_for_port

SVC = ServiceRef("default", "echo")
HTTP = ServicePort("http", Protocol.TCP, 80)


def endpoint(address: str, *, terminating: bool = False) -> Endpoint:
    return Endpoint(parse_address(address), ready=not terminating, terminating=terminating)


def slice_(
    name: str, endpoints: list[Endpoint], *ports: EndpointPort, family: Family = Family.INET
) -> EndpointSlice:
    return EndpointSlice("default", name, SVC, family, ports, tuple(endpoints))


def pairs(backends: tuple[Backend, ...]) -> list[tuple[str, int]]:
    return [(str(b.address), b.port) for b in backends]


def test_port_is_matched_by_name_and_protocol_not_number() -> None:
    slices = [
        slice_("a", [endpoint("10.0.0.1")], EndpointPort("http", Protocol.TCP, 8080)),
        slice_("b", [endpoint("10.0.0.2")], EndpointPort("http", Protocol.UDP, 8080)),
        slice_("c", [endpoint("10.0.0.3")], EndpointPort("metrics", Protocol.TCP, 80)),
    ]
    assert pairs(backends_for_port(slices, HTTP, Family.INET)) == [("10.0.0.1", 8080)]


def test_each_slice_gives_its_own_port_number_for_the_same_name() -> None:
    slices = [
        slice_("old", [endpoint("10.0.0.1")], EndpointPort("http", Protocol.TCP, 8080)),
        slice_("new", [endpoint("10.0.0.2")], EndpointPort("http", Protocol.TCP, 9090)),
    ]
    got = pairs(backends_for_port(slices, HTTP, Family.INET))
    assert got == [("10.0.0.1", 8080), ("10.0.0.2", 9090)]


def test_duplicate_address_and_port_keeps_the_copy_that_is_not_terminating() -> None:
    port = EndpointPort("http", Protocol.TCP, 8080)
    slices = [
        slice_("a", [endpoint("10.0.0.1", terminating=True)], port),
        slice_("b", [endpoint("10.0.0.1")], port),
    ]
    (backend,) = backends_for_port(slices, HTTP, Family.INET)
    assert not backend.endpoint.terminating


def test_slices_of_the_other_family_are_ignored_and_result_is_sorted_numerically() -> None:
    port = EndpointPort("http", Protocol.TCP, 8080)
    slices = [
        slice_("v4", [endpoint("10.0.0.10"), endpoint("10.0.0.9")], port),
        slice_("v6", [endpoint("fd00::1")], port, family=Family.INET6),
    ]
    assert pairs(backends_for_port(slices, HTTP, Family.INET)) == [
        ("10.0.0.9", 8080),
        ("10.0.0.10", 8080),
    ]
    assert pairs(backends_for_port(slices, HTTP, Family.INET6)) == [("fd00::1", 8080)]
