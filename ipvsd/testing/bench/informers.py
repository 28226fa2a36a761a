"""Informer speed and memory against the API emulator: `python -m ipvsd.testing.bench.informers`.

The parent process runs the emulator and bulk-loads a large cluster (`large_cluster`). Each
measurement runs in a child process of its own, so the RSS it reports is the informers' alone
and the official client's memory cannot help or hurt them:

- `--measure`: ipvsd's informers (Services, EndpointSlices, own Node) sync; the child reports
  the time to `synced` and its VmRSS, then the parent patches EndpointSlices one at a time and
  the child measures, inside the informer, each event from its last byte read to the return of
  the handler that records the change (median over `--events`);
- `--official`: `CoreV1Api().list_service_for_all_namespaces()` plus
  `DiscoveryV1Api().list_endpoint_slice_for_all_namespaces()`, the typed lists of the same
  objects with the official client.

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import uvloop
from kubernetes import client as official
from kubernetes import config as _official_config

from ipvsd.kube.auth import load_credentials
from ipvsd.kube.client import ApiClient
from ipvsd.kube.proxy_informers import ProxyInformers
from ipvsd.kube.watch import ListMode, WatchSettings
from ipvsd.testing.bench import large_cluster

official_config: Any = _official_config  # untyped; the official client is what is measured


def _rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else float("nan")


def _say(tag: str, values: dict[str, Any]) -> None:
    print(tag, json.dumps(values), flush=True)


# --- child: ipvsd's informers -------------------------------------------------------------------


class _ChangeLog:
    """The handler: remembers which keys changed, as the proxy's change tracker would."""

    def __init__(self) -> None:
        self.changed: set[str] = set()

    def on_add(self, new: Any) -> None:
        self.changed.add(_key(new))

    def on_update(self, old: Any, new: Any) -> None:
        self.changed.add(_key(new))

    def on_delete(self, old: Any) -> None:
        self.changed.add(_key(old))


def _key(value: Any) -> str:
    if hasattr(value, "ref"):
        return str(value.ref)
    if hasattr(value, "namespace"):
        return f"{value.namespace}/{value.name}"
    return str(value.name)


async def _measure(arguments: argparse.Namespace) -> None:
    latencies: list[float] = []
    measuring = False
    enough = asyncio.Event()

    def observe(seconds: float) -> None:
        if measuring:
            latencies.append(seconds)
            if len(latencies) >= arguments.events:
                enough.set()

    credentials = load_credentials(kubeconfig=arguments.kubeconfig)
    async with ApiClient(credentials=credentials) as client:
        started = time.perf_counter()
        informers = ProxyInformers(
            client=client,
            node_name="node-0",
            settings=WatchSettings(mode=ListMode(arguments.mode)),
            observe_latency=observe,
        )
        changes = _ChangeLog()
        for informer in informers.all:
            informer.add_handler(changes)
        task = asyncio.create_task(informers.run())
        await informers.synced.wait()
        sync_s = time.perf_counter() - started
        gc.collect()
        _say(
            "synced",
            {
                "sync_s": round(sync_s, 3),
                "rss_mb": round(_rss_mb(), 1),
                "services": len(informers.services.store),
                "slices": len(informers.endpoint_slices.store),
                "endpoints": sum(
                    len(s.endpoints) for s in informers.endpoint_slices.store.values()
                ),
            },
        )
        changes.changed.clear()
        measuring = True
        await enough.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    _say(
        "events",
        {
            "event_p50_ms": round(statistics.median(latencies) * 1000, 3),
            "event_p99_ms": round(sorted(latencies)[int(len(latencies) * 0.99) - 1] * 1000, 3),
            "changes_recorded": len(changes.changed),
        },
    )


# --- child: the official client -------------------------------------------------------------


def _official(arguments: argparse.Namespace) -> None:
    official_config.load_kube_config(config_file=arguments.kubeconfig)
    started = time.perf_counter()
    services = official.CoreV1Api().list_service_for_all_namespaces()
    slices = official.DiscoveryV1Api().list_endpoint_slice_for_all_namespaces()
    elapsed = time.perf_counter() - started
    endpoints = sum(len(s.endpoints or ()) for s in slices.items)
    _say(
        "official",
        {
            "official_client_s": round(elapsed, 3),
            "services": len(services.items),
            "endpoints": endpoints,
            "rss_mb": round(_rss_mb(), 1),
        },
    )


# --- parent: the emulator and the children ---------------------------------------------------


async def _child(*arguments: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ipvsd.testing.bench.informers",
        *arguments,
        stdout=asyncio.subprocess.PIPE,
    )


async def _read_tagged(process: asyncio.subprocess.Process, tag: str) -> dict[str, Any]:
    assert process.stdout is not None
    while line := await process.stdout.readline():
        name, _, payload = line.decode().partition(" ")
        if name == tag:
            values: dict[str, Any] = json.loads(payload)
            return values
    raise RuntimeError(f"the child exited before reporting {tag!r}")


async def _run(arguments: argparse.Namespace) -> dict[str, Any]:
    # Imported here so that the measuring children never load the emulator.
    from ipvsd.testing.apiserver import ApiServer  # noqa: PLC0415

    services, slices = large_cluster.services_and_slices(
        arguments.services, endpoints_per_slice=arguments.endpoints, node_count=arguments.nodes
    )
    async with ApiServer(history_size=100_000) as server:
        loading = time.perf_counter()
        server.store.load(large_cluster.namespaces())
        server.store.load(large_cluster.nodes(arguments.nodes))
        server.store.load(services)
        server.store.load(slices)
        print(
            f"loaded {len(services)} Services and {len(slices)} EndpointSlices "
            f"in {time.perf_counter() - loading:.1f} s",
            file=sys.stderr,
        )
        kubeconfig = str(server.kubeconfig_path)

        measure = await _child(
            "--measure",
            "--kubeconfig",
            kubeconfig,
            "--mode",
            arguments.mode,
            "--events",
            str(arguments.events),
        )
        synced = await _read_tagged(measure, "synced")
        for i in range(arguments.events):
            _flip_first_endpoint(server, slices[(i * 37) % len(slices)])
            await asyncio.sleep(arguments.event_gap)
        events = await _read_tagged(measure, "events")
        await measure.wait()

        official = await _child("--official", "--kubeconfig", kubeconfig)
        typed = await _read_tagged(official, "official")
        await official.wait()
    return {
        "services": synced["services"],
        "endpoints": synced["endpoints"],
        "sync_s": synced["sync_s"],
        "official_client_s": typed["official_client_s"],
        "speedup": round(typed["official_client_s"] / synced["sync_s"], 1),
        "rss_mb": synced["rss_mb"],
        "event_p50_ms": events["event_p50_ms"],
        "event_p99_ms": events["event_p99_ms"],
        "mode": arguments.mode,
    }


def _flip_first_endpoint(server: Any, document: dict[str, Any]) -> None:
    """A relevant change: the first endpoint's readiness toggles (a merge patch replaces the
    endpoints list, as the EndpointSlice controller's updates do)."""
    conditions = document["endpoints"][0]["conditions"]
    conditions["ready"] = not conditions["ready"]
    metadata = document["metadata"]
    server.store.patch(
        "endpointslices",
        metadata["name"],
        {"endpoints": document["endpoints"]},
        namespace=metadata["namespace"],
    )


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ipvsd.testing.bench.informers", description=__doc__
    )
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--endpoints", type=int, default=10, help="endpoints per slice")
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--events", type=int, default=200, help="slice patches to time")
    parser.add_argument("--event-gap", type=float, default=0.01, help="seconds between patches")
    parser.add_argument("--mode", choices=["auto", "list", "stream"], default="auto")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--official", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = _arguments(argv)
    if arguments.measure:
        uvloop.run(_measure(arguments))
        return 0
    if arguments.official:
        _official(arguments)
        return 0
    result = uvloop.run(_run(arguments))
    print(
        f"ipvsd informers: sync {result['sync_s']} s, RSS {result['rss_mb']} MB, "
        f"event p50 {result['event_p50_ms']} ms (p99 {result['event_p99_ms']} ms); "
        f"official client typed list {result['official_client_s']} s "
        f"({result['speedup']} x slower)",
        file=sys.stderr,
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
