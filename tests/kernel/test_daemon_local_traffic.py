"""externalTrafficPolicy: Local seen from this node's own pods, through the whole daemon.

The VM's root namespace is node-a (`tests.kernel.daemon_support`): `pod-a` (10.200.1.2) is a
pod of this node by the default detect-local mode (`--cluster-cidr=10.200.1.0/24`); `pod-b`
(10.200.2.2) is, per its EndpointSlice, a pod of node-b; `client` is outside the cluster.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from ipvsd.testing.netns import http_get
from tests.kernel.daemon_support import (
    NODE_ADDRESS,
    SERVICES,
    SLICES,
    endpoint_slice,
    ipvsadm,
    running_daemon,
    until_serving,
)
from tests.kernel.test_daemon_traffic_policies import health_answer

pytestmark = pytest.mark.kernel

EXTERNAL_IP = "203.0.113.9"
POD_GATEWAY = "10.200.1.1"  # the node's address on pod-a's link: a NodePort address too


@pytest.mark.timeout(300)  # the daemon starts and syncs in the emulated VM (106 s seen loaded)
async def test_etp_local_without_a_local_pod_serves_this_nodes_pods_from_the_cluster_set() -> None:
    """kube-proxy's iptables/nftables short-circuit, kept without its IPVS-mode fallback:
    pod-a reaches the NodePort and the externalIP of an eTP=Local Service whose only pod runs
    on node-b, and is served there unmasqueraded; the outside client gets nothing, and the
    health check says 503 so a load balancer sends it elsewhere. ipvsd does this without
    fwmark virtual servers, so a keepalived-style one is left alone through the syncs."""
    async with running_daemon() as (api, _net):
        subprocess.run(["ipvsadm", "-A", "-f", "7", "-s", "rr"], check=True)  # keepalived's
        spec: dict[str, Any] = {
            "type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "externalIPs": [EXTERNAL_IP],
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
        }  # fmt: skip
        service = await api.send(
            "POST", SERVICES,
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "away"}, "spec": spec},
        )  # fmt: skip
        await api.send("POST", SLICES, endpoint_slice("away", [("10.200.2.2", "node-b")]))
        vip, node_port = service["spec"]["clusterIP"], service["spec"]["ports"][0]["nodePort"]
        await until_serving(vip, f"-a -t {vip}:80 -r 10.200.2.2:8080")
        await until_serving(EXTERNAL_IP, f"-A -t {EXTERNAL_IP}:80 ")
        assert f"-a -t {NODE_ADDRESS}:{node_port} " not in ipvsadm()  # no local real server

        assert http_get("pod-a", POD_GATEWAY, node_port) == "pod-b 10.200.1.2"
        assert http_get("pod-a", EXTERNAL_IP, 80) == "pod-b 10.200.1.2"
        for address, port in ((NODE_ADDRESS, node_port), (EXTERNAL_IP, 80)):
            with pytest.raises((TimeoutError, ConnectionRefusedError)):
                http_get("client", address, port, timeout=2)
        body = await health_answer(service["spec"]["healthCheckNodePort"], 503)
        assert body["localEndpoints"] == 0
        assert "-A -f 7 -s rr" in ipvsadm()  # no fwmark service is ipvsd's: it stays
