"""The outage, kernel-fault and tampering scenarios of the disruption harness (issue 17).

- `api-outage`: the API emulator stops listening for 60 s (every watch ends, every new
  connection is refused) while a pod `echo-outage` on node-3 is added ready, turns not ready
  and ready again; then it listens again on the same port. The data plane must keep serving
  throughout (nothing flushed); `converge_s` is the time from the API's return until every
  node's table has the pod (target 5 s: the client's reachability probe, not the watches'
  backoff, decides when they retry). Noted: the connection attempts every node's ipvsd made
  to the API during the outage (an nftables counter of SYNs in each node's namespace: every
  request during an outage is a new connection), per watch every 2 s (target at most 1), and
  the /healthz answers polled each second during the outage (README: 200 throughout, as
  kube-proxy, since health is about applying changes and none can arrive).
- `kernel-faults`: every node's ipvsd restarted with `IPVSD_FAULT_KERNEL_RATE=0.1` (10 % of
  IPVS operations and dumps, address changes and nft transactions fail, `dataplane.faults`),
  then a pod `echo-faults` on node-3 flips readiness ten times. Nothing may break; the tables
  must converge; no daemon may exit. Noted: the faults injected, the syncs that failed
  whole, the operations the kernel "refused". Afterwards the daemons run as built again.
- `tampering-ipvsadm`, `tampering-vip`, `tampering-nft`: on node-1, by hand, `ipvsadm -C`;
  echo's ClusterIP removed from `kube-ipvs0`; `nft delete table inet ipvsd`, each in a
  traffic window of its own (run when named); `tampering` does the three in turn in one
  window. What used the deleted state breaks (the kernel drops it) until ipvsd's periodic
  full sync (the harness runs `--ipvs-sync-period=10s`) puts it back: noted, per action, the
  seconds until the kernel has it again. A generator of its own sends long-lived and new
  connections from the client pod on node-1 to `echo-local`'s ClusterIP, a Service the VIP
  and nft tampering do not touch: it must see nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

import aiohttp

from ipvsd.testing.cluster import API_PORT, run_in
from ipvsd.testing.cluster_net import HOST_ADDRESS
from ipvsd.testing.disruption_harness import (
    CLIENT_NODE,
    CONVERGE_WITHIN,
    REPLY_TIMEOUT_S,
    SPARE_NODE,
    Fault,
    Harness,
    Row,
    Scenario,
)
from ipvsd.testing.traffic import Flow, FlowResult, Generator

OUTAGE_S = 60.0
KERNEL_FAULT_RATE = "0.1"
COUNTER_TABLE = "ipvsd_harness_api"  # the harness's own table in each node's namespace

# What a scenario observed, for its `after` step to put in its row (the fault itself returns
# only when it ended and which daemons restarted).
_observed: dict[str, list[str]] = {}


def _note(scenario: str, text: str, h: Harness) -> None:
    _observed.setdefault(scenario, []).append(text)
    h.say(f"  {text}")


async def _noted(h: Harness, row: Row, results: list[FlowResult]) -> None:
    row.notes += _observed.pop(row.scenario, [])


# --- api-outage -------------------------------------------------------------------------------


async def _count_api_connections(h: Harness) -> None:
    """An nftables counter of connection attempts to the API in every node's namespace."""
    script = (
        f"table inet {COUNTER_TABLE} {{ chain out {{ type filter hook output priority 0; "
        f"ip daddr {HOST_ADDRESS} tcp dport {API_PORT} tcp flags & (syn | ack) == syn counter; "
        f"}}; }}"
    )
    for node in h.cluster.net.nodes:
        await run_in(node.name, "nft", script)


async def _api_connections(h: Harness) -> int:
    total = 0
    for node in h.cluster.net.nodes:
        listing = await run_in(node.name, "nft", "list", "chain", "inet", COUNTER_TABLE, "out")
        total += sum(int(n) for n in re.findall(r"counter packets (\d+)", listing))
        await run_in(node.name, "nft", "delete", "table", "inet", COUNTER_TABLE)
    return total


async def _poll_health(h: Harness, answers: dict[str, int], stop: asyncio.Event) -> None:
    """Every node's /healthz once a second until `stop`: counts per answer ("200", "503", or
    "no answer")."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while not stop.is_set():
            for node in h.cluster.net.nodes:
                key = "no answer"
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    url = f"http://{node.address}:10256/healthz"
                    async with session.get(url) as answer:
                        key = str(answer.status)
                answers[key] = answers.get(key, 0) + 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


def _resumed_after(h: Harness, sizes: dict[str, int], back: float) -> str:
    """Per node, seconds from the API's return (`back`, wall clock) to the daemon's log line
    saying its reachability probe saw the server answer again."""
    times = []
    for node, size in sizes.items():
        with h.cluster.proxies.log_path(node).open("rb") as log:
            log.seek(size)
            text = log.read().decode(errors="replace")
        found = re.search(r"^(\S+ \S+) INFO \S+: the API server answers again", text, re.M)
        if found is None:
            times.append(f"{node} never")
            continue
        at = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        times.append(f"{node} {at - back:.1f}s")
    return ", ".join(times)


async def api_outage(h: Harness) -> Fault:
    server = h.cluster.server
    sizes = _log_sizes(h)
    watches = len(server.storage.subscriptions())
    await _count_api_connections(h)
    health: dict[str, int] = {}
    stop = asyncio.Event()
    await server.stop()
    down = time.monotonic()
    h.say(f"  API server stopped ({watches} watches were open)")
    polling = asyncio.create_task(_poll_health(h, health, stop))
    steps: list[tuple[float, str, Callable[[], object]]] = [
        (5.0, "echo-outage added on node-3, ready",
         lambda: h.app.add_pod(SPARE_NODE, ready=True, name="echo-outage")),
        (25.0, "echo-outage not ready", lambda: h.app.set_ready("echo-outage", False)),
        (45.0, "echo-outage ready again", lambda: h.app.set_ready("echo-outage", True)),
    ]  # fmt: skip
    try:
        for at, what, change in steps:
            await asyncio.sleep(max(0.0, down + at - time.monotonic()))
            await asyncio.to_thread(change)
            h.say(f"  +{time.monotonic() - down:.0f}s (API down): {what}")
        await asyncio.sleep(max(0.0, down + OUTAGE_S - time.monotonic()))
    finally:
        stop.set()
        await polling
        attempts = await _api_connections(h)
        outage = time.monotonic() - down
        await server.start()
    back, back_wall = time.monotonic(), time.time()
    per_watch = attempts / max(watches, 1) / (outage / 2.0)
    _note("api-outage", f"API down {outage:.0f}s: {attempts} connection attempts to it from "
          f"the 3 daemons ({watches} watches): {per_watch:.2f} per watch every 2 s", h)  # fmt: skip
    answers = ", ".join(f"{code} x{count}" for code, count in sorted(health.items()))
    _note("api-outage", f"/healthz during the outage: {answers}", h)
    _resumed[id(h)] = (sizes, back_wall)
    return back, []


_resumed: dict[int, tuple[dict[str, int], float]] = {}


async def remove_outage_pod(h: Harness, row: Row, results: list[FlowResult]) -> None:
    await _noted(h, row, results)
    if id(h) in _resumed:
        sizes, back = _resumed.pop(id(h))
        row.notes.append(f"probe saw the API back after: {_resumed_after(h, sizes, back)}")
        h.say(f"  {row.notes[-1]}")
    if any(p.name == "echo-outage" for p in h.app.pods):
        await asyncio.to_thread(h.app.remove_pod, "echo-outage")
        await h.converge(time.monotonic(), [])


# --- kernel-faults ----------------------------------------------------------------------------


def _log_sizes(h: Harness) -> dict[str, int]:
    sizes = {}
    for node in h.cluster.net.nodes:
        path = h.cluster.proxies.log_path(node.name)
        sizes[node.name] = path.stat().st_size if path.exists() else 0
    return sizes


def _log_since(h: Harness, sizes: dict[str, int]) -> str:
    text = []
    for node, size in sizes.items():
        with h.cluster.proxies.log_path(node).open("rb") as log:
            log.seek(size)
            text.append(log.read().decode(errors="replace"))
    return "\n".join(text)


_fault_logs: dict[int, dict[str, int]] = {}


async def kernel_faults(h: Harness) -> Fault:
    nodes = [node.name for node in h.cluster.net.nodes]
    _fault_logs[id(h)] = _log_sizes(h)
    env = {
        "IPVSD_FAULT_KERNEL_RATE": KERNEL_FAULT_RATE,
        "IPVSD_FAULT_KERNEL_SEED": str(h.rng.randrange(1, 1 << 16)),
    }
    for node in nodes:  # one at a time, as a rolling update would bring the switch
        await h.restart(node, signal.SIGTERM, env)
        await h.cluster.proxies.wait_ready(CONVERGE_WITHIN, nodes=[node])
    pod = await asyncio.to_thread(h.app.add_pod, SPARE_NODE, ready=False, name="echo-faults")
    for flip in range(10):
        await asyncio.to_thread(h.app.set_ready, pod.name, flip % 2 == 0)
        await asyncio.sleep(h.rng.uniform(1.0, 2.0))
    await asyncio.to_thread(h.app.set_ready, pod.name, True)
    h.say(f"  {pod.name} on {SPARE_NODE} flipped readiness 10 times, ends ready")
    return time.monotonic(), nodes


async def back_without_faults(h: Harness, row: Row, results: list[FlowResult]) -> None:
    """Note what the faults did, check no daemon exited on its own, restart them as built and
    take the churned pod away."""
    nodes = tuple(node.name for node in h.cluster.net.nodes)
    exited = [n for n in nodes if await h.cluster.proxies.exit_code(n) is not None]
    log = _log_since(h, _fault_logs.pop(id(h), {}))
    row.notes.append(
        f"{log.count('injected kernel fault')} faults injected; "
        f"{log.count('sync failed')} syncs failed whole and were retried; "
        f"{log.count('kernel refused')} kernel refusals logged; "
        f"{log.count('Traceback')} tracebacks; daemons that exited: {exited or 'none'}"
    )
    h.say(f"  {row.notes[-1]}")
    await h.as_built(nodes)
    if any(p.name == "echo-faults" for p in h.app.pods):
        await asyncio.to_thread(h.app.remove_pod, "echo-faults")
    await h.converge(time.monotonic(), [])


# --- tampering --------------------------------------------------------------------------------


async def _kernel_has_vip(node: str, vip: str) -> bool:
    with contextlib.suppress(RuntimeError):
        return f" {vip}/" in await run_in(node, "ip", "-br", "addr", "show", "kube-ipvs0")
    return False


async def _nft_table_present(node: str) -> bool:
    with contextlib.suppress(RuntimeError):
        await run_in(node, "nft", "list", "table", "inet", "ipvsd")
        return True
    return False


Tamper = tuple[list[str], Callable[[], Awaitable[bool]]]  # (the command, restored?)


def _tampers(h: Harness) -> dict[str, Tamper]:
    node, vip = CLIENT_NODE, h.service("echo")["spec"]["clusterIP"]
    return {
        "ipvsadm": (["ipvsadm", "-C"], h.kernel_matches_api),
        "vip": (["ip", "addr", "del", f"{vip}/32", "dev", "kube-ipvs0"],
                lambda: _kernel_has_vip(node, vip)),
        "nft": (["nft", "delete", "table", "inet", "ipvsd"], lambda: _nft_table_present(node)),
    }  # fmt: skip


async def _untouched_service(h: Harness) -> Generator:
    """Traffic from node-1's client pod to echo-local's ClusterIP (a Service the VIP and nft
    tampering leave alone)."""
    target = f"{h.service('echo-local')['spec']['clusterIP']}:80"
    flows = [
        Flow("other-clusterip-long", "long", target, count=2, interval=0.2,
             timeout=REPLY_TIMEOUT_S),
        Flow("other-clusterip-new", "new", target, interval=0.3, timeout=REPLY_TIMEOUT_S),
    ]  # fmt: skip
    generator = await Generator.start(h.client.name, flows, h.cluster.scratch / "traffic.log")
    await generator.ready()
    return generator


async def _tamper(h: Harness, scenario: str, actions: list[str]) -> Fault:
    tampers = _tampers(h)
    other = await _untouched_service(h)
    try:
        await asyncio.sleep(2.0)
        for action in actions:
            command, restored = tampers[action]
            await run_in(CLIENT_NODE, *command)
            done = time.monotonic()
            while not await restored():
                if time.monotonic() - done > CONVERGE_WITHIN:
                    _note(scenario, f"{CLIENT_NODE}: `{' '.join(command)}` not restored "
                          f"within {CONVERGE_WITHIN:.0f}s", h)  # fmt: skip
                    break
                await asyncio.sleep(0.2)
            else:
                _note(scenario, f"{CLIENT_NODE}: `{' '.join(command)}`, restored by ipvsd "
                      f"after {time.monotonic() - done:.1f}s", h)  # fmt: skip
            await asyncio.sleep(3.0)
        results = await other.stop()
    finally:
        await other.kill()
    for result in results:
        _note(scenario, f"echo-local ClusterIP from node-1 (untouched by vip/nft): "
              f"{result.name} interrupted {result.interrupted}, failed {result.failed_new}, "
              f"max gap {result.max_gap_ms:.0f} ms", h)  # fmt: skip
    return time.monotonic(), []


def _tampering(scenario: str, actions: list[str]) -> Scenario:
    async def fault(h: Harness) -> Fault:
        return await _tamper(h, scenario, actions)

    return Scenario(fault, after=_noted)


SCENARIOS: dict[str, Scenario] = {
    "api-outage": Scenario(api_outage, after=remove_outage_pod),
    "kernel-faults": Scenario(kernel_faults, after=back_without_faults),
    "tampering": _tampering("tampering", ["ipvsadm", "vip", "nft"]),
}
# One tampering action per traffic window, so each one's breakage is counted apart; run when
# named.
ON_REQUEST: dict[str, Scenario] = {
    "tampering-ipvsadm": _tampering("tampering-ipvsadm", ["ipvsadm"]),
    "tampering-vip": _tampering("tampering-vip", ["vip"]),
    "tampering-nft": _tampering("tampering-nft", ["nft"]),
}
