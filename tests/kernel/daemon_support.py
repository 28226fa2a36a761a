"""Running the whole daemon in the VM against the API emulator, for end-to-end tests.

The VM's root namespace is node `node-a`; `Lab` namespaces are its pods (`pod-a` 10.200.1.2,
`pod-b` 10.200.2.2) and an outside client (`client` 10.200.3.2, whose gateway 10.200.3.1 is
one of the node's addresses, so NodePorts are reached there).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import yaml

from ipvsd.app import run
from ipvsd.config.command_line import parse_args
from ipvsd.testing.apiserver import ApiServer
from ipvsd.testing.netns import Lab, lab

NODE_ADDRESS = "10.200.3.1"  # the node as the client sees it
SERVICES = "/api/v1/namespaces/default/services"
SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"


class Api:
    """Just enough of a client to play the Service and EndpointSlice controllers."""

    def __init__(self, server: ApiServer) -> None:
        config = yaml.safe_load(server.kubeconfig_path.read_text())
        token = config["users"][0]["user"]["token"]
        self._headers = {"Authorization": f"Bearer {token}"}
        self._url = server.url
        self._ssl = server.client_ssl_context()  # the emulator serves HTTPS with its own CA

    async def send(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One request; a connection reset is tried once more. The emulator shares the event
        loop with the daemon under test, and one run saw a fresh connection reset while the
        daemon started a watch. A create that had landed before the reset answers the retry
        with 409: the object is then read back."""
        try:
            return await self._send(method, path, body)
        except aiohttp.ClientOSError:
            answer = await self._send(method, path, body, conflict_ok=method == "POST")
        if answer is None and body is not None:  # the first attempt's create had landed
            return await self._send("GET", f"{path}/{body['metadata']['name']}", None)
        return answer

    async def _send(
        self, method: str, path: str, body: dict[str, Any] | None, *, conflict_ok: bool = False
    ) -> Any:
        connector = aiohttp.TCPConnector(ssl=self._ssl)
        async with (
            aiohttp.ClientSession(headers=self._headers, connector=connector) as session,
            session.request(method, self._url + path, json=body) as response,
        ):
            if conflict_ok and response.status == 409:
                return None
            assert response.status < 300, await response.text()
            return await response.json()


def endpoint_slice(service: str, endpoints: list[tuple[str, str]]) -> dict[str, Any]:
    """An EndpointSlice for `service` with (address, node) endpoints on port `http` 8080."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": f"{service}-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
        "endpoints": [
            {"addresses": [a], "nodeName": node, "conditions": {"ready": True}}
            for a, node in endpoints
        ],
    }  # fmt: skip


def slice_for(addresses: list[str]) -> dict[str, Any]:
    return endpoint_slice("web", [(a, "node-a") for a in addresses])


def ipvsadm() -> str:
    return subprocess.run(["ipvsadm", "-Sn"], check=True, capture_output=True, text=True).stdout


def bound_on_dummy() -> str:
    return subprocess.run(
        ["ip", "-br", "addr", "show", "kube-ipvs0"], capture_output=True, text=True, check=False
    ).stdout


async def until_serving(vip: str, line: str) -> None:
    """Until `line` is in IPVS and `vip` is bound: what a client needs. ipvsd binds a new VIP
    last, once its filter and its virtual servers exist, so the rule alone is not enough."""
    await until(lambda: line in ipvsadm() and f" {vip}/" in bound_on_dummy())


async def until(check: Callable[[], bool], seconds: float = 20.0) -> None:
    for _ in range(int(seconds * 10)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not reached in {seconds}s; table:\n{ipvsadm()}")


@contextlib.asynccontextmanager
async def running_daemon(
    *extra_flags: str, service_cidr_v6: str | None = None
) -> AsyncIterator[tuple[Api, Lab]]:
    """The emulator with Node `node-a`, the lab namespaces, and ipvsd running for node-a.

    `service_cidr_v6` gives the emulator an IPv6 Service range too (dual-stack clusters)."""
    subprocess.run(["modprobe", "ip_vs"], check=True)
    subprocess.run(["ipvsadm", "-C"], check=True)
    with lab() as net:
        for name in ("pod-a", "pod-b"):
            net.serve(name, net.add_namespace(name), 8080)
        net.add_namespace("client")
        async with ApiServer(service_cidr_v6=service_cidr_v6) as server:
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
                    *extra_flags,
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
