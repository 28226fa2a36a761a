"""The bounded drain of a removed pod's TCP real server, through the daemon, on the real kernel.

A long-lived connection to a pod whose endpoint is removed keeps exchanging data while its
real server sits at weight 0; new connections go elsewhere; the real server is deleted once
its connections are gone (here: the client resets it, leaving the kernel's 10 s CLOSE entry)
or once `--ipvs-drain-timeout` has passed, whichever comes first.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ipvsd.testing.netns import Lab, entered
from tests.kernel.daemon_support import (
    SERVICES,
    SLICES,
    Api,
    bound_on_dummy,
    ipvsadm,
    running_daemon,
    until,
)

pytestmark = pytest.mark.kernel

POD_A, POD_B = "10.200.1.2", "10.200.2.2"
ECHO_PORT = 7070


def echo_server(namespace: str, address: str) -> None:
    """Answer every message on address:7070 with `<namespace> <message>`, per connection."""
    with entered(namespace):
        listener = socket.create_server((address, ECHO_PORT))

    def talk(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(512):
                    conn.sendall(namespace.encode() + b" " + data)
            except OSError:
                pass  # the client reset the connection

    def accept() -> None:
        with listener:
            while True:
                conn, _ = listener.accept()
                threading.Thread(target=talk, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()


def echo_slice(address: str) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "echo-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "echo"}},
        "addressType": "IPv4",
        "ports": [{"name": "echo", "protocol": "TCP", "port": ECHO_PORT}],
        "endpoints": [{"addresses": [address], "nodeName": "node-a",
                       "conditions": {"ready": True}}],
    }  # fmt: skip


def connect(vip: str) -> socket.socket:
    with entered("client"):
        return socket.create_connection((vip, 80), timeout=3.0)


def exchange(conn: socket.socket, message: str) -> str:
    conn.sendall(message.encode())
    return conn.recv(512).decode()


def reset(conn: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0): IPVS moves the entry to CLOSE (10 s), not TIME_WAIT
    (2 min), so the test sees the real server's connection count reach 0 soon."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def served_by_new_connection(vip: str) -> str:
    conn = connect(vip)
    try:
        return exchange(conn, "new").split()[0]
    finally:
        reset(conn)


def real_server(address: str) -> str | None:
    """The `-a` line of the real server at `address`, None when it is not in the table."""
    found = [line for line in ipvsadm().splitlines() if f"-r {address}:{ECHO_PORT} " in line]
    return found[0] if found else None


@pytest.fixture
async def echo(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Api, Lab, str]]:
    """The daemon with `--ipvs-drain-timeout=<param>`, Service `echo` (port 80 → 7070) served
    by pod-a, and echo servers in pod-a and pod-b."""
    async with running_daemon(f"--ipvs-drain-timeout={request.param}") as (api, net):
        # The daemon shares this event loop; its start (module loading, the first sync) can
        # hold it long on a fresh emulated VM, long enough to time out an API request sent
        # meanwhile. kube-ipvs0 appears with the first full sync: past that, it is quick.
        await until(lambda: bool(bound_on_dummy()), seconds=120)
        echo_server("pod-a", POD_A)
        echo_server("pod-b", POD_B)
        service = await api.send("POST", SERVICES, {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"},
            "spec": {"ports": [{"name": "echo", "protocol": "TCP", "port": 80,
                                "targetPort": ECHO_PORT}]},
        })  # fmt: skip
        vip = service["spec"]["clusterIP"]
        await api.send("POST", SLICES, echo_slice(POD_A))
        line = f"-a -t {vip}:80 -r {POD_A}:{ECHO_PORT} -m -w 1"
        await until(lambda: line in ipvsadm() and f" {vip}/" in bound_on_dummy(), seconds=120)
        yield api, net, vip


async def move_echo_to_pod_b(api: Api) -> None:
    """pod-a's endpoint goes, pod-b's comes: until the table shows pod-a draining."""
    await api.send("PUT", f"{SLICES}/echo-1", echo_slice(POD_B))
    await until(
        lambda: (real_server(POD_A) or "").endswith(" -w 0") and bool(real_server(POD_B)),
        seconds=60,
    )


@pytest.mark.parametrize("echo", ["10m"], indirect=True)
async def test_a_draining_connection_keeps_talking_and_its_pod_goes_when_it_ends(
    echo: tuple[Api, Lab, str],
) -> None:
    api, _net, vip = echo
    long_lived = await asyncio.to_thread(connect, vip)
    try:
        assert await asyncio.to_thread(exchange, long_lived, "hello") == "pod-a hello"
        await move_echo_to_pod_b(api)
        assert await asyncio.to_thread(exchange, long_lived, "still") == "pod-a still"
        fresh = [await asyncio.to_thread(served_by_new_connection, vip) for _ in range(4)]
        assert fresh == ["pod-b"] * 4  # weight 0: no new connection reaches pod-a
        await asyncio.sleep(3)  # several syncs (every 1 s here) leave the drain alone
        assert (real_server(POD_A) or "").endswith(" -w 0")
        assert await asyncio.to_thread(exchange, long_lived, "again") == "pod-a again"
    finally:
        reset(long_lived)
    # The bound is 10 minutes: only the end of the connection can remove it now.
    await until(lambda: real_server(POD_A) is None, seconds=60)
    assert real_server(POD_B) is not None


@pytest.mark.parametrize("echo", ["5s"], indirect=True)
async def test_a_drain_ends_at_its_bound_even_with_a_live_connection(
    echo: tuple[Api, Lab, str],
) -> None:
    api, _net, vip = echo
    long_lived = await asyncio.to_thread(connect, vip)
    try:
        assert await asyncio.to_thread(exchange, long_lived, "hello") == "pod-a hello"
        await move_echo_to_pod_b(api)
        assert await asyncio.to_thread(exchange, long_lived, "still") == "pod-a still"
        await until(lambda: real_server(POD_A) is None, seconds=60)
        # Deleted with its connection still open; vs/expire_nodest_conn=1 ends it on its next
        # packet (dropped, then refused by the host), which the client sees as an error.
        with pytest.raises((ConnectionResetError, TimeoutError)):
            await asyncio.to_thread(exchange, long_lived, "gone?")
    finally:
        long_lived.close()
    assert await asyncio.to_thread(served_by_new_connection, vip) == "pod-b"
