"""The proxy at scale: `python -m ipvsd.testing.bench.proxy` (run by `hack/bench.sh`).

This process runs the API emulator, fills it with `--services` ClusterIP Services of one TCP
port and `--endpoints` ready endpoints each (one EndpointSlice per Service) plus the Node, and
starts the daemon (`ipvsd.testing.bench.daemon`) as a child with the chosen `--dataplane`.
It reports:

- cold start: from the informers' start to the end of the first full sync (every object in
  the kernel), with the informer sync and the adapters' shares;
- change latency: `--changes` EndpointSlice changes, one at a time, each replacing one
  endpoint's address with a fresh one from `bench_daemon.MARKER_NETWORK`; a change's latency
  runs from just before the API write to the return of the kernel batch that added the new
  real server (the slowest step of a sync, after addresses and the firewall);
- the daemon's peak RSS (VmHWM), and what the kernel holds at the end.

Targets are printed next to the figures. The last line is one JSON object with everything.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from ipaddress import IPv4Address
from typing import Any

import uvloop

from ipvsd.app import tune_collector
from ipvsd.testing.bench.daemon import MARKER_NETWORK, NODE_NAME

Document = dict[str, Any]
POD_NETWORK = int(IPv4Address("10.128.0.0"))
NAMESPACES = 100
TARGET_P50_MS, TARGET_P99_MS, TARGET_RSS_MB = 50.0, 200.0, 300.0


def cluster(services: int, endpoints: int) -> list[Document]:
    """Namespaces, the Node, and per Service its EndpointSlice (ready endpoints, port 8080)."""
    documents: list[Document] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"ns-{i}"}}
        for i in range(NAMESPACES)
    ]
    documents.append(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE_NAME,
                "labels": {"topology.kubernetes.io/zone": "zone-a"},
            },
        }
    )
    for i in range(services):
        namespace, name = f"ns-{i % NAMESPACES}", f"svc-{i}"
        documents.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"namespace": namespace, "name": name},
                "spec": {
                    "type": "ClusterIP",
                    "selector": {"app": name},
                    "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}],
                },
            }
        )
    documents.extend(endpoint_slice(i, endpoints) for i in range(services))
    return documents


def endpoint_slice(index: int, count: int) -> Document:
    first = POD_NETWORK + index * count
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "namespace": f"ns-{index % NAMESPACES}",
            "name": f"svc-{index}-abcde",
            "labels": {"kubernetes.io/service-name": f"svc-{index}"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
        "endpoints": [
            {
                "addresses": [str(IPv4Address(first + j))],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                "nodeName": f"node-{(index + j) % 50}",
            }
            for j in range(count)
        ],
    }


class Daemon:
    """The child process and the tagged lines it prints."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.applied: dict[str, float] = {}
        self._arrived = asyncio.Event()
        self._reports: dict[str, dict[str, Any]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            tag, _, payload = line.decode().partition(" ")
            if not payload.startswith("{"):
                continue
            values = json.loads(payload)
            if tag == "applied":
                for address in values["addresses"]:
                    self.applied[address] = values["at"]
            else:
                self._reports[tag] = values
            self._arrived.set()

    async def report(self, tag: str, seconds: float) -> dict[str, Any]:
        async with asyncio.timeout(seconds):
            while tag not in self._reports:
                if self._reader.done():
                    raise RuntimeError(f"the daemon exited before reporting {tag!r}")
                self._arrived.clear()
                await self._arrived.wait()
        return self._reports[tag]

    async def applied_at(self, address: str, seconds: float) -> float:
        async with asyncio.timeout(seconds):
            while address not in self.applied:
                self._arrived.clear()
                await self._arrived.wait()
        return self.applied[address]


def marker(number: int) -> str:
    return str(MARKER_NETWORK.network_address + 1 + number)


async def changes(server: Any, daemon: Daemon, arguments: argparse.Namespace) -> list[float]:
    """One slice change at a time; each waits for its kernel operation. Latencies in s."""
    latencies = []
    for number in range(arguments.changes):
        index = (number * 37) % arguments.services
        document = endpoint_slice(index, arguments.endpoints)
        address = marker(number)
        document["endpoints"][number % arguments.endpoints]["addresses"] = [address]
        metadata = document["metadata"]
        written = time.monotonic()
        server.store.patch(
            "endpointslices",
            metadata["name"],
            {"endpoints": document["endpoints"]},
            namespace=metadata["namespace"],
        )
        latencies.append(await daemon.applied_at(address, arguments.timeout) - written)
        await asyncio.sleep(arguments.gap)
    return latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


async def run(arguments: argparse.Namespace) -> dict[str, Any]:
    # Imported here: the emulator is this process's business, never the daemon's.
    from ipvsd.testing.apiserver import ApiServer  # noqa: PLC0415

    async with ApiServer(history_size=100_000) as server:
        loading = time.perf_counter()
        server.store.load(cluster(arguments.services, arguments.endpoints))
        say(f"loaded {arguments.services} Services and EndpointSlices "
            f"in {time.perf_counter() - loading:.1f} s")  # fmt: skip
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ipvsd.testing.bench.daemon",
            "--kubeconfig", str(server.kubeconfig_path), "--dataplane", arguments.dataplane,
            *(["--profile", arguments.profile] if arguments.profile else []),
            *(["--profile-cold", arguments.profile_cold] if arguments.profile_cold else []),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        daemon = Daemon(process)
        try:
            programmed = await daemon.report("programmed", arguments.timeout * 10)
            say(f"cold start {programmed['cold_start_s']} s; changing slices")
            latencies = await changes(server, daemon, arguments)
            assert process.stdin is not None
            process.stdin.close()
            runs = await daemon.report("runs", arguments.timeout)
            final = await daemon.report("final", arguments.timeout * 10)
            await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    return {
        "dataplane": arguments.dataplane,
        "services": arguments.services,
        "endpoints": arguments.services * arguments.endpoints,
        **{k: programmed[k] for k in ("cold_start_s", "informer_sync_s", "first_sync_s")},
        "first_sync_spent": programmed["spent"],
        "changes": len(latencies),
        "change_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "change_p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "change_max_ms": round(max(latencies) * 1000, 1),
        "syncs_during_changes": runs["syncs"],
        "changes_spent": runs["spent"],
        "peak_rss_mb": final["peak_rss_mb"],
        "kernel": {k: final[k] for k in ("virtual_servers", "real_servers", "marker_real_servers")},
    }


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def verdict(value: float, target: float) -> str:
    return "PASS" if value <= target else "MISS"


def summary(result: dict[str, Any]) -> str:
    kernel = result["kernel"]
    # One more virtual server and real server than loaded: the emulator's own default/kubernetes
    # Service (443 -> the emulator), which ipvsd programs as in any cluster.
    expected = (result["services"] + 1, result["endpoints"] + 1, result["changes"])
    found = (kernel["virtual_servers"], kernel["real_servers"], kernel["marker_real_servers"])
    p50, p99, rss = result["change_p50_ms"], result["change_p99_ms"], result["peak_rss_mb"]
    return "\n".join(
        [
            f"dataplane: {result['dataplane']} ({DATAPLANES[result['dataplane']]})",
            f"cold start {result['cold_start_s']} s = informer sync {result['informer_sync_s']}"
            f" s + first full sync {result['first_sync_s']} s {result['first_sync_spent']}",
            f"slice change -> kernel, {result['changes']} changes: "
            f"p50 {p50} ms [target <= {TARGET_P50_MS:g}: {verdict(p50, TARGET_P50_MS)}], "
            f"p99 {p99} ms [target <= {TARGET_P99_MS:g}: {verdict(p99, TARGET_P99_MS)}], "
            f"max {result['change_max_ms']} ms",
            f"peak RSS {rss} MB [target <= {TARGET_RSS_MB:g}: {verdict(rss, TARGET_RSS_MB)}]",
            f"kernel holds {found[0]} virtual / {found[1]} real servers, {found[2]} changed: "
            + ("as expected" if found == expected else f"EXPECTED {expected}"),
        ]
    )


DATAPLANES = {
    "kernel": "real IPVS over netlink, real addresses on kube-ipvs0, real nftables",
    "netns": "FakeIpvs, FakeAddresses; real nftables in a private network namespace",
    "fake": "FakeIpvs, FakeAddresses, nft script rendered but not run",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ipvsd.testing.bench.proxy", description=__doc__
    )
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--endpoints", type=int, default=10, help="ready endpoints per Service")
    parser.add_argument("--changes", type=int, default=200, help="slice changes to time")
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between changes")
    parser.add_argument("--dataplane", choices=sorted(DATAPLANES), default="fake")
    parser.add_argument("--profile", help="the daemon's cProfile of the change phase, to FILE")
    parser.add_argument("--profile-cold", help="the daemon's cProfile of the cold start, to FILE")
    parser.add_argument("--timeout", type=float, default=60.0, help="per change, seconds")
    arguments = parser.parse_args(argv)
    tune_collector()  # the emulator stands in for a Go API server: keep its Python overhead low
    result = uvloop.run(run(arguments))
    print(summary(result))
    print(json.dumps(result))
    return 0 if result["kernel"]["marker_real_servers"] == result["changes"] else 1


if __name__ == "__main__":
    sys.exit(main())
