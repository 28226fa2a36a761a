"""Is a kube-proxy running on this node, and in which mode? Asked before ipvsd binds a port.

kube-proxy's metrics server answers `GET /proxyMode` with its mode (`ipvs`, `iptables`,
`nftables`) on 127.0.0.1:10249 by default, ipvsd's default metrics address too. ipvsd's own
metrics server marks its answer with the header `X-Service-Proxy: ipvsd`
(`metrics_server.PROXY_HEADER`), so another ipvsd on the port (the previous pod of a rolling
update) is not mistaken for kube-proxy. Nothing listening, a timeout or an answer that is not a
mode means no kube-proxy is known to run here.
"""

from __future__ import annotations

import aiohttp

from ipvsd.server.metrics_server import DEFAULT_METRICS_PORT, PROXY_HEADER

KUBE_PROXY_METRICS = f"127.0.0.1:{DEFAULT_METRICS_PORT}"
OWN = "ipvsd"  # the PROXY_HEADER value ipvsd's own metrics server sends
MODES = frozenset({"ipvs", "iptables", "nftables", "kernelspace"})


async def kube_proxy_mode(address: str = KUBE_PROXY_METRICS, wait: float = 2.0) -> str | None:
    """The mode a kube-proxy listening on `address` reports, or None (no kube-proxy there)."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=wait)) as session,
            session.get(f"http://{address}/proxyMode") as response,
        ):
            if response.status != 200 or response.headers.get(PROXY_HEADER) == OWN:
                return None
            mode = (await response.text()).strip()
    except (TimeoutError, aiohttp.ClientError, OSError, UnicodeDecodeError):
        return None
    return mode if mode in MODES else None
