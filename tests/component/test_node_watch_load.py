"""Which Nodes a proxy watches, and what that costs the API server: the whole daemon
(`app.serve` over the fake kernel) against the emulator with 50 Nodes sending status heartbeats.

Without a Service that needs other Nodes' labels, ipvsd watches its own Node only
(`fieldSelector=metadata.name=<node>`); with one (topology keys, weight mode) it watches every
Node's metadata (`PartialObjectMetadata`), never their status. Heartbeats still cost one
metadata event per update on that watch: the API server sends every new resourceVersion. The
numbers are printed (`pytest -s`); the assertions hold their order, not their size.
Switching between the two is seamless: a Service that needs labels is never planned without
them (its topology is never lost, not even for one sync).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from ipvsd.config.settings import ProxyConfig
from ipvsd.dataplane.ipvs import BatchResult
from ipvsd.dataplane.ipvs_fake import FakeIpvs
from ipvsd.model.ipvs import Operation
from ipvsd.testing.apiserver import ApiServer
from ipvsd.testing.apiserver.traffic import Exchange
from tests.component.apiserver_support import endpoint, endpoint_slice, service
from tests.component.daemon_support import running_daemon
from tests.component.informer_support import eventually

pytestmark = pytest.mark.timeout(120)

NODES = 50
OWN = "node-00"
NODE_PATH = "/api/v1/nodes"
HEARTBEAT_ROUNDS = 3
REGION = "topology.kubernetes.io/region"


def realistic_node(index: int) -> dict[str, Any]:
    """A Node shaped like a kubelet's (labels, annotations, a status with conditions,
    addresses, capacity, node info and a list of images, the bulk of a real Node)."""
    name = f"node-{index:02d}"
    zone = f"zone-{index % 3}"
    images = [
        {
            "names": [
                f"registry.example.com/team-{i}/service-{i}@sha256:{i:064x}",
                f"registry.example.com/team-{i}/service-{i}:v1.{i}.0",
            ],
            "sizeBytes": 50_000_000 + i * 1_000_003,
        }
        for i in range(25)
    ]
    conditions = [
        {
            "type": kind,
            "status": "True" if kind == "Ready" else "False",
            "lastHeartbeatTime": "2026-01-01T00:00:00Z",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
            "reason": f"Kubelet{kind}",
            "message": f"kubelet reports {kind}",
        }
        for kind in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")
    ]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "m5.xlarge",
                "topology.kubernetes.io/zone": zone,
                REGION: "region-a" if index < NODES // 2 else "region-b",
            },
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///run/containerd/containerd.sock",
            },
        },
        "spec": {"podCIDR": f"10.244.{index}.0/24", "podCIDRs": [f"10.244.{index}.0/24"]},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": f"192.168.1.{index + 10}"},
                {"type": "Hostname", "address": name},
            ],
            "capacity": {"cpu": "4", "memory": "16323456Ki", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "16221056Ki", "pods": "110"},
            "conditions": conditions,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": f"{index:08x}-0000-0000-0000-000000000000",
                "containerRuntimeVersion": "containerd://1.7.24",
                "kernelVersion": "6.1.0-28-amd64",
                "kubeProxyVersion": "",
                "kubeletVersion": "v1.33.1",
                "machineID": f"{index:032x}",
                "operatingSystem": "linux",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "systemUUID": f"{index:08x}-1111-2222-3333-444444444444",
            },
            "images": images,
        },
    }


def heartbeat(server: ApiServer, name: str, beat: int) -> None:
    """What a kubelet's status update changes: the conditions' heartbeat times."""
    status = server.store.get("nodes", name)["status"]
    for condition in status["conditions"]:
        condition["lastHeartbeatTime"] = f"2026-01-01T00:{beat:02d}:00Z"
    server.store.patch("nodes", name, {"status": status}, status=True)


class RecordingIpvs(FakeIpvs):
    """The fake kernel, remembering the table after every batch (every state traffic saw)."""

    def __init__(self) -> None:
        super().__init__()
        self.states: list[str] = []

    async def apply(self, operations: Sequence[Operation]) -> BatchResult:
        result = await super().apply(operations)
        self.states.append(self.render())
        return result


@asynccontextmanager
async def cluster() -> AsyncIterator[ApiServer]:
    async with ApiServer(bookmark_interval=3600) as server:
        server.store.load([realistic_node(i) for i in range(NODES)])
        server.store.create(service("plain", clusterIP="10.96.0.10"))
        server.store.create(
            endpoint_slice("plain-1", "plain", [endpoint("10.244.1.5", node="node-01")])
        )
        yield server


def daemon(server: ApiServer, kernel: FakeIpvs) -> AbstractAsyncContextManager[object]:
    return running_daemon(
        ProxyConfig(node_name=OWN, kubeconfig=str(server.kubeconfig_path)), ipvs=kernel
    )


def node_watches(server: ApiServer) -> list[Exchange]:
    return [e for e in server.traffic.exchanges if e.path == NODE_PATH and e.is_watch]


def watches_every_node(server: ApiServer) -> bool:
    return any(not e.done and "fieldSelector" not in e.query for e in node_watches(server))


async def flushed(server: ApiServer) -> None:
    """Every event committed so far has been written to every open watch."""
    await eventually(lambda: all(not s.pending for s in server.storage.subscriptions()), within=30)
    await asyncio.sleep(0.2)  # the last writes leave the watch tasks


@dataclass(frozen=True)
class Load:
    requests: int  # started since the meter's last reset
    open: int  # watches open at the end (also those started before)
    sent: int

    def __str__(self) -> str:
        return f"{self.requests} requests, {self.open} open watches, {self.sent} bytes"


def ipvsd_node_load(server: ApiServer) -> Load:
    """ipvsd's requests to /api/v1/nodes since the meter's last reset, and the body bytes sent
    for them (the comparison watch, aiohttp's `Accept: */*`, left out)."""
    mine = [e for e in server.traffic.exchanges if e.path == NODE_PATH and e.accept != "*/*"]
    return Load(
        sum(not e.carried_over for e in mine),
        sum(not e.done for e in mine),
        sum(e.sent for e in mine),
    )


async def heartbeats(server: ApiServer) -> int:
    count = 0
    for beat in range(1, HEARTBEAT_ROUNDS + 1):
        for index in range(NODES):
            heartbeat(server, f"node-{index:02d}", beat)
            count += 1
        await asyncio.sleep(0)
    await flushed(server)
    return count


async def test_api_load_of_one_node_with_and_without_a_service_that_needs_node_labels(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    kernel = FakeIpvs()
    async with cluster() as server, daemon(server, kernel):
        await eventually(lambda: "10.96.0.10:80" in kernel.render(), within=60)
        assert not watches_every_node(server)
        selectors = {e.query.get("fieldSelector") for e in node_watches(server)}
        assert selectors == {f"metadata.name={OWN}"}, "only the own Node is watched"
        start_own = ipvsd_node_load(server)

        server.traffic.reset()
        beats = await heartbeats(server)
        own_only = ipvsd_node_load(server)

        server.store.patch(
            "services", "plain", {"metadata": {"annotations": {"ipvsd.io/topology-mode": "weight"}}}
        )
        server.traffic.reset()
        await eventually(lambda: watches_every_node(server), within=30)
        await eventually(
            lambda: any("every Node's metadata" in m for m in caplog.messages), within=30
        )
        await flushed(server)
        switch = ipvsd_node_load(server)

        server.traffic.reset()
        async with server_watch_of_whole_nodes(server) as whole:
            beats_b = await heartbeats(server)
            metadata = ipvsd_node_load(server)
        whole_bytes = whole.sent
        assert beats_b == beats

    lines = [
        f"{NODES} Nodes, {beats} status heartbeats ({HEARTBEAT_ROUNDS} per Node); bytes are "
        f"response bodies the API server sent to {OWN}'s ipvsd for /api/v1/nodes",
        f"  start, own Node only: {start_own}",
        f"  heartbeats, own Node only: {own_only}",
        f"  a Service turns weight mode on, every Node's metadata listed: {switch}",
        f"  heartbeats, own Node + every Node's metadata: {metadata}",
        f"  (the same heartbeats on a watch of every Node whole, as ipvsd watched before: "
        f"{whole_bytes} bytes)",
    ]
    print("\n" + "\n".join(lines))
    assert own_only.sent < metadata.sent < whole_bytes
    assert metadata.sent * 3 < whole_bytes, "metadata events must be far smaller than Nodes"


@dataclass
class Counted:
    sent: int = 0


@asynccontextmanager
async def server_watch_of_whole_nodes(server: ApiServer) -> AsyncIterator[Counted]:
    """A plain watch of every Node (what ipvsd ran before), counted by the meter."""
    counted = Counted()
    connector = aiohttp.TCPConnector(ssl=server.client_ssl_context())
    headers = {"Authorization": f"Bearer {server.token}"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        version = str(server.store.resource_version)
        async with session.get(
            server.url + NODE_PATH,
            params={"watch": "true", "resourceVersion": version, "timeoutSeconds": "60"},
        ) as response:
            assert response.status == 200
            reader = asyncio.ensure_future(response.content.read())
            try:
                yield counted
            finally:
                (entry,) = [
                    e for e in server.traffic.exchanges if e.path == NODE_PATH and e.accept == "*/*"
                ]
                counted.sent = entry.sent
                reader.cancel()


def keys_service(name: str, ip: str) -> dict[str, Any]:
    """A Service whose only topology key is a Node label no EndpointSlice carries: planned
    without the other Nodes' labels it would have no real server at all."""
    document = service(name, clusterIP=ip)
    document["metadata"]["annotations"] = {"ipvsd.io/topology-keys": REGION}
    return document


def rows(state: str, ip: str) -> list[str]:
    return [line for line in state.splitlines() if f"{ip}:" in line]


async def test_switching_to_other_nodes_and_back_never_plans_without_their_labels() -> None:
    kernel = RecordingIpvs()
    async with cluster() as server, daemon(server, kernel):
        await eventually(lambda: "10.96.0.10:80" in kernel.render(), within=60)
        assert not watches_every_node(server)
        # node-01 is in region-a as node-00; node-40 in region-b.
        server.store.create(
            endpoint_slice(
                "keyed-1",
                "keyed",
                [endpoint("10.244.1.7", node="node-01"), endpoint("10.244.40.7", node="node-40")],
            )
        )
        server.store.create(keys_service("keyed", "10.96.0.20"))
        wanted = [
            "-A -t 10.96.0.20:80 -s rr",
            "-a -t 10.96.0.20:80 -r 10.244.1.7:8080 -m -w 1",
        ]
        await eventually(lambda: rows(kernel.render(), "10.96.0.20") == wanted, within=60)
        assert watches_every_node(server)
        seen = {tuple(rows(state, "10.96.0.20")) for state in kernel.states}
        assert seen <= {(), tuple(wanted)}, "never programmed without the Nodes' labels"

        server.store.delete("services", "keyed")
        await eventually(lambda: not watches_every_node(server), within=30)
        await eventually(lambda: not rows(kernel.render(), "10.96.0.20"), within=30)

        # Back to the own Node only; an existing Service now gains the annotation.
        server.store.patch(
            "services", "plain", {"metadata": {"annotations": {"ipvsd.io/topology-keys": REGION}}}
        )
        server.store.patch(
            "endpointslices",
            "plain-1",
            {
                "endpoints": [
                    endpoint("10.244.1.5", node="node-01"),
                    endpoint("10.244.40.5", node="node-40"),
                ]
            },
            namespace="default",
        )
        keyed = [
            "-A -t 10.96.0.10:80 -s rr",
            "-a -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 1",
        ]
        await eventually(lambda: rows(kernel.render(), "10.96.0.10") == keyed, within=60)
        before = len(kernel.states)
        # From its first programming on (the critical Services may come first, without it).
        first = next(i for i, state in enumerate(kernel.states) if rows(state, "10.96.0.10"))
        assert all(
            rows(state, "10.96.0.10")[:1] == ["-A -t 10.96.0.10:80 -s rr"]
            and len(rows(state, "10.96.0.10")) >= 2
            for state in kernel.states[first:before]
        ), "the plain Service kept real servers while the Nodes were listed"
