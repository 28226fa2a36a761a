"""The in-memory conntrack table against the shared contract (the kernel runs it in the VM:
tests/kernel/test_conntrack_contract.py)."""

from __future__ import annotations

import pytest

from ipvsd.dataplane.conntrack_fake import FakeConntrack
from ipvsd.model.tracked_flow import TrackedFlow
from tests.contract.conntrack_contract import ConntrackContract, Track


class TestFakeConntrack(ConntrackContract):
    @pytest.fixture
    def conntrack(self) -> FakeConntrack:
        return FakeConntrack()

    @pytest.fixture
    def track(self, conntrack: FakeConntrack) -> Track:
        async def add(flow: TrackedFlow) -> None:
            conntrack.track(flow)

        return add
