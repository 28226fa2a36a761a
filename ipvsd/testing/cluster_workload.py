"""The controllers a real cluster would run for the demo's `echo` app, played by hand.

The API emulator stores Pods and Nodes as given and serves no Deployments: it has no
scheduler, kubelet, Deployment or EndpointSlice controller. `EchoApp` plays them for one
Deployment: a rollout creates the new ReplicaSet's pods on the nodes it is told (the scheduler
and kubelet: a Pod object and a pod namespace whose HTTP server answers on the target port),
and only once they serve removes the old ones, as a rolling update does. After every change it
writes the Service's EndpointSlice from the pods, as the EndpointSlice controller would:
address, `nodeName`, the node's zone, `ready`/`serving`/`terminating`, the pod as targetRef;
the emulator's hint controller (`--hint-controller`) then adds hints per trafficDistribution.

These writes go through the emulator's store (the same validation and events as HTTP, no
round trip); what a user would change (the Service) goes through the API.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any

from ipvsd.testing.apiserver.store import Store
from ipvsd.testing.cluster_net import ClusterNet, NodeSpec, PodNet

MANAGED_BY = "endpointslice-controller.k8s.io"
ZONE_LABEL = "topology.kubernetes.io/zone"


def register_nodes(store: Store, nodes: tuple[NodeSpec, ...]) -> None:
    """Node objects as the kubelet registers them, with the seed's zone labels."""
    for node in nodes:
        labels = {"kubernetes.io/hostname": node.name}
        if node.zone:
            labels[ZONE_LABEL] = node.zone
        store.create({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node.name, "labels": labels},
            "spec": {"podCIDR": node.pod_cidr, "podCIDRs": [node.pod_cidr]},
            "status": {
                "addresses": [{"type": "InternalIP", "address": node.address},
                              {"type": "Hostname", "address": node.name}],
                "allocatable": {"cpu": "2", "memory": "2Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        })  # fmt: skip


def pod_object(pod: PodNet, labels: dict[str, str], image: str, port: int) -> dict[str, Any]:
    """The Pod as the scheduler and kubelet leave it: bound to its node, running, ready."""
    ports = [{"containerPort": port, "protocol": "TCP"}] if port else []
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod.name, "namespace": "default", "labels": labels},
        "spec": {"nodeName": pod.node.name,
                 "containers": [{"name": labels.get("app", pod.name), "image": image,
                                 "ports": ports}]},
        "status": {"phase": "Running", "hostIP": pod.node.address, "podIP": pod.address,
                   "podIPs": [{"ip": pod.address}],
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }  # fmt: skip


def _suffix() -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"  # the ReplicaSet controller's, no vowels
    return "".join(secrets.choice(alphabet) for _ in range(5))


@dataclass
class EchoApp:
    """The `echo` Deployment (pods answering on `port`) and its Service's EndpointSlice."""

    store: Store
    net: ClusterNet
    name: str = "echo"
    port: int = 5678
    image: str = "hashicorp/http-echo"
    pods: list[PodNet] = field(default_factory=list)

    def rollout(self, nodes: list[str], *, template: str = "") -> list[PodNet]:
        """Replace every pod by new ones on `nodes` (one each), new before old goes.

        `template` stands for what changed in the pod template (the ReplicaSet's hash, and so
        the new pods' names, derive from it, as `pod-template-hash` does).
        """
        digest = hashlib.sha256(f"{self.name}/{template}".encode()).hexdigest()
        template_hash = str(int(digest[:8], 16))[:10]
        labels = {"app": self.name, "pod-template-hash": template_hash}
        old, new = self.pods, []
        for node in nodes:
            pod = self.net.add_pod(f"{self.name}-{template_hash}-{_suffix()}", node)
            self.net.serve(pod, self.port)
            self.store.create(pod_object(pod, labels, self.image, self.port))
            new.append(pod)
        self.pods = old + new
        self.write_slice()
        for pod in old:
            self.net.remove_pod(pod.name)
            self.store.delete("pods", pod.name)
        self.pods = new
        self.write_slice()
        return new

    def write_slice(self) -> None:
        """The Service's one EndpointSlice, rewritten from the current pods."""
        slice_name = f"{self.name}-ep"
        endpoints = []
        for pod in self.pods:
            endpoint: dict[str, Any] = {
                "addresses": [pod.address],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                "nodeName": pod.node.name,
                "targetRef": {"kind": "Pod", "namespace": "default", "name": pod.name},
            }
            if pod.node.zone:
                endpoint["zone"] = pod.node.zone
            endpoints.append(endpoint)
        document = {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": slice_name, "namespace": "default",
                         "labels": {"kubernetes.io/service-name": self.name,
                                    "endpointslice.kubernetes.io/managed-by": MANAGED_BY}},
            "addressType": "IPv4",
            "ports": [{"name": "", "protocol": "TCP", "port": self.port}],
            "endpoints": endpoints,
        }  # fmt: skip
        if self.store.find("endpointslices", slice_name) is None:
            self.store.create(document)
        else:
            self.store.update(document)


def start_client(store: Store, net: ClusterNet, node: str, name: str = "client") -> PodNet:
    """The seed's client pod (alpine, `sleep infinity`): a pod namespace that serves nothing."""
    pod = net.add_pod(name, node)
    store.create(pod_object(pod, {"run": name}, "alpine:3.19", 0))
    return pod
