"""Invalid API objects are counted: per informer (`Informer.invalid`), per kind for the proxy
(`ProxyInformers.invalid_objects`), and exported as `ipvsd_invalid_objects{kind}`."""

from __future__ import annotations

from typing import Any

from ipvsd.kube.auth import load_credentials
from ipvsd.kube.client import ApiClient
from ipvsd.kube.informer import Informer
from ipvsd.kube.proxy_informers import ProxyInformers
from ipvsd.kube.watch import Change, SnapshotEnded, SnapshotItem, SnapshotStarted
from ipvsd.server.metrics import ProxyMetrics


def listed(subject: Informer[Any], *objects: dict[str, Any]) -> None:
    subject.handle(0, SnapshotStarted())
    for obj in objects:
        subject.handle(0, SnapshotItem(obj))
    subject.handle(0, SnapshotEnded("10"))


def service(name: str, port: object) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "default", "name": name, "resourceVersion": "5"},
        "spec": {"clusterIP": "10.96.0.1", "ports": [{"port": port}]},
    }


def node(name: str, labels: object) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": "3", "labels": labels}}


def informers() -> ProxyInformers:
    client = ApiClient(credentials=load_credentials(master="http://127.0.0.1:1"))
    return ProxyInformers(client=client, node_name="node-a", watch_all_nodes=True)


def test_invalid_objects_are_counted_by_kind_until_fixed_or_deleted() -> None:
    subject = informers()
    assert subject.nodes is not None
    listed(subject.services, service("good", 80), service("bad", 65536), service("worse", "80"))
    listed(subject.endpoint_slices)
    listed(subject.own_node, node("node-a", ["not", "a", "map"]))
    listed(subject.nodes, node("node-a", ["not", "a", "map"]), node("node-b", {}))
    assert subject.invalid_objects() == {"Service": 2, "EndpointSlice": 0, "Node": 1}
    assert set(subject.services.invalid) == {"default/bad", "default/worse"}

    subject.services.handle(0, Change("MODIFIED", service("bad", 443), 0.0))
    subject.services.handle(0, Change("DELETED", service("worse", "80"), 0.0))
    assert subject.invalid_objects() == {"Service": 0, "EndpointSlice": 0, "Node": 1}


def test_the_metric_reads_the_counts_at_scrape_time() -> None:
    metrics = ProxyMetrics()
    counts = {"Service": 2, "EndpointSlice": 0, "Node": 1}
    metrics.read_invalid_objects_from(lambda: counts)
    sample = metrics.registry.get_sample_value
    assert sample("ipvsd_invalid_objects", {"kind": "Service"}) == 2
    assert sample("ipvsd_invalid_objects", {"kind": "Node"}) == 1
    counts["Service"] = 0
    assert sample("ipvsd_invalid_objects", {"kind": "Service"}) == 0
