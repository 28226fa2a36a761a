"""The contract of `dataplane.service_routes.ServiceRoutes`, run against the fake and the kernel.

Subclasses provide `routes` (an implementation starting with no ipvsd route, cleaned up
afterwards)."""

from __future__ import annotations

from ipaddress import ip_network

from ipvsd.dataplane.service_routes import ServiceRoutes

RANGE, OTHER = ip_network("10.96.0.0/12"), ip_network("10.250.0.0/16")


class ServiceRoutesContract:
    async def test_added_routes_are_present_once_and_adding_again_is_fine(
        self, routes: ServiceRoutes
    ) -> None:
        assert await routes.present() == frozenset()
        await routes.add([RANGE, OTHER])
        await routes.add([RANGE])
        assert await routes.present() == {RANGE, OTHER}

    async def test_removed_routes_go_and_removing_an_absent_one_is_fine(
        self, routes: ServiceRoutes
    ) -> None:
        await routes.add([RANGE, OTHER])
        await routes.remove([OTHER])
        await routes.remove([OTHER])
        assert await routes.present() == {RANGE}
