"""Conversion under fuzzed input: any JSON in, a model value, None or a ConversionError out.

Mutated real documents and structured nonsense (see `fuzz_objects`) go through the daemon's
converters and through an informer as a watch would deliver them. Nothing else may come out:
an unexpected exception would be logged and the object dropped at best, and in the watch
layer it would end the watch. Values that do come out keep the model's promises (ports in
range, addresses parsed, one endpoint per address, at most 1,000 endpoints), since the planner
relies on them without checking again.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ipvsd.kube.auth import load_credentials
from ipvsd.kube.client import ApiClient
from ipvsd.kube.convert import (
    MAX_ENDPOINTS_PER_SLICE,
    ConversionError,
    endpoint_slice_from_dict,
    node_from_dict,
    object_key,
    service_from_dict,
)
from ipvsd.kube.informer import Informer
from ipvsd.kube.resources import SERVICES as SERVICES_RESOURCE
from ipvsd.kube.watch import (
    Change,
    ResourceWatch,
    SnapshotEnded,
    SnapshotItem,
    SnapshotStarted,
    WatchEvent,
)
from ipvsd.model.endpoint import EndpointSlice
from ipvsd.model.ipvs import Family, Protocol
from ipvsd.model.node import Node
from ipvsd.model.service import Service
from tests.unit import fuzz_objects as fuzz

FUZZ = settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
BIG = settings(max_examples=6, suppress_health_check=[HealthCheck.too_slow])

SERVICES = fuzz.services("app")
SLICES = fuzz.endpoint_slices("app")


def convert_or_reject(convert: Any, raw: Any) -> Any:
    """The converter's answer; a ConversionError counts as an answer (the object is skipped)."""
    try:
        return convert(raw)
    except ConversionError as error:
        if not (error.path and error.reason):
            raise AssertionError(f"a rejection without a field or a reason: {error!r}") from error
        return error


def check_service(value: Service) -> None:
    assert value.ref.namespace
    assert value.ref.name
    assert value.cluster_ips
    for address in (*value.cluster_ips, *value.external_ips, *value.load_balancer_ips):
        assert isinstance(address, IPv4Address | IPv6Address)
    for port in value.ports:
        assert isinstance(port.protocol, Protocol)
        assert 1 <= port.port <= 65535
        assert 0 <= port.node_port <= 65535
        assert isinstance(port.name, str)
    assert 0 < value.affinity_timeout <= 86400
    assert 0 <= value.health_check_node_port <= 65535
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in value.annotations)


def check_slice(value: EndpointSlice) -> None:
    assert value.namespace
    assert value.name
    assert value.service.name
    assert len(value.endpoints) <= MAX_ENDPOINTS_PER_SLICE
    addresses = [endpoint.address for endpoint in value.endpoints]
    assert len(set(addresses)) == len(addresses)
    for address in addresses:
        assert Family.of(address) is value.family
    for endpoint in value.endpoints:
        assert all(isinstance(x, bool) for x in endpoint[1:4])
        assert endpoint.node_name is None or isinstance(endpoint.node_name, str)
        assert endpoint.zone is None or isinstance(endpoint.zone, str)
        assert all(isinstance(h, str) and h for h in endpoint.zone_hints + endpoint.node_hints)
    for port in value.ports:
        assert 1 <= port.port <= 65535
        assert isinstance(port.protocol, Protocol)


def check_node(value: Node) -> None:
    assert value.name
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in value.labels)
    assert isinstance(value.deleting, bool)


def check(kind: str, value: Any) -> None:
    if value is None or isinstance(value, ConversionError):
        return
    {"Service": check_service, "EndpointSlice": check_slice, "Node": check_node}[kind](value)


@FUZZ
@given(fuzz.any_mutated(SERVICES))
@example({"metadata": {"namespace": "a", "name": "b"}, "spec": {"clusterIP": ["10.0.0.1"]}})
@example({"metadata": {"namespace": "a", "name": "b"}, "spec": {"clusterIPs": [{}]}})
def test_a_mutated_service_converts_or_is_rejected_by_name(raw: Any) -> None:
    check("Service", convert_or_reject(service_from_dict, raw))


@FUZZ
@given(st.one_of(fuzz.colliding_service("zz", "twin"), fuzz.json_values))
def test_structured_nonsense_services_convert_or_are_rejected(raw: Any) -> None:
    check("Service", convert_or_reject(service_from_dict, raw))


@FUZZ
@given(fuzz.any_mutated(SLICES))
def test_a_mutated_slice_converts_or_is_rejected_by_name(raw: Any) -> None:
    notes: list[str] = []
    result = convert_or_reject(lambda r: endpoint_slice_from_dict(r, warn=notes.append), raw)
    check("EndpointSlice", result)


@FUZZ
@given(st.one_of(fuzz.colliding_slice("zz", "twin"), fuzz.json_values))
def test_structured_nonsense_slices_convert_or_are_rejected(raw: Any) -> None:
    check("EndpointSlice", convert_or_reject(endpoint_slice_from_dict, raw))


@BIG
@given(fuzz.big_slice("zz", "big"))
def test_a_slice_of_a_thousand_endpoints_converts_or_is_rejected(raw: Any) -> None:
    result = convert_or_reject(endpoint_slice_from_dict, raw)
    check("EndpointSlice", result)
    if len(raw["endpoints"]) > MAX_ENDPOINTS_PER_SLICE:
        assert isinstance(result, ConversionError)
        assert result.path == "endpoints"


@FUZZ
@given(st.one_of(fuzz.mutated(fuzz.node()), fuzz.json_values))
def test_a_mutated_node_converts_or_is_rejected_by_name(raw: Any) -> None:
    check("Node", convert_or_reject(node_from_dict, raw))


@FUZZ
@given(st.one_of(fuzz.any_mutated([*SERVICES, *SLICES, fuzz.node()]), fuzz.json_values))
def test_every_object_has_a_key_or_a_named_reason(raw: Any) -> None:
    for key in (
        convert_or_reject(lambda r: object_key(r, namespaced=True), raw),
        convert_or_reject(lambda r: object_key(r, namespaced=False), raw),
    ):
        assert isinstance(key, ConversionError | str)


# --- through an informer, as watches deliver them -------------------------------------------


def _is_object(value: Any) -> bool:
    return isinstance(value, dict)


OBJECTS = st.one_of(
    fuzz.any_mutated(SERVICES), st.sampled_from(SERVICES), fuzz.json_values.filter(_is_object)
)


def service_informer() -> Informer[Service]:
    client = ApiClient(credentials=load_credentials(master="http://127.0.0.1:1"))
    return Informer(
        kind="Service",
        namespaced=True,
        watches=[ResourceWatch(client=client, resource=SERVICES_RESOURCE)],
        convert=lambda raw, _warn: service_from_dict(raw),
    )


def as_event(step: tuple[str, Any]) -> WatchEvent:
    kind, obj = step
    if kind == "list":
        return SnapshotStarted()
    if kind == "item":
        return SnapshotItem(obj)
    if kind == "ended":
        return SnapshotEnded(obj if isinstance(obj, str) else "7")
    return Change(kind, obj, 0.0)  # type: ignore[arg-type]


STEPS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["ADDED", "MODIFIED", "DELETED", "item"]), OBJECTS),
        st.tuples(st.just("list"), st.none()),
        st.tuples(st.just("ended"), st.sampled_from(["12", "", "²", "x", "٣"])),
    ),
    max_size=10,
)


@FUZZ
@given(STEPS)
@example([("ADDED", {"metadata": {"namespace": "a", "name": "b", "resourceVersion": "²"}})])
@example([("list", None), ("ended", "²")])
def test_an_informer_stores_only_converted_values_and_names_every_invalid_object(
    steps: list[tuple[str, Any]],
) -> None:
    subject = service_informer()
    for step in steps:
        subject.handle(0, as_event(step))  # raises nothing
        kind, obj = step
        if kind not in ("ADDED", "MODIFIED"):
            continue
        key = convert_or_reject(lambda r: object_key(r, namespaced=True), obj)
        if isinstance(key, ConversionError):
            continue
        result = convert_or_reject(service_from_dict, obj)
        if isinstance(result, ConversionError):
            assert key in subject.invalid
        else:
            assert key not in subject.invalid
            assert subject.store.get(key) == result
    for value in subject.store.values():
        check_service(value)
