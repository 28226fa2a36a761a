"""The disruption harness's CI-sized subset (issue 17), on the real kernel.

The very code `hack/disruption.sh` runs (`ipvsd.testing.disruption`): a three-node cluster of
namespaces, one ipvsd per node, traffic from its own processes through a ClusterIP and
NodePorts (eTP=Cluster and eTP=Local). Three scenarios in one cluster, because building it
(three daemons importing under software emulation) is most of the cost:

- `baseline`: no fault, so nothing may be interrupted, fail or get lost;
- `negative-control`: a build that flushes its table on start (a test-only switch read by the
  IPVS adapter) must show interrupted connections: the harness sees what it counts;
- `rolling-restart`: SIGTERM and restart five times, node after node: zero interruptions,
  zero failed new connections, zero UDP lost.

Every scenario must converge (the kernel matches the API again); no duration is asserted.
"""

from __future__ import annotations

import random

import pytest

from ipvsd.testing.disruption import report, run, table

pytestmark = pytest.mark.kernel


@pytest.mark.timeout(900)
async def test_restarts_interrupt_nothing_and_the_negative_control_is_seen() -> None:
    transcript: list[str] = []
    seed = random.randrange(1 << 16)
    rows = await run(
        ["baseline", "negative-control", "rolling-restart"],
        seed=seed,
        say=transcript.append,
        steady=3.0,
    )
    by_name = {row.scenario: row for row in rows}
    context = "\n".join([*transcript, table(rows), report(rows)])
    for name in ("baseline", "rolling-restart"):
        row = by_name[name]
        assert (row.interrupted, row.failed_new, row.udp_lost) == (0, 0, 0), context
    assert by_name["negative-control"].interrupted > 0, context
    assert all(row.converge_s is not None for row in rows), context
