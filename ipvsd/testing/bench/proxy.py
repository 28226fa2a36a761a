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
import os
import socket
import statistics
import sys
import time
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import uvloop

from ipvsd.app import tune_collector
from ipvsd.reconcile.syncer import CHECK_PER_PERIOD, ROTATE_ABOVE
from ipvsd.testing.bench.daemon import MARKER_NETWORK, NODE_NAME

Document = dict[str, Any]
POD_NETWORK = int(IPv4Address("10.128.0.0"))
NAMESPACES = 100
TARGET_P50_MS, TARGET_P99_MS = 10.0, 50.0  # issue 19, at 50,000 Services


def target_rss_mb(services: int) -> float:
    """Issue 19: 250 MB at 10,000 Services, 600 MB at 50,000."""
    return 250.0 if services <= 10_000 else 600.0


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
    documents.extend(kube_dns())
    return documents


DNS_ADDRESS = "192.168.0.10"  # the node's own address in the VM's namespace (hack/bench_vm.py)


def kube_dns() -> list[Document]:
    """`kube-system/kube-dns` (TCP 53), its one endpoint on the node's address, where the
    parent listens (in the VM: reachability of a critical Service is measured, not assumed)."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"namespace": "kube-system", "name": "kube-dns"},
            "spec": {
                "type": "ClusterIP",
                "selector": {"k8s-app": "kube-dns"},
                "ports": [{"name": "dns-tcp", "protocol": "TCP", "port": 53, "targetPort": 53}],
            },
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "namespace": "kube-system",
                "name": "kube-dns-abcde",
                "labels": {"kubernetes.io/service-name": "kube-dns"},
            },
            "addressType": "IPv4",
            "ports": [{"name": "dns-tcp", "protocol": "TCP", "port": 53}],
            "endpoints": [
                {
                    "addresses": [DNS_ADDRESS],
                    "conditions": {"ready": True, "serving": True, "terminating": False},
                    "nodeName": NODE_NAME,
                }
            ],
        },
    ]


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

    def forget(self, tag: str) -> None:
        """Wait for a fresh `tag` next time (a request's answer, not the last one)."""
        self._reports.pop(tag, None)

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
    """`--changes` slice changes at `--rate` per second, written on schedule whatever the
    daemon does (open loop: a change that waits behind a sync shows as latency, it does not
    slow the writer). Each latency runs to its kernel operation. Latencies in s."""
    pending = []
    begin = time.monotonic()
    for number in range(arguments.changes):
        await asyncio.sleep(max(0.0, begin + number / arguments.rate - time.monotonic()))
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
        pending.append(asyncio.ensure_future(_latency(daemon, address, written, arguments)))
    return list(await asyncio.gather(*pending))


async def _latency(daemon: Daemon, address: str, written: float, arguments: Any) -> float:
    return await daemon.applied_at(address, arguments.timeout) - written


async def command(daemon: Daemon, line: str, tag: str, seconds: float) -> dict[str, Any]:
    """Send the daemon one request (`daemon._commands`) and wait for its fresh answer."""
    daemon.forget(tag)
    assert daemon.process.stdin is not None
    daemon.process.stdin.write(f"{line}\n".encode())
    await daemon.process.stdin.drain()
    return await daemon.report(tag, seconds)


async def idle_cpu(daemon: Daemon, arguments: argparse.Namespace) -> dict[str, Any]:
    """The daemon's CPU share over `--idle-periods` sync periods without changes."""
    first = await command(daemon, "cpu", "cpu", arguments.timeout)
    machine = machine_cpu()
    await asyncio.sleep(arguments.idle_periods * arguments.sync_period)
    busy, total = (after - before for after, before in zip(machine_cpu(), machine, strict=True))
    last = await command(daemon, "cpu", "cpu", arguments.timeout)
    spent, elapsed = last["cpu_s"] - first["cpu_s"], last["at"] - first["at"]
    cores = os.cpu_count() or 1
    return {
        "idle_cpu_pct": round(100 * spent / elapsed, 1),
        # Every CPU of the machine (the VM's, in the VM) over the same time, in % of one:
        # the daemon, this process (the emulator) and the kernel's own work (IPVS's rate
        # estimator walks every virtual server's and real server's counters every 2 s).
        "machine_cpu_pct": round(100 * cores * busy / total, 1) if total else None,
        "idle_seconds": round(elapsed, 1),
        "idle_periodic_checks": last["periodic"] - first["periodic"],
        "periodic_check_s": [round(x, 3) for x in last["periodic_runs_s"]],
    }


def drift_periods(services: int) -> int:
    """Sync periods within which the periodic check corrects a programmed Service's kernel
    objects (`reconcile.syncer`: CHECK_PER_PERIOD Services a period at scale)."""
    if services + 2 <= ROTATE_ABOVE:
        return 1
    return -(-(services + 2) // CHECK_PER_PERIOD)


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of every CPU, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


async def drift(daemon: Daemon, arguments: argparse.Namespace) -> float:
    """Seconds from a hand-made deletion of one real server to its return by a sync."""
    done = await command(daemon, "drift", "drift", arguments.timeout)
    if "error" in done:
        raise RuntimeError(f"the hand-made change failed: {done['error']}")
    bound = arguments.sync_period * (drift_periods(arguments.services) + 2) + arguments.timeout
    return await daemon.applied_at(done["address"], bound) - float(done["deleted_at"])


def reached(address: str, port: int) -> float:
    """When (time.monotonic()) a TCP connection to address:port was first accepted, polled
    every 10 ms. Blocking, for a thread of its own: this process also serves the daemon's
    lists, and a coroutine here waits behind their serialization (in the VM at 10,000
    Services reachability trailed programming by 1.3 s that way, by 0.3 s from a thread)."""
    while True:
        try:
            with socket.create_connection((address, port), timeout=0.5):
                return time.monotonic()
        except OSError:
            time.sleep(0.01)


async def critical_reachable(server: Any, started: asyncio.Future[float]) -> float:
    """Seconds from the daemon's start until both `default/kubernetes` and `kube-dns`
    accept a connection on their ClusterIPs (the kernel dataplane only)."""
    ips = [
        server.store.get("services", name, namespace=namespace)["spec"]["clusterIP"]
        for namespace, name in (("default", "kubernetes"), ("kube-system", "kube-dns"))
    ]
    done = await asyncio.gather(
        asyncio.to_thread(reached, ips[0], 443), asyncio.to_thread(reached, ips[1], 53)
    )
    return max(done) - await started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


async def run(arguments: argparse.Namespace) -> dict[str, Any]:
    # Imported here: the emulator is this process's business, never the daemon's.
    from ipvsd.testing.apiserver import ApiServer  # noqa: PLC0415

    kernel = arguments.dataplane == "kernel"
    async with ApiServer(history_size=100_000, host=arguments.api_host) as server:
        loading = time.perf_counter()
        server.store.load(cluster(arguments.services, arguments.endpoints))
        say(f"loaded {arguments.services} Services and EndpointSlices "
            f"in {time.perf_counter() - loading:.1f} s")  # fmt: skip
        dns = await asyncio.start_server(_answer, DNS_ADDRESS, 53) if kernel else None
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ipvsd.testing.bench.daemon",
            "--kubeconfig", str(server.kubeconfig_path), "--dataplane", arguments.dataplane,
            "--sync-period", str(arguments.sync_period),
            *(["--profile", arguments.profile] if arguments.profile else []),
            *(["--profile-cold", arguments.profile_cold] if arguments.profile_cold else []),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        daemon = Daemon(process)
        started = asyncio.ensure_future(_started(daemon, arguments))
        probing = asyncio.ensure_future(critical_reachable(server, started)) if kernel else None
        try:
            critical = await daemon.report("critical", arguments.timeout * 10)
            programmed = await daemon.report("programmed", arguments.timeout * 10)
            reached = await probing if probing is not None else None
            say(f"cold start {programmed['cold_start_s']} s; changing slices")
            latencies = await changes(server, daemon, arguments)
            changed = await command(daemon, "cpu", "cpu", arguments.timeout)
            idle = await idle_cpu(daemon, arguments) if arguments.idle_periods else {}
            drifted = await drift(daemon, arguments) if arguments.drift else None
            assert process.stdin is not None
            process.stdin.close()
            runs = await daemon.report("runs", arguments.timeout)
            final = await daemon.report("final", arguments.timeout * 10)
            await process.wait()
        finally:
            for task in (started, probing):
                if task is not None:
                    task.cancel()
            if dns is not None:
                dns.close()
            if process.returncode is None:
                process.kill()
                await process.wait()
    return {
        "sync_period_s": arguments.sync_period,
        "critical_programmed_s": critical["critical_s"],
        "critical_services": critical["services"],
        "critical_s": round(reached, 3) if reached is not None else None,
        "change_rate": arguments.rate,
        "periodic_checks_during_changes": changed["periodic"],
        **idle,
        "drift_s": round(drifted, 3) if drifted is not None else None,
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
        "periodic_checks": runs["periodic"],
        "changes_spent": runs["spent"],
        "changes_longest_call": runs["longest"],
        "peak_rss_mb": final["peak_rss_mb"],
        "kernel": {k: final[k] for k in ("virtual_servers", "real_servers", "marker_real_servers")},
    }


async def _started(daemon: Daemon, arguments: argparse.Namespace) -> float:
    # The start-up, not a change: as patient as the cold start (in a VM loaded by another,
    # the start-up report once came later than the 120 s a change gets).
    report = await daemon.report("started", arguments.timeout * 10)
    return float(report["at"])


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def verdict(value: float, target: float) -> str:
    return "PASS" if value <= target else "MISS"


def summary(result: dict[str, Any]) -> str:
    kernel = result["kernel"]
    # Two more virtual servers and real servers than loaded: the emulator's own
    # default/kubernetes Service (443 -> the emulator), which ipvsd programs as in any cluster,
    # and kube-system/kube-dns (`kube_dns`).
    expected = (result["services"] + 2, result["endpoints"] + 2, result["changes"])
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
            f"critical Services {result['critical_services']} programmed "
            f"{result['critical_programmed_s']} s after the start; reachable: "
            + (f"{result['critical_s']} s" if result["critical_s"] is not None else "not probed"),
            f"{result['periodic_checks']} periodic checks (sync period "
            f"{result['sync_period_s']:g} s), {result['periodic_checks_during_changes']} of them "
            f"before the last change was written ({result['change_rate']:g} changes/s)",
            f"idle: {result.get('idle_cpu_pct')} % of a core over {result.get('idle_seconds')} s"
            f" (the whole machine: {result.get('machine_cpu_pct')} % of a core)"
            f" ({result.get('idle_periodic_checks')} periodic checks, the last ones took "
            f"{result.get('periodic_check_s')} s); a hand-deleted real server came back after "
            f"{result['drift_s']} s",
            f"peak RSS {rss} MB [target <= {target_rss_mb(result['services']):g}: "
            f"{verdict(rss, target_rss_mb(result['services']))}]",
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
    parser.add_argument("--rate", type=float, default=50.0, help="slice changes per second")
    parser.add_argument("--sync-period", type=float, default=30.0,
                        help="the daemon's --ipvs-sync-period, seconds")  # fmt: skip
    parser.add_argument("--idle-periods", type=int, default=0,
                        help="the daemon's CPU over this many idle sync periods")  # fmt: skip
    parser.add_argument("--drift", action="store_true",
                        help="delete one real server by hand and time its correction")  # fmt: skip
    parser.add_argument("--api-host", default="127.0.0.1", help="where the emulator listens")
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
