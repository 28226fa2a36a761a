"""The metrics server (`--metrics-bind-address`, default 127.0.0.1:10249).

Serves what kube-proxy's metrics mux serves that users rely on: /metrics, /proxyMode (the
body `ipvs`, which tooling reads to tell the proxy mode) and the apiserver-style /healthz with
its one `ping` check ("ok"; `?verbose` lists the check). /metrics is always the Prometheus
text format 0.0.4, gzipped when asked: kube-proxy's handler does not offer OpenMetrics, and
offering it would change what Prometheus 2 stores (OpenMetrics spells `le="1"` as `"1.0"`).
This /healthz only says the process answers; readiness and liveness belong to the health
server.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from ipvsd.server.http import AppServer, BindAddress
from ipvsd.server.metrics import ProxyMetrics

DEFAULT_METRICS_PORT = 10249
DEFAULT_METRICS_BIND_ADDRESS = f"127.0.0.1:{DEFAULT_METRICS_PORT}"
PROXY_MODE = "ipvs"
PROXY_HEADER = "X-Service-Proxy"  # `ipvsd` on /proxyMode: tells ipvsd from kube-proxy there

TEXT_HEADERS = {"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"}


def metrics_app(metrics: ProxyMetrics) -> web.Application:
    """/metrics, /proxyMode, /healthz and /healthz/ping."""

    async def scrape(request: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        response = web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})
        if _accepts_gzip(request):
            response.enable_compression(web.ContentCoding.gzip)
        return response

    async def proxy_mode(_: web.Request) -> web.Response:
        return web.Response(
            body=PROXY_MODE.encode(), headers={**TEXT_HEADERS, PROXY_HEADER: "ipvsd"}
        )

    async def healthz(request: web.Request) -> web.Response:
        body = "[+]ping ok\nhealthz check passed\n" if "verbose" in request.query else "ok"
        return web.Response(body=body.encode(), headers=TEXT_HEADERS)

    async def ping(_: web.Request) -> web.Response:
        return web.Response(body=b"ok", headers=TEXT_HEADERS)

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    app.router.add_route("*", "/proxyMode", proxy_mode)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/healthz/ping", ping)
    return app


def metrics_server(metrics: ProxyMetrics, address: BindAddress) -> AppServer:
    """The metrics server, not yet started (`await server.start()`)."""
    return AppServer(metrics_app(metrics), address, name="metrics")


def _accepts_gzip(request: web.Request) -> bool:
    """Go's promhttp offers gzip only (aiohttp on its own would pick deflate first)."""
    codings = request.headers.get("Accept-Encoding", "")
    return any(part.split(";")[0].strip() == "gzip" for part in codings.split(","))
