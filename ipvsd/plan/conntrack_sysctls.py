"""What kube-proxy writes to the kernel's connection tracking at start, from its settings.

kube-proxy (`pkg/proxy/conntrack/sysctls.go`, v1.36 with #142035) does, and so does ipvsd:

- `nf_conntrack_max` = `maxPerCore` x the node's CPUs, at least `min`, but at most 1,048,576
  when the product is larger (the cap wins even over a larger `min`, as upstream's order
  has it); `maxPerCore: 0` leaves it (and `min`) alone. It is only ever raised: a node whose
  value is already that high or higher is not written to. That is what keeps kube-proxy
  working where the sysctl is read-only (a container without the host's network namespace:
  on 6.1 `nf_conntrack_max` is writable only from the initial one) and the node's operator
  has set it already;
- the hash table (`/sys/module/nf_conntrack/parameters/hashsize`) gets at least
  `nf_conntrack_max / 4` buckets, also only raised;
- each timeout that is above zero, in whole seconds (truncated, as Go's division does), and
  `nf_conntrack_tcp_be_liberal=1` when asked: written whenever the kernel's value differs.
  One difference: a timeout under a second leaves the kernel's value, where kube-proxy would
  write 0 and expire every such connection at once (the configuration warns about it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ipvsd.model.conntrack_tuning import ConntrackTuning

CONNTRACK_MAX = "net/netfilter/nf_conntrack_max"  # under /proc/sys
HASHSIZE = "nf_conntrack/parameters/hashsize"  # under /sys/module
SCALED_MAX_CAP = 1_048_576  # kube-proxy's cap on maxPerCore x CPUs (#137002)


@dataclass(frozen=True, slots=True)
class ConntrackSysctls:
    """`max`: the least `nf_conntrack_max` the node needs, 0 to leave it and the hash size;
    `settings`: sysctl paths (under /proc/sys) and the values to write where they differ."""

    max: int = 0
    settings: Mapping[str, str] = field(default_factory=dict)

    @property
    def hashsize(self) -> int:
        """The least number of hash buckets for `max` entries (0: leave it)."""
        return self.max // 4


def conntrack_max(tuning: ConntrackTuning, *, cpus: int) -> int:
    """kube-proxy's `nf_conntrack_max` for a node with `cpus` online CPUs; 0 leaves it."""
    if tuning.max_per_core <= 0:
        return 0
    scaled = tuning.max_per_core * cpus
    if scaled > SCALED_MAX_CAP:
        return SCALED_MAX_CAP
    return max(scaled, tuning.min)


def conntrack_sysctls(tuning: ConntrackTuning, *, cpus: int) -> ConntrackSysctls:
    """Everything kube-proxy would write for `tuning` on a node with `cpus` online CPUs."""
    seconds = {
        "nf_conntrack_tcp_timeout_established": tuning.tcp_established_timeout,
        "nf_conntrack_tcp_timeout_close_wait": tuning.tcp_close_wait_timeout,
    }
    settings = {f"net/netfilter/{k}": str(int(v)) for k, v in seconds.items() if int(v) > 0}
    if tuning.tcp_be_liberal:
        settings["net/netfilter/nf_conntrack_tcp_be_liberal"] = "1"
    for name, value in (
        ("nf_conntrack_udp_timeout", tuning.udp_timeout),
        ("nf_conntrack_udp_timeout_stream", tuning.udp_stream_timeout),
    ):
        if int(value) > 0:
            settings[f"net/netfilter/{name}"] = str(int(value))
    return ConntrackSysctls(max=conntrack_max(tuning, cpus=cpus), settings=settings)
