"""service.go's cases a proxy answers for (and one of loadbalancer.go), with real packets.

Layout A's cluster (node-1..3, one ipvsd each); each case makes its Service, pods and
EndpointSlices and removes them afterwards. Clients are pods (upstream's exec pods) or, for
NodePorts and load balancers, the `outside` namespace on the nodes' segment. A request that
nothing answers is `(ErrorName)`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ipvsd.testing.cluster_net import OUTSIDE, PodNet
from ipvsd.testing.conformance_cluster import (
    ConformanceCluster,
    Endpoint,
    answer_of,
    seen_client,
    udp_answer_of,
)
from ipvsd.testing.conformance_rules import AFFINITY_CONFIRM_COUNT, failed, spread, sticky
from ipvsd.testing.netns import sh

FILE = "test/e2e/network/service.go"
LB_FILE = "test/e2e/network/loadbalancer.go"
pytestmark = [
    pytest.mark.kernel,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.timeout(1200),
]


def service(name: str, ports: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    labels = spec.pop("labels", {})
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"selector": {"app": name}, "ports": ports, **spec},
    }  # fmt: skip


def tcp(port: int, target: int | str, name: str = "") -> dict[str, Any]:
    return {"name": name, "port": port, "targetPort": target, "protocol": "TCP"} if name else {
        "port": port, "targetPort": target, "protocol": "TCP"}  # fmt: skip


def servers(cluster: ConformanceCluster, name: str, count: int, port: int) -> list[PodNet]:
    """`count` server pods spread over the nodes (upstream's replication controllers)."""
    nodes = [node.name for node in cluster.nodes]
    return [
        cluster.server(f"{name}-{i}", nodes[i % len(nodes)], port, {"app": name})
        for i in range(count)
    ]


async def reachable(
    cluster: ConformanceCluster, client: str, host: str, port: int, want: set[str]
) -> None:
    seen = await cluster.until_answered(client, host, port, want)
    last = (seen or ["(nothing asked)"])[-1]
    assert last in want, f"{client} → {host}:{port}: {seen[-10:]}, want {want}"


async def unreachable(cluster: ConformanceCluster, client: str, host: str, port: int) -> None:
    seen = await cluster.until_unanswered(client, host, port)
    assert failed((seen or ["(nothing asked)"])[-1]), f"{client} → {host}:{port}: {seen[-10:]}"


# --- endpoints and ports --------------------------------------------------------------------


@pytest.mark.upstream("should serve multiport endpoints from pods", FILE)
async def test_should_serve_multiport_endpoints_from_pods(layout_a: ConformanceCluster) -> None:
    """Two ports with named target ports, each served by a different pod on a different
    container port (two slices, as the controller writes them): each port reaches its pod;
    the first pod deleted, its port answers no more and the other still does."""
    cluster, name = layout_a, "multi-endpoint-test"
    cluster.create(service(name, [tcp(80, "svc1", "portname1"), tcp(81, "svc2", "portname2")]))
    pod1 = cluster.server("pod1", "node-1", 100, {"app": name})
    pod2 = cluster.server("pod2", "node-2", 101, {"app": name})
    cluster.write_slice(name, [Endpoint(pod1)], (("portname1", "TCP", 100),), suffix="a")
    cluster.write_slice(name, [Endpoint(pod2)], (("portname2", "TCP", 101),), suffix="b")
    client = cluster.client("multiport-client", "node-3")
    vip = cluster.cluster_ip(name)
    await reachable(cluster, client.name, vip, 80, {"pod1"})
    await reachable(cluster, client.name, vip, 81, {"pod2"})
    assert set(await cluster.answers(client.name, vip, 80, 5)) == {"pod1"}
    assert set(await cluster.answers(client.name, vip, 81, 5)) == {"pod2"}

    cluster.write_slice(name, [], (("portname1", "TCP", 100),), suffix="a")
    cluster.delete_pod("pod1")
    await unreachable(cluster, client.name, vip, 80)
    assert set(await cluster.answers(client.name, vip, 81, 5)) == {"pod2"}


@pytest.mark.upstream("should serve endpoints on same port and different protocols", FILE)
async def test_should_serve_endpoints_on_same_port_and_different_protocols(
    layout_a: ConformanceCluster,
) -> None:
    """Port 80 over TCP and over UDP, one pod serving both: both answer through the
    ClusterIP."""
    cluster, name = layout_a, "multiprotocol-test"
    cluster.create(service(name, [
        {"name": "tcp-port", "port": 80, "targetPort": 80, "protocol": "TCP"},
        {"name": "udp-port", "port": 80, "targetPort": 80, "protocol": "UDP"},
    ]))  # fmt: skip
    (pod,) = servers(cluster, name, 1, 80)
    cluster.udp_server(pod, 80)
    cluster.write_slice(name, [Endpoint(pod)], (("tcp-port", "TCP", 80), ("udp-port", "UDP", 80)))
    client = cluster.client("multiprotocol-client", "node-2")
    vip = cluster.cluster_ip(name)
    await reachable(cluster, client.name, vip, 80, {pod.name})
    for _ in range(60):
        udp = await asyncio.to_thread(udp_answer_of, client.name, vip, 80)
        if udp == pod.name:
            break
        await asyncio.sleep(1)
    assert udp == pod.name


@pytest.mark.upstream("should be able to change the type and ports of a TCP service", LB_FILE)
async def test_should_be_able_to_change_the_type_and_ports_of_a_tcp_service(
    layout_a: ConformanceCluster,
) -> None:
    """ClusterIP → NodePort → LoadBalancer (the harness plays the cloud and writes the
    ingress IP) → new port and node port → ClusterIP again: after each change what the Service
    says answers, and what it no longer says does not."""
    cluster, name, lb = layout_a, "mutability-test", "192.0.2.10"
    cluster.create(service(name, [tcp(80, 80)]))
    (pod,) = servers(cluster, name, 1, 80)
    cluster.write_slice(name, [Endpoint(pod)], (("", "TCP", 80),))
    client = cluster.client("mutability-client", "node-3")
    vip, node = cluster.cluster_ip(name), cluster.node("node-2").address
    await reachable(cluster, client.name, vip, 80, {pod.name})

    cluster.patch_service(name, {"spec": {"type": "NodePort"}})
    node_port = cluster.node_port(name)
    await reachable(cluster, OUTSIDE, node, node_port, {pod.name})

    sh("ip", "-n", OUTSIDE, "route", "replace", f"{lb}/32", "via", node)
    cluster.patch_service(name, {"spec": {"type": "LoadBalancer"}})
    cluster.store.patch("services", name, {"status": {"loadBalancer": {"ingress": [{"ip": lb}]}}},
                        status=True)  # fmt: skip
    assert cluster.node_port(name) == node_port  # kept across the type change
    await reachable(cluster, OUTSIDE, lb, 80, {pod.name})

    new_port = node_port + 1 if node_port < 32767 else node_port - 1
    cluster.patch_service(name, {"spec": {"ports": [
        {"port": 81, "targetPort": 80, "protocol": "TCP", "nodePort": new_port}]}})  # fmt: skip
    await reachable(cluster, OUTSIDE, lb, 81, {pod.name})
    await reachable(cluster, OUTSIDE, node, new_port, {pod.name})
    await unreachable(cluster, OUTSIDE, lb, 80)
    await unreachable(cluster, OUTSIDE, node, node_port)

    cluster.patch_service(name, {"spec": {
        "type": "ClusterIP", "externalTrafficPolicy": None, "allocateLoadBalancerNodePorts": None,
        "ports": [{"port": 81, "targetPort": 80, "protocol": "TCP"}]}})  # fmt: skip
    # the cloud's service controller removes the load balancer and clears the ingress
    cluster.store.patch("services", name, {"status": {"loadBalancer": {"ingress": None}}},
                        status=True)  # fmt: skip
    await unreachable(cluster, OUTSIDE, node, new_port)
    await unreachable(cluster, OUTSIDE, lb, 81)
    await reachable(cluster, client.name, vip, 81, {pod.name})
    sh("ip", "-n", OUTSIDE, "route", "del", f"{lb}/32", check=False)


# --- pods and their addresses ---------------------------------------------------------------


@pytest.mark.upstream("should allow pods to hairpin back to themselves through services", FILE)
async def test_should_allow_pods_to_hairpin_back_to_themselves(
    layout_a: ConformanceCluster,
) -> None:
    cluster, name = layout_a, "hairpin-test"
    cluster.create(service(name, [tcp(8080, 8080)]))
    pod = cluster.server("netexec-hairpin", "node-1", 8080, {"app": name})
    cluster.write_slice(name, [Endpoint(pod)], (("", "TCP", 8080),))
    await reachable(cluster, pod.name, cluster.cluster_ip(name), 8080, {pod.name})


@pytest.mark.upstream("should preserve source pod IP for traffic thru service cluster IP", FILE)
async def test_should_preserve_source_pod_ip_through_a_cluster_ip(
    layout_a: ConformanceCluster,
) -> None:
    """An echo server on node-1; a client on the same node and one on another node each see
    their own pod address as the source the server saw."""
    cluster, name = layout_a, "sourceip-test"
    cluster.create(service(name, [tcp(8080, 8080)]))
    pod = cluster.server("echoserver-sourceip", "node-1", 8080, {"app": name})
    cluster.write_slice(name, [Endpoint(pod)], (("", "TCP", 8080),))
    vip = cluster.cluster_ip(name)
    for node in ("node-1", "node-2"):
        client = cluster.client(f"sourceip-client-{node}", node)
        await reachable(cluster, client.name, vip, 8080, {pod.name})
        assert await asyncio.to_thread(seen_client, client.name, vip, 8080) == client.address


# --- session affinity -----------------------------------------------------------------------
# service.go's execAffinityTestForNonLBService(WithTransition) and ...ForSessionAffinityTimeout:
# three server pods, an exec pod asking through the ClusterIP or a node's NodePort.
AFFINITY_TIMEOUT = AFFINITY_CONFIRM_COUNT  # upstream: "a timeout equal to the number of requests"


async def affinity_answers(
    cluster: ConformanceCluster, client: str, host: str, port: int, want_sticky: bool
) -> list[str]:
    """upstream's checkAffinity: ask until the answers show what is wanted (15 in a row from
    one pod, or more than one pod) or two minutes (AffinityTimeout) passed; the answers."""
    seen: list[str] = []
    for _ in range(8):
        seen += await cluster.answers(client, host, port, AFFINITY_CONFIRM_COUNT)
        if sticky(seen) if want_sticky else spread(seen[-AFFINITY_CONFIRM_COUNT:]):
            break
        await asyncio.sleep(1)
    return seen


async def affinity_setup(
    cluster: ConformanceCluster, name: str, node_port: bool, affinity: str, seconds: int = 0
) -> tuple[str, str, int]:
    spec: dict[str, Any] = {"sessionAffinity": affinity}
    if seconds:
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": seconds}}
    if node_port:
        spec["type"] = "NodePort"
    cluster.create(service(name, [tcp(80, 9376)], **spec))
    pods = servers(cluster, name, 3, 9376)
    cluster.write_slice(name, [Endpoint(pod) for pod in pods], (("", "TCP", 9376),))
    client = cluster.client(f"{name}-exec", "node-1")
    if node_port:
        host, port = cluster.node("node-2").address, cluster.node_port(name)
    else:
        host, port = cluster.cluster_ip(name), 80
    await reachable(cluster, client.name, host, port, {pod.name for pod in pods})
    return client.name, host, port


async def affinity_case(cluster: ConformanceCluster, name: str, node_port: bool) -> None:
    client, host, port = await affinity_setup(cluster, name, node_port, "ClientIP")
    seen = await affinity_answers(cluster, client, host, port, True)
    assert sticky(seen), seen


async def switch_case(cluster: ConformanceCluster, name: str, node_port: bool) -> None:
    """ClientIP: sticky; switched to None: spread; back to ClientIP: sticky."""
    client, host, port = await affinity_setup(cluster, name, node_port, "ClientIP")
    assert sticky(seen := await affinity_answers(cluster, client, host, port, True)), seen
    cluster.patch_service(name, {"spec": {"sessionAffinity": "None"}})
    assert spread(seen := await affinity_answers(cluster, client, host, port, False)), seen
    cluster.patch_service(name, {"spec": {"sessionAffinity": "ClientIP"}})
    assert sticky(seen := await affinity_answers(cluster, client, host, port, True)), seen


async def timeout_case(cluster: ConformanceCluster, name: str, node_port: bool) -> None:
    """Sticky within the timeout; then, one request per timeout period (up to ten), a second
    pod must answer once the timeout has passed since the last request."""
    client, host, port = await affinity_setup(
        cluster, name, node_port, "ClientIP", AFFINITY_TIMEOUT
    )
    assert sticky(seen := await affinity_answers(cluster, client, host, port, True)), seen
    hosts: list[str] = []
    for _ in range(10):
        hosts += await cluster.answers(client, host, port, 1)
        if spread(hosts):
            return
        await asyncio.sleep(AFFINITY_TIMEOUT + 1)
    listings = [
        f"{node} ipvsadm -Lnc:\n"
        + await asyncio.to_thread(sh, "ip", "netns", "exec", node, "ipvsadm", "-Lnc")
        for node in ("node-1", "node-2")  # the client's node, the NodePort's node
    ]
    pytest.fail(f"still sticky after the timeout: {hosts}\n" + "\n".join(listings))


@pytest.mark.upstream("should have session affinity work for service with type clusterIP", FILE)
async def test_session_affinity_cluster_ip(layout_a: ConformanceCluster) -> None:
    await affinity_case(layout_a, "affinity-clusterip", node_port=False)


@pytest.mark.upstream("should have session affinity work for NodePort service", FILE)
async def test_session_affinity_node_port(layout_a: ConformanceCluster) -> None:
    await affinity_case(layout_a, "affinity-nodeport", node_port=True)


@pytest.mark.upstream(
    "should be able to switch session affinity for service with type clusterIP", FILE
)
async def test_switch_session_affinity_cluster_ip(layout_a: ConformanceCluster) -> None:
    await switch_case(layout_a, "affinity-clusterip-transition", node_port=False)


@pytest.mark.upstream("should be able to switch session affinity for NodePort service", FILE)
async def test_switch_session_affinity_node_port(layout_a: ConformanceCluster) -> None:
    await switch_case(layout_a, "affinity-nodeport-transition", node_port=True)


# Measured in the VM (both cases): a request every 16 s, ten times, all went to the same pod;
# the client's IPVS connection entries showed the persistence template (source port 0) still
# there with every closed connection of the last two minutes beside it in TIME_WAIT (0:06 to
# 1:42 left). The kernel keeps a template while any connection it scheduled has an entry
# (ip_vs_conn_expire re-arms a template with n_control > 0), and a closed TCP connection's
# entry stays in TIME_WAIT for a fixed 120 s: IPVS_CMD_SET_CONFIG (ipvsadm --set, ipvsd's
# --ipvs-tcp*-timeout) sets only the established, FIN_WAIT and UDP timeouts. So affinity lasts
# until timeoutSeconds after the last connection's entry is gone, at least 120 s after it
# closed; upstream's test (15 s, asked every 15 s) cannot pass on IPVS, as upstream says.
TIMEOUT_REASON = (
    "IPVS keeps the persistence template while any connection it scheduled has an entry, and a "
    "closed TCP connection's entry stays in TIME_WAIT for a fixed 120 s (not settable through "
    "IPVS_CMD_SET_CONFIG): measured, a request every 16 s met the same pod 10 times, the "
    "template held by TIME_WAIT entries with 0:06-1:42 left"
)


@pytest.mark.xfail(strict=True, reason=TIMEOUT_REASON)
@pytest.mark.upstream(
    "should have session affinity timeout work for service with type clusterIP", FILE
)
async def test_session_affinity_timeout_cluster_ip(layout_a: ConformanceCluster) -> None:
    await timeout_case(layout_a, "affinity-clusterip-timeout", node_port=False)


@pytest.mark.xfail(strict=True, reason=TIMEOUT_REASON)
@pytest.mark.upstream("should have session affinity timeout work for NodePort service", FILE)
async def test_session_affinity_timeout_node_port(layout_a: ConformanceCluster) -> None:
    await timeout_case(layout_a, "affinity-nodeport-timeout", node_port=True)


# --- terminating endpoints (ProxyTerminatingEndpoints) --------------------------------------
# One server pod on node-1, deleted but still serving (its preStop hook holds it): the slice
# says ready=false, serving=true, terminating=true, and there is no ready endpoint at all.


async def terminating_setup(
    cluster: ConformanceCluster, name: str, **spec: Any
) -> tuple[PodNet, dict[str, Any]]:
    cluster.create(service(name, [tcp(80, 80)], **spec))
    pod = cluster.server(f"{name}-webserver", "node-1", 80, {"app": name})
    cluster.write_slice(name, [Endpoint.terminating_pod(pod)], (("", "TCP", 80),))
    return pod, cluster.service(name)


@pytest.mark.upstream(
    "should fallback to terminating endpoints when there are no ready endpoints with "
    "internalTrafficPolicy=Cluster",
    FILE,
)
async def test_terminating_fallback_internal_cluster(layout_a: ConformanceCluster) -> None:
    """A client on another node reaches the only (terminating) endpoint."""
    pod, svc = await terminating_setup(layout_a, "itp-cluster")
    client = layout_a.client("itp-cluster-client", "node-2")
    await reachable(layout_a, client.name, svc["spec"]["clusterIP"], 80, {pod.name})


@pytest.mark.upstream(
    "should fallback to local terminating endpoints when there are no ready endpoints with "
    "internalTrafficPolicy=Local",
    FILE,
)
async def test_terminating_fallback_internal_local(layout_a: ConformanceCluster) -> None:
    """A client on the endpoint's node reaches it; a client on another node, which has no
    local endpoint at all, reaches nothing."""
    pod, svc = await terminating_setup(layout_a, "itp-local", internalTrafficPolicy="Local")
    vip = svc["spec"]["clusterIP"]
    local = layout_a.client("itp-local-client-0", "node-1")
    remote = layout_a.client("itp-local-client-1", "node-2")
    await reachable(layout_a, local.name, vip, 80, {pod.name})
    await unreachable(layout_a, remote.name, vip, 80)
    assert set(await layout_a.answers(local.name, vip, 80, 5)) == {pod.name}


@pytest.mark.upstream(
    "should fallback to terminating endpoints when there are no ready endpoints with "
    "externalTrafficPolicy=Cluster",
    FILE,
)
async def test_terminating_fallback_external_cluster(layout_a: ConformanceCluster) -> None:
    """From outside, another node's NodePort reaches the only (terminating) endpoint."""
    pod, svc = await terminating_setup(layout_a, "etp-cluster", type="NodePort")
    node_port = svc["spec"]["ports"][0]["nodePort"]
    await reachable(layout_a, OUTSIDE, layout_a.node("node-2").address, node_port, {pod.name})


@pytest.mark.upstream(
    "should fallback to local terminating endpoints when there are no ready endpoints with "
    "externalTrafficPolicy=Local",
    FILE,
)
async def test_terminating_fallback_external_local(layout_a: ConformanceCluster) -> None:
    """From outside, the endpoint's node's NodePort reaches it; another node's does not."""
    pod, svc = await terminating_setup(
        layout_a, "etp-local", type="NodePort", externalTrafficPolicy="Local"
    )
    node_port = svc["spec"]["ports"][0]["nodePort"]
    await reachable(layout_a, OUTSIDE, layout_a.node("node-1").address, node_port, {pod.name})
    await unreachable(layout_a, OUTSIDE, layout_a.node("node-2").address, node_port)


# --- labels that take a Service away from the proxy -----------------------------------------


async def label_case(cluster: ConformanceCluster, prefix: str, label: str, value: str) -> None:
    """Two Services over the same pods: the one labelled from the start never answers; the
    other answers, stops when labelled and answers again when the label goes."""
    disabled, toggled = f"{prefix}-disabled", f"{prefix}-toggled"
    cluster.create(service(disabled, [tcp(80, 9376)], labels={label: value}))
    cluster.create(service(toggled, [tcp(80, 9376)]))
    pods = servers(cluster, prefix, 3, 9376)
    for name in (disabled, toggled):
        cluster.write_slice(name, [Endpoint(pod) for pod in pods], (("", "TCP", 9376),))
    client = cluster.client(f"{prefix}-exec", "node-1")
    names = {pod.name for pod in pods}
    toggled_ip, disabled_ip = cluster.cluster_ip(toggled), cluster.cluster_ip(disabled)
    await reachable(cluster, client.name, toggled_ip, 80, names)
    assert failed(await asyncio.to_thread(answer_of, client.name, disabled_ip, 80))

    cluster.patch_service(toggled, {"metadata": {"labels": {label: value}}})
    await unreachable(cluster, client.name, toggled_ip, 80)
    cluster.patch_service(toggled, {"metadata": {"labels": {label: None}}})
    await reachable(cluster, client.name, toggled_ip, 80, names)
    assert failed(await asyncio.to_thread(answer_of, client.name, disabled_ip, 80))


@pytest.mark.upstream("should implement service.kubernetes.io/service-proxy-name", FILE)
async def test_should_implement_service_proxy_name(layout_a: ConformanceCluster) -> None:
    await label_case(layout_a, "service-proxy", "service.kubernetes.io/service-proxy-name",
                     "foo-bar")  # fmt: skip


@pytest.mark.upstream("should implement service.kubernetes.io/headless", FILE)
async def test_should_implement_service_headless(layout_a: ConformanceCluster) -> None:
    await label_case(layout_a, "service-headless", "service.kubernetes.io/headless", "")
