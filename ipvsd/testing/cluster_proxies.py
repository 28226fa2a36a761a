"""The cluster's ipvsd daemons, one per node, seen from the demo, test or harness process.

`start()` runs, in every node's namespace, a supervisor (`ipvsd.testing.supervisor`) that
imports ipvsd once and forks `ipvsd --hostname-override <node> ...` from it, as the DaemonSet
would run one per node: each daemon programs its node's own IPVS table, dummy device,
nftables table and sysctls and serves /healthz on the node's address. The supervisors start
together because importing ipvsd takes long under software emulation and the imports overlap;
after that, `kill()` and `restart()` cost a fork plus ipvsd's own start, not an import.
Logs go to one file per node (appended across restarts): a failing run shows each daemon's
last lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from ipvsd.testing.cluster_net import CLUSTER_CIDR, NodeSpec

# The nodes are network namespaces of one kernel, none of them its initial one, so
# nf_conntrack_max is read-only for them: leave it, as kind tells its nodes' kube-proxy to.
IPVSD_FLAGS = (
    f"--cluster-cidr={CLUSTER_CIDR}",
    "--ipvs-sync-period=10s",
    "--conntrack-max-per-core=0",
)


@dataclass
class _Supervised:
    """One node's supervisor process and its line protocol."""

    process: asyncio.subprocess.Process
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def ask(self, command: dict[str, Any], within: float = 120.0) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        async with self.lock:
            self.process.stdin.write((json.dumps(command) + "\n").encode())
            await self.process.stdin.drain()
            line = await asyncio.wait_for(self.process.stdout.readline(), within)
        if not line:
            raise RuntimeError(f"supervisor exited ({self.process.returncode})")
        answer: dict[str, Any] = json.loads(line)
        return answer


@dataclass
class NodeProxies:
    """The ipvsd daemons of `nodes`, talking to the API server of `kubeconfig`."""

    kubeconfig: Path
    nodes: tuple[NodeSpec, ...]
    log_dir: Path
    extra_flags: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)  # for every start (e.g. IPVSD_FAULT_*)
    _supervisors: dict[str, _Supervised] = field(default_factory=dict)
    _exits: dict[str, int | None] = field(default_factory=dict)
    _booting: dict[str, asyncio.Future[None]] = field(default_factory=dict)

    def log_path(self, node: str) -> Path:
        return self.log_dir / f"ipvsd-{node}.log"

    def argv(self, node: str) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig}",
            f"--hostname-override={node}",
            *IPVSD_FLAGS,
            *self.extra_flags,
        ]

    async def start(self) -> None:
        """Start every node's supervisor; each starts its daemon as soon as it has imported
        ipvsd (in the background: the caller's workload overlaps the imports)."""
        for node in self.nodes:
            if node.name in self._supervisors:
                continue
            with self.log_path(node.name).open("ab") as log:  # the child keeps its own copy
                process = await asyncio.create_subprocess_exec(
                    "ip", "netns", "exec", node.name, sys.executable, "-m",
                    "ipvsd.testing.supervisor",
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
                )  # fmt: skip
            self._supervisors[node.name] = _Supervised(process)
            self._booting[node.name] = asyncio.ensure_future(self._boot(node.name))

    async def _boot(self, node: str) -> None:
        stdout = self._supervisors[node].process.stdout
        assert stdout is not None
        if not await stdout.readline():
            raise RuntimeError(f"supervisor on {node} failed:\n{self.tail(node)}")
        await self.start_daemon(node)

    async def booted(self, node: str) -> None:
        """Until the node's first daemon has been forked (its supervisor imported ipvsd)."""
        await self._booting[node]

    async def start_daemon(self, node: str, env: dict[str, str] | None = None) -> int:
        """Fork the node's ipvsd (with `env` added to the environment); its pid."""
        spec = {
            "argv": self.argv(node),
            "env": {**self.env, **(env or {})},
            "log": str(self.log_path(node)),
        }
        answer = await self._supervisors[node].ask({"start": spec})
        if "pid" not in answer:
            raise RuntimeError(f"ipvsd on {node} did not start: {answer}")
        self._exits[node] = None
        return int(answer["pid"])

    async def kill(self, node: str, sig: int = signal.SIGKILL, within: float = 30.0) -> int | None:
        """Send `sig` to the node's ipvsd and wait (at most `within`) for it to exit; the exit
        status (negative: the signal that ended it), None if it is still running."""
        await self.booted(node)
        supervisor = self._supervisors[node]
        await supervisor.ask({"signal": int(sig)})
        answer = await supervisor.ask({"wait": within}, within=within + 30)
        self._exits[node] = answer.get("exit")
        return self._exits[node]

    async def restart(
        self, node: str, sig: int = signal.SIGTERM, env: dict[str, str] | None = None
    ) -> int | None:
        """Stop the node's ipvsd with `sig` and start it again; the old one's exit status."""
        code = await self.kill(node, sig)
        if code is None:
            code = await self.kill(node, signal.SIGKILL)
        await self.start_daemon(node, env)
        return code

    async def exit_code(self, node: str) -> int | None:
        answer = await self._supervisors[node].ask({"poll": None})
        code: int | None = answer.get("exit")
        return code

    async def healthy(self, session: aiohttp.ClientSession, node: NodeSpec) -> bool:
        """/healthz answers 200 and the daemon has synced: /healthz alone is 200 from the
        start (for two sync periods, as kube-proxy's), its per-family `status` appears with
        the first sync."""
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
            async with session.get(f"http://{node.address}:10256/healthz") as answer:
                if answer.status != 200:
                    return False
                body = await answer.json(content_type=None)
                return isinstance(body, dict) and bool(body.get("status"))
        return False

    async def wait_ready(self, within: float = 480.0, nodes: list[str] | None = None) -> None:
        """Until every daemon's /healthz answers 200 (it has synced once), or RuntimeError."""
        deadline = time.monotonic() + within
        wanted = set(nodes) if nodes is not None else {node.name for node in self.nodes}
        pending = {node.name: node for node in self.nodes if node.name in wanted}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while pending:
                for name, node in list(pending.items()):
                    if not self._booting[name].done():
                        continue  # still importing
                    await self.booted(name)  # raises if its supervisor failed
                    code = await self.exit_code(name)
                    if code is not None:
                        raise RuntimeError(f"ipvsd on {name} exited ({code}):\n{self.tail(name)}")
                    if await self.healthy(session, node):
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
        """SIGTERM every daemon (SIGKILL after 10 s), then end the supervisors."""
        for name, supervisor in self._supervisors.items():
            booting = self._booting[name]
            if not booting.done():
                booting.cancel()
            with contextlib.suppress(BaseException):
                await booting
            with contextlib.suppress(Exception):
                if await self.kill(name, signal.SIGTERM, within=10) is None:
                    await self.kill(name, signal.SIGKILL, within=5)
            process = supervisor.process
            if process.stdin is not None:
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        self._supervisors.clear()
        self._booting.clear()
