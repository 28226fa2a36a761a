"""The proxy health server (`--healthz-bind-address`, default 0.0.0.0:10256): /healthz, /livez.

Load balancers probe /healthz to decide whether to send traffic to this node (for
externalTrafficPolicy=Cluster Services) and the DaemonSet's probes use /healthz or /livez,
so status codes, headers and bodies are kube-proxy's. Any method is answered, as Go's mux does.
"""

from __future__ import annotations

from aiohttp import web

from ipvsd.server.health import ProxyHealth, healthz_body, livez_body
from ipvsd.server.http import AppServer, BindAddress
from ipvsd.server.metrics import ProxyMetrics

DEFAULT_HEALTHZ_PORT = 10256
DEFAULT_HEALTHZ_BIND_ADDRESS = f"0.0.0.0:{DEFAULT_HEALTHZ_PORT}"

JSON_HEADERS = {"Content-Type": "application/json", "X-Content-Type-Options": "nosniff"}


def health_app(health: ProxyHealth, *, metrics: ProxyMetrics | None = None) -> web.Application:
    """/healthz (proxy in time and Node staying) and /livez (proxy in time), JSON, 200 or 503."""

    async def healthz(_: web.Request) -> web.Response:
        report = health.report()
        status = 200 if report.serving else 503
        if metrics is not None:
            metrics.healthz_answered(status)
        return web.Response(status=status, body=healthz_body(report), headers=JSON_HEADERS)

    async def livez(_: web.Request) -> web.Response:
        report = health.report()
        status = 200 if report.healthy else 503
        if metrics is not None:
            metrics.livez_answered(status)
        return web.Response(status=status, body=livez_body(report), headers=JSON_HEADERS)

    app = web.Application()
    app.router.add_route("*", "/healthz", healthz)
    app.router.add_route("*", "/livez", livez)
    return app


def health_server(
    health: ProxyHealth, address: BindAddress, *, metrics: ProxyMetrics | None = None
) -> AppServer:
    """The health server, not yet started (`await server.start()`)."""
    return AppServer(health_app(health, metrics=metrics), address, name="healthz")
