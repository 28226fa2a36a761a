"""`ipvsd explain` end to end: the real command against the API emulator, no root, no kernel."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ipvsd.testing.apiserver import ApiServer
from tests.component.apiserver_support import endpoint, endpoint_slice, node, service


def echo(annotations: dict[str, str], **spec: Any) -> dict[str, Any]:
    document = service("echo", clusterIP="10.96.0.10", **spec)
    document["metadata"]["annotations"] = annotations
    return document


@pytest.fixture
async def server() -> AsyncIterator[ApiServer]:
    async with ApiServer() as running:
        store = running.store
        store.create(node("node-a", zone="zone-a"))
        store.create(node("node-b", zone="zone-a"))
        store.create(node("node-c", zone="zone-b"))
        store.create(node("node-d", zone="zone-a"))  # no endpoint of its own
        store.create(
            endpoint_slice(
                "echo-1",
                "echo",
                [
                    endpoint("10.244.1.5", node="node-a", zone="zone-a"),
                    endpoint("10.244.2.7", node="node-b", zone="zone-a"),
                    endpoint("10.244.3.9", node="node-c", zone="zone-b"),
                    endpoint("10.244.3.10", node="node-c", zone="zone-b", ready=False),
                ],
            )
        )
        yield running


async def ipvsd(server: ApiServer, *argv: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ipvsd",
        "--kubeconfig",
        str(server.kubeconfig_path),
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_weight_mode_explained_endpoint_by_endpoint(server: ApiServer) -> None:
    server.store.create(
        echo({"ipvsd.io/topology-mode": "weight", "ipvsd.io/topology-weights": "node=3,zone=2"})
    )
    code, out, err = await ipvsd(server, "explain", "echo", "--node", "node-a")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "Service default/echo on node node-a (zone zone-a)",
        "  scheduler: wrr; trafficDistribution: (none); topology source: hints",
        "  session affinity: None",
        "  note: ipvsd.io/topology-mode: weight needs a weighted scheduler; "
        "using 'wrr' instead of 'rr'",
        "port 80/TCP",
        "  virtual servers: TCP 10.96.0.10:80 (ClusterIP)",
        "    TCP 10.96.0.10:80: masqueraded only from the node itself (its source is a "
        "Service address; no detect-local of this family tells pods from other sources)",
        "  real servers: weights node=3,zone=2,other=1 (ipvsd.io/topology-mode: weight)",
        "    + 10.244.1.5:8080              weight 3   ready, on this node (node weight 3)",
        "    + 10.244.2.7:8080              weight 2   ready, in this node's zone zone-a "
        "(zone weight 2)",
        "    + 10.244.3.9:8080              weight 1   ready, in node node-c (zone zone-b) "
        "(other weight 1)",
        "    - 10.244.3.10:8080                        not ready",
    ]


async def test_strict_topology_keys_say_why_nothing_is_left(server: ApiServer) -> None:
    server.store.create(echo({"ipvsd.io/topology-keys": "kubernetes.io/hostname"}))
    server.store.patch(
        "endpointslices",
        "echo-1",
        {"endpoints": [endpoint("10.244.3.9", node="node-c", zone="zone-b")]},
    )
    code, out, _ = await ipvsd(server, "explain", "default/echo", "--node", "node-b")
    assert code == 0
    assert (
        "  real servers: ipvsd.io/topology-keys=kubernetes.io/hostname: no key matched and "
        "there is no '*', so no real servers (dropped)"
    ) in out.splitlines()
    assert "    - 10.244.3.9:8080" in out
    assert "no topology key matched this node and there is no '*'" in out


async def test_spec_source_explains_derived_hints_and_their_fallback(server: ApiServer) -> None:
    server.store.create(echo({}, trafficDistribution="PreferSameNode"))
    code, out, _ = await ipvsd(
        server, "explain", "echo", "--node", "node-d", "--topology-source", "spec"
    )
    assert code == 0
    lines = out.splitlines()
    assert (
        "  real servers: hints derived from spec.trafficDistribution: PreferSameZone, "
        "zone zone-a (fallback: no endpoint is hinted for this node)"
    ) in lines
    assert any(line.startswith("    + 10.244.1.5:8080") for line in lines)
    assert any(
        line.startswith("    - 10.244.3.9:8080")
        and line.endswith("hinted for zone zone-b, not zone-a")
        for line in lines
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("explain", "nope", "--node", "node-a"), "ipvsd explain: Service default/nope not found"),
        (("explain", "echo", "--node", "node-z"), "ipvsd explain: node 'node-z' not found"),
        (
            ("explain", "theirs", "--node", "node-a"),
            "ipvsd explain: Service default/theirs: proxy 'x' handles it "
            "(service.kubernetes.io/service-proxy-name), not 'ipvsd'",
        ),
    ],
)
async def test_what_cannot_be_explained_says_so(
    server: ApiServer, argv: tuple[str, ...], message: str
) -> None:
    server.store.create(echo({}))
    other = echo({})
    other["metadata"].update(
        name="theirs", labels={"service.kubernetes.io/service-proxy-name": "x"}
    )
    other["spec"]["clusterIP"] = "10.96.0.11"
    server.store.create(other)
    code, out, err = await ipvsd(server, *argv)
    assert (code, out) == (1, "")
    assert message in err


async def test_what_an_operator_debugs_most_is_shown(server: ApiServer) -> None:
    """Persistence, scheduler flags, source ranges, the health check's current answer and the
    masquerade decision per virtual server."""
    document = echo(
        {"ipvsd.io/scheduler": "mh", "ipvsd.io/scheduler-flags": "mh-fallback,mh-port"},
        type="LoadBalancer",
        ports=[{"port": 80, "targetPort": 8080, "nodePort": 30080}],
        sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 600}},
        loadBalancerSourceRanges=["198.51.100.0/24"],
        externalTrafficPolicy="Local",
        healthCheckNodePort=32000,
    )
    server.store.create(document)
    ingress = {"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}}
    server.store.patch("services", "echo", ingress, status=True)
    code, out, err = await ipvsd(
        server, "explain", "echo", "--node", "node-a", "--cluster-cidr", "10.244.0.0/16"
    )
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[1].startswith("  scheduler: mh (mh-fallback, mh-port); ")
    assert lines[2:5] == [
        "  session affinity: ClientIP, timeout 600 s (persistent virtual servers: a client "
        "keeps its real server while it returns within the timeout)",
        "  loadBalancerSourceRanges: 198.51.100.0/24 (only these sources reach the "
        "load-balancer IPs; others are dropped)",
        "  healthCheckNodePort 32000: answers 200 (1 local ready endpoint) while ipvsd is healthy",
    ]
    assert "    TCP 10.96.0.10:80: masqueraded unless the source is a pod (10.244.0.0/16)" in lines
    assert (
        "    TCP 203.0.113.7:80: not masqueraded: clients keep their address "
        "(externalTrafficPolicy Local)"
    ) in lines

    code, out, _ = await ipvsd(server, "explain", "echo", "--node", "node-d")
    assert code == 0
    assert (
        "  healthCheckNodePort 32000: answers 503 (no local ready endpoint: load balancers "
        "send this node no traffic)"
    ) in out.splitlines()
