"""The daemon under measurement: `app.run`'s pipeline with a chosen dataplane, instrumented.

Run as a child of `ipvsd.testing.bench.proxy` (`python -m ipvsd.testing.bench.daemon`), so
that its peak RSS is the daemon's alone. The pieces are the daemon's own, wired as `app.run`
wires them (informers → change tracker → bounded-frequency runner → `_SyncLoop` → syncer →
adapters); only the adapters are chosen by `--dataplane`:

- `kernel`: NetlinkIpvs, RtnlAddresses, NftFirewall (everything real; root and an IPVS kernel);
- `netns`: FakeIpvs and FakeAddresses, with the real NftFirewall (root, in a private network
  namespace: the build hosts' kernels have nftables but neither IPVS nor dummy devices);
- `fake`: FakeIpvs, FakeAddresses, and a firewall that renders the `nft -f` script and runs
  nothing (no privileges at all).

Wrappers around the adapters time them and report, on stdout as tagged JSON lines, when a
kernel batch added a real server in `MARKER_NETWORK` (the parent's EndpointSlice changes use
addresses from it), so a change's latency ends when the kernel operation has been applied.
Clock: `time.monotonic()`, which is the same clock in every process of the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import re
import sys
import time
from collections.abc import Coroutine, Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, ip_address
from pathlib import Path
from typing import Any

import uvloop

from ipvsd.app import (
    _informers,
    _SyncLoop,
    informed_syncer,
    prepare_kernel,
    read_critical_first,
    tune_collector,
)
from ipvsd.config.command_line import parse_args
from ipvsd.dataplane.addresses import Addresses, FakeAddresses, RtnlAddresses
from ipvsd.dataplane.ipvs import BatchResult, Ipvs
from ipvsd.dataplane.ipvs_fake import FakeIpvs
from ipvsd.dataplane.ipvs_netlink import NetlinkIpvs
from ipvsd.dataplane.nft import NftFirewall, render, render_changes
from ipvsd.kube.events import EventRecorder
from ipvsd.model.firewall import Firewall, FirewallChanges
from ipvsd.model.ipvs import (
    AddRealServer,
    DeleteRealServer,
    IPAddress,
    ObservedVirtualServer,
    Operation,
    ServiceKey,
    Timeouts,
)
from ipvsd.reconcile.critical import Critical, program_first
from ipvsd.reconcile.firewall_isolation import FirewallPort
from ipvsd.reconcile.runner import BoundedFrequencyRunner
from ipvsd.reconcile.syncer import Syncer
from ipvsd.server.health import ProxyHealth
from ipvsd.server.metrics import ProxyMetrics
from ipvsd.server.servicehealth import ServiceHealthServers
from ipvsd.state.tracker import ChangeTracker

MARKER_NETWORK = IPv4Network("10.250.0.0/16")
NODE_NAME = "node-0"


def say(tag: str, values: dict[str, Any]) -> None:
    print(tag, json.dumps(values), flush=True)


def status_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process, in MiB."""
    match = re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text())
    return int(match.group(1)) / 1024 if match else float("nan")


class Stopwatch:
    """Seconds spent per adapter call kind, summed, and the longest single call of each kind
    (what a change's tail latency may have waited behind); `take()` returns and resets the
    sums, `take_longest()` the longest calls."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self.longest: dict[str, float] = {}

    def add(self, name: str, started: float) -> None:
        seconds = time.perf_counter() - started
        self.spent[name] = self.spent.get(name, 0.0) + seconds
        self.longest[name] = max(self.longest.get(name, 0.0), seconds)

    def take(self) -> dict[str, float]:
        spent, self.spent = self.spent, {}
        return {name: round(seconds, 4) for name, seconds in spent.items()}

    def take_longest(self) -> dict[str, float]:
        longest, self.longest = self.longest, {}
        return {name: round(seconds, 4) for name, seconds in longest.items()}


def time_collections(watch: Stopwatch) -> None:
    """Add the cyclic collector's pauses to `watch`, per generation (`gc0`, `gc1`, `gc2`)."""
    started = 0.0

    def callback(phase: str, info: dict[str, int]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
        else:
            watch.add(f"gc{info['generation']}", started)

    gc.callbacks.append(callback)


class TimedIpvs:
    """The IPVS port, timed; reports the moment a marker real server has been applied, once
    `report_markers` is set (after the cold start, whose 100,000 real servers hold none: not
    looking there keeps the instrument out of the measurement)."""

    def __init__(self, inner: Ipvs, watch: Stopwatch) -> None:
        self.inner = inner
        self._watch = watch
        self.report_markers = False
        self._watched: set[IPAddress] = set()

    def watch_for(self, address: str) -> None:
        """Report (`applied`) the next time a real server with `address` is added."""
        self._watched.add(ip_address(address))

    async def dump(self) -> list[ObservedVirtualServer]:
        started = time.perf_counter()
        try:
            return await self.inner.dump()
        finally:
            self._watch.add("ipvs_dump", started)

    async def dump_services(self, keys: Sequence[ServiceKey]) -> list[ObservedVirtualServer | None]:
        started = time.perf_counter()
        try:
            return await self.inner.dump_services(keys)
        finally:
            self._watch.add("ipvs_dump_services", started)

    async def dump_service(self, key: ServiceKey) -> ObservedVirtualServer | None:
        started = time.perf_counter()
        try:
            return await self.inner.dump_service(key)
        finally:
            self._watch.add("ipvs_dump_service", started)

    async def apply(self, operations: Sequence[Operation]) -> BatchResult:
        started = time.perf_counter()
        result = await self.inner.apply(operations)
        self._watch.add("ipvs_apply", started)
        applied = time.monotonic()
        if not self.report_markers:
            return result
        markers = [
            str(op.server.address)
            for op in operations
            if isinstance(op, AddRealServer)
            and (op.server.address in MARKER_NETWORK or op.server.address in self._watched)
        ]
        self._watched.difference_update(ip_address(m) for m in markers)
        if markers:
            say("applied", {"at": applied, "addresses": markers})
        return result

    async def get_timeouts(self) -> Timeouts:
        return await self.inner.get_timeouts()

    async def set_timeouts(self, timeouts: Timeouts) -> None:
        await self.inner.set_timeouts(timeouts)

    async def close(self) -> None:
        await self.inner.close()


class TimedAddresses:
    """The address port, timed."""

    def __init__(self, inner: Addresses, watch: Stopwatch) -> None:
        self.inner = inner
        self._watch = watch

    async def ensure_device(self) -> None:
        await self.inner.ensure_device()

    async def bound(self) -> frozenset[IPAddress]:
        return await self.inner.bound()

    async def bind(self, addresses: Iterable[IPAddress]) -> None:
        started = time.perf_counter()
        await self.inner.bind(addresses)
        self._watch.add("bind", started)

    async def unbind(self, addresses: Iterable[IPAddress]) -> None:
        started = time.perf_counter()
        await self.inner.unbind(addresses)
        self._watch.add("unbind", started)

    async def host_addresses(self) -> list[tuple[IPAddress, str]]:
        started = time.perf_counter()
        try:
            return await self.inner.host_addresses()
        finally:
            self._watch.add("host_addresses", started)

    async def remove_device(self) -> None:
        await self.inner.remove_device()

    async def close(self) -> None:
        await self.inner.close()


class TimedFirewall:
    """The firewall port, timed."""

    def __init__(self, inner: FirewallPort, watch: Stopwatch) -> None:
        self.inner = inner
        self._watch = watch

    async def apply(self, firewall: Firewall) -> bool:
        started = time.perf_counter()
        try:
            return await self.inner.apply(firewall)
        finally:
            self._watch.add("firewall", started)

    async def update(self, changes: FirewallChanges) -> None:
        started = time.perf_counter()
        try:
            await self.inner.update(changes)
        finally:
            self._watch.add("firewall_update", started)

    async def check(self, firewall: Firewall) -> str | None:
        return await self.inner.check(firewall)


class RenderOnlyFirewall:
    """For `--dataplane fake`: the script `NftFirewall` would run, rendered and dropped."""

    def __init__(self) -> None:
        self._applied: Firewall | None = None

    async def apply(self, firewall: Firewall) -> bool:
        if firewall == self._applied:
            return False
        render(firewall)
        self._applied = firewall
        return True

    async def update(self, changes: FirewallChanges) -> None:
        self._applied = None
        render_changes(changes)

    async def check(self, firewall: Firewall) -> str | None:
        render(firewall)
        return None


async def dataplane(kind: str) -> tuple[Ipvs, Addresses, FirewallPort]:
    if kind == "kernel":
        return await NetlinkIpvs.open(), RtnlAddresses(), NftFirewall()
    host = [(ip_address("127.0.0.1"), "lo"), (ip_address("192.168.0.10"), "eth0")]
    if kind == "netns":
        return FakeIpvs(), FakeAddresses(host=host), NftFirewall()
    return FakeIpvs(), FakeAddresses(host=host), RenderOnlyFirewall()


async def measure(arguments: argparse.Namespace) -> None:
    flags = [f"--kubeconfig={arguments.kubeconfig}", f"--hostname-override={NODE_NAME}"]
    if arguments.sync_period:
        flags.append(f"--ipvs-sync-period={arguments.sync_period}s")
    config = parse_args(flags, environ={}).config
    tune_collector()
    if arguments.dataplane == "kernel":
        prepare_kernel(config)  # modprobe and sysctls: before the clock starts
    watch = Stopwatch()
    time_collections(watch)
    inner_ipvs, inner_addresses, inner_firewall = await dataplane(arguments.dataplane)
    ipvs = TimedIpvs(inner_ipvs, watch)
    addresses = TimedAddresses(inner_addresses, watch)
    health = ProxyHealth(sync_period=config.ipvs_sync_period)
    service_health = ServiceHealthServers(proxy_healthy=health.is_healthy)
    started = time.monotonic()
    say("started", {"at": started})
    try:
        async with _informers(config) as (informers, tracker, client):
            syncer = informed_syncer(
                config,
                informers,
                tracker,
                ipvs=ipvs,
                addresses=addresses,
                firewall=TimedFirewall(inner_firewall, watch),
            )
            loop = _SyncLoop(
                syncer,
                tracker,
                health=health,
                metrics=ProxyMetrics(),
                service_health=service_health,
                events=EventRecorder(client=client, node_name=config.node_name),
            )
            await _run(
                config,
                informers,
                tracker,
                loop,
                critical=read_critical_first(config, client),
                syncer=syncer,
                inner_ipvs=inner_ipvs,
                ipvs=ipvs,
                watch=watch,
                started=started,
                profile_to=arguments.profile,
                profile_cold_to=arguments.profile_cold,
            )
            await _verify(inner_ipvs)
    finally:
        await service_health.close()
        await addresses.close()
        await ipvs.close()


async def _run(
    config: Any,
    informers: Any,
    tracker: ChangeTracker,
    loop: _SyncLoop,
    *,
    critical: Coroutine[Any, Any, Critical | None],
    syncer: Syncer,
    inner_ipvs: Ipvs,
    ipvs: TimedIpvs,
    watch: Stopwatch,
    started: float,
    profile_to: str | None,
    profile_cold_to: str | None,
) -> None:
    """Cold start (informers, then the runner's first run: a full sync), then the runner
    until the parent closes stdin. Wired as `app.run` wires it."""
    first_done = asyncio.Event()
    programmed = 0.0
    cold_spent: dict[str, float] = {}
    periodic_runs: list[float] = []  # seconds each periodic run took

    async def sync(periodic: bool) -> None:
        nonlocal programmed, cold_spent
        begun = time.monotonic()
        await loop.sync(periodic)
        if periodic:
            periodic_runs.append(time.monotonic() - begun)
        if not first_done.is_set():
            programmed, cold_spent = time.monotonic(), watch.take()
            watch.take_longest()
            ipvs.report_markers = True
            first_done.set()

    runner = BoundedFrequencyRunner(
        sync, min_interval=config.ipvs_min_sync_period, max_interval=config.ipvs_sync_period
    )
    tracker.set_notify(runner.request)
    cold_profile = cProfile.Profile() if profile_cold_to else None
    if cold_profile is not None:
        cold_profile.enable()
    refs = await program_first(syncer, await critical)
    watching = asyncio.create_task(informers.run(), name="informers")
    say("critical", {"critical_s": round(time.monotonic() - started, 3), "services": [
        str(ref) for ref in refs]})  # fmt: skip
    await informers.synced.wait()
    synced = time.monotonic()
    running = asyncio.create_task(runner.loop(), name="sync loop")
    await first_done.wait()
    if cold_profile is not None:
        cold_profile.disable()
        cold_profile.dump_stats(str(profile_cold_to))
    say(
        "programmed",
        {
            "informer_sync_s": round(synced - started, 3),
            "first_sync_s": round(programmed - synced, 3),
            "cold_start_s": round(programmed - started, 3),
            "spent": cold_spent,
            "rss_mb": round(status_mb("VmRSS"), 1),
        },
    )
    profile = cProfile.Profile() if profile_to else None
    if profile is not None:
        profile.enable()
    await _commands(inner_ipvs, ipvs, periodic_runs)  # until the parent's "stop" (EOF)
    if profile is not None:
        profile.disable()
        profile.dump_stats(str(profile_to))
    say("runs", {"syncs": runner.runs, "periodic": len(periodic_runs), "spent": watch.take(),
                 "longest": watch.take_longest()})  # fmt: skip
    for task in (running, watching):
        task.cancel()
    await asyncio.gather(running, watching, return_exceptions=True)


async def _commands(inner: Ipvs, ipvs: TimedIpvs, periodic_runs: list[float]) -> None:
    """The parent's requests, one a line on stdin, until EOF:

    - `cpu`: this process's CPU seconds so far and the periodic runs so far (`cpu` tag);
    - `drift`: a hand-made change behind the daemon's back: one real server of one virtual
      server deleted through a netlink socket of its own (the daemon's picture still holds
      it); `drift` tags when it was done and, later, when a sync put it back."""
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        command = line.strip()
        if command == "cpu":
            cpu = time.process_time()
            say("cpu", {"cpu_s": cpu, "at": time.monotonic(), "periodic": len(periodic_runs),
                        "periodic_runs_s": periodic_runs[-5:]})  # fmt: skip
        elif command == "drift":
            await _drift(inner, ipvs)


async def _drift(inner: Ipvs, ipvs: TimedIpvs) -> None:
    table = await inner.dump()
    victim = next(entry for entry in table if entry.real_servers and entry.key.port == 80)
    real = victim.real_servers[0].server
    kind = type(inner)
    hand = await NetlinkIpvs.open() if kind is NetlinkIpvs else inner
    try:
        result = await hand.apply([DeleteRealServer(victim.key, real.address, real.port)])
    finally:
        if hand is not inner:
            await hand.close()
    done = time.monotonic()
    if not result.ok:
        say("drift", {"error": str(result.failures)})
        return
    ipvs.watch_for(str(real.address))
    say("drift", {"deleted_at": done, "address": str(real.address)})


async def _verify(ipvs: Ipvs) -> None:
    """Count what the kernel (or the fake) holds, after the clock has stopped."""
    table = await ipvs.dump()
    markers = sum(
        1
        for entry in table
        for real in entry.real_servers
        if isinstance(real.server.address, IPv4Address) and real.server.address in MARKER_NETWORK
    )
    say(
        "final",
        {
            "virtual_servers": len(table),
            "real_servers": sum(len(entry.real_servers) for entry in table),
            "marker_real_servers": markers,
            "peak_rss_mb": round(status_mb("VmHWM"), 1),
        },
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ipvsd.testing.bench.daemon", description=__doc__
    )
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--dataplane", choices=["kernel", "netns", "fake"], default="fake")
    parser.add_argument("--profile", help="cProfile the change phase into this file")
    parser.add_argument("--profile-cold", help="cProfile the cold start into this file")
    parser.add_argument("--sync-period", type=float, help="--ipvs-sync-period, seconds")
    uvloop.run(measure(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
