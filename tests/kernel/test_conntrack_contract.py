"""The ctnetlink adapter against the shared conntrack contract, entries made by `conntrack -I`.

The same suite runs against the in-memory fake (tests/component), so the fake the cleanup's
host tests use keeps the kernel's rules: filtered dumps per family and protocol, deletion of
exact entries, gone and replaced entries skipped.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator

import pytest

from ipvsd.dataplane.conntrack import NetlinkConntrack
from ipvsd.model.ipvs import Protocol
from ipvsd.model.tracked_flow import TrackedFlow
from tests.contract.conntrack_contract import ConntrackContract, Track

pytestmark = pytest.mark.kernel

TEST_PORTS = ("12345", "23456")  # the contract's client ports: only its own entries are flushed


def flush_test_entries() -> None:
    for family in ("ipv4", "ipv6"):
        for port in TEST_PORTS:
            for protocol in ("udp", "tcp"):
                subprocess.run(
                    ["conntrack", "-D", "-f", family, "-p", protocol, "--orig-port-src", port],
                    capture_output=True, check=False,
                )  # fmt: skip


async def insert(flow: TrackedFlow) -> None:
    (o_src, o_dst), (r_src, r_dst) = flow.original, flow.reply
    command = [
        "conntrack", "-I", "-p", Protocol(flow.protocol).name.lower(),  # the family: from -s
        "-s", str(o_src.address), "-d", str(o_dst.address),
        "--sport", str(o_src.port), "--dport", str(o_dst.port),
        "-r", str(r_src.address), "-q", str(r_dst.address),
        "--reply-port-src", str(r_src.port), "--reply-port-dst", str(r_dst.port),
        "-t", "120",
    ]  # fmt: skip
    if flow.protocol == Protocol.TCP:
        command += ["--state", "ESTABLISHED"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


class TestNetlinkConntrack(ConntrackContract):
    @pytest.fixture
    async def conntrack(self) -> AsyncIterator[NetlinkConntrack]:
        subprocess.run(["modprobe", "nf_conntrack"], check=True)
        flush_test_entries()
        adapter = NetlinkConntrack()
        yield adapter
        await adapter.close()
        flush_test_entries()

    @pytest.fixture
    def track(self) -> Track:
        return insert
