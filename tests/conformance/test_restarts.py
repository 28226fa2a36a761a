"""service.go's restart cases, owned by the disruption issue (17): its harness, run here.

"should work after restarting kube-proxy" is the disruption harness's `rolling-restart`
(ipvsd SIGTERMed and started again, node after node, under traffic) and "should work after
restarting apiserver" its `api-outage`. Their cluster is the harness's own three nodes, so the
conformance layout's cluster is closed first (they share the bridge and the API port).
"""

from __future__ import annotations

import random

import pytest

from ipvsd.testing import disruption
from ipvsd.testing.conformance_cluster import Layouts

FILE = "test/e2e/network/service.go"
pytestmark = [
    pytest.mark.kernel,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.timeout(1200),
]


async def scenario_holds(clusters: Layouts, name: str) -> None:
    """The scenario interrupts nothing, fails no new connection, loses no UDP and converges."""
    if name not in disruption.SCENARIOS:
        pytest.skip(f"owned by issue 17: its {name!r} scenario is not in "
                    "ipvsd.testing.disruption yet")  # fmt: skip
    await clusters.close()
    transcript: list[str] = []
    seed = random.randrange(1 << 16)
    (row,) = await disruption.run([name], seed=seed, say=transcript.append, steady=3.0)
    context = "\n".join([*transcript, disruption.table([row])])
    assert (row.interrupted, row.failed_new, row.udp_lost) == (0, 0, 0), context
    assert row.converge_s is not None, context


@pytest.mark.upstream("should work after restarting kube-proxy", FILE)
async def test_should_work_after_restarting_the_proxy(clusters: Layouts) -> None:
    await scenario_holds(clusters, "rolling-restart")


@pytest.mark.upstream("should work after restarting apiserver", FILE)
async def test_should_work_after_restarting_the_api_server(clusters: Layouts) -> None:
    await scenario_holds(clusters, "api-outage")
