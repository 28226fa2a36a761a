"""Shared pieces of the API emulator's tests: object builders and a small raw HTTP client.

The raw client (aiohttp) is for assertions on the wire: status codes, Status bodies, headers,
the exact watch lines. The official client and kubectl have their own test module.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from ipvsd.testing.apiserver import ApiServer

Json = Any
SERVICES = "/api/v1/namespaces/default/services"
SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"


def service(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    spec.setdefault("ports", [{"port": 80, "targetPort": 8080}])
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def endpoint(
    ip: str, *, node: str | None = None, zone: str | None = None, ready: bool | None = True
) -> dict[str, Any]:
    result: dict[str, Any] = {"addresses": [ip], "conditions": {}}
    if ready is not None:
        result["conditions"]["ready"] = ready
    if node is not None:
        result["nodeName"] = node
    if zone is not None:
        result["zone"] = zone
    return result


def endpoint_slice(
    name: str,
    service_name: str,
    endpoints: list[dict[str, Any]],
    *,
    address_type: str = "IPv4",
    **labels: str,
) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": service_name, **labels},
        },
        "addressType": address_type,
        "endpoints": endpoints,
        "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
    }


def node(
    name: str, *, zone: str, cpu: str = "4", ready: bool = True, **labels: str
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone, **labels}},
        "status": {
            "allocatable": {"cpu": cpu},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


class Api:
    """Raw HTTP against the emulator with its bearer token (or another, or none)."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def request(
        self,
        method: str,
        path: str,
        body: Json = None,
        *,
        content_type: str = "application/json",
        **params: Any,
    ) -> tuple[int, Json, dict[str, str]]:
        data = (
            None
            if body is None
            else (body if isinstance(body, bytes) else json.dumps(body).encode())
        )
        query = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()}
        async with self.session.request(
            method,
            self.base + path,
            data=data,
            params=query,
            headers={"Content-Type": content_type},
        ) as response:
            raw = await response.read()
            try:
                decoded = json.loads(raw) if raw else None
            except ValueError:
                decoded = raw.decode()
            return response.status, decoded, dict(response.headers)

    async def get(self, path: str, **params: Any) -> tuple[int, Json]:
        status, body, _ = await self.request("GET", path, **params)
        return status, body

    async def post(self, path: str, body: Json, **params: Any) -> tuple[int, Json]:
        status, answer, _ = await self.request("POST", path, body, **params)
        return status, answer

    async def put(self, path: str, body: Json) -> tuple[int, Json]:
        status, answer, _ = await self.request("PUT", path, body)
        return status, answer

    async def patch(self, path: str, body: Json, kind: str = "merge") -> tuple[int, Json]:
        media = {
            "merge": "application/merge-patch+json",
            "strategic": "application/strategic-merge-patch+json",
            "json": "application/json-patch+json",
        }.get(kind, kind)
        status, answer, _ = await self.request("PATCH", path, body, content_type=media)
        return status, answer

    async def delete(self, path: str, body: Json = None) -> tuple[int, Json]:
        status, answer, _ = await self.request("DELETE", path, body)
        return status, answer

    async def watch(
        self, path: str, *, count: int | None = None, seconds: float = 5.0, **params: Any
    ) -> list[Json]:
        """Events of a watch until it ends, `count` events arrived, or `seconds` passed."""
        events: list[Json] = []
        async with self.session.get(
            self.base + path,
            params={
                "watch": "true",
                **{k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()},
            },
        ) as response:
            assert response.status == 200, await response.text()
            assert response.headers["Content-Type"].startswith("application/json")
            try:
                async with asyncio.timeout(seconds):
                    async for line in response.content:
                        events.append(json.loads(line))
                        if count is not None and len(events) >= count:
                            break
            except TimeoutError:
                pass
        return events

    @asynccontextmanager
    async def stream(self, path: str, **params: Any) -> AsyncIterator[aiohttp.ClientResponse]:
        """An open watch response, for tests that act while it runs."""
        query = {
            "watch": "true",
            **{k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()},
        }
        async with self.session.get(self.base + path, params=query) as response:
            assert response.status == 200
            yield response


async def next_event(response: aiohttp.ClientResponse, within: float = 5.0) -> Json:
    async with asyncio.timeout(within):
        line = await response.content.readline()
    assert line, "the watch ended"
    return json.loads(line)


@asynccontextmanager
async def api_for(server: ApiServer, token: str | None = "server") -> AsyncIterator[Api]:
    headers = {}
    if token == "server":
        headers["Authorization"] = f"Bearer {server.token}"
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    connector = aiohttp.TCPConnector(ssl=server.client_ssl_context())  # HTTPS, verified
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        yield Api(session, server.url)


def status_of(body: Json) -> tuple[int, str]:
    """(code, reason) of a Status body, checking its shape on the way."""
    assert body["kind"] == "Status", body
    assert body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert isinstance(body["message"], str)
    assert body["message"]
    return body["code"], body["reason"]
