"""Which IP families this node's kernel runs: what `/healthz` reports one status entry for.

kube-proxy runs one proxier per IP family the host supports (its IPVS mode asks whether
`iptables` and `ip6tables` work) and its health server reports each proxier's state. ipvsd
programs both families in one sync; the families it reports are those the kernel runs. IPv4
is always there; IPv6 is not when the kernel was booted with `ipv6.disable=1` (or built
without it), and then `/proc/sys/net/ipv6` does not exist.
"""

from __future__ import annotations

from pathlib import Path

from ipvsd.model.ipvs import Family


def kernel_families(*, sysctls: Path = Path("/proc/sys")) -> tuple[Family, ...]:
    """The IP families the running kernel has, IPv4 first."""
    if (sysctls / "net" / "ipv6").is_dir():
        return (Family.INET, Family.INET6)
    return (Family.INET,)
