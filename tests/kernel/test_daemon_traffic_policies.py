"""Traffic policies and affinity through the whole daemon, with real packets (reference §4).

`client` is outside the cluster and reaches the node at 10.200.3.1. Pods `pod-a` and `pod-b`
both physically hang off this VM, but the EndpointSlices say on which node each one runs, which
is all the proxy goes by.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ipvsd.testing.netns import Lab, entered, http_get
from tests.kernel.daemon_support import (
    NODE_ADDRESS,
    SERVICES,
    SLICES,
    Api,
    endpoint_slice,
    ipvsadm,
    running_daemon,
    until,
    until_serving,
)

pytestmark = pytest.mark.kernel


@pytest.fixture
async def cluster() -> AsyncIterator[tuple[Api, Lab]]:
    async with running_daemon() as running:
        yield running


async def create(
    api: Api, name: str, spec: dict[str, Any], endpoints: list[tuple[str, str]]
) -> Any:
    ports = [{"name": "http", "port": 80, "targetPort": 8080}]
    service = await api.send(
        "POST", SERVICES,
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
         "spec": {"ports": ports, **spec}},
    )  # fmt: skip
    await api.send("POST", SLICES, endpoint_slice(name, endpoints))
    return service


def health_check(port: int) -> tuple[int, dict[str, Any]]:
    """The healthCheckNodePort's answer as an outside load balancer would get it."""
    with entered("client"):
        sock = socket.create_connection((NODE_ADDRESS, port), timeout=3)
    with sock:
        sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


async def health_answer(port: int, expected: int) -> dict[str, Any]:
    """Wait for the health check on `port` to answer `expected`; its body.

    The daemon serves it from this test's own event loop, so the blocking client runs in a
    thread (calling it directly would stall the very loop that has to answer).
    """
    for _ in range(100):
        try:
            code, body = await asyncio.to_thread(health_check, port)
        except ConnectionRefusedError:  # the listener opens at the end of a sync
            code, body = 0, {}
        if code == expected:
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"health check on {port} never answered {expected} (last: {code})")


async def test_etp_local_node_port_keeps_the_client_address_or_refuses_without_a_local_pod(
    cluster: tuple[Api, Lab],
) -> None:
    api, _net = cluster
    local_only = {"type": "LoadBalancer", "externalTrafficPolicy": "Local"}
    here = await create(api, "here", local_only, [("10.200.1.2", "node-a")])
    away = await create(api, "away", local_only, [("10.200.2.2", "node-b")])
    here_port, away_port = (
        here["spec"]["ports"][0]["nodePort"],
        away["spec"]["ports"][0]["nodePort"],
    )
    await until(lambda: f"{NODE_ADDRESS}:{away_port}" in ipvsadm())
    await until(lambda: f"-a -t {NODE_ADDRESS}:{here_port} -r 10.200.1.2:8080" in ipvsadm())

    assert http_get("client", NODE_ADDRESS, here_port) == "pod-a 10.200.3.2"  # client IP kept
    with pytest.raises((TimeoutError, ConnectionRefusedError)):  # no remote fallback
        http_get("client", NODE_ADDRESS, away_port, timeout=2)

    body = await health_answer(here["spec"]["healthCheckNodePort"], 200)
    assert (body["localEndpoints"], body["service"]["name"]) == (1, "here")
    body = await health_answer(away["spec"]["healthCheckNodePort"], 503)
    assert (body["localEndpoints"], body["service"]["name"]) == (0, "away")


async def test_etp_cluster_node_port_serves_remote_pods_masqueraded(
    cluster: tuple[Api, Lab],
) -> None:
    api, _net = cluster
    service = await create(api, "anywhere", {"type": "NodePort"}, [("10.200.2.2", "node-b")])
    port = service["spec"]["ports"][0]["nodePort"]
    await until(lambda: f"-a -t {NODE_ADDRESS}:{port} -r 10.200.2.2:8080" in ipvsadm())
    assert http_get("client", NODE_ADDRESS, port) == "pod-b 10.200.2.1"  # the node's address


async def test_session_affinity_keeps_a_client_on_one_pod(cluster: tuple[Api, Lab]) -> None:
    api, _net = cluster
    sticky = {
        "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}},
    }
    service = await create(
        api, "sticky", sticky, [("10.200.1.2", "node-a"), ("10.200.2.2", "node-a")]
    )
    vip = service["spec"]["clusterIP"]
    await until(lambda: f"-A -t {vip}:80 -s rr -p 600" in ipvsadm())
    await until_serving(vip, f"-a -t {vip}:80 -r 10.200.2.2:8080")
    pods = {http_get("client", vip, 80).split()[0] for _ in range(20)}
    assert len(pods) == 1


async def test_itp_local_serves_only_from_local_pods_and_drops_otherwise(
    cluster: tuple[Api, Lab],
) -> None:
    api, _net = cluster
    local = {"internalTrafficPolicy": "Local"}
    near = await create(api, "near", local, [("10.200.1.2", "node-a"), ("10.200.2.2", "node-b")])
    far = await create(api, "far", local, [("10.200.2.2", "node-b")])
    near_vip, far_vip = near["spec"]["clusterIP"], far["spec"]["clusterIP"]
    await until_serving(near_vip, f"-a -t {near_vip}:80 -r 10.200.1.2:8080")
    await until_serving(far_vip, f"-A -t {far_vip}:80 -s rr")
    assert {http_get("client", near_vip, 80).split()[0] for _ in range(6)} == {"pod-a"}
    assert f"-a -t {far_vip}:80" not in ipvsadm()
    with pytest.raises((TimeoutError, ConnectionRefusedError)):
        http_get("client", far_vip, 80, timeout=2)


async def test_per_service_schedulers_apply_and_invalid_ones_become_events(
    cluster: tuple[Api, Lab],
) -> None:
    api, _net = cluster
    ports = [{"name": "http", "port": 80, "targetPort": 8080}]
    created = {}
    for name, scheduler in (("weighted", "wlc"), ("odd", "maglev")):
        created[name] = await api.send(
            "POST", SERVICES,
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": name, "annotations": {"ipvsd.io/scheduler": scheduler}},
             "spec": {"ports": ports}},
        )  # fmt: skip
    weighted, odd = (created[n]["spec"]["clusterIP"] for n in ("weighted", "odd"))
    await until(lambda: f"-A -t {weighted}:80 -s wlc" in ipvsadm())
    await until(lambda: f"-A -t {odd}:80 -s rr" in ipvsadm())  # the default, not maglev
    for _ in range(50):
        listed = await api.send("GET", "/api/v1/namespaces/default/events")
        warnings = [e for e in listed["items"] if e["involvedObject"]["name"] == "odd"]
        if warnings:
            break
        await asyncio.sleep(0.2)
    (event,) = warnings
    assert (event["type"], event["reason"]) == ("Warning", "InvalidAnnotation")
    assert "maglev" in event["message"]


async def test_fail_health_check_node_port_if_there_are_only_terminating_endpoints(
    cluster: tuple[Api, Lab],
) -> None:
    """Upstream's case of the same name: a rollout leaves this node only terminating pods.

    They still serve (eTP=Local falls back to serving-terminating endpoints, so connections
    already on their way are not refused), but the health check answers 503 with zero local
    endpoints, so the load balancer stops sending new clients here.
    """
    api, _net = cluster
    service = await create(
        api, "rolling", {"type": "LoadBalancer", "externalTrafficPolicy": "Local"},
        [("10.200.1.2", "node-a")],
    )  # fmt: skip
    node_port = service["spec"]["ports"][0]["nodePort"]
    health_port = service["spec"]["healthCheckNodePort"]
    body = await health_answer(health_port, 200)
    assert body["localEndpoints"] == 1

    terminating = endpoint_slice("rolling", [("10.200.1.2", "node-a")])
    terminating["endpoints"][0]["conditions"] = {
        "ready": False, "serving": True, "terminating": True,
    }  # fmt: skip
    await api.send("PUT", f"{SLICES}/rolling-1", terminating)

    body = await health_answer(health_port, 503)
    assert body["localEndpoints"] == 0
    assert f"-a -t {NODE_ADDRESS}:{node_port} -r 10.200.1.2:8080" in ipvsadm()
    assert http_get("client", NODE_ADDRESS, node_port) == "pod-a 10.200.3.2"
