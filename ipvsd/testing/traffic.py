"""Traffic for the namespace cluster: pod servers and generators, each its own process.

In the emulated VM one interpreter runs at a fraction of real speed and its GIL serialises
every thread: a generator on a thread of the harness would stall whenever the harness works
(building, restarting daemons, reading tables) and the harness would count its own stalls.
So both sides are separate processes, started inside a namespace with `ip netns exec`, that
import only the standard library (`python -m ipvsd.testing.traffic serve|generate ...`):

- `serve --name POD --tcp PORT --udp PORT`: a pod's server. On every TCP connection it first
  sends a fixed-size hello (its name, `HELLO` bytes) and then echoes every byte; every UDP
  datagram is answered with the hello followed by the datagram.
- `generate FLOWS_JSON`: a client. Per flow (`Flow`), one of
  - `long`: `count` long-lived TCP connections, each sending `size` bytes every `interval`
    seconds and expecting exactly those bytes back within `timeout`. A reset, an end of stream,
    a wrong byte or a late reply *interrupts* the connection (counted, then it reconnects);
  - `new`: a new TCP connection every `interval`, one request each (hello, `size` bytes echoed);
    one not done within `timeout` (refused, reset, silent) is a *failed new* connection;
  - `udp`: `count` flows, each from a fixed source port (`source_port` + i), one datagram per
    `interval`; one unanswered within `timeout`, or answered by a backend the harness declared
    gone (`gone NAME` on stdin), is *lost*. Which backend answered is recorded.
  `leaving NAME` on stdin says a backend is shutting down (its grace period ends): each `long`
  connection to it closes at its next idle moment (no request outstanding) and reconnects, as
  a client does when its server says it is closing (HTTP `Connection: close`); counted as
  `left`, not as interrupted.
  Per flow it also reports the longest gap between two replies (over reconnects). It prints
  `{"ready": true}` once every long connection and UDP flow has had a reply (or after 20 s),
  and on `stop` (or end of stdin) waits for the replies still due, prints one JSON line with
  the results and exits.

Both run at nice -5 (when allowed): in the VM they share two CPUs with the daemons, and a
pod on a real node has CPUs of its own.

The harness side (`Generator`, `serve_argv`) drives these processes from asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import selectors
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HELLO = 32  # bytes: the server's name, space-padded
TICK = 0.02  # seconds between the generator's timer checks
READY_WITHIN = 20.0
FAILURE_TIMES = 5  # failures per flow whose times are kept


@dataclass(frozen=True, slots=True)
class Flow:
    """One kind of traffic to one target (see the module docstring)."""

    name: str
    kind: str  # "long" | "new" | "udp"
    target: str  # "address:port"
    count: int = 1
    interval: float = 0.1
    timeout: float = 2.0
    size: int = 64
    source_port: int = 0  # udp: the first fixed source port


@dataclass(slots=True)
class FlowResult:
    """What one flow saw (see the module docstring); `errors` counts failures by reason."""

    name: str
    kind: str
    replies: int = 0
    interrupted: int = 0
    failed_new: int = 0
    udp_lost: int = 0
    udp_gone: int = 0  # of udp_lost: answered by a backend that was gone
    left: int = 0  # long connections closed by the client as their backend was leaving
    max_gap_ms: float = 0.0
    backends: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    failed_at: list[float] = field(default_factory=list)  # wall-clock times of the first few


# --- the pod server ---------------------------------------------------------------------------


def hello_of(name: str) -> bytes:
    return name.encode()[:HELLO].ljust(HELLO)


def serve(name: str, tcp_port: int, udp_port: int) -> None:
    """Serve until killed (see the module docstring)."""
    hello = hello_of(name)
    selector = selectors.DefaultSelector()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", tcp_port))
    listener.listen(1024)
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ, None)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0", udp_port))
    udp.setblocking(False)
    selector.register(udp, selectors.EVENT_READ, None)
    pending: dict[socket.socket, bytearray] = {}
    while True:
        for key, mask in selector.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is listener:
                with contextlib.suppress(OSError):
                    conn, _ = listener.accept()
                    conn.setblocking(False)
                    pending[conn] = bytearray(hello)
                    selector.register(conn, selectors.EVENT_READ | selectors.EVENT_WRITE, None)
            elif sock is udp:
                with contextlib.suppress(OSError):
                    data, address = udp.recvfrom(4096)
                    udp.sendto(hello + data, address)
            else:
                _serve_connection(selector, sock, mask, pending)


def _serve_connection(
    selector: selectors.BaseSelector,
    sock: socket.socket,
    mask: int,
    pending: dict[socket.socket, bytearray],
) -> None:
    out = pending[sock]
    try:
        if mask & selectors.EVENT_READ:
            data = sock.recv(65536)
            if not data:
                raise ConnectionResetError
            out += data
        if out:
            del out[: sock.send(out)]
    except (BlockingIOError, InterruptedError):
        pass
    except OSError:
        selector.unregister(sock)
        sock.close()
        del pending[sock]
        return
    wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if out else 0)
    if selector.get_key(sock).events != wanted:
        selector.modify(sock, wanted, None)


# --- the generator ----------------------------------------------------------------------------


def _address(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    return host, int(port)


def _payload(counter: int, size: int) -> bytes:
    stamp = f"{counter:016d}".encode()
    return (stamp * (size // len(stamp) + 1))[:size]


class _Stats:
    """A flow's counters and its reply clock."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.result = FlowResult(flow.name, flow.kind)
        self.last_reply: float | None = None
        self.first_reply = False

    def replied(self, now: float, backend: str) -> None:
        result = self.result
        result.replies += 1
        result.backends[backend] = result.backends.get(backend, 0) + 1
        if self.last_reply is not None:
            result.max_gap_ms = max(result.max_gap_ms, (now - self.last_reply) * 1000)
        self.last_reply = now
        self.first_reply = True

    def error(self, reason: str) -> None:
        self.result.errors[reason] = self.result.errors.get(reason, 0) + 1
        if len(self.result.failed_at) < FAILURE_TIMES:  # to hold beside a harness's phases
            self.result.failed_at.append(round(time.time(), 1))


class _TcpExchange:
    """One TCP connection of a `long` flow (repeating) or a `new` flow (one request)."""

    def __init__(self, gen: _Generator, stats: _Stats, *, repeat: bool, now: float) -> None:
        self.gen, self.stats, self.repeat = gen, stats, repeat
        flow = stats.flow
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.state = "connecting"
        self.deadline = now + flow.timeout
        self.buffer = bytearray()
        self.expected = b""
        self.backend = ""
        self.next_send = now
        self.established = False
        code = self.sock.connect_ex(_address(flow.target))
        if code not in (0, errno.EINPROGRESS):
            self.fail(now, errno.errorcode.get(code, str(code)))
            return
        gen.selector.register(self.sock, selectors.EVENT_WRITE, self)

    def on_event(self, now: float) -> None:
        try:
            if self.state == "connecting":
                code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    self.fail(now, errno.errorcode.get(code, str(code)))
                    return
                self.state = "hello"
                self.gen.selector.modify(self.sock, selectors.EVENT_READ, self)
                return
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self.fail(now, errno.errorcode.get(error.errno or 0, type(error).__name__))
            return
        if not data:
            self.fail(now, "eof")
            return
        self.buffer += data
        self.progress(now)

    def progress(self, now: float) -> None:
        flow = self.stats.flow
        if self.state == "hello" and len(self.buffer) >= HELLO:
            self.backend = bytes(self.buffer[:HELLO]).decode(errors="replace").strip()
            del self.buffer[:HELLO]
            self.established = True
            self.state = "idle"
            self.send(now)
        if self.state == "waiting" and len(self.buffer) >= flow.size:
            if bytes(self.buffer[: flow.size]) != self.expected or len(self.buffer) > flow.size:
                self.fail(now, "wrong-byte")
                return
            self.buffer.clear()
            self.stats.replied(now, self.backend)
            if not self.repeat:
                self.close()
                self.gen.exchanges.discard(self)
                return
            self.state = "idle"
            self.next_send = max(self.next_send + flow.interval, now)

    def send(self, now: float) -> None:
        flow = self.stats.flow
        self.gen.counter += 1
        self.expected = _payload(self.gen.counter, flow.size)
        try:
            if self.sock.send(self.expected) != flow.size:
                raise OSError("short send")
        except OSError as error:
            self.fail(now, errno.errorcode.get(error.errno or 0, "send"))
            return
        self.state = "waiting"
        self.deadline = now + flow.timeout

    def tick(self, now: float) -> None:
        if self.state == "closed":
            self.gen.exchanges.discard(self)
        elif self.state == "idle":
            if self.repeat and self.backend in self.gen.leaving:
                self.leave(now)
            elif now >= self.next_send and not self.gen.stopping:
                self.send(now)
        elif now > self.deadline:
            self.fail(now, f"timeout-{self.state}")

    def leave(self, now: float) -> None:
        """Close in order (nothing outstanding) because the backend is leaving; reconnect."""
        self.stats.result.left += 1
        self.close()
        self.gen.exchanges.discard(self)
        self.gen.reconnect_at.append((now + self.stats.flow.interval, self.stats))

    def fail(self, now: float, reason: str) -> None:
        result = self.stats.result
        if self.repeat and self.established:
            result.interrupted += 1
        else:
            result.failed_new += 1
        self.stats.error(reason)
        self.close()
        self.gen.exchanges.discard(self)
        if self.repeat:
            self.gen.reconnect_at.append((now + self.stats.flow.interval, self.stats))

    def close(self) -> None:
        if self.state != "closed":
            with contextlib.suppress(KeyError, ValueError):
                self.gen.selector.unregister(self.sock)
            self.sock.close()
            self.state = "closed"

    @property
    def busy(self) -> bool:
        """A reply (or the connection itself) is still due."""
        return self.state in ("connecting", "hello", "waiting")


class _UdpFlow:
    """One fixed-source-port UDP flow."""

    def __init__(self, gen: _Generator, stats: _Stats, port: int, now: float) -> None:
        self.gen, self.stats = gen, stats
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", port))
        self.sock.connect(_address(stats.flow.target))
        self.sock.setblocking(False)
        self.outstanding: dict[int, float] = {}
        self.next_send = now
        gen.selector.register(self.sock, selectors.EVENT_READ, self)

    def on_event(self, now: float) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # ICMP unreachable: the datagram counts as lost later
                self.stats.error(errno.errorcode.get(error.errno or 0, "udp-error"))
                continue
            backend = data[:HELLO].decode(errors="replace").strip()
            try:
                sequence = int(data[HELLO : HELLO + 16])
            except ValueError:
                self.stats.error("udp-garbled")
                continue
            if self.outstanding.pop(sequence, None) is None:
                continue  # late: already counted as lost
            if backend in self.gen.gone:
                self.stats.result.udp_lost += 1
                self.stats.result.udp_gone += 1
                self.stats.error("udp-gone-backend")
            self.stats.replied(now, backend)

    def tick(self, now: float) -> None:
        flow = self.stats.flow
        for sequence, sent in list(self.outstanding.items()):
            if now - sent > flow.timeout:
                del self.outstanding[sequence]
                self.stats.result.udp_lost += 1
                self.stats.error("udp-unanswered")
        if now >= self.next_send and not self.gen.stopping:
            self.gen.counter += 1
            sequence = self.gen.counter
            try:
                self.sock.send(_payload(sequence, max(flow.size, 16)))
            except OSError as error:
                self.stats.error(errno.errorcode.get(error.errno or 0, "udp-send"))
            self.outstanding[sequence] = now
            self.next_send = max(self.next_send + flow.interval, now)

    @property
    def busy(self) -> bool:
        return bool(self.outstanding)


class _Generator:
    def __init__(self, flows: list[Flow]) -> None:
        self.selector = selectors.DefaultSelector()
        self.stats = [_Stats(flow) for flow in flows]
        self.exchanges: set[_TcpExchange] = set()
        self.udp: list[_UdpFlow] = []
        self.reconnect_at: list[tuple[float, _Stats]] = []
        self.gone: set[str] = set()
        self.leaving: set[str] = set()
        self.stopping = False
        self.counter = 0
        self.next_new: dict[int, float] = {}
        self.stdin = bytearray()

    def run(self) -> list[FlowResult]:
        now = time.monotonic()
        started, ready = now, False
        for index, stats in enumerate(self.stats):
            flow = stats.flow
            if flow.kind == "long":
                for _ in range(flow.count):
                    self.exchanges.add(_TcpExchange(self, stats, repeat=True, now=now))
            elif flow.kind == "udp":
                for i in range(flow.count):
                    self.udp.append(_UdpFlow(self, stats, flow.source_port + i, now))
            elif flow.kind == "new":
                self.next_new[index] = now
            else:
                raise ValueError(f"unknown flow kind {flow.kind!r}")
        os.set_blocking(0, False)
        self.selector.register(0, selectors.EVENT_READ, "stdin")
        stop_deadline = float("inf")
        while True:
            for key, _ in self.selector.select(TICK):
                now = time.monotonic()
                if key.data == "stdin":
                    self.read_stdin()
                else:
                    key.data.on_event(now)
            now = time.monotonic()
            self.tick(now)
            if not ready and (self.all_replied() or now - started > READY_WITHIN):
                ready = True
                print(json.dumps({"ready": self.all_replied()}), flush=True)
            if self.stopping:
                stop_deadline = min(stop_deadline, now + self.longest_timeout())
                busy = any(x.busy for x in self.exchanges) or any(u.busy for u in self.udp)
                if not busy or now > stop_deadline:
                    return [stats.result for stats in self.stats]

    def longest_timeout(self) -> float:
        return max((s.flow.timeout for s in self.stats), default=1.0) + 0.5

    def all_replied(self) -> bool:
        return all(s.first_reply for s in self.stats if s.flow.kind in ("long", "udp"))

    def tick(self, now: float) -> None:
        for exchange in list(self.exchanges):
            exchange.tick(now)
        for flow in self.udp:
            flow.tick(now)
        if self.stopping:
            return
        due = [entry for entry in self.reconnect_at if entry[0] <= now]
        self.reconnect_at = [entry for entry in self.reconnect_at if entry[0] > now]
        for _, stats in due:
            self.exchanges.add(_TcpExchange(self, stats, repeat=True, now=now))
        for index, at in self.next_new.items():
            if now >= at:
                stats = self.stats[index]
                self.exchanges.add(_TcpExchange(self, stats, repeat=False, now=now))
                self.next_new[index] = max(at + stats.flow.interval, now)

    def read_stdin(self) -> None:
        try:
            data = os.read(0, 4096)
        except BlockingIOError:
            return
        if not data:
            self.stopping = True
            self.selector.unregister(0)
            return
        self.stdin += data
        while b"\n" in self.stdin:
            line, _, rest = bytes(self.stdin).partition(b"\n")
            self.stdin = bytearray(rest)
            words = line.decode().split()
            if words[:1] == ["gone"] and len(words) == 2:
                self.gone.add(words[1])
            elif words[:1] == ["leaving"] and len(words) == 2:
                self.leaving.add(words[1])
            elif words[:1] == ["stop"]:
                self.stopping = True


def generate(flows: list[Flow]) -> None:
    results = _Generator(flows).run()
    print(json.dumps({"results": [asdict(result) for result in results]}), flush=True)


# --- the harness side -------------------------------------------------------------------------


def serve_argv(name: str, tcp_port: int, udp_port: int) -> list[str]:
    """The command line of a pod server (run it inside the pod's namespace)."""
    return [
        sys.executable, "-m", "ipvsd.testing.traffic", "serve",
        "--name", name, "--tcp", str(tcp_port), "--udp", str(udp_port),
    ]  # fmt: skip


@dataclass
class Generator:
    """A running generator process in a namespace (see the module docstring)."""

    namespace: str
    process: asyncio.subprocess.Process

    @classmethod
    async def start(cls, namespace: str | None, flows: list[Flow], log: Path) -> Generator:
        """Start a generator inside `namespace` (None: this process's own namespace)."""
        config = json.dumps([asdict(flow) for flow in flows])
        inside = ["ip", "netns", "exec", namespace] if namespace else []
        with log.open("ab") as errors:
            process = await asyncio.create_subprocess_exec(
                *inside, sys.executable, "-m", "ipvsd.testing.traffic", "generate", config,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=errors,
            )  # fmt: skip
        return cls(namespace or "(own namespace)", process)

    async def _line(self, within: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), within)
        if not line:
            raise RuntimeError(f"traffic generator in {self.namespace} exited early")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def ready(self, within: float = 120.0) -> bool:
        """Until every long connection and UDP flow has had a reply; False if some had none."""
        return bool((await self._line(within)).get("ready"))

    async def _send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    async def gone(self, backend: str) -> None:
        """From now on, a UDP answer from `backend` counts as lost."""
        await self._send(f"gone {backend}")

    async def leaving(self, backend: str) -> None:
        """`backend` is shutting down: long connections to it close in order and reconnect."""
        await self._send(f"leaving {backend}")

    async def stop(self, within: float = 60.0) -> list[FlowResult]:
        await self._send("stop")
        answer = await self._line(within)
        await self.process.wait()
        return [FlowResult(**result) for result in answer["results"]]

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


def main(argv: list[str]) -> int:
    # Ahead of the daemons and the harness in the VM's two CPUs, as a pod has CPUs of its own:
    # what is measured is the data plane, not who got the CPU while ipvsd was starting.
    with contextlib.suppress(OSError):
        os.nice(-5)
    if argv[:1] == ["serve"]:
        options = dict(zip(argv[1::2], argv[2::2], strict=False))
        serve(options["--name"], int(options["--tcp"]), int(options["--udp"]))
        return 0
    if argv[:1] == ["generate"] and len(argv) == 2:
        generate([Flow(**flow) for flow in json.loads(argv[1])])
        return 0
    print("usage: python -m ipvsd.testing.traffic serve|generate ...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
