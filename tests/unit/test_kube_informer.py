"""The informer's store rules, driven event by event (no network): merging two watches,
re-lists as diffs, handlers only for real changes, bad objects skipped with one log line."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from ipvsd.kube.auth import load_credentials
from ipvsd.kube.client import ApiClient
from ipvsd.kube.convert import RawObject, Warn, endpoint_slice_from_dict, service_from_dict
from ipvsd.kube.informer import Informer
from ipvsd.kube.proxy_informers import ProxyInformers
from ipvsd.kube.resources import SERVICES, proxy_selections
from ipvsd.kube.watch import (
    Change,
    ChangeType,
    ResourceWatch,
    SnapshotEnded,
    SnapshotItem,
    SnapshotStarted,
)
from ipvsd.model.endpoint import EndpointSlice
from ipvsd.model.service import Service

PLAIN, OURS = 0, 1  # the two watches: kube-proxy's selection, and service-proxy-name=ipvsd


class Recorder:
    """A handler that writes down what it hears, as short words."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_add(self, new: Service) -> None:
        self.calls.append(f"add {new.ref} {new.ports[0].port}")

    def on_update(self, old: Service, new: Service) -> None:
        self.calls.append(f"update {new.ref} {old.ports[0].port}->{new.ports[0].port}")

    def on_delete(self, old: Service) -> None:
        self.calls.append(f"delete {old.ref}")


def convert_service(raw: RawObject, _warn: Warn) -> Service | None:
    return service_from_dict(raw)


def informer(watches: int = 2, **options: Any) -> tuple[Informer[Service], Recorder]:
    client = ApiClient(credentials=load_credentials(master="http://127.0.0.1:1"))
    selections = proxy_selections("ipvsd")
    subject: Informer[Service] = Informer(
        kind="Service",
        namespaced=True,
        watches=[
            ResourceWatch(client=client, resource=SERVICES, selection=selections[i])
            for i in range(watches)
        ],
        convert=convert_service,
        **options,
    )
    recorder = Recorder()
    subject.add_handler(recorder)
    return subject, recorder


def svc(name: str, rv: int, port: int = 80, **spec: Any) -> RawObject:
    return {
        "metadata": {"namespace": "default", "name": name, "resourceVersion": str(rv)},
        "spec": {"clusterIP": "10.96.0.1", "ports": [{"port": port}], **spec},
    }


def change(kind: ChangeType, obj: RawObject) -> Change:
    return Change(kind, obj, 0.0)


def listed(subject: Informer[Any], index: int, rv: int, *objects: RawObject) -> None:
    subject.handle(index, SnapshotStarted())
    for obj in objects:
        subject.handle(index, SnapshotItem(obj))
    subject.handle(index, SnapshotEnded(str(rv)))


def ports(subject: Informer[Service]) -> dict[str, int]:
    return {key: value.ports[0].port for key, value in subject.store.items()}


# --- sync ---------------------------------------------------------------------------------


def node_object(name: str) -> RawObject:
    return {"metadata": {"name": name, "resourceVersion": "3"}}


def test_each_watch_says_once_what_it_listed_named_by_its_selection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The own-Node and all-Nodes informers both list Nodes: each line names its watch, so
    "1 object" and "3 objects" do not read as one informer contradicting itself."""
    caplog.set_level(logging.INFO, logger="ipvsd.kube.informer")
    client = ApiClient(credentials=load_credentials(master="http://127.0.0.1:1"))
    informers = ProxyInformers(client=client, node_name="node-a", watch_all_nodes=True)
    assert informers.nodes is not None
    listed(informers.own_node, 0, 3, node_object("node-a"))
    listed(informers.nodes, 0, 3, *(node_object(f"node-{n}") for n in "abc"))
    listed(informers.nodes, 0, 4, *(node_object(f"node-{n}") for n in "abc"))  # a re-list
    assert caplog.messages == [
        "Node watch (fields metadata.name=node-a) listed: 1 objects",
        "Node watch (everything) listed: 3 objects",
    ]


def test_synced_only_after_every_watch_has_listed() -> None:
    subject, recorder = informer()

    listed(subject, PLAIN, 10, svc("a", 5))
    assert not subject.synced.is_set()
    assert recorder.calls == ["add default/a 80"]  # handlers hear it; `synced` gates acting

    listed(subject, OURS, 10)
    assert subject.synced.is_set()


def test_an_unfinished_snapshot_changes_nothing() -> None:
    subject, recorder = informer(watches=1)
    listed(subject, PLAIN, 10, svc("a", 5))

    subject.handle(PLAIN, SnapshotStarted())
    subject.handle(PLAIN, SnapshotItem(svc("b", 12)))  # the re-list breaks off here

    assert ports(subject) == {"default/a": 80}
    assert recorder.calls == ["add default/a 80"]


# --- changes ------------------------------------------------------------------------------


def test_handlers_hear_adds_updates_and_deletes() -> None:
    subject, recorder = informer(watches=1)
    listed(subject, PLAIN, 10)

    subject.handle(PLAIN, change("ADDED", svc("a", 11)))
    subject.handle(PLAIN, change("MODIFIED", svc("a", 12, port=81)))
    subject.handle(PLAIN, change("DELETED", svc("a", 13, port=81)))

    assert recorder.calls == ["add default/a 80", "update default/a 80->81", "delete default/a"]
    assert ports(subject) == {}


def test_changes_that_do_not_matter_to_the_proxy_call_no_handler() -> None:
    subject, recorder = informer(watches=1)
    listed(subject, PLAIN, 10, svc("a", 5))
    noisy = svc("a", 12, selector={"app": "v2"})
    noisy["metadata"]["annotations"] = {"example.com/owner": "team-b"}
    noisy["metadata"]["labels"] = {"tier": "web"}

    subject.handle(PLAIN, change("MODIFIED", svc("a", 11)))  # only the resourceVersion
    subject.handle(PLAIN, change("MODIFIED", noisy))

    assert recorder.calls == ["add default/a 80"]


def test_a_service_turning_external_name_is_deleted() -> None:
    subject, recorder = informer(watches=1)
    listed(subject, PLAIN, 10, svc("a", 5))

    external = svc("a", 11, type="ExternalName", externalName="example.com", clusterIP="")
    subject.handle(PLAIN, change("MODIFIED", external))

    assert recorder.calls[-1] == "delete default/a"


def test_latency_is_observed_from_the_bytes_to_the_handlers_return() -> None:
    seen: list[float] = []
    subject, _ = informer(watches=1, observe_latency=seen.append, clock=lambda: 100.25)
    listed(subject, PLAIN, 10)

    subject.handle(PLAIN, Change("ADDED", svc("a", 11), 100.0))

    assert seen == [0.25]


def test_a_failing_handler_does_not_starve_the_others(caplog: pytest.LogCaptureFixture) -> None:
    subject, recorder = informer(watches=1)

    class Broken(Recorder):
        def on_add(self, new: Service) -> None:
            raise RuntimeError("boom")

    subject._handlers.insert(0, Broken())
    listed(subject, PLAIN, 10, svc("a", 5))

    assert recorder.calls == ["add default/a 80"]
    assert "Service handler" in caplog.text
    assert "boom" in caplog.text


# --- re-lists -------------------------------------------------------------------------------


def test_a_relist_emits_only_the_difference() -> None:
    subject, recorder = informer(watches=1)
    listed(subject, PLAIN, 10, svc("same", 3), svc("changed", 4), svc("gone", 5))
    recorder.calls.clear()

    listed(subject, PLAIN, 90, svc("same", 3), svc("changed", 60, port=8080), svc("new", 70))

    assert sorted(recorder.calls) == [
        "add default/new 80",
        "delete default/gone",
        "update default/changed 80->8080",
    ]
    assert ports(subject) == {"default/same": 80, "default/changed": 8080, "default/new": 80}


# --- two watches merged -----------------------------------------------------------------------


def test_label_move_added_before_deleted_changes_nothing() -> None:
    subject, recorder = informer()
    listed(subject, PLAIN, 10, svc("a", 5))
    listed(subject, OURS, 10)
    recorder.calls.clear()

    subject.handle(OURS, change("ADDED", svc("a", 20)))
    subject.handle(PLAIN, change("DELETED", svc("a", 20)))

    assert recorder.calls == []
    assert ports(subject) == {"default/a": 80}


def test_label_move_deleted_before_added_changes_nothing_either() -> None:
    subject, recorder = informer()
    listed(subject, PLAIN, 10, svc("a", 5))
    listed(subject, OURS, 10)
    recorder.calls.clear()

    subject.handle(PLAIN, change("DELETED", svc("a", 20)))  # OURS has not reached 20 yet: wait
    assert ports(subject) == {"default/a": 80}
    subject.handle(OURS, change("ADDED", svc("a", 20, port=81)))

    assert recorder.calls == ["update default/a 80->81"]
    assert ports(subject) == {"default/a": 81}


def test_a_delete_is_applied_at_once_when_the_other_watch_is_past_its_version() -> None:
    subject, recorder = informer()
    listed(subject, PLAIN, 10, svc("a", 5))
    listed(subject, OURS, 10)
    subject.watches[OURS].resource_version = "30"  # as a bookmark would have set it

    subject.handle(PLAIN, change("DELETED", svc("a", 20)))

    assert recorder.calls[-1] == "delete default/a"


def test_a_delete_waits_at_most_the_grace_period() -> None:
    now = [0.0]
    subject, recorder = informer(move_grace=1.0, clock=lambda: now[0])
    listed(subject, PLAIN, 10, svc("a", 5), svc("b", 6))
    listed(subject, OURS, 10)
    recorder.calls.clear()

    subject.handle(PLAIN, change("DELETED", svc("a", 20)))
    now[0] = 0.5
    subject.handle(PLAIN, change("MODIFIED", svc("b", 21)))
    assert recorder.calls == []
    now[0] = 1.5
    subject.handle(PLAIN, change("MODIFIED", svc("b", 22)))

    assert recorder.calls == ["delete default/a"]


async def test_a_pending_delete_is_applied_by_a_timer_when_nothing_else_happens() -> None:
    subject, recorder = informer(move_grace=0.05)
    listed(subject, PLAIN, 10, svc("a", 5))
    listed(subject, OURS, 10)
    recorder.calls.clear()

    subject.handle(PLAIN, change("DELETED", svc("a", 20)))
    await asyncio.sleep(0.1)

    assert recorder.calls == ["delete default/a"]


def test_a_relist_missing_an_object_the_other_watch_may_report_waits_too() -> None:
    subject, recorder = informer()
    listed(subject, PLAIN, 10, svc("a", 5))
    listed(subject, OURS, 10)
    recorder.calls.clear()

    listed(subject, PLAIN, 40)  # "a" moved to OURS while PLAIN was disconnected
    listed(subject, OURS, 40, svc("a", 35))

    assert recorder.calls == []
    assert ports(subject) == {"default/a": 80}


def test_a_late_event_from_the_old_stream_does_not_win_over_a_newer_version() -> None:
    subject, recorder = informer()
    listed(subject, PLAIN, 10, svc("a", 5))
    listed(subject, OURS, 10)
    recorder.calls.clear()

    subject.handle(OURS, change("ADDED", svc("a", 20, port=82)))  # moved, and changed
    subject.handle(PLAIN, change("MODIFIED", svc("a", 19, port=81)))  # the lagging stream
    subject.handle(PLAIN, change("DELETED", svc("a", 20, port=81)))

    assert ports(subject) == {"default/a": 82}
    assert recorder.calls == ["update default/a 80->82"]


def test_a_relist_of_one_stream_keeps_objects_the_other_stream_holds() -> None:
    subject, recorder = informer()
    listed(subject, PLAIN, 10, svc("a", 5))
    listed(subject, OURS, 10, svc("b", 6))
    recorder.calls.clear()

    listed(subject, PLAIN, 50, svc("a", 5))

    assert ports(subject) == {"default/a": 80, "default/b": 80}
    assert recorder.calls == []


# --- bad input ----------------------------------------------------------------------------


def test_an_invalid_new_object_is_skipped_with_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    subject, recorder = informer(watches=1)
    bad = svc("bad", 4, ports=[{"port": 80}, {"port": 70000}])

    listed(subject, PLAIN, 10, svc("a", 3), bad, svc("c", 5))
    listed(subject, PLAIN, 11, svc("a", 3), bad, svc("c", 5))  # a re-list repeats it: no new line

    assert sorted(ports(subject)) == ["default/a", "default/c"]
    assert [r.getMessage() for r in caplog.records] == [
        "skipping Service default/bad: spec.ports[1].port: 70000 out of range"
    ]
    assert sorted(recorder.calls) == ["add default/a 80", "add default/c 80"]


def test_an_invalid_update_keeps_the_last_valid_version(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    subject, recorder = informer(watches=1)
    listed(subject, PLAIN, 10, svc("a", 3))

    subject.handle(PLAIN, change("MODIFIED", svc("a", 11, protocol="x", clusterIP="10.96.0.300")))
    listed(subject, PLAIN, 12, svc("a", 11, clusterIP="10.96.0.300"))  # still bad after a relist
    subject.handle(PLAIN, change("MODIFIED", svc("a", 13, port=81)))  # fixed

    assert ports(subject) == {"default/a": 81}
    assert recorder.calls == ["add default/a 80", "update default/a 80->81"]
    assert [r.getMessage() for r in caplog.records] == [
        "Service default/a: spec.clusterIP: '10.96.0.300' is not an IP address; "
        "keeping its last valid version"
    ]


def test_an_object_without_a_name_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    subject, _ = informer(watches=1)

    listed(subject, PLAIN, 10, {"metadata": {"namespace": "default"}}, svc("a", 3))

    assert list(subject.store) == ["default/a"]
    assert "skipping a Service without a usable name: metadata.name: missing" in caplog.text


def test_duplicate_endpoints_are_logged_with_the_slice_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = ApiClient(credentials=load_credentials(master="http://127.0.0.1:1"))

    def convert(raw: RawObject, warn: Warn) -> EndpointSlice | None:
        return endpoint_slice_from_dict(raw, warn=warn)

    slices: Informer[EndpointSlice] = Informer(
        kind="EndpointSlice",
        namespaced=True,
        watches=[ResourceWatch(client=client, resource=SERVICES)],
        convert=convert,
    )
    raw = {
        "metadata": {
            "namespace": "web",
            "name": "shop-1",
            "labels": {"kubernetes.io/service-name": "shop"},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.1"]}],
    }

    listed(slices, 0, 10, raw)

    assert len(slices.store["web/shop-1"].endpoints) == 1
    assert (
        "EndpointSlice web/shop-1: endpoints[1].addresses[0]: duplicate address 10.0.0.1, "
        "keeping the first"
    ) in caplog.text
