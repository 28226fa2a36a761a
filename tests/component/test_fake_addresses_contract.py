"""The address contract against the in-memory fake."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ipvsd.dataplane.addresses import FakeAddresses
from tests.contract.addresses_contract import AddressesContract


class TestFakeAddresses(AddressesContract):
    @pytest.fixture
    def device(self) -> str:
        return "ipvsd-test0"

    @pytest.fixture
    async def addresses(self, device: str) -> AsyncIterator[FakeAddresses]:
        fake = FakeAddresses(device=device)
        yield fake
        await fake.close()
