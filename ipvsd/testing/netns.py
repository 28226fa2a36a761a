"""Network namespaces for real-packet tests, served from one process.

Starting a Python process inside the VM costs seconds (software emulation), so nothing here
spawns one per request. Instead the calling thread briefly enters a namespace with setns(2):
a socket belongs to the namespace it was created in, so servers and clients for every
namespace live in the test process itself, on ordinary threads.

`Lab` builds the topology used by the kernel tests and the demo: the root namespace routes
between point-to-point veth links, one per namespace (`10.200.N.1` outside, `10.200.N.2`
inside); virtual IPs live on a dummy interface in the root namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def sh(*args: str, check: bool = True) -> str:
    """Run a command; its stdout, or RuntimeError with its stderr when it fails."""
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if check and done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def entered(namespace: str) -> Iterator[None]:
    """Run the block with this thread inside network namespace `namespace` (from `ip netns`)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


def answering(
    body: Callable[[str], bytes], content_type: str = "text/plain"
) -> type[BaseHTTPRequestHandler]:
    """A request handler answering every GET with `body(client address)`, then closing."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answer = body(self.client_address[0])
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(answer)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def _handler(name: str) -> type[BaseHTTPRequestHandler]:
    """Answers `<name> <client address>`: who served, and whom it saw."""
    return answering(lambda client: f"{name} {client}".encode())


def accepts(namespace: str, address: str, port: int) -> bool:
    """Whether something in `namespace` accepts TCP connections on address:port, asked from
    inside it (a readiness probe: a server process takes seconds to start in the VM)."""
    with entered(namespace):
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with probe:
        probe.settimeout(2.0)
        return probe.connect_ex((address, port)) == 0


def http_get(namespace: str, host: str, port: int, *, timeout: float = 3.0) -> str:
    """One HTTP/1.0 GET from inside `namespace`; the body, or OSError (refused, timed out)."""
    with entered(namespace):
        sock = socket.create_connection((host, port), timeout=timeout)
    with sock:
        sock.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.0 200") and not head.startswith(b"HTTP/1.1 200"):
        raise OSError(f"unexpected HTTP answer: {head[:60]!r}")
    return body.decode()


@dataclass
class Lab:
    """Namespaces, their links and HTTP servers; everything is removed by `close()`."""

    namespaces: list[str] = field(default_factory=list)
    servers: list[ThreadingHTTPServer] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)

    def add_namespace(self, name: str) -> str:
        """Create namespace `name` linked to the root namespace; return its address."""
        n = len(self.namespaces) + 1
        inside, outside = f"10.200.{n}.2", f"10.200.{n}.1"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "link", "add", f"v{name}", "type", "veth", "peer", "name", "eth0", "netns", name)
        sh("ip", "addr", "add", f"{outside}/24", "dev", f"v{name}")
        sh("ip", "link", "set", f"v{name}", "up")
        sh("ip", "-n", name, "addr", "add", f"{inside}/24", "dev", "eth0")
        sh("ip", "-n", name, "link", "set", "eth0", "up")
        sh("ip", "-n", name, "link", "set", "lo", "up")
        sh("ip", "-n", name, "route", "add", "default", "via", outside)
        return inside

    def serve(self, namespace: str, address: str, port: int, *, name: str | None = None) -> None:
        """Serve HTTP on `address:port` inside `namespace`, answering `<name> <client ip>`."""
        with entered(namespace):
            server = ThreadingHTTPServer((address, port), _handler(name or namespace))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.servers.append(server)

    def bind_vip(self, address: str, device: str = "ipvs-test0") -> None:
        """Put `address` on a dummy interface (removed by `close`) so the root namespace
        accepts traffic for it."""
        if device not in self.devices:
            sh("ip", "link", "add", device, "type", "dummy")
            self.devices.append(device)
        sh("ip", "addr", "replace", f"{address}/32", "dev", device)

    def close(self) -> None:
        for device in self.devices:
            sh("ip", "link", "del", device, check=False)
        self.devices.clear()
        for server in self.servers:
            server.shutdown()
            server.server_close()
        for name in self.namespaces:
            sh("ip", "link", "del", f"v{name}", check=False)
            sh("ip", "netns", "del", name, check=False)
        self.servers.clear()
        self.namespaces.clear()


@contextlib.contextmanager
def lab() -> Iterator[Lab]:
    """A `Lab` with forwarding on, torn down afterwards."""
    sh("sysctl", "-qw", "net.ipv4.ip_forward=1")
    created = Lab()
    try:
        yield created
    finally:
        created.close()
