"""Reads the node's iptables, ipsets and nftables tables, and runs a removal: nothing more.

What is kube-proxy's is decided in `plan.kube_proxy_leftovers`; this module only looks and
executes, one exec per backend and family (`iptables-restore --noflush`), one for all sets
(`ipset restore` of `destroy` lines) and one for the nftables tables (`nft -f`).

Looking loads nothing: a backend is read only when its tables already exist. The legacy
backend's tables are listed by the kernel in `/proc/net/ip_tables_names` (and
`ip6_tables_names`), which exist only while `ip_tables` (`ip6_tables`) is loaded; the nft
backend's tables are `ip`/`ip6` tables named like the xtables ones in `nft list tables` (nft
itself is loaded anyway for ipvsd's own table); `ipset save` runs only while the `ip_set`
module is loaded (`/sys/module/ip_set`), since asking would load it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from ipvsd.model.netfilter import (
    Backend,
    IpFamily,
    IptablesDump,
    LeftoverRemoval,
    NetfilterState,
)

XTABLES = frozenset({"raw", "mangle", "nat", "filter", "security"})
_NFT_FAMILY: dict[IpFamily, str] = {"ipv4": "ip", "ipv6": "ip6"}
_PROC_NAMES: dict[IpFamily, str] = {"ipv4": "ip_tables_names", "ipv6": "ip6_tables_names"}


class ToolError(RuntimeError):
    """A tool refused or could not run; the message carries its own explanation."""


def tool(family: IpFamily, backend: Backend, verb: str) -> str:
    """e.g. `ip6tables-legacy-restore`."""
    return f"{'iptables' if family == 'ipv4' else 'ip6tables'}-{backend}-{verb}"


async def run(args: list[str], stdin: str | None = None) -> str:
    """Run a tool; its stdout, or ToolError with its stderr."""
    try:
        process = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as error:
        raise ToolError(f"cannot run {args[0]}: {error}") from error
    out, err = await process.communicate(stdin.encode() if stdin is not None else None)
    if process.returncode:
        raise ToolError(f"{args[0]} failed ({process.returncode}): {err.decode().strip()}")
    return out.decode()


def parse_nft_tables(text: str) -> tuple[tuple[str, str], ...]:
    """`nft list tables` output → (family, name) pairs."""
    pairs = []
    for line in text.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "table":
            pairs.append((words[1], words[2]))
    return tuple(pairs)


class NetfilterLeftovers:
    """The netfilter port of the takeover: `read()` the node, `remove()` a planned removal."""

    def __init__(self, *, proc: Path = Path("/proc"), sys: Path = Path("/sys")) -> None:
        self._proc = proc
        self._sys = sys

    async def read(self) -> NetfilterState:
        try:
            nft_tables = parse_nft_tables(await run(["nft", "list", "tables"]))
        except ToolError:
            nft_tables = ()
        dumps: list[IptablesDump] = []
        for family in ("ipv4", "ipv6"):
            nft_family = _NFT_FAMILY[family]
            if any(f == nft_family and name in XTABLES for f, name in nft_tables):
                dumps.append(await self._save(family, "nft"))
            if self._legacy_tables(family):
                dumps.append(await self._save(family, "legacy"))
        ipset = None
        if (self._sys / "module" / "ip_set").exists():
            ipset = await run(["ipset", "save"])
        return NetfilterState(iptables=tuple(dumps), ipset=ipset, nft_tables=nft_tables)

    def _legacy_tables(self, family: IpFamily) -> list[str]:
        try:
            return (self._proc / "net" / _PROC_NAMES[family]).read_text().split()
        except OSError:
            return []

    async def _save(self, family: IpFamily, backend: Backend) -> IptablesDump:
        return IptablesDump(backend, family, await run([tool(family, backend, "save")]))

    async def remove(self, removal: LeftoverRemoval) -> list[str]:
        """Run `removal`: iptables first (sets in use cannot be destroyed), then the sets, then
        the nftables tables. Every step runs even if an earlier one is refused; the refusals
        are returned, one message each."""
        refusals: list[str] = []
        for restore in removal.restores:
            args = [tool(restore.family, restore.backend, "restore"), "--noflush", "-w", "5"]
            try:
                await run(args, restore.script)
            except ToolError as error:
                refusals.append(str(error))
        if removal.ipsets:
            script = "".join(f"destroy {name}\n" for name in removal.ipsets)
            try:
                await run(["ipset", "restore"], script)
            except ToolError as error:
                refusals.append(str(error))
        if removal.nft_tables:
            script = "".join(f"delete table {f} {name}\n" for f, name in removal.nft_tables)
            try:
                await run(["nft", "-f", "-"], script)
            except ToolError as error:
                refusals.append(str(error))
        return refusals
