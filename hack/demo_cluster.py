"""Inside the VM: the seed documents' walkthroughs on a three-node cluster of namespaces.

Run by hack/demo.sh. Builds the cluster (`ipvsd.testing.cluster`), replays the scenarios
(`ipvsd.testing.cluster_scenarios`) with a transcript (the changes made through the API, the
seed's hit.sh counts, the client node's `ipvsadm -Ln`), prints the summary table and exits
non-zero if any scenario missed its promise.
"""

import asyncio
import sys
import time

from ipvsd.testing.cluster import running_cluster
from ipvsd.testing.cluster_scenarios import Walkthrough, summary


async def main() -> int:
    started = time.monotonic()
    async with running_cluster() as cluster:
        outcomes = await Walkthrough(cluster).run()
    failed = [o.scenario for o in outcomes if not o.passed]
    print(f"\n{summary(outcomes)}\n")
    print(
        f"{len(outcomes) - len(failed)}/{len(outcomes)} scenarios kept their promise "
        f"({time.monotonic() - started:.0f}s in the VM)"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
