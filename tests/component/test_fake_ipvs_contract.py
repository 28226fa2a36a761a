"""The in-memory fake against the shared IPVS contract (the kernel runs the same suite)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ipvsd.dataplane.ipvs_fake import FakeIpvs
from ipvsd.dataplane.ipvsadm_format import canonical_rules
from tests.contract.ipvs_contract import IpvsContract


class TestFakeIpvs(IpvsContract):
    @pytest.fixture
    def ipvs(self) -> FakeIpvs:
        return FakeIpvs()

    @pytest.fixture
    def ipvsadm_rules(self, ipvs: FakeIpvs) -> Callable[[], list[str]]:
        return lambda: canonical_rules(ipvs.render())
