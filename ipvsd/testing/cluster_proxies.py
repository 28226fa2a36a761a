"""The cluster's ipvsd daemons, one process per node, seen from the demo or test process.

`start()` runs `ip netns exec <node> python -m ipvsd --hostname-override <node> ...` for every
node, as the DaemonSet would run one per node: each programs its node's own IPVS table, dummy
device, nftables table and sysctls and serves /healthz on the node's address. They start
together because importing ipvsd takes long under software emulation and the starts overlap.
Logs go to files: a failing demo or test shows each daemon's last lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aiohttp

from ipvsd.testing.cluster_net import CLUSTER_CIDR, NodeSpec

IPVSD_FLAGS = (f"--cluster-cidr={CLUSTER_CIDR}", "--ipvs-sync-period=10s")


@dataclass
class NodeProxies:
    """The ipvsd daemons of `nodes`, talking to the API server of `kubeconfig`."""

    kubeconfig: Path
    nodes: tuple[NodeSpec, ...]
    log_dir: Path
    extra_flags: tuple[str, ...] = ()
    _processes: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list, repr=False)

    def log_path(self, node: str) -> Path:
        return self.log_dir / f"ipvsd-{node}.log"

    async def start(self) -> None:
        for node in self.nodes:
            log = self.log_path(node.name).open("wb")
            self._logs.append(log)
            self._processes[node.name] = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", node.name, sys.executable, "-m", "ipvsd",
                f"--kubeconfig={self.kubeconfig}", f"--hostname-override={node.name}",
                *IPVSD_FLAGS, *self.extra_flags,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip

    async def wait_ready(self, within: float = 240.0) -> None:
        """Until every daemon's /healthz answers 200 (it has synced once), or RuntimeError."""
        deadline = time.monotonic() + within
        pending = {node.name: node.address for node in self.nodes}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while pending:
                for name, address in list(pending.items()):
                    code = self._processes[name].returncode
                    if code is not None:
                        raise RuntimeError(f"ipvsd on {name} exited ({code}):\n{self.tail(name)}")
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        async with session.get(f"http://{address}:10256/healthz") as answer:
                            if answer.status == 200:
                                del pending[name]
                if pending and time.monotonic() > deadline:
                    raise RuntimeError(f"ipvsd not healthy after {within:.0f}s on "
                                       f"{', '.join(pending)}:\n{self.tails()}")  # fmt: skip
                await asyncio.sleep(0.3)

    def tail(self, node: str, lines: int = 15) -> str:
        """The last lines of a node's daemon log, each prefixed with the node."""
        try:
            text = self.log_path(node).read_text(errors="replace")
        except OSError:
            return f"[{node}] (no log)"
        return "\n".join(f"[{node}] {line}" for line in text.splitlines()[-lines:])

    def tails(self) -> str:
        return "\n".join(self.tail(node.name) for node in self.nodes)

    async def stop(self) -> None:
        for process in self._processes.values():
            if process.returncode is None:
                process.terminate()
        for process in self._processes.values():
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        self._processes.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()
