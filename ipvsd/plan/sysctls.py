"""The kernel settings IPVS proxying needs, as kube-proxy sets them (reference §6).

- `net/ipv4/vs/conntrack=1`: IPVS-forwarded packets keep their conntrack entry, without which
  netfilter cannot masquerade them (checked with real packets in the kernel tests);
- `vs/expire_nodest_conn=1`: packets of a connection whose real server was deleted are dropped
  and the entry expired, instead of hanging until the timeout;
- `vs/expire_quiescent_template=1`: persistence templates pointing to a weight-0 (draining)
  real server expire, so sticky clients move on;
- `ipv4/ip_forward=1`;
- `vs/conn_reuse_mode=0` only on kernels 4.1 to 5.8: there the default (1) delays reused
  source ports by a second (#70747, #81775); from 5.9 the default is fixed and best (#93297);
- with strict ARP, `conf/all/arp_ignore=1` and `conf/all/arp_announce=2`: the node stops
  answering ARP for the VIPs on the dummy interface (MetalLB L2 needs that).
"""

from __future__ import annotations

import re


def required_sysctls(*, kernel: tuple[int, int], strict_arp: bool) -> dict[str, str]:
    """Settings (paths under /proc/sys) and values for a kernel of version `kernel`."""
    wanted = {
        "net/ipv4/vs/conntrack": "1",
        "net/ipv4/vs/expire_nodest_conn": "1",
        "net/ipv4/vs/expire_quiescent_template": "1",
        "net/ipv4/ip_forward": "1",
    }
    if (4, 1) <= kernel < (5, 9):
        wanted["net/ipv4/vs/conn_reuse_mode"] = "0"
    if strict_arp:
        wanted["net/ipv4/conf/all/arp_ignore"] = "1"
        wanted["net/ipv4/conf/all/arp_announce"] = "2"
    return wanted


def kernel_version(release: str) -> tuple[int, int]:
    """(major, minor) from a release string such as `6.1.0-56-amd64`; (0, 0) if unreadable."""
    found = re.match(r"(\d+)\.(\d+)", release)
    return (int(found[1]), int(found[2])) if found else (0, 0)
