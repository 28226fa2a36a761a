"""What a node's netfilter holds outside ipvsd's own table, and what to remove from it.

Values exchanged between the dataplane (which reads and writes iptables, ipset and nft) and
the planner (which decides what of it is kube-proxy's): dumps in the tools' own text format,
and a removal made of scripts for the same tools, one per table set, so that each backend is
changed by a single exec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Backend = Literal["nft", "legacy"]  # the iptables backends: iptables-nft-*, iptables-legacy-*
IpFamily = Literal["ipv4", "ipv6"]


@dataclass(frozen=True, slots=True)
class IptablesDump:
    """One backend's `iptables-save` (ipv4) or `ip6tables-save` (ipv6) output."""

    backend: Backend
    family: IpFamily
    text: str


@dataclass(frozen=True, slots=True)
class NetfilterState:
    """The node's netfilter as the takeover sees it. Backends whose tables do not exist are
    absent from `iptables`; `ipset` is None when the ip_set module is not loaded."""

    iptables: tuple[IptablesDump, ...] = ()
    ipset: str | None = None  # `ipset save` output
    nft_tables: tuple[tuple[str, str], ...] = ()  # (family, name) from `nft list tables`


@dataclass(frozen=True, slots=True)
class IptablesRestore:
    """An `iptables-restore --noflush` script for one backend and family."""

    backend: Backend
    family: IpFamily
    script: str


@dataclass(frozen=True, slots=True)
class LeftoverRemoval:
    """What to remove, as the tools' input, and what it is in words (for the log)."""

    restores: tuple[IptablesRestore, ...] = ()
    ipsets: tuple[str, ...] = ()  # names to destroy (after the iptables rules using them)
    nft_tables: tuple[tuple[str, str], ...] = ()  # (family, name) to delete
    removed: tuple[str, ...] = ()  # one phrase per backend/family/kind, for the log
    warnings: tuple[str, ...] = ()  # malformed leftovers left alone

    @property
    def empty(self) -> bool:
        return not (self.restores or self.ipsets or self.nft_tables)
