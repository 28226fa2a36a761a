"""Planning under fuzzed input: bad objects never change the plan of the good Services.

A fixed set of good Services (every shape: ClusterIP, NodePort with eTP=Local, dual-stack
LoadBalancer with externalIPs and source ranges, SCTP with iTP=Local and topology) is listed
together with fuzzed Services, EndpointSlices and Nodes (`fuzz_objects`), through the daemon's
informers, and planned as a full sync plans (`reconcile.syncer.node_context`,
`plan.desired.desired_service` per Service, `reconcile.claims.Claims.resolve_all`,
`plan.firewall.firewall_for`). Properties:

- nothing raises, and every object that cannot be converted is named in its informer's
  `invalid` (what `ipvsd_invalid_objects` reports);
- the good Services' plans (virtual servers, real servers, bound addresses, warnings) are
  exactly their plans without the fuzzed objects, and their firewall elements are all there;
- no virtual server is planned twice, within a Service or across Services.

The fuzzed objects live in namespace `zz-fuzz`, after the good ones': two Services asking for
the same virtual server are settled by age, then name (`reconcile.claims`; none of these
objects has a creationTimestamp, so the earlier name keeps it), and
many fuzzed objects are copies of good ones, addresses included. A fuzzed Node never takes the
name of a Node a good endpoint runs on (its labels would rightly move that endpoint).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from ipaddress import ip_address
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ipvsd.kube.auth import load_credentials
from ipvsd.kube.client import ApiClient
from ipvsd.kube.convert import (
    ConversionError,
    RawObject,
    Warn,
    endpoint_slice_from_dict,
    node_from_dict,
    object_key,
    service_from_dict,
)
from ipvsd.kube.informer import Converter, Informer
from ipvsd.kube.resources import ENDPOINT_SLICES, NODES, SERVICES, Resource
from ipvsd.kube.watch import ResourceWatch, SnapshotEnded, SnapshotItem, SnapshotStarted
from ipvsd.model.endpoint import EndpointSlice
from ipvsd.model.firewall import Firewall
from ipvsd.model.ipvs import IPAddress
from ipvsd.model.node import Node
from ipvsd.model.service import Service, ServiceRef
from ipvsd.plan.desired import DesiredService, desired_service
from ipvsd.plan.firewall import firewall_for
from ipvsd.reconcile.claims import Claims
from ipvsd.reconcile.syncer import SyncSettings, node_context
from tests.unit import fuzz_objects as fuzz

FUZZ = settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=5, suppress_health_check=[HealthCheck.too_slow])

GOOD, BAD = "app", "zz-fuzz"  # namespaces; every good Service sorts before every fuzzed one
GOOD_NODES = ("node-a", "node-b", "node-c")
SETTINGS = SyncSettings(node_name="node-a")
HOST: list[tuple[IPAddress, str]] = [
    (ip_address("192.168.1.10"), "eth0"),
    (ip_address("fd00:1::10"), "eth0"),
    (ip_address("127.0.0.1"), "lo"),
]
GOOD_SERVICES = fuzz.services(GOOD)
GOOD_SLICES = fuzz.endpoint_slices(GOOD)
OWN_NODE = fuzz.node("node-a", "zone-a")
OTHER_NODES = [fuzz.node("node-b", "zone-b"), fuzz.node("node-c", "zone-c")]


# --- the daemon's pipeline, minus the kernel ------------------------------------------------


def informer(kind: str, resource: Resource, convert: Converter[Any], *, namespaced: bool) -> Any:
    client = ApiClient(credentials=load_credentials(master="http://127.0.0.1:1"))
    return Informer(
        kind=kind,
        namespaced=namespaced,
        watches=[ResourceWatch(client=client, resource=resource)],
        convert=convert,
    )


def _service(raw: RawObject, _warn: Warn) -> Service | None:
    return service_from_dict(raw)


def _slice(raw: RawObject, warn: Warn) -> EndpointSlice | None:
    return endpoint_slice_from_dict(raw, warn=warn)


def _node(raw: RawObject, _warn: Warn) -> Node:
    return node_from_dict(raw)


def listed(subject: Informer[Any], objects: Iterable[Any]) -> Informer[Any]:
    """`subject` after one list of `objects`, as a watch delivers it."""
    subject.handle(0, SnapshotStarted())
    for obj in objects:
        subject.handle(0, SnapshotItem(obj))
    subject.handle(0, SnapshotEnded("1000"))
    return subject


class Cluster:
    """Services, slices and Nodes as the informers store them, and the plan a full sync makes."""

    def __init__(
        self, services: list[Any], slices: list[Any], own_node: Any, nodes: list[Any]
    ) -> None:
        self.services = listed(informer("Service", SERVICES, _service, namespaced=True), services)
        self.slices = listed(
            informer("EndpointSlice", ENDPOINT_SLICES, _slice, namespaced=True), slices
        )
        self.own_node = listed(informer("Node", NODES, _node, namespaced=False), [own_node])
        self.nodes = listed(informer("Node", NODES, _node, namespaced=False), [own_node, *nodes])

    def plan(self) -> tuple[dict[ServiceRef, DesiredService], Firewall]:
        node = node_context(
            HOST, SETTINGS, self.own_node.store.get(SETTINGS.node_name), self.nodes.store
        )
        slices_of: dict[ServiceRef, list[EndpointSlice]] = {}
        for item in self.slices.store.values():
            slices_of.setdefault(item.service, []).append(item)
        services: Mapping[str, Service] = self.services.store
        planned = {
            s.ref: desired_service(s, slices_of.get(s.ref, ()), node) for s in services.values()
        }
        by_ref = {s.ref: s for s in services.values()}
        resolved = Claims(created=lambda ref: by_ref[ref].created).resolve_all(planned)
        firewall = firewall_for(
            ((by_ref[ref], desired) for ref, desired in resolved.items()), SETTINGS.firewall
        )
        return resolved, firewall


GOOD_CLUSTER = Cluster(GOOD_SERVICES, GOOD_SLICES, OWN_NODE, OTHER_NODES)
GOOD_PLAN, GOOD_FIREWALL = GOOD_CLUSTER.plan()


# --- fuzzed objects -------------------------------------------------------------------------


def elsewhere(raw: Any) -> Any:
    """Keep a fuzzed object out of the good ones' way (see the module docstring): a namespace
    that sorts before `zz-fuzz` becomes it, a good Node's name gets a prefix. Everything else a
    mutation did (a missing or wrongly typed namespace or name included) stays."""
    metadata = raw.get("metadata") if isinstance(raw, dict) else None
    if isinstance(metadata, dict):
        namespace = metadata.get("namespace")
        if isinstance(namespace, str) and namespace and namespace < BAD:
            metadata["namespace"] = BAD
        if metadata.get("name") in GOOD_NODES:
            metadata["name"] = f"fuzz-{metadata['name']}"
    return raw


bad_services = st.one_of(
    fuzz.any_mutated(fuzz.services(BAD)),
    fuzz.colliding_service(BAD, "web"),
    fuzz.colliding_service(BAD, "twin"),
    fuzz.json_values,
).map(elsewhere)
bad_slices = st.one_of(
    fuzz.any_mutated(fuzz.endpoint_slices(BAD)),
    fuzz.colliding_slice(BAD, "web"),
    fuzz.colliding_slice(BAD, "twin"),
    fuzz.json_values,
).map(elsewhere)
bad_nodes = st.one_of(fuzz.mutated(fuzz.node("node-x", "zone-a")), fuzz.json_values).map(elsewhere)


def rejected(convert: Any, raw: Any, *, namespaced: bool) -> str | None:
    """The store key of an object its converter rejects (None: it converts, or has no key)."""
    try:
        key = object_key(raw, namespaced=namespaced)
    except ConversionError:
        return None
    try:
        convert(raw, lambda _note: None)
    except ConversionError:
        return key
    return None


def last_rejected(convert: Any, objects: list[Any], *, namespaced: bool) -> set[str]:
    """The keys whose last object in a list is rejected (a later valid one replaces it)."""
    verdicts: dict[str, bool] = {}
    for raw in objects:
        try:
            key = object_key(raw, namespaced=namespaced)
        except ConversionError:
            continue
        verdicts[key] = rejected(convert, raw, namespaced=namespaced) is not None
    return {key for key, bad in verdicts.items() if bad}


def check_good_plans_unchanged(cluster: Cluster) -> None:
    plan, firewall = cluster.plan()
    for ref, desired in GOOD_PLAN.items():
        assert plan[ref] == desired, ref
    for name in Firewall.__dataclass_fields__:
        if name != "config":
            assert getattr(GOOD_FIREWALL, name) <= getattr(firewall, name), name
    keys = [d.server.key for desired in plan.values() for d in desired.virtual_servers]
    assert len(keys) == len(set(keys)), "a virtual server planned twice"


# --- properties -----------------------------------------------------------------------------

REPEATED_CLUSTER_IP = fuzz.services(BAD)[0]
REPEATED_CLUSTER_IP["spec"]["clusterIPs"] = ["10.96.0.77", "10.96.0.77"]  # planned twice once


def test_the_good_cluster_plans_every_kind_of_virtual_server() -> None:
    """The baseline the properties compare with is not trivially empty."""
    kinds = {d.kind.value for desired in GOOD_PLAN.values() for d in desired.virtual_servers}
    assert kinds == {"ClusterIP", "ExternalIP", "LoadBalancer", "NodePort"}
    assert all(desired.virtual_servers for desired in GOOD_PLAN.values())
    assert GOOD_FIREWALL.hairpin
    assert GOOD_FIREWALL.lb_allowed


@FUZZ
@given(
    st.lists(bad_services, max_size=6),
    st.lists(bad_slices, max_size=6),
    st.lists(bad_nodes, max_size=3),
)
@example(services=[REPEATED_CLUSTER_IP], slices=[], nodes=[])
def test_bad_objects_are_skipped_named_and_leave_the_good_plans_alone(
    services: list[Any], slices: list[Any], nodes: list[Any]
) -> None:
    cluster = Cluster(
        [*GOOD_SERVICES, *services], [*GOOD_SLICES, *slices], OWN_NODE, [*OTHER_NODES, *nodes]
    )
    assert last_rejected(_service, services, namespaced=True) == set(cluster.services.invalid)
    assert last_rejected(_slice, slices, namespaced=True) == set(cluster.slices.invalid)
    assert last_rejected(_node, nodes, namespaced=False) == set(cluster.nodes.invalid)
    check_good_plans_unchanged(cluster)


@FEW
@given(st.lists(fuzz.big_slice(BAD, "web"), min_size=1, max_size=2))
def test_thousand_endpoint_slices_plan_or_are_skipped_without_touching_the_good_ones(
    slices: list[Any],
) -> None:
    bad = fuzz.services(BAD)
    cluster = Cluster([*GOOD_SERVICES, *bad], [*GOOD_SLICES, *slices], OWN_NODE, OTHER_NODES)
    check_good_plans_unchanged(cluster)
    web = cluster.plan()[0][ServiceRef(BAD, "web")]
    planned = {real.address for d in web.virtual_servers for real in d.real_servers}
    accepted = [
        endpoint_slice_from_dict(raw)
        for raw in slices
        if rejected(_slice, raw, namespaced=True) is None
    ]
    assert planned <= {e.address for item in accepted if item for e in item.endpoints}


@FUZZ
@given(
    st.lists(
        fuzz.any_mutated(
            [{**s, "metadata": {**s["metadata"], "name": "fuzzed"}} for s in GOOD_SLICES]
        ),
        min_size=1,
        max_size=3,
    )
)
@example([{**GOOD_SLICES[0], "metadata": {**GOOD_SLICES[0]["metadata"], "name": "x"},
           "endpoints": [{"addresses": ["10.1.1.1"], "conditions": "ready"}]}])  # fmt: skip
def test_a_rejected_slice_of_a_good_service_leaves_no_trace_in_its_plan(
    slices: list[Any],
) -> None:
    """Slices that name a good Service change its plan only if they convert, and then exactly
    as their converted value says: a rejected one leaves nothing of itself behind."""
    accepted = [raw for raw in slices if rejected(_slice, raw, namespaced=True) is None]
    mixed = Cluster(GOOD_SERVICES, [*GOOD_SLICES, *slices], OWN_NODE, OTHER_NODES)
    clean = Cluster(GOOD_SERVICES, [*GOOD_SLICES, *accepted], OWN_NODE, OTHER_NODES)
    assert mixed.plan() == clean.plan()


@FUZZ
@given(fuzz.mutated(OWN_NODE))
def test_any_own_node_plans_or_is_skipped(raw: Any) -> None:
    """The own Node moves plans when it converts (its zone, its addresses): that is its job.
    Whatever it is, planning raises nothing and keeps every virtual server unique."""
    cluster = Cluster(GOOD_SERVICES, GOOD_SLICES, raw, OTHER_NODES)
    plan, _firewall = cluster.plan()
    keys = [d.server.key for desired in plan.values() for d in desired.virtual_servers]
    assert len(keys) == len(set(keys))
    if rejected(_node, raw, namespaced=False) is not None:
        assert plan == GOOD_PLAN or cluster.own_node.store == {}


def test_the_good_objects_are_all_valid() -> None:
    assert not GOOD_CLUSTER.services.invalid
    assert not GOOD_CLUSTER.slices.invalid
    assert not GOOD_CLUSTER.nodes.invalid
    assert len(GOOD_CLUSTER.slices.store) == len(GOOD_SLICES)


def test_an_address_both_external_and_load_balancer_keeps_its_source_ranges() -> None:
    """Found by the fuzzer's kin: one key asked for twice used to be planned twice. The first
    asked for keeps it, and load-balancer IPs are asked for before externalIPs, so an address
    in both stays restricted to loadBalancerSourceRanges."""
    raw = fuzz.services(GOOD)[2]  # shop: LoadBalancer 203.0.113.10, source ranges
    raw["spec"]["externalIPs"] = ["203.0.113.10", "203.0.113.10"]
    service = service_from_dict(raw)
    assert service is not None
    node = node_context(HOST, SETTINGS, node_from_dict(OWN_NODE), {})
    desired = desired_service(service, (), node)
    lb = [d for d in desired.virtual_servers if str(d.server.key.address) == "203.0.113.10"]
    assert [d.kind.value for d in lb] == ["LoadBalancer"]
    assert desired.duplicates == (
        "TCP 203.0.113.10:443: asked for again by port 'https' (ExternalIP); "
        "port 'https' (LoadBalancer) keeps it",
    )
    firewall = firewall_for([(service, desired)], SETTINGS.firewall)
    assert (lb[0].server.key.address, 6, 443) in firewall.lb_restricted
