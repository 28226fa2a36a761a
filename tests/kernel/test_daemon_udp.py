"""UDP through the daemon: a long-lived flow leaves a removed pod at once (user pain #2).

kube-proxy users saw DNS/syslog flows keep going to deleted pods (#71514, #76664). With ipvsd
the UDP real server is deleted at once (never drained) and `vs/expire_nodest_conn=1` is set, so
the flow's next datagram is scheduled to a live pod; on the 6.1 kernel this needs no conntrack
flush (checked: the flow moved on its first datagram after the change).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ipvsd.testing.netns import Lab, entered
from tests.kernel.daemon_support import (
    SERVICES,
    SLICES,
    Api,
    ipvsadm,
    running_daemon,
    until,
    until_serving,
)

pytestmark = pytest.mark.kernel


def udp_echo(namespace: str, address: str, name: str) -> None:
    """Answer every datagram on address:5353 with `name`."""
    with entered(namespace):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((address, 5353))

    def serve() -> None:
        with sock:
            while True:
                _data, peer = sock.recvfrom(512)
                sock.sendto(name.encode(), peer)

    threading.Thread(target=serve, daemon=True).start()


def dns_slice(address: str) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "dns-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "dns"}},
        "addressType": "IPv4",
        "ports": [{"name": "dns", "protocol": "UDP", "port": 5353}],
        "endpoints": [{"addresses": [address], "nodeName": "node-a",
                       "conditions": {"ready": True}}],
    }  # fmt: skip


@pytest.fixture
async def cluster() -> AsyncIterator[tuple[Api, Lab]]:
    async with running_daemon() as running:
        yield running


async def test_a_udp_flow_moves_to_a_live_pod_when_its_pod_is_removed(
    cluster: tuple[Api, Lab],
) -> None:
    api, _net = cluster
    udp_echo("pod-a", "10.200.1.2", "pod-a")
    udp_echo("pod-b", "10.200.2.2", "pod-b")
    service = await api.send(
        "POST", SERVICES,
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "dns"},
         "spec": {"ports": [{"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 5353}]}},
    )  # fmt: skip
    vip = service["spec"]["clusterIP"]
    await api.send("POST", SLICES, dns_slice("10.200.1.2"))
    await until_serving(vip, f"-a -u {vip}:53 -r 10.200.1.2:5353")

    with entered("client"):  # one socket, one source port: a long-lived flow like a resolver's
        flow = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        flow.bind(("10.200.3.2", 40053))
    flow.settimeout(1.0)

    def ask() -> str:
        try:
            flow.sendto(b"query", (vip, 53))
            return flow.recvfrom(512)[0].decode()
        except TimeoutError:
            return "timeout"

    with flow:
        assert await asyncio.to_thread(ask) == "pod-a"
        await api.send("PUT", f"{SLICES}/dns-1", dns_slice("10.200.2.2"))
        await until(lambda: "-r 10.200.1.2:5353" not in ipvsadm())
        answers = [await asyncio.to_thread(ask) for _ in range(3)]
    assert answers == ["pod-b"] * 3
