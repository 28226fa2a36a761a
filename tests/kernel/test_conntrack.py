"""UDP flows through the daemon keep working when their pods change: upstream's conntrack cases.

Named after kubernetes' `test/e2e/network/conntrack.go`. A client keeps one socket and source
port (as `nc -p 12345` does there, and as a resolver does); after the pods behind the Service
change, its next datagrams must be answered by a live pod, and the conntrack table must show
that ipvsd deleted the entries that pointed elsewhere (`reconcile.udp_conntrack`).

Since Linux 5.9 IPVS itself expires the connections of a deleted real server when
`vs/expire_nodest_conn=1`, and with them their conntrack entries: on the 6.1 kernel the client's
own entry goes without ipvsd. So each pod cycle also leaves an entry the kernel does not own (a
second client port's entry towards the old pod, made with `conntrack -I`: what kube-proxy or a
kernel before 5.9 leaves, or an entry whose IPVS connection is gone), and the test asserts that
ipvsd deleted it.

In IPVS mode a virtual server without real servers drops a datagram before conntrack keeps an
entry for it, so the blackhole entry of upstream's "no endpoint yet" cases only arises while
the virtual server is missing with its address still bound: a restart that flushed the table
(the disruption harness's negative control). `test_..._initial_unready_endpoints_get_ready`
makes that moment with `ipvsadm -D` before the endpoint becomes ready.

One daemon serves the module's tests (a daemon's start is most of a test's time in the VM);
each test has its own Service. The daemon runs no periodic full sync while they run: one
would restore that missing virtual server before the client sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import subprocess
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from ipvsd.testing.netns import Lab, entered
from tests.kernel.daemon_support import (
    NODE_ADDRESS,
    SERVICES,
    SLICES,
    Api,
    ipvsadm,
    running_daemon,
    until,
    until_serving,
)

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(300),  # the first test also starts the daemon
]

CLIENT = "10.200.3.2"
POD_A, POD_B = "10.200.1.2", "10.200.2.2"
SOURCE_PORT = 12345  # upstream's srcPort
# Per test, the client port of an entry the kernel does not own (module docstring); distinct,
# so a test that fails before its entry is deleted leaves nothing in the next one's way.
LEFTOVER_PORTS = {"nodeport": 12346, "clusterip": 12347, "local": 12348}
TARGET_PORT = 8053


def udp_server(namespace: str, address: str) -> None:
    """Answer every datagram on address:TARGET_PORT with the namespace's name (a pod)."""
    with entered(namespace):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((address, TARGET_PORT))

    def serve() -> None:
        with sock:
            while True:
                _data, peer = sock.recvfrom(512)
                sock.sendto(namespace.encode(), peer)

    threading.Thread(target=serve, daemon=True).start()


class Client:
    """Upstream's pod-client: one socket with a fixed source port, in namespace `client`."""

    def __init__(self, host: str, port: int, *, leftover_port: int = 0) -> None:
        with entered("client"):
            self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((CLIENT, SOURCE_PORT))
        self._sock.settimeout(1.0)
        self.to = (host, port)
        self.leftover_port = leftover_port

    def _ask(self) -> str:
        try:
            self._sock.sendto(b"hostname", self.to)
            return self._sock.recvfrom(512)[0].decode()
        except (TimeoutError, ConnectionRefusedError):
            return "no answer"

    async def ask(self) -> str:
        return await asyncio.to_thread(self._ask)

    def close(self) -> None:
        self._sock.close()


@contextlib.asynccontextmanager
async def keeps_asking(client: Client) -> AsyncIterator[list[str]]:
    """The client asks again and again (each ask waits up to a second) while the block runs;
    the answers so far. Its last ask ends before the block is left (one reader at a time)."""
    answers: list[str] = []
    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            answers.append(await client.ask())

    task = asyncio.create_task(loop())
    try:
        yield answers
    finally:
        stop.set()
        await task


def reply_sources(client: Client, source_port: int = SOURCE_PORT) -> list[str]:
    """The reply source (`address:port`) of every UDP conntrack entry of the client's flow (or
    of the flow from `source_port` to the same frontend)."""
    host, port = client.to
    done = subprocess.run(
        ["conntrack", "-L", "-p", "udp", "--orig-port-src", str(source_port),
         "--orig-dst", host, "--orig-port-dst", str(port)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    sources = []
    for line in done.stdout.splitlines():
        fields = re.findall(r"(src|sport)=(\S+)", line)  # original src, sport, then the reply's
        if len(fields) == 4:
            sources.append(f"{fields[2][1]}:{fields[3][1]}")
    return sources


def slice_of(service: str, endpoints: list[tuple[str, str, bool]]) -> dict[str, Any]:
    """The EndpointSlice of `service` with (address, node, ready) endpoints on port `udp`."""
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{service}-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "udp", "protocol": "UDP", "port": TARGET_PORT}],
        "endpoints": [
            {"addresses": [address], "nodeName": node,
             "conditions": {"ready": ready, "serving": ready, "terminating": False}}
            for address, node, ready in endpoints
        ],
    }  # fmt: skip


async def udp_service(api: Api, name: str, **spec: Any) -> dict[str, Any]:
    service: dict[str, Any] = await api.send(
        "POST", SERVICES,
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
         "spec": {"ports": [{"name": "udp", "protocol": "UDP", "port": 80,
                             "targetPort": TARGET_PORT}], **spec}},
    )  # fmt: skip
    return service


async def set_endpoints(
    api: Api, service: str, endpoints: list[tuple[str, str, bool]], *, first: bool = False
) -> None:
    body = slice_of(service, endpoints)
    if first:
        await api.send("POST", SLICES, body)
    else:
        await api.send("PUT", f"{SLICES}/{service}-1", body)


async def until_gone(client: Client, reply_source: str, source_port: int = SOURCE_PORT) -> None:
    """Until no entry of the flow from `source_port` has `reply_source`."""
    try:
        await until(lambda: reply_source not in reply_sources(client, source_port))
    except AssertionError:
        entries = reply_sources(client, source_port)
        raise AssertionError(f"the entry answering from {reply_source} stays: {entries}") from None


def leave_entry_towards(client: Client, pod: str) -> None:
    """An entry of the client's second port towards `pod` that no IPVS connection owns."""
    host, port = client.to
    subprocess.run(
        ["conntrack", "-I", "-p", "udp", "-s", CLIENT, "-d", host,
         "--sport", str(client.leftover_port), "--dport", str(port),
         "-r", pod, "-q", CLIENT, "--reply-port-src", str(TARGET_PORT),
         "--reply-port-dst", str(client.leftover_port), "-t", "120"],
        capture_output=True, check=True,
    )  # fmt: skip


@dataclass
class Node:
    api: Api
    net: Lab
    pod_c: str  # a third pod's address (namespace `pod-c`)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def node() -> AsyncIterator[Node]:
    """ipvsd for node-a without periodic full syncs (see the module docstring), pods a, b, c."""
    async with running_daemon("--ipvs-sync-period=10m") as (api, net):
        pod_c = net.add_namespace("pod-c")
        for namespace, address in (("pod-a", POD_A), ("pod-b", POD_B), ("pod-c", pod_c)):
            udp_server(namespace, address)
        yield Node(api, net, pod_c)


async def pod_cycles(api: Api, service: str, client: Client) -> None:
    """Upstream's cycle: server 1 answers; server 2 is added, server 1 deleted; the entries
    towards server 1 go (before the client sends again); server 2 answers."""
    host, port = client.to
    await set_endpoints(api, service, [(POD_A, "node-a", True)], first=True)
    await until(lambda: f"-a -u {host}:{port} -r {POD_A}:{TARGET_PORT}" in ipvsadm())
    assert await client.ask() == "pod-a"
    assert reply_sources(client) == [f"{POD_A}:{TARGET_PORT}"]
    leave_entry_towards(client, POD_A)
    await set_endpoints(api, service, [(POD_A, "node-a", True), (POD_B, "node-a", True)])
    await set_endpoints(api, service, [(POD_B, "node-a", True)])
    await until_gone(client, f"{POD_A}:{TARGET_PORT}", client.leftover_port)
    await until_gone(client, f"{POD_A}:{TARGET_PORT}")
    assert [await client.ask() for _ in range(3)] == ["pod-b"] * 3


async def test_should_be_able_to_preserve_udp_traffic_when_server_pod_cycles_for_a_nodeport_service(
    node: Node,
) -> None:
    service = await udp_service(node.api, "svc-udp-nodeport", type="NodePort")
    port = service["spec"]["ports"][0]["nodePort"]
    await until(lambda: f"-A -u {NODE_ADDRESS}:{port}" in ipvsadm())
    client = Client(NODE_ADDRESS, port, leftover_port=LEFTOVER_PORTS["nodeport"])
    try:
        await pod_cycles(node.api, "svc-udp-nodeport", client)
    finally:
        client.close()


async def test_should_be_able_to_preserve_udp_traffic_when_server_pod_cycles_for_a_clusterip_service(  # noqa: E501
    node: Node,
) -> None:
    vip = (await udp_service(node.api, "svc-udp"))["spec"]["clusterIP"]
    await until_serving(vip, f"-A -u {vip}:80")
    client = Client(vip, 80, leftover_port=LEFTOVER_PORTS["clusterip"])
    try:
        await pod_cycles(node.api, "svc-udp", client)
    finally:
        client.close()


async def test_should_be_able_to_preserve_udp_traffic_when_server_pod_cycles_for_a_clusterip_service_with_internaltrafficpolicy_set_to_local(  # noqa: E501
    node: Node,
) -> None:
    """Server 1 on the client's node, server 2 on another node (an endpoint, never a real
    server here); server 1 goes: its entry is deleted, and while no local pod exists the
    client gets nothing; server 3 comes up on the client's node and answers."""
    api, name, pod_c = node.api, "svc-udp-local", node.pod_c
    vip = (await udp_service(api, name, internalTrafficPolicy="Local"))["spec"]["clusterIP"]
    await until_serving(vip, f"-A -u {vip}:80")
    client = Client(vip, 80, leftover_port=LEFTOVER_PORTS["local"])
    try:
        await set_endpoints(
            api, name, [(POD_A, "node-a", True), (POD_B, "node-b", True)], first=True
        )
        await until(lambda: f"-a -u {vip}:80 -r {POD_A}:{TARGET_PORT}" in ipvsadm())
        assert await client.ask() == "pod-a"
        leave_entry_towards(client, POD_A)
        await set_endpoints(api, name, [(POD_B, "node-b", True)])
        await until_gone(client, f"{POD_A}:{TARGET_PORT}", client.leftover_port)
        await until_gone(client, f"{POD_A}:{TARGET_PORT}")
        assert await client.ask() == "no answer"  # iTP=Local: the remote pod is not used
        await set_endpoints(api, name, [(POD_B, "node-b", True), (pod_c, "node-a", True)])
        await until(lambda: f"-a -u {vip}:80 -r {pod_c}:{TARGET_PORT}" in ipvsadm())
        assert [await client.ask() for _ in range(3)] == ["pod-c"] * 3
        assert reply_sources(client) == [f"{pod_c}:{TARGET_PORT}"]
    finally:
        client.close()


async def test_should_be_able_to_preserve_udp_traffic_when_initial_unready_endpoints_get_ready(
    node: Node,
) -> None:
    """The client sends before the first endpoint is ready, at a moment the virtual server is
    missing (a flushed table): the host answers, and conntrack keeps an entry whose reply
    comes from the VIP itself. Once the endpoint is ready it must be deleted, and the pod must
    answer."""
    api, name = node.api, "svc-udp-unready"
    vip = (await udp_service(api, name))["spec"]["clusterIP"]
    await set_endpoints(api, name, [(POD_A, "node-a", False)], first=True)
    await until_serving(vip, f"-A -u {vip}:80")
    subprocess.run(["ipvsadm", "-D", "-u", f"{vip}:80"], check=True)  # a flushed table
    client = Client(vip, 80)
    try:
        assert await client.ask() == "no answer"
        assert reply_sources(client) == [f"{vip}:80"]  # the blackhole entry upstream guards
        async with keeps_asking(client) as answers:  # as upstream's client loop: the entry
            await set_endpoints(api, name, [(POD_A, "node-a", True)])  # never times out
            await until(lambda: f"-a -u {vip}:80 -r {POD_A}:{TARGET_PORT}" in ipvsadm())
            await until_gone(client, f"{vip}:80")
            await until(lambda: "pod-a" in answers)
        assert [await client.ask() for _ in range(3)] == ["pod-a"] * 3
    finally:
        client.close()
