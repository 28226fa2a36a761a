"""The netlink adapter on the real kernel, beyond the shared contract: chunked batches,
the compiled dump layout, and counters produced by real traffic."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from ipaddress import IPv4Address

import pytest

from ipvsd.dataplane import ipvs_wire as wire
from ipvsd.dataplane.errors import DestinationExists, ServiceNotFound
from ipvsd.dataplane.genl import CHUNK_BYTES
from ipvsd.dataplane.ipvs_layout import learn_dest_layout
from ipvsd.dataplane.ipvs_netlink import NetlinkIpvs
from ipvsd.model.ipvs import (
    AddRealServer,
    AddService,
    DeleteService,
    ObservedVirtualServer,
    Operation,
    RealServer,
    ServiceKey,
    VirtualServer,
)
from ipvsd.testing.netns import http_get, lab

pytestmark = pytest.mark.kernel


@pytest.fixture
async def ipvs() -> AsyncIterator[NetlinkIpvs]:
    subprocess.run(["modprobe", "ip_vs"], check=True)
    subprocess.run(["ipvsadm", "-C"], check=True)
    adapter = await NetlinkIpvs.open()
    yield adapter
    await adapter.close()
    subprocess.run(["ipvsadm", "-C"], check=True)


async def test_batch_spanning_many_chunks_reports_each_failure_at_its_own_index(
    ipvs: NetlinkIpvs,
) -> None:
    ops: list[Operation] = []
    expected: dict[int, type[Exception]] = {}

    def add(op: Operation, fails_with: type[Exception] | None = None) -> None:
        if fails_with is not None:
            expected[len(ops)] = fails_with
        ops.append(op)

    for n in range(70):
        key = ServiceKey.tcp(IPv4Address("10.10.0.1") + n, 80)
        missing = n % 7 == 3  # never created: each of its destinations fails with ESRCH
        if not missing:
            add(AddService(VirtualServer(key, "rr")))
        for d in range(100):
            dest = RealServer.of("10.20.0.1", 8000 + d)
            add(AddRealServer(key, dest), ServiceNotFound if missing else None)
        if not missing:
            add(AddRealServer(key, RealServer.of("10.20.0.1", 8000)), DestinationExists)
    assert len(b"".join(wire.Encoder().encode(op) for op in ops)) > 3 * CHUNK_BYTES

    result = await ipvs.apply(ops)

    assert {i: type(e) for i, e in enumerate(result.errors) if e is not None} == expected
    table = await ipvs.dump()
    assert len(table) == len([n for n in range(70) if n % 7 != 3])
    assert all(len(s.real_servers) == 100 for s in table)


async def test_kernel_destination_messages_fit_the_compiled_fast_layout(ipvs: NetlinkIpvs) -> None:
    """The dump speed relies on this; a kernel whose layout is not learned would be slow."""
    key = ServiceKey.tcp("10.10.0.1", 80)
    dest = RealServer.of("10.20.0.1", 80, 3)
    (
        await ipvs.apply([AddService(VirtualServer(key, "wrr")), AddRealServer(key, dest)])
    ).raise_first()
    sock = ipvs._sock
    replies = sock.request(ipvs._family, wire.encode_dump_dests(key), dump=True)
    assert len(replies) == 1
    layout = learn_dest_layout(bytes(replies[0]))
    assert layout is not None
    assert layout.read(bytes(replies[0]), 2) == wire.decode_dest(replies[0], 2)


async def counters_settled(
    ipvs: NetlinkIpvs, key: ServiceKey, *, connections: int
) -> ObservedVirtualServer | None:
    """The service once its counters show `connections` (or after 20 s, whatever they show).

    The kernel keeps counters per CPU and folds them into what a dump reports from its rate
    estimator, every 2 s: right after traffic, a dump may still show older totals. Under an
    emulated CPU shared with other work the estimator's timer runs late, hence the margin.
    """
    observed = None
    for _ in range(200):
        observed = await ipvs.dump_service(key)
        if observed is not None and observed.stats.connections >= connections:
            break
        await asyncio.sleep(0.1)
    return observed


async def test_dump_reports_connections_packets_and_bytes_of_real_traffic(
    ipvs: NetlinkIpvs,
) -> None:
    # A VIP no other test uses: a real server deleted with connections waits in the kernel's
    # trash for minutes, and re-adding the same one (same VIP, port, address) restores it
    # with its old counters, which would count another test's connections here.
    vip = "10.96.200.10"
    key = ServiceKey.tcp(vip, 80)
    with lab() as net:
        backend = net.add_namespace("backend")
        net.add_namespace("client")
        net.serve("backend", backend, 8080)
        net.bind_vip(vip)
        dest = RealServer.of(backend, 8080)
        ops = [AddService(VirtualServer(key, "rr")), AddRealServer(key, dest)]
        (await ipvs.apply(ops)).raise_first()
        replies = [http_get("client", vip, 80) for _ in range(3)]
        observed = await counters_settled(ipvs, key, connections=3)

    assert replies == ["backend 10.200.2.2"] * 3  # NAT keeps the client's source address
    assert observed is not None
    (seen,) = observed.real_servers
    assert seen.stats.connections == 3
    assert seen.stats.packets_in >= 3 * 4
    assert seen.stats.packets_out >= 3 * 4
    assert seen.stats.bytes_in > 0
    assert seen.stats.bytes_out > seen.stats.bytes_in
    assert seen.active_connections + seen.inactive_connections == 3
    assert observed.stats.connections == 3
    await ipvs.apply([DeleteService(key)])
