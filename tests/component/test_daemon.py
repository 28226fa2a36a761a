"""The daemon's loop (`app.serve`) against the API emulator, over the fake kernel: it waits,
loudly, for a Node that does not exist, and SIGTERM stops it with 0, the table left in place.

The real daemon cannot run on the host tier's kernel (no IPVS; `test_operator_errors` checks
that it says so), so these drive the same code the real entry point runs after the kernel
checks: `until_signalled(serve(...))`; the last one runs the real entry point,
`ipvsd.__main__.main`, in a process of its own with `app.run` swapped for that loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable

import pytest

from ipvsd.config.settings import ProxyConfig
from ipvsd.dataplane.ipvs_fake import FakeIpvs
from ipvsd.testing.apiserver import ApiServer
from tests.component.apiserver_support import endpoint, endpoint_slice, node, service
from tests.component.daemon_support import daemon_task
from tests.component.informer_support import eventually

ECHO = ["-A -t 10.96.0.10:80 -s rr", "-a -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 1"]


@pytest.fixture
async def api() -> AsyncIterator[ApiServer]:
    async with ApiServer() as running:
        running.store.create(service("echo", clusterIP="10.96.0.10"))
        running.store.create(
            endpoint_slice("echo-1", "echo", [endpoint("10.244.1.5", node="node-a")])
        )
        yield running


def daemon(api: ApiServer, kernel: FakeIpvs) -> asyncio.Task[int]:
    return daemon_task(
        ProxyConfig(node_name="node-a", kubeconfig=str(api.kubeconfig_path)), ipvs=kernel
    )


async def reached(condition: Callable[[], bool]) -> None:
    await eventually(condition, within=60.0)  # generous: nothing here is a timing assertion


def table(kernel: FakeIpvs) -> list[str]:
    return [line for line in kernel.render().splitlines() if "10.96.0.10:" in line]


async def test_a_missing_node_is_logged_and_waited_for(
    api: ApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    kernel = FakeIpvs()
    running = daemon(api, kernel)
    try:
        await reached(lambda: any("not found in the API" in r.message for r in caplog.records))
        (warning,) = [r for r in caplog.records if "not found in the API" in r.message]
        assert warning.levelno == logging.WARNING
        assert warning.getMessage() == (
            "node 'node-a' not found in the API: nothing is programmed until it exists (set "
            "--hostname-override or NODE_NAME to this node's name as `kubectl get nodes` "
            "shows it)"
        )
        assert kernel.render() == ""
        api.store.create(node("node-a", zone="zone-a"))
        await reached(lambda: table(kernel) == ECHO)
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running


async def test_sigterm_stops_with_0_and_leaves_the_table(
    api: ApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    api.store.create(node("node-a", zone="zone-a"))
    kernel = FakeIpvs()
    running = daemon(api, kernel)
    await reached(lambda: table(kernel) == ECHO)
    os.kill(os.getpid(), signal.SIGTERM)
    assert await running == 0
    assert table(kernel) == ECHO
    assert (
        "SIGTERM: shutting down; IPVS, the addresses on kube-ipvs0 and the nftables table stay "
        "as programmed"
    ) in caplog.messages


OVER_FAKES = """
import sys

import ipvsd.__main__ as entry
from ipvsd.app import serve
from ipvsd.dataplane.addresses import FakeAddresses
from ipvsd.dataplane.ipvs_fake import FakeIpvs
from ipvsd.kube.auth import load_credentials
from ipvsd.server.health import ProxyHealth
from ipvsd.server.metrics import ProxyMetrics


class NullFirewall:
    async def apply(self, firewall):
        return True

    async def update(self, changes):
        return None


async def run_over_fakes(config):
    return await serve(
        config,
        credentials=load_credentials(kubeconfig=config.kubeconfig),
        ipvs=FakeIpvs(),
        addresses=FakeAddresses(),
        firewall=NullFirewall(),
        health=ProxyHealth(sync_period=config.ipvs_sync_period),
        metrics=ProxyMetrics(),
    )


entry.run = run_over_fakes
sys.exit(entry.main())
"""


async def test_sigterm_ends_the_real_entry_point_with_0(api: ApiServer) -> None:
    api.store.create(node("node-a", zone="zone-a"))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        OVER_FAKES,
        "--kubeconfig",
        str(api.kubeconfig_path),
        "--hostname-override",
        "node-a",
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    said = []
    while not any("informers synced; programming node node-a" in line for line in said):
        line = (await process.stderr.readline()).decode()
        assert line, f"ended before it programmed: {said}"
        said.append(line)
    process.send_signal(signal.SIGTERM)
    rest = (await process.stderr.read()).decode()
    assert await process.wait() == 0
    assert (
        "SIGTERM: shutting down; IPVS, the addresses on kube-ipvs0 and the nftables table " in rest
    )
    assert "Traceback" not in rest
