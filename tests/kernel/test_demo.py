"""The demo's walkthroughs (hack/demo.sh) keep every promise, on the real kernel, in CI.

The very code the demo runs: a three-node cluster of namespaces with one ipvsd process per
node against the API emulator, then default / PreferSameNode / PreferSameZone / fallback /
topology-mode weight from the client pod, externalTrafficPolicy: Local from outside, and
sessionAffinity: ClientIP. One test, because building the cluster (three daemons starting
under software emulation) is most of the cost and the scenarios build on each other as the
seed's walkthrough does. The Service is changed with the same merge patches sent over HTTP
rather than through kubectl, whose start costs seconds per call in the VM (the demo uses it).
"""

from __future__ import annotations

import pytest

from ipvsd.testing.cluster import running_cluster
from ipvsd.testing.cluster_scenarios import Walkthrough, summary

pytestmark = pytest.mark.kernel


@pytest.mark.timeout(600)
async def test_every_demo_scenario_keeps_its_promise() -> None:
    transcript: list[str] = []
    async with running_cluster(use_kubectl=False, say=transcript.append) as cluster:
        outcomes = await Walkthrough(cluster, say=transcript.append).run()
    failed = [o.scenario for o in outcomes if not o.passed]
    assert len(outcomes) == 8
    assert not failed, "\n".join([*transcript, summary(outcomes)])
