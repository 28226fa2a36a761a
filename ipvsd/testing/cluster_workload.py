"""The controllers a real cluster would run for the demo's `echo` app, played by hand.

The API emulator stores Pods and Nodes as given and serves no Deployments: it has no
scheduler, kubelet, Deployment or EndpointSlice controller. `EchoApp` plays them for one
Deployment: a rollout creates the new ReplicaSet's pods on the nodes it is told (the scheduler
and kubelet: a Pod object and a pod namespace whose HTTP server answers on the target port),
and only once they serve removes the old ones, as a rolling update does. After every change it
writes the Service's EndpointSlice from the pods, as the EndpointSlice controller would:
address, `nodeName`, the node's zone, `ready`/`serving`/`terminating`, the pod as targetRef;
the emulator's hint controller (`--hint-controller`) then adds hints per trafficDistribution.

The same class plays any such Deployment: `ports` lists the pods' ports as (name, protocol,
port) for the EndpointSlice (default: one unnamed TCP `port`), `serve` starts a new pod's server
(default: the demo's HTTP echo on a thread, `ClusterNet.serve`); `add_pod`, `set_ready` and
`remove_pod` change one pod at a time, and `also_for` names more Services that select the same
pods (each gets its own slice), as the disruption harness needs. `terminate` starts a pod's
grace period as the kubelet does after a delete: its endpoint stays in the slice as
ready=false, serving=(its readiness), terminating=true until `remove_pod` ends the pod.

These writes go through the emulator's store (the same validation and events as HTTP, no
round trip); what a user would change (the Service) goes through the API.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
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
    ports: tuple[tuple[str, str, int], ...] = ()  # (name, protocol, port); default: TCP `port`
    serve: Callable[[PodNet], None] | None = None  # default: the HTTP echo on a thread
    not_ready: set[str] = field(default_factory=set)  # pods whose endpoint is not ready
    also_for: tuple[str, ...] = ()  # more Services selecting the same pods
    terminating: set[str] = field(default_factory=set)  # pods in their grace period

    def _start(self, name: str, node: str, labels: dict[str, str]) -> PodNet:
        pod = self.net.add_pod(name, node)
        if self.serve is None:
            self.net.serve(pod, self.port)
        else:
            self.serve(pod)
        pod_ports = self.ports or (("", "TCP", self.port),)
        document = pod_object(pod, labels, self.image, self.port)
        document["spec"]["containers"][0]["ports"] = [
            {"containerPort": port, "protocol": protocol} for _, protocol, port in pod_ports
        ]
        self.store.create(document)
        return pod

    def add_pod(self, node: str, *, ready: bool = True, name: str = "") -> PodNet:
        """One more pod on `node` (its endpoint ready or not), and the slice rewritten."""
        labels = {"app": self.name}
        pod = self._start(name or f"{self.name}-{_suffix()}", node, labels)
        if not ready:
            self.not_ready.add(pod.name)
        self.pods.append(pod)
        self.write_slice()
        return pod

    def set_ready(self, pod: str, ready: bool) -> None:
        """Flip a pod's readiness, as the kubelet's probe would; the slice rewritten."""
        if ready:
            self.not_ready.discard(pod)
        else:
            self.not_ready.add(pod)
        self.write_slice()

    def terminate(self, pod: str) -> None:
        """The pod deleted with a grace period: it keeps running and its endpoint turns
        terminating (not ready; serving while its probe passes); `remove_pod` ends it."""
        self.terminating.add(pod)
        self.write_slice()

    def remove_pod(self, pod: str) -> None:
        """Delete the pod: out of the slice first, then its server and namespace go."""
        self.pods = [p for p in self.pods if p.name != pod]
        self.terminating.discard(pod)
        self.not_ready.discard(pod)
        self.write_slice()
        self.net.remove_pod(pod)
        self.store.delete("pods", pod)

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
            new.append(self._start(f"{self.name}-{template_hash}-{_suffix()}", node, labels))
        self.pods = old + new
        self.write_slice()
        for pod in old:
            self.net.remove_pod(pod.name)
            self.store.delete("pods", pod.name)
        self.pods = new
        self.write_slice()
        return new

    def write_slice(self) -> None:
        """The Service's one EndpointSlice (and one per Service of `also_for`), rewritten from
        the current pods."""
        for service in (self.name, *self.also_for):
            self._write_slice(service)

    def _write_slice(self, service: str) -> None:
        slice_name = f"{service}-ep"
        endpoints = []
        for pod in self.pods:
            serving = pod.name not in self.not_ready
            terminating = pod.name in self.terminating
            conditions = {
                "ready": serving and not terminating,
                "serving": serving,
                "terminating": terminating,
            }
            endpoint: dict[str, Any] = {
                "addresses": [pod.address],
                "conditions": conditions,
                "nodeName": pod.node.name,
                "targetRef": {"kind": "Pod", "namespace": "default", "name": pod.name},
            }
            if pod.node.zone:
                endpoint["zone"] = pod.node.zone
            endpoints.append(endpoint)
        document = {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": slice_name, "namespace": "default",
                         "labels": {"kubernetes.io/service-name": service,
                                    "endpointslice.kubernetes.io/managed-by": MANAGED_BY}},
            "addressType": "IPv4",
            "ports": [
                {"name": name, "protocol": protocol, "port": port}
                for name, protocol, port in self.ports or (("", "TCP", self.port),)
            ],
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
