"""`default/kubernetes`: the Service and EndpointSlice every API server keeps for itself.

A real API server creates the Service (controlplane's kubernetesservice controller: ClusterIP =
the first address of the primary service CIDR, port 443 `https` to the server's own port,
labels `component: apiserver`, `provider: kubernetes`) and keeps its EndpointSlice pointing at
the servers' advertised addresses (pkg/controlplane/reconcilers/endpointsadapter.go: name
`kubernetes`, only the label `kubernetes.io/service-name: kubernetes`, endpoints ready, port
`https` with the server's port). The emulator does the same at every start, so proxies,
`kubectl get svc -A` and benchmarks see what they would see in a cluster. The legacy Endpoints
object is not written: the emulator does not serve Endpoints.

Like upstream, a start resets both objects when someone changed them (ports, labels,
addresses), and never deletes them.
"""

from __future__ import annotations

from ipaddress import ip_address, ip_network
from typing import Any

from ipvsd.testing.apiserver.store import Store

NAME = "kubernetes"
NAMESPACE = "default"
SERVICE_LABELS = {"component": "apiserver", "provider": "kubernetes"}
SLICE_LABELS = {"kubernetes.io/service-name": NAME}


def cluster_ip(service_cidr: str) -> str:
    """The first address of the service CIDR (10.96.0.1 for 10.96.0.0/12)."""
    return str(ip_network(service_cidr, strict=True).network_address + 1)


def reconcile(store: Store, *, service_cidr: str, address: str, port: int) -> None:
    """Create or reset the Service and the EndpointSlice for a server at `address`:`port`."""
    reconcile_service(store, service_cidr=service_cidr, port=port)
    _reconcile_slice(store, address, port)


def reconcile_service(store: Store, *, service_cidr: str, port: int) -> None:
    """The Service alone: made before anything is loaded, so it holds the first address (the
    port is the server's, corrected at start when it was not known yet)."""
    ip = cluster_ip(service_cidr)
    family = "IPv4" if ip_address(ip).version == 4 else "IPv6"
    service_port = {"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}
    existing = store.find("services", NAME, namespace=NAMESPACE)
    if existing is None:
        store.create(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": SERVICE_LABELS},
                "spec": {
                    "type": "ClusterIP",
                    "clusterIP": ip,
                    "clusterIPs": [ip],
                    "ipFamilies": [family],
                    "ipFamilyPolicy": "SingleStack",
                    "ports": [service_port],
                    "sessionAffinity": "None",
                },
            }
        )
    elif not _service_is_current(existing, service_port):
        store.patch(
            "services",
            NAME,
            {"metadata": {"labels": SERVICE_LABELS}, "spec": {"ports": [service_port]}},
            namespace=NAMESPACE,
        )


def _service_is_current(service: dict[str, Any], port: dict[str, Any]) -> bool:
    labels = service.get("metadata", {}).get("labels") or {}
    ports = service.get("spec", {}).get("ports") or []
    return all(labels.get(k) == v for k, v in SERVICE_LABELS.items()) and ports == [port]


def _reconcile_slice(store: Store, address: str, port: int) -> None:
    desired = {
        "addressType": "IPv4" if ip_address(address).version == 4 else "IPv6",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }
    existing = store.find("endpointslices", NAME, namespace=NAMESPACE)
    document = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": SLICE_LABELS},
        **desired,
    }
    if existing is not None and existing.get("addressType") != desired["addressType"]:
        store.delete("endpointslices", NAME, namespace=NAMESPACE)  # addressType is immutable
        existing = None
    if existing is None:
        store.create(document)
        return
    current = {key: existing.get(key) for key in desired}
    if current != desired or existing.get("metadata", {}).get("labels") != SLICE_LABELS:
        store.update(document)  # without a resourceVersion: unconditional, as upstream's reset
