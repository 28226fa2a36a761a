"""An N-node cluster's network out of network namespaces, for the demo, the harnesses and tests.

There is no kubelet and no CNI in the VM, so this module plays both, minikube-style:

- a bridge `mnode-br` in the root namespace (192.168.49.1, where the API emulator listens) is
  the nodes' shared L2 segment; every node is a namespace with `eth0` on it (192.168.49.2..);
- each node owns a pod CIDR (10.244.N.0/24) and routes the other nodes' pod CIDRs via their
  node addresses, so a packet DNATed by one node's IPVS to a pod elsewhere is routed there and
  the reply comes back through the same node (symmetric: no masquerade between pods);
- pods are namespaces linked to their node point to point, as the `ptp` CNI plugin does: the
  pod holds `10.244.N.K/32` with the node's `10.244.N.1` as an on-link gateway, the node a /32
  route per pod. Routed rather than bridged on purpose: on a node-local bridge, replies of a
  pod to a client pod on the same node would be switched past IPVS and never un-NATed;
- `outside` is a namespace on the nodes' segment (192.168.49.100) that plays a client outside
  the cluster (NodePorts, health checks).

The nodes are a spec: `NODES` (the demo's three), or `node_specs(zones)` for any number of
nodes with zone labels (up to 90: addresses 192.168.49.2..91, pod CIDRs 10.244.0-89.0/24).
Commands go through `ip -batch`, one process per namespace touched: each process start costs
tens of milliseconds under software emulation. A pod serves either from a thread of the calling
process (`serve`, the demo's HTTP echo, `ipvsd.testing.netns.entered`) or from its own process
started in its namespace (`serve_process`, the disruption harness's traffic servers, so that
the calling interpreter's GIL does not pace them).
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ipvsd.testing.netns import accepts, answering, entered, sh

BRIDGE = "mnode-br"
HOST_ADDRESS = "192.168.49.1"
OUTSIDE = "outside"
OUTSIDE_ADDRESS = "192.168.49.100"
CLUSTER_CIDR = "10.244.0.0/16"


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One node: its name (also its namespace), address on the segment, pod CIDR and zone."""

    name: str
    address: str
    index: int  # the third octet of its pod CIDR, 10.244.<index>.0/24
    zone: str | None

    @property
    def pod_cidr(self) -> str:
        return f"10.244.{self.index}.0/24"

    @property
    def gateway(self) -> str:
        return f"10.244.{self.index}.1"


# minikube's `--nodes=3` cluster of the seed document, zones labelled as its step 1 does.
NODES = (
    NodeSpec("mnode", "192.168.49.2", 0, None),
    NodeSpec("mnode-m02", "192.168.49.3", 1, "zone-a"),
    NodeSpec("mnode-m03", "192.168.49.4", 2, "zone-b"),
)


def node_specs(zones: Sequence[str | None], *, prefix: str = "node") -> tuple[NodeSpec, ...]:
    """One node per entry of `zones` (its zone label, None for none): `<prefix>-1`, ... at
    192.168.49.2, ... with pod CIDRs 10.244.0.0/24, ..."""
    if len(zones) > 90:
        raise ValueError("at most 90 nodes fit the segment below the outside client's address")
    return tuple(
        NodeSpec(f"{prefix}-{i + 1}", f"192.168.49.{i + 2}", i, zone)
        for i, zone in enumerate(zones)
    )


def _batch(lines: list[str], namespace: str | None = None) -> None:
    """Run `ip` commands (without the leading `ip`) in one process, optionally in a namespace."""
    argv = ["ip", *(["-n", namespace] if namespace else []), "-batch", "-"]
    done = subprocess.run(
        argv, input="\n".join(lines) + "\n", capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}\n" + "\n".join(lines))


def _write_sysctl(namespace: str, path: str, value: str) -> None:
    """Write /proc/sys/`path` in `namespace`: /proc/sys/net follows the writing thread's netns."""
    with entered(namespace):
        Path("/proc/sys", path).write_text(value)


def _remove_namespace(name: str) -> None:
    sh("ip", "netns", "del", name, check=False)


def _handler(pod: str, node: str) -> type[BaseHTTPRequestHandler]:
    """Answers like the seed's echo pods, as JSON: its pod and node, and whom it saw."""

    def body(client: str) -> bytes:
        return json.dumps({"env": {"POD_NAME": pod, "NODE_NAME": node}, "client": client}).encode()

    return answering(body, "application/json")


@dataclass(frozen=True, slots=True)
class PodNet:
    """A pod's network identity: its namespace (named after the pod), node and address."""

    name: str
    node: NodeSpec
    address: str
    link: str  # the node-side veth


@dataclass
class ClusterNet:
    """The namespaces, links and pod servers of the cluster; `close()` removes everything."""

    nodes: tuple[NodeSpec, ...] = NODES
    pods: dict[str, PodNet] = field(default_factory=dict)
    _servers: dict[str, ThreadingHTTPServer] = field(default_factory=dict)
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _next_host: dict[str, int] = field(default_factory=dict)
    _next_link: int = 0

    def node(self, name: str) -> NodeSpec:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def build(self) -> None:
        """The bridge, the node namespaces with their routes, and the outside client."""
        self.close()  # leftovers of an interrupted run, if any
        _batch([f"link add {BRIDGE} type bridge", f"addr add {HOST_ADDRESS}/24 dev {BRIDGE}",
                f"link set {BRIDGE} up"])  # fmt: skip
        for node in self.nodes:
            self._attach(node.name, node.address)
            routes = [
                f"route add {other.pod_cidr} via {other.address}"
                for other in self.nodes
                if other is not node
            ]
            _batch(routes, node.name)
            _write_sysctl(node.name, "net/ipv4/ip_forward", "1")
            self._next_host[node.name] = 2
        self._attach(OUTSIDE, OUTSIDE_ADDRESS)

    def _attach(self, namespace: str, address: str) -> None:
        sh("ip", "netns", "add", namespace)
        outer = f"v-{namespace}"[:15]
        _batch([f"link add {outer} type veth peer name eth0 netns {namespace}",
                f"link set {outer} master {BRIDGE} up"])  # fmt: skip
        _batch([f"addr add {address}/24 dev eth0", "link set eth0 up", "link set lo up"],
               namespace)  # fmt: skip

    def add_pod(self, name: str, node_name: str) -> PodNet:
        """A pod namespace on `node_name` with the next free address of the node's pod CIDR."""
        node = self.node(node_name)
        host = self._next_host[node.name]
        self._next_host[node.name] = host + 1
        self._next_link += 1
        pod = PodNet(name, node, f"10.244.{node.index}.{host}", f"veth{self._next_link}")
        sh("ip", "netns", "add", name)
        self.pods[name] = pod
        _batch([f"link add {pod.link} type veth peer name eth0 netns {name}",
                f"addr add {node.gateway}/32 dev {pod.link}", f"link set {pod.link} up",
                f"route add {pod.address}/32 dev {pod.link}"], node.name)  # fmt: skip
        _batch([f"addr add {pod.address}/32 dev eth0", "link set eth0 up", "link set lo up",
                f"route add {node.gateway} dev eth0 scope link",
                f"route add default via {node.gateway} dev eth0"], name)  # fmt: skip
        return pod

    def serve(self, pod: PodNet, port: int) -> None:
        """The pod's echo server on `port`, on a thread of this process."""
        with entered(pod.name):
            server = ThreadingHTTPServer(("0.0.0.0", port), _handler(pod.name, pod.node.name))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True, name=pod.name).start()
        self._servers[pod.name] = server

    def serve_process(
        self,
        pod: PodNet,
        argv: Sequence[str],
        log: Path | None = None,
        *,
        listening: int | None = None,
        within: float = 180.0,
    ) -> None:
        """Run `argv` as the pod's server, its own process inside the pod's namespace (stopped
        by `stop_serving` or `remove_pod`); output to `log` (default: discarded). With
        `listening`, return only once the pod accepts TCP connections on that port (what a
        readiness probe would wait for: a process takes seconds to start in the VM), or raise
        RuntimeError if the server exits or does not listen within `within` seconds."""
        out = log.open("ab") if log is not None else subprocess.DEVNULL
        process = self._processes[pod.name] = subprocess.Popen(
            ["ip", "netns", "exec", pod.name, *argv],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out,
        )  # fmt: skip
        if log is not None and not isinstance(out, int):
            out.close()  # the child holds its own copy
        deadline = time.monotonic() + within
        while listening is not None and not accepts(pod.name, pod.address, listening):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:] if log is not None else ""
                raise RuntimeError(f"{pod.name}'s server is not listening on {listening} "
                                   f"(exit {process.poll()}):\n{tail}")  # fmt: skip
            time.sleep(0.2)

    def stop_serving(self, name: str) -> None:
        """Stop the pod's server (thread or process); the namespace stays."""
        server = self._servers.pop(name, None)
        if server is not None:
            server.shutdown()
            server.server_close()
        process = self._processes.pop(name, None)
        if process is not None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def remove_pod(self, name: str) -> None:
        """Stop the pod's server and remove its namespace (its veth pair goes with it)."""
        self.stop_serving(name)
        self.pods.pop(name, None)
        _remove_namespace(name)

    def close(self) -> None:
        for name in [*self._servers, *self._processes]:
            self.remove_pod(name)
        for name in list(self.pods):
            _remove_namespace(name)
        self.pods.clear()
        for namespace in (*(n.name for n in self.nodes), OUTSIDE):
            _remove_namespace(namespace)
        sh("ip", "link", "del", BRIDGE, check=False)


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP exchange: the status and the decoded JSON body (empty when not JSON)."""

    status: int
    body: dict[str, object]


def http_request(
    namespace: str, host: str, port: int, path: str = "/", *, timeout: float = 3.0
) -> Answer:
    """One HTTP/1.0 GET from inside `namespace` on a fresh connection (as curl does): any status
    is returned; OSError when nothing answers (refused, timed out)."""
    with entered(namespace):
        sock = socket.create_connection((host, port), timeout=timeout)
    with sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    with contextlib.suppress(ValueError):
        decoded = json.loads(body)
        if isinstance(decoded, dict):
            return Answer(status, decoded)
    return Answer(status, {})
