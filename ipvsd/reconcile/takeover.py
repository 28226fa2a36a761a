"""Taking a node over from kube-proxy: its leftovers go once ipvsd's own rules are in place.

ipvsd adopts kube-proxy's IPVS table and the addresses on `kube-ipvs0` in place (the full
sync's ownership rule, `plan.ownership`). What stays behind is kube-proxy's iptables rules,
ipsets and nftables tables. They are removed only after a full sync has completed, so
ipvsd's nftables table already masquerades and filters when kube-proxy's stop doing so; and
never before, since `KUBE-IPVS-FILTER` alone keeps host ports closed on the VIPs until then.

The removal runs after every full sync until one succeeds: a refusal from iptables or ipset
is logged and tried again at the next full sync, and never stops a sync. What was removed is
logged once; each warning about a malformed leftover (left alone) is logged once.
"""

from __future__ import annotations

import logging
from typing import Protocol

from ipvsd.model.netfilter import LeftoverRemoval, NetfilterState
from ipvsd.plan.kube_proxy_leftovers import leftover_removal

log = logging.getLogger(__name__)


class NetfilterPort(Protocol):
    """What the takeover needs of `dataplane.kube_proxy_leftovers.NetfilterLeftovers`."""

    async def read(self) -> NetfilterState: ...

    async def remove(self, removal: LeftoverRemoval) -> list[str]: ...


class KubeProxyLeftovers:
    """Removes kube-proxy's leftovers until none is left (or only malformed ones)."""

    def __init__(self, netfilter: NetfilterPort) -> None:
        self._netfilter = netfilter
        self.done = False
        self._said: set[str] = set()

    def _once(self, level: int, message: str) -> None:
        if message not in self._said:
            self._said.add(message)
            log.log(level, "%s", message)

    async def remove(self) -> bool:
        """One attempt (nothing once done); True when nothing of kube-proxy's is left."""
        if self.done:
            return True
        try:
            removal = leftover_removal(await self._netfilter.read())
        except Exception as error:  # a tool missing or refusing to list: try again later
            self._once(logging.WARNING, f"kube-proxy leftovers: cannot read netfilter: {error}")
            return False
        for warning in removal.warnings:
            self._once(logging.WARNING, f"kube-proxy leftover {warning}")
        if removal.empty:
            self.done = True
            return True
        refusals = await self._netfilter.remove(removal)
        for refusal in refusals:
            self._once(
                logging.WARNING, f"kube-proxy leftovers (retried at the next full sync): {refusal}"
            )
        if refusals:
            return False
        log.info("removed kube-proxy's leftovers: %s", "; ".join(removal.removed))
        self.done = True
        return True


class KubeProxyRunning(RuntimeError):
    """A live kube-proxy in IPVS mode on this node: ipvsd must not program it."""


def check_live_kube_proxy(mode: str | None, *, only_labelled: bool) -> str | None:
    """What to do about the kube-proxy that answered /proxyMode with `mode` (None: none did).

    IPVS mode: raise KubeProxyRunning. Each of the two would delete the other's virtual
    servers (kube-proxy deletes every one it did not create). iptables or nftables mode: ipvsd
    may run beside it, but only with --serve-only-labelled (both would program the same
    Services otherwise), so without that flag the answer is a warning to log. Beside a live
    kube-proxy its rules are never removed (the caller leaves the takeover's removal out).
    """
    if mode is None:
        return None
    if mode == "ipvs":
        raise KubeProxyRunning(
            "kube-proxy runs on this node in IPVS mode (/proxyMode on 127.0.0.1:10249 answers "
            "'ipvs'); two IPVS proxies delete each other's virtual servers, so ipvsd programs "
            "nothing: move this node off kube-proxy's DaemonSet (a nodeSelector), then start "
            "ipvsd"
        )
    if not only_labelled:
        return (
            f"kube-proxy runs on this node in {mode} mode: both proxies serve the same "
            "Services; run ipvsd with --serve-only-labelled to serve only Services labelled "
            "service.kubernetes.io/service-proxy-name=<--proxy-name>, or stop kube-proxy here. "
            "kube-proxy's rules are left in place while it runs"
        )
    return None
