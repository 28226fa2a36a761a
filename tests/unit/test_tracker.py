"""Change tracking: which Services need work, slices indexed by Service, trigger times."""

from __future__ import annotations

from ipvsd.model.endpoint import EndpointSlice
from ipvsd.model.ipvs import Family
from ipvsd.model.node import Node
from ipvsd.model.service import Service, ServiceRef, ServiceType
from ipvsd.state.tracker import ChangeTracker

A, B = ServiceRef("ns", "a"), ServiceRef("ns", "b")


def slice_(name: str, ref: ServiceRef, trigger: float | None = None) -> EndpointSlice:
    return EndpointSlice("ns", name, ref, Family.INET, (), (), trigger_time=trigger)


def service(ref: ServiceRef) -> Service:
    return Service(ref, "u", ServiceType.CLUSTER_IP, (), ())


def test_first_sync_is_full_then_only_changes_are_taken() -> None:
    tracker = ChangeTracker()
    assert tracker.take().full
    tracker.services.on_add(service(A))
    pending = tracker.take()
    assert not pending.full
    assert pending.services == {A}
    assert not tracker.has_work


def test_slices_are_indexed_by_service_and_follow_a_service_change() -> None:
    tracker = ChangeTracker()
    tracker.take()
    tracker.endpoint_slices.on_add(slice_("s1", A))
    tracker.endpoint_slices.on_update(slice_("s1", A), slice_("s1", B))
    assert dict(tracker.slices_of(A)) == {}
    assert list(tracker.slices_of(B)) == [("ns", "s1")]
    assert tracker.take().services == {A, B}  # both Services' tables change


def test_deleted_slice_leaves_the_index_and_marks_its_service() -> None:
    tracker = ChangeTracker()
    tracker.endpoint_slices.on_add(slice_("s1", A))
    tracker.take()
    tracker.endpoint_slices.on_delete(slice_("s1", A))
    assert dict(tracker.slices_of(A)) == {}
    assert tracker.take().services == {A}


def test_earliest_trigger_time_per_service_is_kept() -> None:
    tracker = ChangeTracker()
    tracker.take()
    tracker.endpoint_slices.on_add(slice_("s1", A, trigger=20.0))
    tracker.endpoint_slices.on_add(slice_("s2", A, trigger=10.0))
    assert tracker.take().trigger_times == {A: 10.0}


def test_node_change_asks_for_a_full_sync() -> None:
    tracker = ChangeTracker()
    tracker.take()
    tracker.node.on_update(Node("n"), Node("n", (("topology.kubernetes.io/zone", "z"),)))
    assert tracker.take().full


def test_other_nodes_matter_only_when_they_come_go_or_relabel() -> None:
    tracker = ChangeTracker()
    tracker.take()
    zone_a = Node("b", (("topology.kubernetes.io/zone", "a"),))
    tracker.nodes.on_update(zone_a, Node("b", zone_a.labels, deleting=False))
    assert not tracker.has_work  # a status-only update
    tracker.nodes.on_update(zone_a, Node("b", (("topology.kubernetes.io/zone", "b"),)))
    assert tracker.take().full
    tracker.nodes.on_add(Node("c"))
    assert tracker.take().full
    tracker.nodes.on_delete(Node("c"))
    assert tracker.take().full


def test_work_given_back_after_a_failed_sync_is_not_lost() -> None:
    tracker = ChangeTracker()
    tracker.take()
    tracker.endpoint_slices.on_add(slice_("s1", A, trigger=5.0))
    pending = tracker.take()
    tracker.services.on_add(service(B))
    tracker.give_back(pending)
    again = tracker.take()
    assert again.services == {A, B}
    assert again.trigger_times == {A: 5.0}


def test_every_change_notifies_and_is_counted() -> None:
    calls: list[None] = []
    tracker = ChangeTracker(notify=lambda: calls.append(None))
    tracker.services.on_add(service(A))
    tracker.endpoint_slices.on_add(slice_("s1", A))
    assert len(calls) == 2
    assert tracker.pending_counts == (1, 1)
