"""The disruption harness's traffic processes, on the host's loopback (no namespaces, no IPVS).

The counts the kernel tests rely on must be right on their own: a healthy server gives zero
everywhere; a server that goes away interrupts every long-lived connection, fails the new ones
and loses UDP datagrams; a backend declared gone turns its UDP answers into losses.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipvsd.testing.traffic import Flow, Generator, serve_argv


def _free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    tcp, udp = _free_port(socket.SOCK_STREAM), _free_port(socket.SOCK_DGRAM)
    process = subprocess.Popen(serve_argv("pod-a", tcp, udp))
    try:
        yield process, tcp, udp
    finally:
        process.kill()
        process.wait()


def _flows(tcp: int, udp: int) -> list[Flow]:
    return [
        Flow("long", "long", f"127.0.0.1:{tcp}", count=2, interval=0.05, timeout=1.0),
        Flow("new", "new", f"127.0.0.1:{tcp}", interval=0.05, timeout=1.0),
        Flow("udp", "udp", f"127.0.0.1:{udp}", interval=0.05, timeout=1.0, source_port=0),
    ]


async def _wait_listening(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise AssertionError("the pod server never listened")


@pytest.mark.timeout(60)
async def test_a_healthy_server_counts_nothing_and_names_its_backend(
    server: tuple[subprocess.Popen[bytes], int, int], tmp_path: Path
) -> None:
    _, tcp, udp = server
    await _wait_listening(tcp)
    generator = await Generator.start(None, _flows(tcp, udp), tmp_path / "log")
    assert await generator.ready()
    await asyncio.sleep(1.0)
    results = {r.name: r for r in await generator.stop()}
    for result in results.values():
        assert (result.interrupted, result.failed_new, result.udp_lost) == (0, 0, 0), result
        assert result.replies > 0
        assert set(result.backends) == {"pod-a"}


@pytest.mark.timeout(60)
async def test_a_server_that_goes_away_is_counted_everywhere(
    server: tuple[subprocess.Popen[bytes], int, int], tmp_path: Path
) -> None:
    process, tcp, udp = server
    await _wait_listening(tcp)
    generator = await Generator.start(None, _flows(tcp, udp), tmp_path / "log")
    assert await generator.ready()
    await generator.gone("pod-a")  # its UDP answers from now on count as lost
    await asyncio.sleep(0.3)
    process.kill()
    process.wait()
    await asyncio.sleep(1.5)
    results = {r.name: r for r in await generator.stop()}
    assert results["long"].interrupted == 2
    assert results["new"].failed_new > 0
    assert results["udp"].udp_gone > 0
    assert results["udp"].udp_lost > results["udp"].udp_gone  # and the unanswered ones


@pytest.mark.timeout(60)
async def test_a_leaving_backend_has_its_long_connections_closed_in_order(
    server: tuple[subprocess.Popen[bytes], int, int], tmp_path: Path
) -> None:
    """`leaving` (a pod's grace period ends): each long connection to it closes between two
    requests and reconnects, counted as left, never as interrupted."""
    _, tcp, udp = server
    await _wait_listening(tcp)
    generator = await Generator.start(None, _flows(tcp, udp), tmp_path / "log")
    assert await generator.ready()
    await generator.leaving("pod-a")
    await asyncio.sleep(0.5)
    results = {r.name: r for r in await generator.stop()}
    assert results["long"].left >= 2  # both, at least once (here they reconnect to it again)
    for result in results.values():
        assert (result.interrupted, result.failed_new, result.udp_lost) == (0, 0, 0), result
