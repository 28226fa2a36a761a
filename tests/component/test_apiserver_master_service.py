"""`default/kubernetes`, kept by the emulator as a real API server keeps it: the Service on the
first address of the service CIDR, its EndpointSlice on the server's own address and port."""

from __future__ import annotations

import pytest

from ipvsd.testing.apiserver import ApiServer
from tests.component.apiserver_support import service


async def test_the_server_has_its_own_service_and_endpoint_slice() -> None:
    async with ApiServer(service_cidr="10.96.0.0/12") as server:
        svc = server.store.get("services", "kubernetes")
        assert svc["metadata"]["labels"] == {"component": "apiserver", "provider": "kubernetes"}
        spec = svc["spec"]
        assert spec["type"] == "ClusterIP"
        assert spec["clusterIP"] == "10.96.0.1"
        assert spec["clusterIPs"] == ["10.96.0.1"]
        assert spec["ipFamilyPolicy"] == "SingleStack"
        assert spec["ports"] == [
            {"name": "https", "port": 443, "protocol": "TCP", "targetPort": server.port}
        ]
        assert "selector" not in spec

        slice_ = server.store.get("endpointslices", "kubernetes")
        assert slice_["metadata"]["labels"] == {"kubernetes.io/service-name": "kubernetes"}
        assert slice_["addressType"] == "IPv4"
        assert slice_["endpoints"] == [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]
        assert slice_["ports"] == [{"name": "https", "port": server.port, "protocol": "TCP"}]

        # The first address is taken: other Services get the next ones.
        assert server.store.create(service("next"))["spec"]["clusterIP"] == "10.96.0.2"


async def test_ipv6_primary_and_an_advertised_address() -> None:
    async with ApiServer(service_cidr="fd00:10:96::/112", advertise_address="192.0.2.10") as server:
        assert server.store.get("services", "kubernetes")["spec"]["clusterIP"] == "fd00:10:96::1"
        slice_ = server.store.get("endpointslices", "kubernetes")
        assert slice_["endpoints"][0]["addresses"] == ["192.0.2.10"]


async def test_a_start_resets_what_was_changed_and_follows_the_port() -> None:
    async with ApiServer() as server:
        server.store.patch(
            "services", "kubernetes", {"spec": {"ports": [{"name": "x", "port": 1}]}}
        )
        server.store.patch("endpointslices", "kubernetes", {"endpoints": []})
        await server.stop()
        server.port = 0  # a new port, as a restarted API server on another one
        await server.start()
        ports = server.store.get("services", "kubernetes")["spec"]["ports"]
        assert ports == [
            {"name": "https", "port": 443, "protocol": "TCP", "targetPort": server.port}
        ]
        slice_ = server.store.get("endpointslices", "kubernetes")
        assert slice_["endpoints"][0]["addresses"] == ["127.0.0.1"]
        assert slice_["ports"][0]["port"] == server.port


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_a_wildcard_listener_advertises_loopback(host: str) -> None:
    assert ApiServer(host=host).advertise_address in ("127.0.0.1", "::1")
