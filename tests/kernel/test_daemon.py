"""The whole daemon in the VM: API emulator → informers → syncer → real IPVS, real packets.

The VM's root namespace is node `node-a`; namespaces are its pods and an outside client. The
Service and its EndpointSlice are created over HTTP, as a controller would; ipvsd runs with
kube-proxy's flags and a one-second sync period so periodic full syncs happen during the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import yaml

from ipvsd.app import run
from ipvsd.cli import parse_args
from ipvsd.testing.apiserver import ApiServer
from ipvsd.testing.netns import Lab, http_get, lab

pytestmark = pytest.mark.kernel


class Api:
    """Just enough of a client to play the Service and EndpointSlice controllers."""

    def __init__(self, server: ApiServer) -> None:
        config = yaml.safe_load(server.kubeconfig_path.read_text())
        token = config["users"][0]["user"]["token"]
        self._headers = {"Authorization": f"Bearer {token}"}
        self._url = server.url

    async def send(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with (
            aiohttp.ClientSession(headers=self._headers) as session,
            session.request(method, self._url + path, json=body) as response,
        ):
            assert response.status < 300, await response.text()
            return await response.json()


def slice_for(addresses: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "web-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
        "endpoints": [
            {"addresses": [a], "nodeName": "node-a", "conditions": {"ready": True}}
            for a in addresses
        ],
    }  # fmt: skip


def ipvsadm() -> str:
    return subprocess.run(["ipvsadm", "-Sn"], check=True, capture_output=True, text=True).stdout


def bound_on_dummy() -> str:
    return subprocess.run(
        ["ip", "-br", "addr", "show", "kube-ipvs0"], capture_output=True, text=True, check=False
    ).stdout


async def until(check: Callable[[], bool], seconds: float = 20.0) -> None:
    for _ in range(int(seconds * 10)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not reached in {seconds}s; table:\n{ipvsadm()}")


@pytest.fixture
async def cluster() -> AsyncIterator[tuple[Api, Lab]]:
    subprocess.run(["modprobe", "ip_vs"], check=True)
    subprocess.run(["ipvsadm", "-C"], check=True)
    with lab() as net:
        for name in ("pod-a", "pod-b"):
            net.serve(name, net.add_namespace(name), 8080)
        net.add_namespace("client")
        async with ApiServer() as server:
            api = Api(server)
            await api.send("POST", "/api/v1/nodes", {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": "node-a", "labels": {"topology.kubernetes.io/zone": "zone-a"}},
            })  # fmt: skip
            flags = parse_args(
                [
                    f"--kubeconfig={server.kubeconfig_path}",
                    "--hostname-override=node-a",
                    "--cluster-cidr=10.200.1.0/24",
                    "--ipvs-sync-period=1s",
                    "--healthz-bind-address=127.0.0.1:10256",
                    "--metrics-bind-address=127.0.0.1:10249",
                ],
                environ={},
            )
            daemon = asyncio.create_task(run(flags.config))
            try:
                yield api, net
            finally:
                daemon.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await daemon
    subprocess.run(["ipvsadm", "-C"], check=False)
    subprocess.run(["nft", "delete", "table", "inet", "ipvsd"], check=False, capture_output=True)
    subprocess.run(["ip", "link", "del", "kube-ipvs0"], check=False, capture_output=True)


async def test_the_daemon_programs_services_from_the_api_and_keeps_foreign_entries(
    cluster: tuple[Api, Lab],
) -> None:
    api, _net = cluster
    subprocess.run(["ipvsadm", "-A", "-t", "10.0.0.1:80", "-s", "wlc"], check=True)  # foreign
    service = await api.send("POST", "/api/v1/namespaces/default/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    })  # fmt: skip
    vip = service["spec"]["clusterIP"]
    await api.send("POST", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
                   slice_for(["10.200.1.2"]))  # fmt: skip
    await until(lambda: "-r 10.200.1.2:8080" in ipvsadm())
    assert http_get("client", vip, 80).startswith("pod-a ")

    await api.send("PUT", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/web-1",
                   slice_for(["10.200.1.2", "10.200.2.2"]))  # fmt: skip
    await until(lambda: "-r 10.200.2.2:8080" in ipvsadm())
    answers = {http_get("client", vip, 80).split()[0] for _ in range(4)}
    assert answers == {"pod-a", "pod-b"}

    await asyncio.sleep(2.5)  # at least two periodic full syncs
    assert "-A -t 10.0.0.1:80 -s wlc" in ipvsadm()

    async with aiohttp.ClientSession() as session:
        async with session.get("http://127.0.0.1:10256/healthz") as response:
            assert response.status == 200
            assert (await response.json())["nodeEligible"] is True
        async with session.get("http://127.0.0.1:10249/metrics") as response:
            assert "kubeproxy_sync_proxy_rules_duration_seconds_bucket" in await response.text()

    await api.send("DELETE", "/api/v1/namespaces/default/services/web")
    await until(lambda: vip not in ipvsadm())
    await until(lambda: f"{vip}/32" not in bound_on_dummy())  # unbound after the IPVS change
    assert "-A -t 10.0.0.1:80 -s wlc" in ipvsadm()
