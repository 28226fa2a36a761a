"""Golden scenarios against the fake kernel (the same files run on the real one in the VM)."""

from __future__ import annotations

import pytest

from ipvsd.dataplane.addresses import FakeAddresses
from ipvsd.dataplane.ipvs_fake import FakeIpvs
from tests.scenarios.runner import NodeKernel, check, nodes_of, run_scenario, scenario_names

CASES = [(name, node) for name in scenario_names() for node in nodes_of(name)]


@pytest.mark.parametrize(("scenario", "node"), CASES, ids=[f"{s}/{n}" for s, n in CASES])
async def test_scenario(scenario: str, node: str) -> None:
    fake = FakeIpvs()
    host = [(nodes_of(scenario)[node], "eth0")]

    async def read_table() -> list[str]:
        return fake.render().splitlines()

    results = await run_scenario(
        scenario, node, NodeKernel(fake, FakeAddresses(host=host), read_table)
    )
    check(results)
