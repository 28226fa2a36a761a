"""The restart and watch scenarios of the disruption harness (issue 17).

- `baseline`: no fault; everything must be 0.
- `negative-control`: ipvsd on node-1 and node-2 restarted as a build that flushes its IPVS
  table on start (`IPVSD_FAULT_FLUSH_ON_START=1`, a test-only switch read by the IPVS adapter,
  `ipvsd.dataplane.faults`): must show interruptions, or the harness cannot see what it counts.
- `kill9`: five SIGKILLs and restarts: at a random moment of steady state, in the middle of the
  first full sync after a start (held at the adapter's `dump` step, `IPVSD_HOLD_AT=dump:1`,
  then killed there), and at a random moment of start-up before the first sync.
- `rolling-restart`: SIGTERM and restart five times, node after node, each time waiting for
  the daemon to be healthy before the next, as a DaemonSet rolling update does.
- `watch-faults`: for a minute, in turn: every watch cut, the history compacted with every
  watch ended, every watch ended and the next ones answered 410 Gone, every watch ended and the
  next requests answered 429 with Retry-After 1; after each, a third `echo` pod on node-3 flips
  ready or not ready, and that change is timed until every node's table has it (bound 2 s, plus
  the Retry-After). Nothing may break; `converge_s` is the slowest change.
- `ready-while-down`: ipvsd on node-1 stopped; a new `echo` pod on node-3 becomes ready; ipvsd
  started again: its real server must be in node-1's table at the first sync, and carry new
  connections (reported).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

from ipvsd.testing.disruption_harness import (
    CLIENT_NODE,
    CONVERGE_WITHIN,
    FLUSHED,
    REMOTE_NODE,
    SPARE_NODE,
    Fault,
    Harness,
    Row,
    Scenario,
)
from ipvsd.testing.traffic import FlowResult

WATCH_FAULTS_S = 60.0  # the "in a loop for a minute"


async def baseline(h: Harness) -> Fault:
    await asyncio.sleep(h.steady)
    return time.monotonic(), []


async def negative_control(h: Harness) -> Fault:
    flush = {"IPVSD_FAULT_FLUSH_ON_START": "1"}
    for node in FLUSHED:
        await h.restart(node, signal.SIGTERM, flush)
    return time.monotonic(), list(FLUSHED)


async def kill9(h: Harness) -> Fault:
    proxies = h.cluster.proxies
    kills = 0
    for node in (CLIENT_NODE, REMOTE_NODE):
        hold = h.cluster.scratch / f"hold-{node}"
        hold.unlink(missing_ok=True)
        # 1. at a random moment of steady state; restarted to stop mid first full sync
        await proxies.wait_ready(CONVERGE_WITHIN, nodes=[node])
        await asyncio.sleep(h.rng.uniform(0.2, 3.0))
        env = {"IPVSD_HOLD_AT": "dump:1", "IPVSD_HOLD_FILE": str(hold)}
        await h.restart(node, signal.SIGKILL, env)
        kills += 1
        # 2. in the middle of that full sync, held at the adapter's dump step
        where = await h.wait_hold(node, hold)
        h.say(f"  {node}: held mid full sync ({where})")
        await h.restart(node, signal.SIGKILL)
        hold.unlink(missing_ok=True)
        kills += 1
        if kills < 5:
            # 3. at a random moment of start-up, before its first sync
            await asyncio.sleep(h.rng.uniform(0.0, 1.5))
            await h.restart(node, signal.SIGKILL)
            kills += 1
    return time.monotonic(), [CLIENT_NODE, REMOTE_NODE]


async def rolling_restart(h: Harness) -> Fault:
    order = [CLIENT_NODE, REMOTE_NODE, SPARE_NODE, CLIENT_NODE, REMOTE_NODE]
    for node in order:
        await h.restart(node, signal.SIGTERM)
        await h.cluster.proxies.wait_ready(CONVERGE_WITHIN, nodes=[node])
    return time.monotonic(), sorted(set(order))


async def ready_while_down(h: Harness) -> Fault:
    proxies = h.cluster.proxies
    code = await proxies.kill(CLIENT_NODE, signal.SIGTERM)
    h.say(f"  {CLIENT_NODE}: ipvsd stopped ({code})")
    pod = await asyncio.to_thread(h.app.add_pod, SPARE_NODE, ready=False, name="echo-new")
    await asyncio.sleep(1.0)
    await asyncio.to_thread(h.app.set_ready, pod.name, True)
    h.say(f"  {pod.name} on {SPARE_NODE} became ready while {CLIENT_NODE}'s ipvsd was down")
    await asyncio.sleep(2.0)
    await proxies.start_daemon(CLIENT_NODE)
    return time.monotonic(), [CLIENT_NODE]


async def watch_faults(h: Harness) -> Fault:
    """Watch faults in a loop for WATCH_FAULTS_S while a third pod's readiness flips after
    each: every change is timed until every node's table has it (bound: 2 s, plus the
    Retry-After the server asked for), and nothing may break."""
    server = h.cluster.server
    pod = await asyncio.to_thread(h.app.add_pod, SPARE_NODE, ready=False, name="echo-churn")
    watches = len(server.storage.subscriptions())  # 3 daemons, each Services, slices, Nodes

    def compacted() -> None:
        server.compact()
        server.drop_watches(mode="end")

    def gone() -> None:
        server.faults.expire_next(watches)
        server.drop_watches(mode="end")

    def too_many() -> None:
        server.faults.fail_next(watches, code=429, retry_after=1, method="GET")
        server.drop_watches(mode="end")

    faults: list[tuple[str, float, Callable[[], object]]] = [
        ("watches cut", 0.0, lambda: server.drop_watches(mode="abort")),
        ("history compacted, watches ended", 0.0, compacted),
        ("watches ended, 410 Gone on the next", 0.0, gone),
        ("watches ended, 429 Retry-After 1 on the next requests", 1.0, too_many),
    ]
    started, round_ = time.monotonic(), 0
    while time.monotonic() - started < WATCH_FAULTS_S:
        what, retry_after, inject = faults[round_ % len(faults)]
        inject()
        await asyncio.sleep(h.rng.uniform(0.0, 0.5))  # the change lands mid-reconnection
        ready = round_ % 2 == 0
        await asyncio.to_thread(h.app.set_ready, pod.name, ready)
        changed = time.monotonic()
        seconds = await h.converge(changed, [], poll=0.1)
        h.changes.append((what, seconds, 2.0 + retry_after))
        shown = "never" if seconds is None else f"{seconds:.2f} s"
        h.say(f"  {what}; {pod.name} ready: {ready}; in every table after {shown}")
        server.faults.clear()  # what the daemons did not use up must not hit the next round
        await asyncio.sleep(h.rng.uniform(0.5, 1.5))
        round_ += 1
    await asyncio.to_thread(h.app.set_ready, pod.name, True)
    return time.monotonic(), []


async def back_as_built(h: Harness, row: Row, results: list[FlowResult]) -> None:
    """After the negative control: its nodes' daemons restarted without the test switch."""
    await h.as_built(FLUSHED)


async def note_new_pod(h: Harness, row: Row, results: list[FlowResult]) -> None:
    served = sum(r.backends.get("echo-new", 0) for r in results if r.kind == "new")
    row.notes.append(
        f"the pod that became ready while down took {served} new connections after the restart"
    )


async def remove_churn(h: Harness, row: Row, results: list[FlowResult]) -> None:
    """Take the watch-faults scenario's extra pod away again (outside its traffic window)."""
    if any(p.name == "echo-churn" for p in h.app.pods):
        await asyncio.to_thread(h.app.remove_pod, "echo-churn")
        await h.converge(time.monotonic(), [])


SCENARIOS: dict[str, Scenario] = {
    "baseline": Scenario(baseline),
    "negative-control": Scenario(negative_control, after=back_as_built),
    "kill9": Scenario(kill9),
    "rolling-restart": Scenario(rolling_restart),
    "watch-faults": Scenario(watch_faults, after=remove_churn),
    "ready-while-down": Scenario(ready_while_down, after=note_new_pod),
}
