"""Bad API objects while traffic flows: the daemon skips them, counts them and keeps serving.

The API emulator's `acceptAnything` fault stores Services, EndpointSlices and the Node as
given, as a buggy controller behind a lax or older server would leave them. While a client
namespace keeps two long-lived TCP connections exchanging data and opens a new connection
every 0.2 s through the good Service's ClusterIP (`ipvsd.testing.traffic`, processes of their
own), malformed objects are created, updated and deleted: wrongly typed fields, addresses that
are not addresses, ports out of range, a bad slice naming the good Service, a Service asking
twice for one virtual server (which failed every full sync before it was planned once), and a
malformed own Node. Nothing may be interrupted or refused, `ipvsd_invalid_objects` names what
was skipped, and a change of the good Service's endpoints still reaches the kernel afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ipvsd.testing.netns import entered
from ipvsd.testing.traffic import Flow, Generator, serve_argv
from tests.kernel.daemon_support import (
    SERVICES,
    SLICES,
    Api,
    ipvsadm,
    running_daemon,
    until,
    until_serving,
)

pytestmark = pytest.mark.kernel

PODS = {"pod-a": "10.200.1.2", "pod-b": "10.200.2.2"}  # running_daemon's lab, in this order
TCP, UDP = 9090, 9091
FAULTS = "/_emulator/faults"
NODE = "/api/v1/nodes/node-a"


def web_slice(*pods: str, name: str = "web-1", **changes: Any) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "echo", "protocol": "TCP", "port": TCP}],
        "endpoints": [{"addresses": [PODS[pod]], "nodeName": "node-a",
                       "conditions": {"ready": True}} for pod in pods],
        **changes,
    }  # fmt: skip


def service(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}  # fmt: skip


BAD_SERVICES = [
    service("bad-ports", clusterIP="10.96.200.1", ports="80"),
    service("bad-ip", clusterIP="10.96.200.300", ports=[{"port": 80}]),
    service("bad-port", clusterIP="10.96.200.2", ports=[{"port": 65536, "protocol": "TCP"}]),
    service("bad-type", type=["ClusterIP"], clusterIP="10.96.200.3", ports=[{"port": 80}]),
    service("bad-spec", spec=None, clusterIP={"ip": "10.96.200.4"}),
    {"apiVersion": "v1", "kind": "Service", "spec": [],
     "metadata": {"name": "bad-meta", "namespace": "default", "labels": ["a"]}},
]  # fmt: skip
BAD_SLICES = [
    web_slice(name="web-bad-endpoints", endpoints="10.200.9.9"),
    web_slice("pod-b", name="web-bad-port", ports=[{"name": "echo", "port": 65536}]),
    web_slice(name="web-bad-address", endpoints=[{"addresses": ["10.200.2.2.5"]}]),
    web_slice(name="web-bad-family", addressType="IPv5"),
    web_slice(name="web-bad-conditions",
              endpoints=[{"addresses": ["10.200.2.2"], "conditions": {"ready": "yes"}}]),
    web_slice(name="web-too-many",
              endpoints=[{"addresses": [f"10.200.8.{i % 250}"]} for i in range(1001)]),
]  # fmt: skip
TWICE = service(
    "zz-twice",
    clusterIP="10.96.200.10",
    clusterIPs=["10.96.200.10", "10.96.200.10"],
    ports=[{"name": "echo", "port": 80}, {"name": "again", "port": 80}],
)


STARTED = time.monotonic()


def phase(what: str) -> None:
    """Printed with the seconds since import: a failure (or -s) shows where time went."""
    print(f"{time.monotonic() - STARTED:7.1f} s  {what}", flush=True)


def listening(pod: str) -> bool:
    with entered(pod):
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with probe:
        probe.settimeout(1.0)
        return probe.connect_ex((PODS[pod], TCP)) == 0


@contextlib.contextmanager
def pod_servers() -> Iterator[None]:
    """`ipvsd.testing.traffic` servers in both pods (TCP 9090: a hello, then an echo)."""
    servers = [
        subprocess.Popen(["ip", "netns", "exec", pod, *serve_argv(pod, TCP, UDP)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for pod in PODS
    ]  # fmt: skip
    try:
        yield
    finally:
        for server in servers:
            server.kill()
            server.wait()


async def get(url: str) -> tuple[int, str]:
    """From the daemon, which runs on this test's event loop: never a blocking request."""
    async with aiohttp.ClientSession() as session, session.get(url) as answer:
        return answer.status, await answer.text()


async def invalid_objects() -> dict[str, float]:
    """`ipvsd_invalid_objects` by kind, as the daemon's /metrics says now."""
    _status, text = await get("http://127.0.0.1:10249/metrics")
    prefix = 'ipvsd_invalid_objects{kind="'
    return {
        line[len(prefix) :].split('"')[0]: float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(prefix)
    }


async def until_counted(**expected: float) -> None:
    for _ in range(200):
        counts = await invalid_objects()
        if all(counts.get(kind) == count for kind, count in expected.items()):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"ipvsd_invalid_objects: {counts}, not {expected}")


@pytest.fixture
async def cluster() -> AsyncIterator[Api]:
    async with running_daemon() as (api, _net):
        with pod_servers():
            await until(lambda: all(listening(pod) for pod in PODS))
            yield api


async def send_all(api: Api, method: str, path: str, objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        name = obj["metadata"]["name"]
        await api.send(method, path if method == "POST" else f"{path}/{name}", obj)


@pytest.mark.timeout(300)  # the daemon, two pod servers and a generator start under emulation
async def test_malformed_objects_interrupt_nothing_and_syncing_goes_on(
    cluster: Api, tmp_path: Path
) -> None:
    api = cluster
    phase("daemon and pod servers up")
    web = await api.send("POST", SERVICES, service("web", ports=[
        {"name": "echo", "protocol": "TCP", "port": 80, "targetPort": TCP}]))  # fmt: skip
    vip = web["spec"]["clusterIP"]
    await api.send("POST", SLICES, web_slice("pod-a"))
    await until_serving(vip, f"-a -t {vip}:80 -r {PODS['pod-a']}:{TCP}")
    traffic = await Generator.start(
        "client",
        [
            Flow("long", "long", f"{vip}:80", count=2, interval=0.1, timeout=5.0),
            Flow("new", "new", f"{vip}:80", interval=0.2, timeout=5.0),
        ],
        tmp_path / "traffic.log",
    )
    try:
        assert await traffic.ready()
        phase("serving; traffic flowing")
        await api.send("POST", FAULTS, {"acceptAnything": {
            "resources": ["services", "endpointslices", "nodes"]}})  # fmt: skip

        await send_all(api, "POST", SERVICES, [*BAD_SERVICES, TWICE])
        await send_all(api, "POST", SLICES, BAD_SLICES)
        node = await api.send("GET", NODE)
        await api.send("PUT", NODE, {**node, "metadata": {**node["metadata"], "labels": [1]}})
        await until_counted(Service=6, EndpointSlice=6, Node=1)
        phase("bad objects created, skipped and counted")
        await until(lambda: "-A -t 10.96.200.10:80 -s rr" in ipvsadm())
        assert PODS["pod-b"] not in ipvsadm()  # only a rejected slice of web named it

        mutated = [{**obj, "spec": {"clusterIP": "10.96.200.1", "ports": [{"port": -1}]}}
                   for obj in BAD_SERVICES[:3]]  # fmt: skip
        await send_all(api, "PUT", SERVICES, mutated)
        await send_all(api, "PUT", SLICES, [{**s, "addressType": "IPv7"} for s in BAD_SLICES[:3]])
        for obj in BAD_SLICES[3:]:
            await api.send("DELETE", f"{SLICES}/{obj['metadata']['name']}")
        del node["metadata"]["resourceVersion"]
        await api.send("PUT", NODE, node)  # the own Node valid again
        await until_counted(Service=6, EndpointSlice=3, Node=0)
        phase("bad objects updated and deleted")

        await api.send("PUT", f"{SLICES}/web-1", web_slice("pod-a", "pod-b"))
        await until(lambda: f"-a -t {vip}:80 -r {PODS['pod-b']}:{TCP}" in ipvsadm())
        phase("the good change is in the kernel")
        await asyncio.sleep(1.0)  # a few more exchanges and connections through the change
    finally:
        results = {result.name: result for result in await traffic.stop()}
        phase(f"traffic stopped: {results}")
    assert results["long"].interrupted == 0, results["long"]
    assert results["new"].failed_new == 0, results["new"]
    assert results["long"].replies > 0
    assert results["new"].replies > 0
    table = ipvsadm()
    assert table.count("-A -t 10.96.200.10:80 ") == 1  # asked for four times, programmed once
    assert f"-a -t {vip}:80 -r {PODS['pod-a']}:{TCP}" in table
    assert "10.96.200.1:" not in table
    assert "10.200.9.9" not in table
    assert "10.200.8." not in table
    assert (await get("http://127.0.0.1:10256/healthz"))[0] == 200
