"""Per-Service health checks on `spec.healthCheckNodePort` (LoadBalancer, eTP=Local).

A cloud load balancer probes every node on the Service's health check node port and sends
traffic only to nodes that answer 200, which kube-proxy gives iff the node has a local Ready
endpoint for the Service and the proxy itself is healthy (its node eligibility does not
count here). Any path and method is answered; the body, the headers (including
`X-Load-Balancing-Endpoint-Weight`, the local endpoint count) and the status are kube-proxy's
(`pkg/proxy/healthcheck/service_health.go`).

`sync()` makes the open listeners match a mapping: new Services get a listener, removed ones
lose it, a changed port is moved, and endpoint counts change without touching listeners. A
port that cannot be bound (another process holds it) is logged and tried again on the next
sync; it never stops the others or raises. All listeners share one aiohttp server, which
tells Services apart by the local port a request arrived on.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from aiohttp import web

from ipvsd.model.service import ServiceRef
from ipvsd.server.http import SHUTDOWN_GRACE

log = logging.getLogger(__name__)

ServiceHealthMapping = Mapping[ServiceRef, tuple[int, int]]
"""Service → (its healthCheckNodePort, its local Ready endpoints on this node)."""


class Unchanged(enum.Enum):
    """`sync(hosts=KEEP)`: listen where the listeners already listen."""

    KEEP = "keep"


KEEP = Unchanged.KEEP


@dataclass(slots=True)
class _Listener:
    port: int
    sites: list[web.TCPSite] = field(default_factory=list)


class ServiceHealthServers:
    """The health check listeners of every eTP=Local LoadBalancer Service on this node.

    `proxy_healthy` is asked on every request (normally `ProxyHealth.is_healthy`). `hosts` are
    the addresses to listen on; None means every address of both families, as kube-proxy does
    unless `--nodeport-addresses` narrows it.
    """

    def __init__(
        self, *, proxy_healthy: Callable[[], bool], hosts: Sequence[str] | None = None
    ) -> None:
        self._proxy_healthy = proxy_healthy
        self._hosts: tuple[str | None, ...] = (None,) if hosts is None else tuple(hosts)
        self._runner: web.ServerRunner | None = None
        self._open: dict[ServiceRef, _Listener] = {}
        self._by_port: dict[int, ServiceRef] = {}
        self._local_endpoints: dict[ServiceRef, int] = {}
        self._failures: dict[ServiceRef, tuple[int, str]] = {}
        self._lock = asyncio.Lock()

    def listening(self) -> dict[ServiceRef, int]:
        """The Services with an open listener, and its port."""
        return {ref: listener.port for ref, listener in self._open.items()}

    async def sync(
        self, services: ServiceHealthMapping, *, hosts: Sequence[str] | Unchanged | None = KEEP
    ) -> None:
        """Open, close and move listeners to match `services`; update endpoint counts. New
        `hosts` (the node-port addresses changed) reopen every listener on them."""
        async with self._lock:
            if not isinstance(hosts, Unchanged):
                listen_on: tuple[str | None, ...] = (None,) if hosts is None else tuple(hosts)
                if listen_on != self._hosts:
                    self._hosts = listen_on
                    for ref in list(self._open):
                        await self._close(ref)
                    log.info("health checks listen on %s", ", ".join(map(_host, listen_on)))
            self._local_endpoints = {ref: count for ref, (_, count) in services.items()}
            for ref, listener in list(self._open.items()):
                wanted = services.get(ref)
                if wanted is None or wanted[0] != listener.port:
                    await self._close(ref)
            # Closing first lets two Services swap ports within one sync.
            for ref, (port, _) in sorted(services.items()):
                if ref not in self._open:
                    await self._open_listener(ref, port)
            for ref in self._failures.keys() - services.keys():
                del self._failures[ref]

    async def close(self) -> None:
        """Close every listener and the connections still open."""
        async with self._lock:
            runner, self._runner = self._runner, None
            self._open.clear()
            self._by_port.clear()
            if runner is not None:
                await runner.cleanup()

    async def _open_listener(self, ref: ServiceRef, port: int) -> None:
        if not 0 < port <= 65535:
            self._failed(ref, port, f"port {port} out of range")
            return
        runner = await self._ensure_runner()
        listener = _Listener(port)
        for host in self._hosts:
            site = web.TCPSite(runner, host, port)
            listener.sites.append(site)
            try:
                await site.start()
            except OSError as error:
                await _stop(listener.sites)
                self._failed(ref, port, str(error))
                return
        self._open[ref] = listener
        self._by_port[port] = ref
        if self._failures.pop(ref, None) is not None:
            log.info("health check for Service %s now listening on port %d", ref, port)
        else:
            log.debug("health check for Service %s listening on port %d", ref, port)

    async def _close(self, ref: ServiceRef) -> None:
        listener = self._open.pop(ref)
        if self._by_port.get(listener.port) == ref:
            del self._by_port[listener.port]
        await _stop(listener.sites)
        log.debug("health check for Service %s closed port %d", ref, listener.port)

    def _failed(self, ref: ServiceRef, port: int, reason: str) -> None:
        # Retried on every sync: say it loudly once, then quietly until something changes.
        level = logging.DEBUG if self._failures.get(ref) == (port, reason) else logging.WARNING
        log.log(
            level,
            "health check for Service %s cannot listen on port %d: %s; retrying on the next sync",
            ref,
            port,
            reason,
        )
        self._failures[ref] = (port, reason)

    async def _ensure_runner(self) -> web.ServerRunner:
        if self._runner is None:
            self._runner = web.ServerRunner(
                web.Server(self._answer, access_log=None), shutdown_timeout=SHUTDOWN_GRACE
            )
            await self._runner.setup()
        return self._runner

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        ref = self._by_port.get(_local_port(request))
        if ref is None:
            # A kept-alive connection to a listener closed since: no Service to speak for.
            response = web.Response(status=503)
            response.force_close()
            return response
        count = self._local_endpoints.get(ref, 0)
        proxy_healthy = self._proxy_healthy()
        return web.Response(
            status=200 if count > 0 and proxy_healthy else 503,
            body=service_health_body(ref, count, proxy_healthy=proxy_healthy),
            headers={
                "Content-Type": "application/json",
                "X-Content-Type-Options": "nosniff",
                "X-Load-Balancing-Endpoint-Weight": str(count),
            },
        )


def service_health_body(ref: ServiceRef, local_endpoints: int, *, proxy_healthy: bool) -> bytes:
    """kube-proxy's body: tab-indented JSON, no trailing newline."""
    body = {
        "service": {"namespace": ref.namespace, "name": ref.name},
        "localEndpoints": local_endpoints,
        "serviceProxyHealthy": proxy_healthy,
    }
    return json.dumps(body, indent="\t").encode()


def _host(host: str | None) -> str:
    return "every address" if host is None else host


def _local_port(request: web.BaseRequest) -> int:
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    return int(sockname[1]) if sockname else 0


async def _stop(sites: list[web.TCPSite]) -> None:
    for site in sites:
        await site.stop()
