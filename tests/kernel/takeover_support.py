"""A node in kube-proxy's IPVS-mode state, built from the fact sheet in data/kube-proxy/.

`ipvs-mode.iptables`, `ipvs-mode.ip6tables` and `ipvs-mode.ipset` are what kube-proxy writes
for the takeover test's Services (a comment per rule names the source it comes from).
`ipvs-mode.ipvsadm` is its IPVS table for them (`syncProxyRules` in pkg/proxy/ipvs/proxier.go:
a virtual server per ClusterIP, per NodePort on the node address the client uses and per LB
IP, scheduler `rr`, masquerading real servers of weight 1) with one real server left at weight
0, as a restart leaves a draining one (#92019); kube-ipvs0 holds the VIPs. `node-before.*` is
the node before kube-proxy: the kubelet's chains, a user's chain and a user's set.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Literal

DATA = Path(__file__).parent / "data" / "kube-proxy"
VIPS = ("10.96.0.10", "10.96.0.53", "10.96.0.20", "10.96.0.30", "10.96.0.40", "192.0.2.10")
HAND_MADE = "-A -t 198.51.100.7:9999 -s wrr"  # an operator's own virtual server

Backend = Literal["nft", "legacy"]


def run(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def restore(backend: Backend, name: str) -> None:
    """Load data file `name`.ip{,6}tables with `ip{,6}tables-<backend>-restore --noflush`."""
    for tool, suffix in (("iptables", "iptables"), ("ip6tables", "ip6tables")):
        run(f"{tool}-{backend}-restore", "--noflush", stdin=(DATA / f"{name}.{suffix}").read_text())


def saved(backend: Backend, family: Literal["ipv4", "ipv6"] = "ipv4") -> str:
    """`iptables-save` without comments and counters, for comparing states."""
    tool = "iptables" if family == "ipv4" else "ip6tables"
    text = run(f"{tool}-{backend}-save")
    lines = [re.sub(r" \[\d+:\d+\]$", "", line) for line in text.splitlines()]
    return "\n".join(line for line in lines if line and not line.startswith("#")) + "\n"


def ipsets() -> list[str]:
    return sorted(run("ipset", "list", "-n").split())


def ipvs_rules() -> str:
    return run("ipvsadm", "-Sn")


def node_before(backend: Backend) -> None:
    """The kubelet's chains, a user's chain and set, and a hand-made virtual server."""
    run("modprobe", "ip_vs")
    run("ipset", "restore", stdin=(DATA / "node-before.ipset").read_text())
    restore(backend, "node-before")
    run("ipvsadm", "-R", stdin=HAND_MADE + "\n")


# NewProxier (pkg/proxy/ipvs/proxier.go) ensures these (conn_reuse_mode is left as-is on 6.1).
KUBE_PROXY_SYSCTLS = {
    "net/ipv4/vs/conntrack": "1",
    "net/ipv4/vs/expire_nodest_conn": "1",
    "net/ipv4/vs/expire_quiescent_template": "1",
    "net/ipv4/ip_forward": "1",
}


def kube_proxy_was_here(backend: Backend) -> None:
    """What kube-proxy's IPVS mode leaves: sysctls, sets, rules, kube-ipvs0, its IPVS table."""
    for name, value in KUBE_PROXY_SYSCTLS.items():
        Path("/proc/sys", name).write_text(value + "\n")
    run("ipset", "restore", stdin=(DATA / "ipvs-mode.ipset").read_text())
    restore(backend, "ipvs-mode")
    run("ip", "link", "add", "kube-ipvs0", "type", "dummy")
    for vip in VIPS:
        run("ip", "addr", "add", f"{vip}/32", "dev", "kube-ipvs0")
    run("ipvsadm", "-R", stdin=(DATA / "ipvs-mode.ipvsadm").read_text())


def clean_node() -> None:
    """Back to nothing: every iptables table of both backends, sets, IPVS, kube-ipvs0 and
    ipvsd's local routes (protocol 125)."""

    def quietly(*args: str) -> None:
        subprocess.run(args, check=False, capture_output=True)

    for tool in ("iptables", "ip6tables"):
        for backend in ("nft", "legacy"):
            names = Path(f"/proc/net/{'ip' if tool == 'iptables' else 'ip6'}_tables_names")
            if backend == "legacy" and not names.exists():
                continue
            for table in ("filter", "nat", "mangle"):
                for flag in ("-F", "-X"):
                    quietly(f"{tool}-{backend}", "-t", table, flag)
    quietly("nft", "delete", "table", "inet", "ipvsd")
    quietly("ipset", "destroy")
    quietly("ipvsadm", "-C")
    quietly("ip", "link", "del", "kube-ipvs0")
    quietly("ip", "route", "flush", "table", "local", "proto", "125")
