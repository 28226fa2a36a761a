"""Shared pieces of the informer component tests: the emulator, running informers, objects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from ipvsd.kube.auth import load_credentials
from ipvsd.kube.client import ApiClient
from ipvsd.kube.proxy_informers import ProxyInformers
from ipvsd.kube.watch import BackoffPolicy, ListMode, Sleep, WatchSettings
from ipvsd.testing.apiserver import ApiServer

FAST_BACKOFF = BackoffPolicy(initial=0.02, maximum=0.2, jitter=0.5)


def fast_settings(mode: ListMode = ListMode.AUTO) -> WatchSettings:
    return WatchSettings(
        mode=mode, timeout_range=(30, 60), initial_events_idle=2.0, backoff=FAST_BACKOFF
    )


@asynccontextmanager
async def emulator(**options: Any) -> AsyncIterator[ApiServer]:
    options.setdefault("bookmark_interval", 0.2)
    async with ApiServer(**options) as server:
        yield server


@asynccontextmanager
async def running(
    server: ApiServer,
    *,
    node_name: str = "node-a",
    mode: ListMode = ListMode.AUTO,
    watch_all_nodes: bool = False,
    sleep: Sleep = asyncio.sleep,
    synced: bool = True,
) -> AsyncIterator[ProxyInformers]:
    """ProxyInformers against `server`, running; unless told not to wait, synced and with every
    watch open (a test that drops watches right after the lists would otherwise race them)."""
    client = ApiClient(credentials=load_credentials(kubeconfig=str(server.kubeconfig_path)))
    informers = ProxyInformers(
        client=client,
        node_name=node_name,
        watch_all_nodes=watch_all_nodes,
        settings=fast_settings(mode),
        sleep=sleep,
    )
    task = asyncio.create_task(informers.run())
    try:
        if synced:
            async with asyncio.timeout(5):
                await informers.synced.wait()
            watches = sum(len(informer.watches) for informer in informers.all)
            await eventually(lambda: len(server.storage.subscriptions()) >= watches)
        yield informers
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()


class Recorder:
    """A handler that writes down each call as a short line: `add default/web`."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @staticmethod
    def _key(value: Any) -> str:
        if hasattr(value, "ref"):
            return str(value.ref)
        if hasattr(value, "namespace"):
            return f"{value.namespace}/{value.name}"
        return str(value.name)

    def on_add(self, new: Any) -> None:
        self.calls.append(f"add {self._key(new)}")

    def on_update(self, old: Any, new: Any) -> None:
        self.calls.append(f"update {self._key(new)}")

    def on_delete(self, old: Any) -> None:
        self.calls.append(f"delete {self._key(old)}")


async def eventually(check: Callable[[], bool], *, within: float = 3.0) -> None:
    """Wait until `check()` holds (the informers run on the same loop)."""
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - polling the store is what the tests observe
            await asyncio.sleep(0.01)


async def settle(seconds: float = 0.3) -> None:
    """Give in-flight events time to arrive when checking that something did NOT happen."""
    await asyncio.sleep(seconds)


PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"
KUBERNETES = "default/kubernetes"  # the API server's own Service and EndpointSlice
HEADLESS_LABEL = "service.kubernetes.io/headless"


def service(
    name: str, *, port: int = 80, labels: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"namespace": "default", "name": name, "labels": labels or {}},
        "spec": {"ports": [{"name": "http", "port": port, "protocol": "TCP"}], **spec},
    }


def endpoint_slice(
    name: str,
    service_name: str,
    *addresses: str,
    labels: dict[str, str] | None = None,
    ready: bool = True,
) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "namespace": "default",
            "name": name,
            "labels": {"kubernetes.io/service-name": service_name, **(labels or {})},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [address], "conditions": {"ready": ready}, "nodeName": "node-a"}
            for address in addresses
        ],
    }


def node(name: str, zone: str = "zone-a", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone}},
        "spec": spec,
    }
