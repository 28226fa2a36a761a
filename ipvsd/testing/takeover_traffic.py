"""Pod servers and a client for the takeover test, each its own process (standard library only).

Run inside a namespace with `ip netns exec NS python -m ipvsd.testing.takeover_traffic ...`:

- `serve NAME ADDRESS`: a pod. TCP on ADDRESS:8080 answers every line with `NAME\\n`; UDP on
  ADDRESS:5353 answers every datagram with `NAME`.
- `load OUT --tcp IP:PORT ... --udp IP:PORT`: a client. Per TCP target it holds one long-lived
  connection (a line every 0.3 s, each answer must come within 5 s from the same pod) and opens
  a new connection after another (connect, one line, answer, close; 5 s at most). Over UDP it
  keeps one socket (one source port) sending a datagram every 0.3 s. It writes `OUT.ready`
  once every long-lived connection and the UDP flow have been answered, and stops when
  `OUT.stop` appears, writing the report as JSON to OUT: per target the long-lived
  connection's pods and breaks, new connections done and failed (with the first errors); for
  UDP the pods that answered and the datagrams lost.
"""

from __future__ import annotations

import json
import socket
import socketserver
import sys
import threading
import time
from pathlib import Path
from typing import Any

TIMEOUT = 5.0
INTERVAL = 0.3


def serve(name: str, address: str) -> None:
    class Lines(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            for _ in self.rfile:
                self.wfile.write(f"{name}\n".encode())

    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True

    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((address, 5353))

    def answer() -> None:
        while True:
            _data, peer = udp.recvfrom(512)
            udp.sendto(name.encode(), peer)

    threading.Thread(target=answer, daemon=True).start()
    with Server((address, 8080), Lines) as server:
        server.serve_forever()


def _target(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


class Load:
    def __init__(self, out: Path, tcp: list[str], udp: str) -> None:
        self.out, self.tcp, self.udp = out, tcp, udp
        self.stop = threading.Event()
        self.report: dict[str, Any] = {
            t: {"held_by": [], "breaks": [], "new_ok": 0, "new_failed": 0, "errors": []}
            for t in tcp
        }
        self.report["udp"] = {"target": udp, "pods": [], "lost": 0}
        self.answered: set[str] = set()
        self.lock = threading.Lock()

    def held(self, target: str) -> None:
        entry = self.report[target]
        while not self.stop.is_set():
            try:
                with socket.create_connection(_target(target), timeout=TIMEOUT) as sock:
                    lines = sock.makefile("rb")
                    while not self.stop.is_set():
                        sock.sendall(b"ping\n")
                        pod = lines.readline().decode().strip()
                        if not pod:
                            raise OSError("connection closed")
                        if pod not in entry["held_by"]:
                            entry["held_by"].append(pod)
                        with self.lock:
                            self.answered.add(target)
                        time.sleep(INTERVAL)
            except OSError as error:
                entry["breaks"].append(f"{time.time():.1f} {error!r}")
                time.sleep(INTERVAL)

    def fresh(self, target: str) -> None:
        entry = self.report[target]
        while not self.stop.is_set():
            try:
                with socket.create_connection(_target(target), timeout=TIMEOUT) as sock:
                    sock.sendall(b"ping\n")
                    if not sock.makefile("rb").readline().strip():
                        raise OSError("no answer")
                entry["new_ok"] += 1
            except OSError as error:
                entry["new_failed"] += 1
                if len(entry["errors"]) < 5:
                    entry["errors"].append(f"{time.time():.1f} {error!r}")
            time.sleep(INTERVAL / 3)

    def datagrams(self) -> None:
        entry = self.report["udp"]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(TIMEOUT)
            sock.connect(_target(self.udp))
            while not self.stop.is_set():
                sock.send(b"query")
                try:
                    pod = sock.recv(512).decode()
                except OSError:
                    entry["lost"] += 1
                    continue
                if pod not in entry["pods"]:
                    entry["pods"].append(pod)
                with self.lock:
                    self.answered.add("udp")
                time.sleep(INTERVAL)

    def run(self) -> None:
        threads = [threading.Thread(target=self.held, args=(t,)) for t in self.tcp]
        threads += [threading.Thread(target=self.fresh, args=(t,)) for t in self.tcp]
        threads.append(threading.Thread(target=self.datagrams))
        for thread in threads:
            thread.start()
        ready = Path(f"{self.out}.ready")
        stop = Path(f"{self.out}.stop")
        while not stop.exists():
            with self.lock:
                if len(self.answered) == len(self.tcp) + 1 and not ready.exists():
                    ready.write_text("ready\n")
            time.sleep(0.2)
        self.stop.set()
        for thread in threads:
            thread.join()
        self.out.write_text(json.dumps(self.report, indent=1))


def main(argv: list[str]) -> None:
    if argv[0] == "serve":
        serve(argv[1], argv[2])
    elif argv[0] == "load":
        tcp = [argv[i + 1] for i, word in enumerate(argv) if word == "--tcp"]
        udp = argv[argv.index("--udp") + 1]
        Load(Path(argv[1]), tcp, udp).run()
    else:
        raise SystemExit(f"unknown command {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
