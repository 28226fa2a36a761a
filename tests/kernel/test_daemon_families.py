"""IPv6, dual-stack and SCTP Services through the whole daemon, with real packets (issue 16 #13).

The lab of `daemon_support` gets IPv6 beside IPv4: namespace N has `fd00:200:N::2` inside and
`fd00:200:N::1` on the node's end of its link, so `pod-a` (fd00:200:1::2, node-a, this node),
`pod-b` (fd00:200:2::2, said to run on node-b) and the outside `client` (fd00:200:3::2, whose
gateway fd00:200:3::1 is a node address where NodePorts are reached) mirror the IPv4 layout.
Pods answer `<pod> <client address as seen>`, so every test shows both who served and whether
the client's address was kept (masquerade) or not (eTP=Local).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

from ipvsd.testing.netns import Lab, answering, entered, http_get, sh
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

pytestmark = pytest.mark.kernel

NODE_ADDRESS_V6 = "fd00:200:3::1"
POD_A_V6, POD_B_V6, CLIENT_V6 = "fd00:200:1::2", "fd00:200:2::2", "fd00:200:3::2"
SCTP = socket.IPPROTO_SCTP


class _HttpServer6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


@contextlib.contextmanager
def _ipv6_lab(net: Lab) -> Iterator[None]:
    """IPv6 on the lab's links (no duplicate address detection: usable at once) and pods
    serving HTTP on their IPv6 address too."""
    sh("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
    servers = []
    for n, name in enumerate(("pod-a", "pod-b", "client"), start=1):
        sh("ip", "addr", "add", f"fd00:200:{n}::1/64", "dev", f"v{name}", "nodad")
        sh("ip", "-n", name, "addr", "add", f"fd00:200:{n}::2/64", "dev", "eth0", "nodad")
        sh("ip", "-n", name, "-6", "route", "add", "default", "via", f"fd00:200:{n}::1")
        if name != "client":
            with entered(name):
                server = _HttpServer6(
                    (f"fd00:200:{n}::2", 8080),
                    answering(lambda client, pod=name: f"{pod} {client}".encode()),
                )
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()
            servers.append(server)
    try:
        yield
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.fixture
async def dual_stack() -> AsyncIterator[Api]:
    async with running_daemon(
        "--cluster-cidr=10.200.1.0/24,fd00:200:1::/64", service_cidr_v6="fd00:10:96::/112"
    ) as (api, net):
        with _ipv6_lab(net):
            yield api


def _slice(name: str, family: str, endpoints: list[tuple[str, str]], protocol: str = "TCP") -> Any:
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{name}-{family.lower()}", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": family,
        "ports": [{"name": "p", "protocol": protocol, "port": 8080}],
        "endpoints": [
            {"addresses": [a], "nodeName": node, "conditions": {"ready": True}}
            for a, node in endpoints
        ],
    }  # fmt: skip


async def _service(api: Api, name: str, spec: dict[str, Any], protocol: str = "TCP") -> Any:
    return await api.send(
        "POST", SERVICES,
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
         "spec": {"ports": [{"name": "p", "protocol": protocol, "port": 80,
                             "targetPort": 8080}], **spec}},
    )  # fmt: skip


def _v6(address: str) -> str:
    return f"[{address}]"


async def test_ipv6_service_masquerades_outside_clients_and_etp_local_keeps_them(
    dual_stack: Api,
) -> None:
    api = dual_stack
    single = {"ipFamilies": ["IPv6"], "ipFamilyPolicy": "SingleStack"}
    anywhere = await _service(api, "six", {**single, "type": "NodePort"})
    local = await _service(
        api, "six-local", {**single, "type": "NodePort", "externalTrafficPolicy": "Local"}
    )
    await api.send("POST", SLICES, _slice("six", "IPv6", [(POD_B_V6, "node-b")]))
    await api.send("POST", SLICES, _slice("six-local", "IPv6", [(POD_A_V6, "node-a")]))
    vip = anywhere["spec"]["clusterIP"]
    assert ":" in vip
    port, local_port = (
        anywhere["spec"]["ports"][0]["nodePort"],
        local["spec"]["ports"][0]["nodePort"],
    )
    await until_serving(vip, f"-a -t {_v6(vip)}:80 -r {_v6(POD_B_V6)}:8080")
    await until(
        lambda: f"-a -t {_v6(NODE_ADDRESS_V6)}:{local_port} -r {_v6(POD_A_V6)}:8080" in ipvsadm()
    )

    # From outside the cluster CIDRs: masqueraded to the node's address on pod-b's link.
    assert http_get("client", vip, 80) == "pod-b fd00:200:2::1"
    assert http_get("client", NODE_ADDRESS_V6, port) == "pod-b fd00:200:2::1"
    # eTP=Local keeps the client's own address.
    assert http_get("client", NODE_ADDRESS_V6, local_port) == f"pod-a {CLIENT_V6}"
    # From a pod inside the cluster CIDR the ClusterIP keeps the pod's address.
    assert http_get("pod-a", vip, 80) == f"pod-b {POD_A_V6}"


async def test_dual_stack_service_serves_each_family_from_its_own_endpoints(
    dual_stack: Api,
) -> None:
    api = dual_stack
    both = await _service(
        api, "both",
        {"type": "NodePort", "ipFamilyPolicy": "RequireDualStack",
         "ipFamilies": ["IPv4", "IPv6"]},
    )  # fmt: skip
    await api.send("POST", SLICES, _slice("both", "IPv4", [("10.200.1.2", "node-a")]))
    await api.send("POST", SLICES, _slice("both", "IPv6", [(POD_B_V6, "node-b")]))
    v4, v6 = both["spec"]["clusterIPs"]
    port = both["spec"]["ports"][0]["nodePort"]
    await until_serving(v4, f"-a -t {v4}:80 -r 10.200.1.2:8080")
    await until_serving(v6, f"-a -t {_v6(v6)}:80 -r {_v6(POD_B_V6)}:8080")
    await until(lambda: f"-A -t {_v6(NODE_ADDRESS_V6)}:{port}" in ipvsadm())

    assert http_get("client", v4, 80) == "pod-a 10.200.1.1"
    assert http_get("client", v6, 80) == "pod-b fd00:200:2::1"
    assert http_get("client", NODE_ADDRESS, port) == "pod-a 10.200.1.1"
    assert http_get("client", NODE_ADDRESS_V6, port) == "pod-b fd00:200:2::1"
    # Neither family's virtual servers carry the other family's endpoints.
    table = ipvsadm()
    assert f"-a -t {v4}:80 -r {_v6(POD_B_V6)}" not in table
    assert f"-a -t {_v6(v6)}:80 -r 10.200.1.2" not in table


def _sctp_exchange(namespace: str, host: str, port: int) -> str:
    """One SCTP association from `namespace`: send a line, return the answer."""
    with entered(namespace):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, SCTP)
    with sock:
        sock.settimeout(3)
        sock.connect((host, port))
        sock.sendall(b"hello\n")
        return sock.recv(1024).decode()


@contextlib.contextmanager
def _sctp_server(namespace: str, address: str) -> Iterator[None]:
    """Answers every association with `<namespace> <peer address>`."""
    with entered(namespace):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, SCTP)
    listener.bind((address, 8080))
    listener.listen(8)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, peer = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(1024)
                conn.sendall(f"{namespace} {peer[0]}".encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=2)
        listener.close()


@pytest.fixture
async def sctp_cluster() -> AsyncIterator[Api]:
    subprocess.run(["modprobe", "sctp"], check=True)
    async with running_daemon() as (api, _net):
        with _sctp_server("pod-a", "10.200.1.2"), _sctp_server("pod-b", "10.200.2.2"):
            yield api


async def test_sctp_service_balances_associations_through_cluster_ip_and_node_port(
    sctp_cluster: Api,
) -> None:
    api = sctp_cluster
    service = await _service(api, "assoc", {"type": "NodePort"}, protocol="SCTP")
    await api.send(
        "POST", SLICES,
        _slice("assoc", "IPv4", [("10.200.1.2", "node-a"), ("10.200.2.2", "node-b")], "SCTP"),
    )  # fmt: skip
    vip = service["spec"]["clusterIP"]
    port = service["spec"]["ports"][0]["nodePort"]
    await until_serving(vip, f"-a --sctp-service {vip}:80 -r 10.200.2.2:8080")
    await until(lambda: f"--sctp-service {NODE_ADDRESS}:{port}" in ipvsadm())

    answers = {await asyncio.to_thread(_sctp_exchange, "client", vip, 80) for _ in range(6)}
    assert answers == {"pod-a 10.200.1.1", "pod-b 10.200.2.1"}  # round robin, masqueraded
    answer = await asyncio.to_thread(_sctp_exchange, "client", NODE_ADDRESS, port)
    assert answer in {"pod-a 10.200.1.1", "pod-b 10.200.2.1"}
