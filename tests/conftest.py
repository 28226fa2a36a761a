"""Tier rules for the whole suite: kernel tests run only inside hack/kernel-run.sh's VM."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

TESTS = Path(__file__).parent

# Property tests check behaviour, not speed: hypothesis' default 200 ms deadline per example
# failed them on a loaded machine (timings are the benchmarks' job, never the tests').
settings.register_profile("ipvsd", deadline=None)
settings.load_profile("ipvsd")
KERNEL_TIERS = ("kernel", "e2e")  # folders whose tests need the real kernel


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip kernel tests outside the VM; refuse unmarked tests in the kernel folders.

    The VM is the only place allowed to touch IPVS: on a host that has it, these tests would
    clear and rewrite the host's own tables.
    """
    in_vm = os.environ.get("IPVSD_IN_VM") == "1"
    skip = pytest.mark.skip(reason="needs the IPVS kernel: run via hack/kernel-run.sh")
    for item in items:
        needs_kernel = item.get_closest_marker("kernel") is not None
        if item.path.is_relative_to(TESTS):
            tier = item.path.relative_to(TESTS).parts[0]
            if tier in KERNEL_TIERS and not needs_kernel:
                raise pytest.UsageError(
                    f"{item.nodeid}: tests in tests/{tier}/ must be marked kernel"
                )
        if needs_kernel and not in_vm:
            item.add_marker(skip)
