"""The daemon's loop (`app.serve`) over the fake kernel, as the component tests start it.

The real daemon cannot run on the host tier's kernel (no IPVS), so these tests drive the code
the entry point runs after its kernel checks: `until_signalled(serve(...))`, with the fake IPVS
kernel and addresses and no firewall unless a test brings its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict, Unpack

from ipvsd.app import serve, until_signalled
from ipvsd.config.settings import ProxyConfig
from ipvsd.dataplane.addresses import Addresses, FakeAddresses
from ipvsd.dataplane.ipvs import Ipvs
from ipvsd.dataplane.ipvs_fake import FakeIpvs
from ipvsd.kube.auth import load_credentials
from ipvsd.model.firewall import Firewall, FirewallChanges
from ipvsd.model.ipvs import parse_address
from ipvsd.reconcile.firewall_isolation import FirewallPort
from ipvsd.server.health import ProxyHealth
from ipvsd.server.metrics import ProxyMetrics

NODE_HOST = (parse_address("192.168.1.10"), "eth0")  # node-a's InternalIP in these tests


class NullFirewall:
    """A firewall that accepts everything and keeps nothing (the tests look at IPVS)."""

    async def apply(self, firewall: Firewall) -> bool:
        return True

    async def update(self, changes: FirewallChanges) -> None:
        return None

    async def check(self, firewall: Firewall) -> str | None:
        return None


class Parts(TypedDict, total=False):
    """What a test may bring instead of a fresh fake."""

    ipvs: Ipvs
    addresses: Addresses
    firewall: FirewallPort
    health: ProxyHealth
    metrics: ProxyMetrics


def daemon_task(config: ProxyConfig, **parts: Unpack[Parts]) -> asyncio.Task[int]:
    """The daemon running until signalled or cancelled; parts not given are fresh fakes."""
    running = serve(
        config,
        credentials=load_credentials(kubeconfig=config.kubeconfig),
        ipvs=parts["ipvs"] if "ipvs" in parts else FakeIpvs(),
        addresses=parts["addresses"] if "addresses" in parts else FakeAddresses(host=[NODE_HOST]),
        firewall=parts["firewall"] if "firewall" in parts else NullFirewall(),
        health=parts["health"]
        if "health" in parts
        else ProxyHealth(sync_period=config.ipvs_sync_period),
        metrics=parts["metrics"] if "metrics" in parts else ProxyMetrics(),
    )
    return asyncio.ensure_future(until_signalled(running))


@asynccontextmanager
async def running_daemon(
    config: ProxyConfig, **parts: Unpack[Parts]
) -> AsyncIterator[asyncio.Task[int]]:
    """`daemon_task` for the block's duration, cancelled and awaited after it."""
    task = daemon_task(config, **parts)
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
