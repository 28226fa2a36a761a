"""The emulator's storage: one resource version, the bounded history, snapshots at a version,
watcher inboxes and post-commit listeners."""

from __future__ import annotations

from typing import Any

import orjson

from ipvsd.testing.apiserver.resources import NODES, SERVICES
from ipvsd.testing.apiserver.storage import Event, Storage, Subscription


def service(name: str, namespace: str = "default", **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels}, "spec": {}}


def test_every_write_takes_the_next_global_version() -> None:
    storage = Storage()
    first = storage.write(SERVICES, service("a"))
    node = storage.write(NODES, {"metadata": {"name": "n"}})
    second = storage.write(SERVICES, service("a", changed="yes"))
    assert [first.rv, node.rv, second.rv] == [1, 2, 3]
    assert second.to_dict()["metadata"]["resourceVersion"] == "3"
    assert second.document.startswith(b'{"kind":"Service","apiVersion":"v1",')
    gone = storage.remove(SERVICES, ("default", "a"))
    assert gone.rv == 4
    assert gone.labels == {"changed": "yes"}


def test_items_are_sorted_and_filtered_by_namespace() -> None:
    storage = Storage()
    for namespace, name in (
        ("kube-system", "dns"),
        ("default", "b"),
        ("default", "a"),
        ("defaults", "x"),
    ):
        storage.write(SERVICES, service(name, namespace))
    assert [s.key for s in storage.items(SERVICES)] == [
        ("default", "a"),
        ("default", "b"),
        ("defaults", "x"),
        ("kube-system", "dns"),
    ]
    assert [s.name for s in storage.items(SERVICES, "default")] == ["a", "b"]


def test_history_window_and_state_at_a_version() -> None:
    storage = Storage(history_size=3)
    storage.write(SERVICES, service("a"))  # 1
    storage.write(SERVICES, service("b"))  # 2
    storage.write(SERVICES, service("a", v="2"))  # 3
    storage.remove(SERVICES, ("default", "b"))  # 4: the history now holds 2..4
    assert storage.oldest_resource_version == 1
    assert [e.type for e in storage.events_after(SERVICES, 1)] == ["ADDED", "MODIFIED", "DELETED"]
    at_two = storage.items_at(SERVICES, 2)
    assert [(s.name, dict(s.labels)) for s in at_two] == [("a", {}), ("b", {})]
    assert storage.compact(3) == 3
    assert [e.rv for e in storage.events_after(SERVICES, 3)] == [4]


def test_a_watcher_that_falls_too_far_behind_is_ended() -> None:
    storage = Storage()
    inbox = Subscription(SERVICES, limit=2)
    for name in ("a", "b", "c"):
        inbox.offer(Event(1, "ADDED", storage.write(SERVICES, service(name)), None))
    assert inbox.closing == "end"
    assert not inbox.pending


def test_listeners_see_commits_in_order_even_their_own_writes() -> None:
    storage = Storage()
    seen: list[str] = []

    def listener(event: Event) -> None:
        seen.append(event.obj.name)
        if event.obj.name == "first":
            storage.write(SERVICES, service("follow-up"))
            seen.append("wrote follow-up")

    storage.listen(listener)
    storage.write(SERVICES, service("first"))
    assert seen == ["first", "wrote follow-up", "follow-up"]


def test_dump_and_restore_keep_objects_and_versions() -> None:
    storage = Storage()
    storage.write(SERVICES, service("a"))
    storage.write(NODES, {"metadata": {"name": "n"}})
    saved = storage.dump()
    copy = Storage()
    document = orjson.loads(saved)
    copy.restore(
        document["resourceVersion"],
        [(SERVICES if d["kind"] == "Service" else NODES, d) for d in document["objects"]],
    )
    assert copy.resource_version == 2
    assert copy.oldest_resource_version == 2
    assert copy.get(SERVICES, ("default", "a")) == storage.get(SERVICES, ("default", "a"))
