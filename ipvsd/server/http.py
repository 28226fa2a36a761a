"""Listening addresses and one aiohttp application served on one of them.

kube-proxy's `--healthz-bind-address` and `--metrics-bind-address` take `IP:port` (a bare IP
gets the default port; empty disables). Go's `net.Listen("tcp", "0.0.0.0:p")` opens one
dual-stack socket, so kube-proxy's wildcard listeners answer on IPv6 too; asyncio opens
IPv6-only sockets, so a wildcard here means "every address of both families" (`host=None`)
to keep probes that reach kube-proxy over IPv6 working.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from ipaddress import ip_address

from aiohttp import web

from ipvsd.model.ipvs import format_endpoint

log = logging.getLogger(__name__)

# A stopping server waits this long for requests in flight (a scrape, a probe), then cancels
# them: a daemon told to stop must not hang on one slow client (kubelet kills it at 30 s).
SHUTDOWN_GRACE = 1.0
WILDCARDS = frozenset({"0.0.0.0", "::"})


@dataclass(frozen=True, slots=True)
class BindAddress:
    """Where a server listens; `host=None` means every local address of both families."""

    host: str | None
    port: int

    def __str__(self) -> str:
        if self.host is None:
            return f"*:{self.port}"
        return format_endpoint(ip_address(self.host), self.port)


def parse_bind_address(text: str, *, default_port: int) -> BindAddress | None:
    """`IP:port`, `[IPv6]:port` or a bare IP (gets `default_port`); None when disabled.

    Empty text or port 0 disables the server, as kube-proxy's flags do. Anything else that is
    not an IP literal with a port in 1..65535 raises ValueError naming the text.
    """
    text = text.strip()
    if not text:
        return None
    host, port = _split_host_port(text, default_port)
    try:
        ip_address(host)
    except ValueError:
        raise ValueError(f"bind address {text!r}: {host!r} is not an IP address") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"bind address {text!r}: port {port} out of range")
    if port == 0:
        return None
    return BindAddress(None if host in WILDCARDS else host, port)


def _split_host_port(text: str, default_port: int) -> tuple[str, int]:
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bind address {text!r}: malformed [IPv6]:port")
        return host, _port(text, rest[1:]) if rest else default_port
    if text.count(":") == 1:
        host, _, port_text = text.partition(":")
        return host, _port(text, port_text)
    return text, default_port  # a bare IPv4 or IPv6 address


def _port(text: str, port_text: str) -> int:
    if not port_text.isdigit():
        raise ValueError(f"bind address {text!r}: port {port_text!r} is not a number")
    return int(port_text)


class ListenFailed(OSError):
    """An address could not be bound; the message names the server and the address."""


class AppServer:
    """One aiohttp application on one address, without access logs (probes hit it constantly).

    `start()` raises ListenFailed (an OSError with the original errno) when the address cannot
    be bound, so the caller decides between failing fast and retrying.
    """

    def __init__(self, app: web.Application, address: BindAddress, *, name: str) -> None:
        self.address = address
        self.name = name
        self._app = app
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    @property
    def port(self) -> int:
        """The bound port (differs from `address.port` only when that was 0, in tests)."""
        if self._site is None:
            raise RuntimeError(f"{self.name} server is not running")
        return self._site.port

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError(f"{self.name} server already started")
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE)
        await runner.setup()
        site = web.TCPSite(runner, self.address.host, self.address.port)
        try:
            await site.start()
        except OSError as error:
            await runner.cleanup()
            raise ListenFailed(
                error.errno, f"{self.name} server cannot listen on {self.address}: {error}"
            ) from error
        self._runner, self._site = runner, site
        log.info("%s server listening on %s", self.name, BindAddress(self.address.host, site.port))

    async def stop(self) -> None:
        runner, self._runner, self._site = self._runner, None, None
        if runner is not None:
            await runner.cleanup()
