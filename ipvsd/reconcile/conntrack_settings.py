"""Applying kube-proxy's conntrack settings at start: the plan's sysctls through the adapter.

Where kube-proxy stops with "could not set conntrack parameters", ipvsd logs what it could not
write and why, with what the operator can do, and goes on: a connection-tracking limit it
cannot raise is no reason to leave the node's Services unserved. The usual cause is a proxy
without the host's initial network namespace (`nf_conntrack_max` and the hash size are global
and read-only elsewhere); kube-proxy's own escape, `--conntrack-max-per-core=0`, works here too.
"""

from __future__ import annotations

from ipvsd.dataplane.sysctl import Sysctl
from ipvsd.model.conntrack_tuning import ConntrackTuning
from ipvsd.plan.conntrack_sysctls import CONNTRACK_MAX, HASHSIZE, conntrack_sysctls


def apply_conntrack_settings(tuning: ConntrackTuning, *, sysctl: Sysctl, cpus: int) -> bool:
    """Write what kube-proxy would for `tuning` on a node with `cpus` CPUs; False if any write
    failed (each failure is logged)."""
    planned = conntrack_sysctls(tuning, cpus=cpus)
    ok = True
    if planned.max:
        ok &= sysctl.raise_to(
            CONNTRACK_MAX,
            planned.max,
            hint="it is global, writable only from the host's initial network namespace: set "
            f"net.netfilter.nf_conntrack_max={planned.max} on the node, or give "
            "--conntrack-max-per-core=0 (conntrack.maxPerCore: 0) to leave it as it is",
        )
        ok &= sysctl.raise_module_parameter(
            HASHSIZE,
            planned.hashsize,
            hint="it can be changed only from the host's initial network namespace with /sys "
            "writable; connection tracking works, with longer hash chains",
        )
    sysctl.ensure(planned.settings)
    return ok and all(sysctl.read(key) == value for key, value in planned.settings.items())
