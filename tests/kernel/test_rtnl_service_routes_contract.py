"""The local-route contract against the kernel (rtnetlink), plus the kernel facts it rests on."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator

import pytest

from ipvsd.dataplane.service_routes import PROTOCOL, RtnlServiceRoutes
from tests.contract.service_routes_contract import RANGE, ServiceRoutesContract

pytestmark = pytest.mark.kernel


def flush() -> None:
    subprocess.run(
        ["ip", "route", "flush", "table", "local", "proto", str(PROTOCOL)],
        check=False,
        capture_output=True,
    )


def run(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


class TestRtnlServiceRoutes(ServiceRoutesContract):
    @pytest.fixture
    async def routes(self) -> AsyncIterator[RtnlServiceRoutes]:
        flush()
        real = RtnlServiceRoutes()
        yield real
        await real.close()
        flush()


async def test_a_routed_address_is_local_and_a_host_connection_leaves_from_it() -> None:
    """What the design rests on: `ip route get` calls every address of the range local, and
    the host's own connection to one takes that very address as its source (the masquerade
    rule for node traffic matches on it, as with a bound ClusterIP)."""
    flush()
    routes = RtnlServiceRoutes()
    try:
        await routes.add([RANGE])
        assert run("ip", "route", "get", "10.100.7.20").startswith(
            "local 10.100.7.20 dev lo src 10.100.7.20"
        )
        shown = run("ip", "route", "show", "table", "local", "proto", str(PROTOCOL))
        assert [line.split() for line in shown.splitlines()] == [
            ["local", "10.96.0.0/12", "dev", "lo", "scope", "host"]
        ]
    finally:
        await routes.close()
        flush()


def test_a_local_route_on_a_device_goes_with_its_last_ipv4_address() -> None:
    """Why the route is on `lo`, not on `kube-ipvs0`: the kernel flushes a device's IPv4
    routes when its last IPv4 address goes (kube-proxy's last /32 at a takeover, the last
    externalIP later), which would take the whole range away."""
    device = "ipvsd-test2"
    subprocess.run(["ip", "link", "del", device], check=False, capture_output=True)
    run("ip", "link", "add", device, "type", "dummy")
    try:
        run("ip", "route", "add", "local", "10.240.0.0/16", "dev", device, "table", "local")
        run("ip", "addr", "add", "10.240.0.1/32", "dev", device)
        run("ip", "addr", "del", "10.240.0.1/32", "dev", device)
        assert run("ip", "route", "show", "table", "local", "dev", device) == ""
    finally:
        subprocess.run(["ip", "link", "del", device], check=False, capture_output=True)
