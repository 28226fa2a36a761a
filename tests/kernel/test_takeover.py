"""Taking a node over from kube-proxy's IPVS mode, handing it back, and living beside it.

The node is built from kube-proxy's own rules (`takeover_support`, data/kube-proxy/): its
iptables and ip6tables rules, its ipsets of both families, kube-ipvs0 and its IPVS table,
beside the kubelet's chains, a user's chain and set and a hand-made virtual server.

- The removal alone, on the nft and the legacy iptables backend.
- The whole daemon taking the node over under traffic and handing it back: pods and the
  client are separate processes (`ipvsd.testing.traffic`): a long-lived connection
  and a stream of new ones through every TCP Service and a UDP flow, from before ipvsd
  starts until kube-proxy's rules are back; none may break or fail, nor the flow move.
- Beside a live kube-proxy (something answering /proxyMode on 127.0.0.1:10249): in iptables
  mode with --serve-only-labelled each Service is served by its own proxy; in IPVS mode ipvsd
  refuses before changing anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from ipvsd.app import run as run_daemon
from ipvsd.config.command_line import parse_args
from ipvsd.dataplane.kube_proxy_leftovers import NetfilterLeftovers
from ipvsd.reconcile.takeover import KubeProxyLeftovers, KubeProxyRunning
from ipvsd.testing.apiserver import ApiServer
from ipvsd.testing.netns import accepts, entered, lab
from ipvsd.testing.traffic import HELLO, Flow, Generator, serve_argv
from tests.kernel.takeover_support import (
    DATA,
    HAND_MADE,
    Backend,
    clean_node,
    ipsets,
    ipvs_rules,
    kube_proxy_was_here,
    node_before,
    restore,
    run,
    saved,
)

pytestmark = pytest.mark.kernel


@pytest.fixture
def node() -> Iterator[None]:
    clean_node()
    yield
    clean_node()


def loaded(module: str) -> bool:
    return any(line.split()[0] == module for line in Path("/proc/modules").read_text().splitlines())


@pytest.mark.parametrize("backend", ["nft", "legacy"])
async def test_kube_proxys_rules_and_sets_go_and_nothing_else_does(
    node: None, backend: Backend
) -> None:
    legacy_before = loaded("ip_tables")
    node_before(backend)
    before = {family: saved(backend, family) for family in ("ipv4", "ipv6")}
    sets_before = ipsets()
    kube_proxy_was_here(backend)
    assert "KUBE-IPVS-FILTER" in saved(backend)
    assert len(ipsets()) == len(sets_before) + 34
    ipvs = ipvs_rules()

    assert await KubeProxyLeftovers(NetfilterLeftovers()).remove()

    assert saved(backend, "ipv4") == before["ipv4"]
    assert saved(backend, "ipv6") == before["ipv6"]
    assert ipsets() == sets_before == ["user-set"]
    assert ipvs_rules() == ipvs  # IPVS is adopted, not removed
    assert HAND_MADE in ipvs
    if backend == "nft":
        assert loaded("ip_tables") == legacy_before  # the legacy backend was not loaded to look


# --- the takeover under traffic, and the way back ----------------------------------------------

NODE_ADDRESS = "10.200.3.1"  # the node as the client sees it (takeover_support's NodePorts)
TARGETS = (
    "10.96.0.10:80",  # web, ClusterIP
    "10.96.0.20:80",  # np-cluster's ClusterIP (one real server left at weight 0)
    f"{NODE_ADDRESS}:30080",  # np-cluster, NodePort eTP=Cluster
    f"{NODE_ADDRESS}:30090",  # np-local, NodePort eTP=Local
    "192.0.2.10:80",  # lb, LB IP with source ranges
)
UDP_TARGET = "10.96.0.53:53"  # dns


def service(name: str, cluster_ip: str, port: int, **spec: Any) -> dict[str, Any]:
    protocol = spec.pop("protocol", "TCP")
    node_port = spec.pop("nodePort", None)
    target = 5353 if protocol == "UDP" else 8080
    entry: dict[str, Any] = {"name": "p", "port": port, "protocol": protocol, "targetPort": target}
    if node_port:
        entry["nodePort"] = node_port
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": cluster_ip, "ports": [entry], **spec},
    }  # fmt: skip


def slice_of(name: str, protocol: str = "TCP") -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{name}-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": "p", "protocol": protocol,
                   "port": 5353 if protocol == "UDP" else 8080}],
        "endpoints": [{"addresses": [a], "nodeName": "node-a", "conditions": {"ready": True}}
                      for a in ("10.200.1.2", "10.200.2.2")],
    }  # fmt: skip


def cluster_objects() -> list[dict[str, Any]]:
    """The same Services as kube-proxy's fact sheet, as the API holds them."""
    return [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"}},
        service("web", "10.96.0.10", 80),
        service("dns", "10.96.0.53", 53, protocol="UDP"),
        service("np-cluster", "10.96.0.20", 80, type="NodePort", nodePort=30080),
        service("np-local", "10.96.0.30", 80, type="NodePort", nodePort=30090,
                externalTrafficPolicy="Local"),
        service("lb", "10.96.0.40", 80, type="LoadBalancer", nodePort=30100,
                loadBalancerSourceRanges=["10.200.3.0/24"]),
        *(slice_of(n) for n in ("web", "np-cluster", "np-local", "lb")),
        slice_of("dns", "UDP"),
    ]  # fmt: skip


PODS = {"pod-a": "10.200.1.2", "pod-b": "10.200.2.2"}  # lab() numbers them in this order


def pod_server(pod: str) -> subprocess.Popen[bytes]:
    """A pod's server (ipvsd.testing.traffic) in its namespace: TCP 8080, UDP 5353."""
    return subprocess.Popen(
        ["ip", "netns", "exec", pod, *serve_argv(pod, 8080, 5353)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def until(check: Callable[[], bool], what: str, seconds: float = 180.0) -> None:
    for _ in range(int(seconds * 5)):
        if check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not reached in {seconds}s: {what}")


def kube_proxy_sync_again() -> None:
    """What kube-proxy's IPVS mode writes when it starts on the node ipvsd left: its sets and
    rules (ensureIPSet, RestoreAll) and, for its virtual servers, in-place updates with every
    weight reset to 1 (syncService's UpdateVirtualServer; syncEndpoint on initialSync)."""
    run("ipset", "restore", "-exist", stdin=(DATA / "ipvs-mode.ipset").read_text())
    restore("nft", "ipvs-mode")
    edits = [
        line.replace("-A ", "-E ", 1).replace("-a ", "-e ", 1).replace("-w 0", "-w 1")
        for line in (DATA / "ipvs-mode.ipvsadm").read_text().splitlines()
    ]
    run("ipvsadm", "-R", stdin="\n".join(edits) + "\n")


def phase(what: str) -> None:
    """Printed with the time, as the load's errors are: a failure names the phase it fell in."""
    print(f"{time.time():.1f} {what}")


@contextlib.contextmanager
def timed_logs() -> Iterator[None]:
    """The daemon's log lines (debug too) printed with their times, beside the phases."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(created).1f %(name)s %(message)s"))
    logger = logging.getLogger("ipvsd")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# Per TCP target a long-lived connection (64 bytes echoed every 0.3 s) and a new connection
# every 0.1 s; a UDP flow from one source port. Each reply is due within REPLY_WITHIN: what
# ipvsd breaks stays broken (a deleted real server expires its connections), while the
# emulated VM on a loaded host stalls a single connection now and then by itself: with 5 s,
# one connection in about 1,400 went 5.2 s without its reply right after its handshake, while
# kube-proxy's state alone served the node (before ipvsd had changed anything).
REPLY_WITHIN = 15.0
FLOWS = [
    *(Flow(f"{target} {kind}", kind, target, interval=interval, timeout=REPLY_WITHIN)
      for target in TARGETS for kind, interval in (("long", 0.3), ("new", 0.1))),
    Flow(f"{UDP_TARGET} udp", "udp", UDP_TARGET, interval=0.3, timeout=REPLY_WITHIN,
         source_port=40053),
]  # fmt: skip


@contextlib.asynccontextmanager
async def traffic(log: Path) -> AsyncIterator[Generator]:
    """Pods serving and a client loading every target (FLOWS), each its own process, from the
    moment the client has been answered through every target."""
    with lab() as net:
        for name in ("pod-a", "pod-b", "client"):
            net.add_namespace(name)
        servers = [pod_server("pod-a"), pod_server("pod-b")]
        for pod, address in PODS.items():  # a refused first connection would count as failed
            await until(functools.partial(accepts, pod, address, 8080), f"{pod} listening")
        generator = await Generator.start("client", FLOWS, log)
        try:
            assert await generator.ready(), "no answer through some target"
            yield generator
        finally:
            await generator.kill()
            for server in servers:
                server.kill()
                server.wait()


async def ipvsd_takes_over(before: dict[str, str]) -> None:
    """ipvsd started for the node: kube-proxy's rules and sets go once ipvsd's are in."""
    async with ApiServer() as server:
        server.store.load(cluster_objects())
        ingress = {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}
        server.store.patch("services", "lb", {"status": ingress}, status=True)
        flags = parse_args(
            [f"--kubeconfig={server.kubeconfig_path}", "--hostname-override=node-a",
             "--cluster-cidr=10.200.1.0/24", "--ipvs-sync-period=1s",
             "--service-cluster-ip-range=10.96.0.0/12",
             "--healthz-bind-address=127.0.0.1:10256", "--metrics-bind-address=127.0.0.1:10249"],
            environ={},
        )  # fmt: skip
        daemon = asyncio.create_task(run_daemon(flags.config))
        try:
            await until(
                lambda: (
                    saved("nft") == before["ipv4"]
                    and saved("nft", "ipv6") == before["ipv6"]
                    and ipsets() == ["user-set"]
                ),
                "kube-proxy's leftovers removed",
            )
            # The ClusterIPs kube-proxy bound went once ipvsd's route covered the range (the
            # traffic running throughout shows no gap); the LB IP stays bound.
            assert bound_on_dummy().split()[2:] == ["192.0.2.10/32"]
            assert run("ip", "route", "show", "table", "local", "proto", "125").startswith(
                "local 10.96.0.0/12 dev lo"
            )
            assert "table inet ipvsd" in run("nft", "list", "tables")
            table = ipvs_rules()
            assert HAND_MADE in table
            assert "-a -t 10.96.0.20:80 -r 10.200.2.2:8080 -m -w 1" in table  # weight corrected
            phase("kube-proxy's leftovers removed")
            await asyncio.sleep(5)  # traffic through ipvsd alone
        finally:
            daemon.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await daemon


@pytest.mark.timeout(900)  # four Python processes and a daemon in the emulated VM
async def test_kube_proxy_to_ipvsd_and_back_without_losing_a_connection(
    node: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    node_before("nft")
    before = {family: saved("nft", family) for family in ("ipv4", "ipv6")}
    kube_proxy_was_here("nft")
    async with traffic(tmp_path / "traffic.log") as generator:  # ready: through kube-proxy's state
        phase("ipvsd starts")
        with caplog.at_level(logging.INFO, logger="ipvsd.reconcile.takeover"), timed_logs():
            await ipvsd_takes_over(before)
        removals = [r for r in caplog.records if "removed kube-proxy's" in r.getMessage()]
        assert len(removals) == 1, [r.getMessage() for r in caplog.records]

        # The way back: ipvsd stopped without --cleanup leaves its IPVS table and VIPs;
        # kube-proxy starts, writes its rules and sets and adopts the virtual servers; then
        # ipvsd's nftables table is deleted.
        assert "-A -t 10.96.0.10:80 -s rr" in ipvs_rules()
        phase("ipvsd stopped; kube-proxy syncs")
        kube_proxy_sync_again()
        phase("ipvsd's table deleted")
        run("nft", "delete", "table", "inet", "ipvsd")
        assert "KUBE-IPVS-FILTER" in saved("nft")
        await asyncio.sleep(5)  # traffic through kube-proxy's rules alone
        phase("traffic stops")
        results = await generator.stop()
    for result in results:
        shown = json.dumps(asdict(result))  # failed_at: times to hold beside the phases
        assert (result.interrupted, result.failed_new, result.udp_lost) == (0, 0, 0), shown
        assert result.replies > 0, shown
        if result.kind != "new":  # the long-lived connection and the UDP flow never moved
            assert len(result.backends) == 1, shown


# --- beside a live kube-proxy -----------------------------------------------------------------


@contextlib.asynccontextmanager
async def live_kube_proxy(mode: str) -> AsyncIterator[None]:
    """Something answering /proxyMode on kube-proxy's metrics port, as a live kube-proxy does."""

    async def proxy_mode(_: web.Request) -> web.Response:
        return web.Response(text=mode)

    app = web.Application()
    app.router.add_get("/proxyMode", proxy_mode)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 10249).start()
    try:
        yield
    finally:
        await runner.cleanup()


def ask(address: str, port: int) -> str:
    """One connection from the client namespace; the name the pod greets it with."""
    with entered("client"):
        sock = socket.create_connection((address, port), timeout=5)
    with sock:
        return sock.makefile("rb").read(HELLO).decode().strip()


def packets(chain: str) -> int:
    """Packets (connections: nat sees each one's first) DNATed by endpoint chain `chain`: its
    second rule, after the hairpin one."""
    lines = run("iptables-nft", "-t", "nat", "-L", chain, "-v", "-x", "-n").splitlines()
    return int(lines[3].split()[0])


def bound_on_dummy() -> str:
    command = ["ip", "-br", "addr", "show", "kube-ipvs0"]
    return subprocess.run(command, capture_output=True, text=True, check=False).stdout


def labelled(document: dict[str, Any]) -> dict[str, Any]:
    labels = document["metadata"].setdefault("labels", {})
    labels["service.kubernetes.io/service-proxy-name"] = "ipvsd"
    return document


@pytest.mark.timeout(600)
async def test_beside_kube_proxy_in_iptables_mode_each_service_is_served_by_its_own_proxy(
    node: None,
) -> None:
    node_before("nft")
    run("iptables-nft-restore", "--noflush", stdin=(DATA / "iptables-mode.iptables").read_text())
    old_chain = "KUBE-SEP-ZBDVL3AVU4XCV7KL"  # kube-proxy's endpoint chain for default/old
    with lab() as net:
        for name in ("pod-a", "client"):
            net.add_namespace(name)
        pod = pod_server("pod-a")
        try:
            await until(functools.partial(accepts, "pod-a", PODS["pod-a"], 8080), "pod-a listening")
            async with live_kube_proxy("iptables"), ApiServer() as server:
                old, new = service("old", "10.96.0.60", 80), service("new", "10.96.0.61", 80)
                old_slice, new_slice = slice_of("old"), slice_of("new")
                for document in (old_slice, new_slice):
                    document["endpoints"] = document["endpoints"][:1]  # pod-a only
                server.store.load(
                    [{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"}},
                     old, old_slice, labelled(new), labelled(new_slice)]
                )  # fmt: skip
                flags = parse_args(
                    [f"--kubeconfig={server.kubeconfig_path}", "--hostname-override=node-a",
                     "--cluster-cidr=10.200.1.0/24", "--ipvs-sync-period=1s",
                     "--serve-only-labelled",
                     "--healthz-bind-address=127.0.0.1:10276",
                     "--metrics-bind-address=127.0.0.1:10279"],
                    environ={},
                )  # fmt: skip
                daemon = asyncio.create_task(run_daemon(flags.config))
                try:
                    await until(
                        lambda: (
                            "-A -t 10.96.0.61:80" in ipvs_rules()
                            and "10.96.0.61/32" in bound_on_dummy()
                        ),
                        "ipvsd serving the labelled Service",
                    )
                    await until(lambda: ask("10.96.0.61", 80) == "pod-a", "new through IPVS")
                    before = packets(old_chain)
                    assert ask("10.96.0.60", 80) == "pod-a"
                    assert packets(old_chain) == before + 1  # kube-proxy's DNAT served old
                    table = ipvs_rules()
                    assert "10.96.0.60" not in table  # ipvsd leaves old to kube-proxy
                    assert "-a -t 10.96.0.61:80 -r 10.200.1.2:8080 -m -w 1" in table
                    await asyncio.sleep(3)  # full syncs (1 s apart) leave kube-proxy alone
                    assert f":{old_chain}" in saved("nft")
                    assert "KUBE-PROXY-CANARY" in saved("nft")
                    assert ask("10.96.0.60", 80) == "pod-a"
                finally:
                    daemon.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await daemon
        finally:
            pod.kill()
            pod.wait()


async def test_beside_kube_proxy_in_ipvs_mode_ipvsd_refuses_and_changes_nothing(
    node: None,
) -> None:
    node_before("nft")
    kube_proxy_was_here("nft")
    table, rules = ipvs_rules(), saved("nft")
    async with live_kube_proxy("ipvs"), ApiServer() as server:
        server.store.load(cluster_objects())
        flags = parse_args(
            [f"--kubeconfig={server.kubeconfig_path}", "--hostname-override=node-a"], environ={}
        )
        with pytest.raises(KubeProxyRunning, match="IPVS mode"):
            await run_daemon(flags.config)
    assert ipvs_rules() == table
    assert saved("nft") == rules


async def test_cleanup_removes_kube_proxys_leftovers_and_owned_servers_only(node: None) -> None:
    node_before("nft")
    before = {family: saved("nft", family) for family in ("ipv4", "ipv6")}
    kube_proxy_was_here("nft")
    run("ip", "link", "add", "test-node0", "type", "dummy")  # the node address of the NodePorts
    run("ip", "addr", "add", f"{NODE_ADDRESS}/24", "dev", "test-node0")
    # a local route a previous ipvsd made for --service-cluster-ip-range, beside a hand-made one
    run(
        "ip", "route", "add", "local", "10.96.0.0/12", "dev", "lo", "table", "local", "proto", "125"
    )
    run("ip", "route", "add", "local", "10.250.0.0/16", "dev", "lo", "table", "local")
    flags = parse_args(["--cleanup", "--hostname-override=node-a"], environ={})
    try:
        assert await run_daemon(flags.config) == 0
    finally:
        run("ip", "link", "del", "test-node0")
        routes = run("ip", "route", "show", "table", "local", "dev", "lo")
        subprocess.run(["ip", "route", "del", "local", "10.250.0.0/16", "dev", "lo", "table",
                        "local"], check=False)  # fmt: skip
    assert "10.96.0.0/12" not in routes, "ipvsd's route went"
    assert "local 10.250.0.0/16" in routes, "a route that is not ipvsd's stays"

    assert saved("nft") == before["ipv4"]
    assert saved("nft", "ipv6") == before["ipv6"]
    assert ipsets() == ["user-set"]
    assert ipvs_rules().splitlines() == [HAND_MADE]  # the VIPs' and NodePorts' servers went
    assert bound_on_dummy() == ""  # kube-ipvs0 is gone
