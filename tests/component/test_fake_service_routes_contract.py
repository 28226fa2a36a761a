"""The local-route contract against the in-memory fake."""

from __future__ import annotations

import pytest

from ipvsd.dataplane.service_routes import FakeServiceRoutes
from tests.contract.service_routes_contract import ServiceRoutesContract


class TestFakeServiceRoutes(ServiceRoutesContract):
    @pytest.fixture
    def routes(self) -> FakeServiceRoutes:
        return FakeServiceRoutes()
