"""ipvsd's nftables table: fixed rules, Service-dependent sets, replaced in one transaction.

`render(firewall)` writes the whole table as an `nft -f` script that first deletes the old
table, so the kernel swaps old for new atomically (one netlink transaction): no moment without
rules, and nothing of the previous generation survives. kube-proxy's iptables/ipset mode ran an
`ipset` command per changed entry, a known cause of slow syncs (#133773).

Hook priorities matter with IPVS: it takes packets for a VIP in LOCAL_IN at priority 99 (and
locally generated ones in LOCAL_OUT at -99), so the filters that must see a packet before IPVS
does run at priority `filter` (0) on input and `mangle` (-150) on output.

The masquerade mark is 0x4000, kube-proxy's, so a node can be migrated without surprises.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network

from ipvsd.model.ipvs import IPAddress, Protocol
from ipvsd.model.service import IPNetwork
from ipvsd.plan.firewall import Firewall

TABLE = "ipvsd"
MASQUERADE_MARK = 0x4000
_PROTOCOL_NAMES = {int(p): p.name.lower() for p in Protocol}


def _proto(number: int) -> str:
    return _PROTOCOL_NAMES[number]


def _is_v4(value: IPAddress | IPNetwork) -> bool:
    return isinstance(value, IPv4Address | IPv4Network)


def _set(name: str, kind: str, elements: Iterable[str], *, interval: bool = False) -> str:
    items = sorted(elements)
    flags = "\t\tflags interval\n" if interval else ""
    body = f"\t\telements = {{ {', '.join(items)} }}\n" if items else ""
    return f"\tset {name} {{\n\t\ttype {kind}\n{flags}{body}\t}}\n"


def _family_sets(firewall: Firewall, v4: bool) -> str:
    n, addr = ("4", "ipv4_addr") if v4 else ("6", "ipv6_addr")

    def mine(value: IPAddress | IPNetwork) -> bool:
        return _is_v4(value) == v4

    vip_port = f"{addr} . inet_proto . inet_service"

    def elements(items: Iterable[tuple[IPAddress, int, int]]) -> list[str]:
        return [f"{a} . {_proto(p)} . {port}" for a, p, port in items if mine(a)]

    return "".join(
        [
            _set(f"vips{n}", addr, [str(a) for a in firewall.vips if mine(a)]),
            _set(f"vip_ports{n}", vip_port, elements(firewall.vip_ports)),
            _set(f"cluster_ip_ports{n}", vip_port, elements(firewall.cluster_ip_ports)),
            _set(f"masquerade_ports{n}", vip_port, elements(firewall.masquerade_ports)),
            _set(f"lb_restricted{n}", vip_port, elements(firewall.lb_restricted)),
            _set(
                f"hairpin{n}",
                f"{vip_port} . {addr}",
                [f"{a} . {_proto(p)} . {port} . {a}" for a, p, port in firewall.hairpin if mine(a)],
            ),
            _set(
                f"lb_allowed{n}",
                f"{vip_port} . {addr}",
                [
                    f"{a} . {_proto(p)} . {port} . {net}"
                    for a, p, port, net in firewall.lb_allowed
                    if mine(a)
                ],
                interval=True,
            ),
            _set(
                f"cluster_cidrs{n}",
                addr,
                [str(net) for net in firewall.config.cluster_cidrs if mine(net)],
                interval=True,
            ),
        ]
    )


def _mark_rules(firewall: Firewall, v4: bool) -> list[str]:
    n, ip = ("4", "ip") if v4 else ("6", "ip6")
    mark = f"meta mark set meta mark | {MASQUERADE_MARK:#x}"
    match = f"{ip} daddr . meta l4proto . th dport"
    has_cidrs = any(_is_v4(net) == v4 for net in firewall.config.cluster_cidrs)
    rules = []
    if firewall.config.masquerade_all:
        rules.append(f"{match} @cluster_ip_ports{n} {mark}")
    elif has_cidrs:  # without --cluster-cidr kube-proxy cannot tell pods apart: no masquerade
        rules.append(f"{match} @cluster_ip_ports{n} {ip} saddr != @cluster_cidrs{n} {mark}")
    rules.append(f"{match} @masquerade_ports{n} {mark}")
    return rules


def _filter_rules(v4: bool, *, inbound: bool) -> list[str]:
    n, ip = ("4", "ip") if v4 else ("6", "ip6")
    match = f"{ip} daddr . meta l4proto . th dport"
    rules = [f"{match} @lb_restricted{n} {match} . {ip} saddr != @lb_allowed{n} drop"]
    if inbound:
        rules.append(f"ct state new {ip} daddr @vips{n} {match} != @vip_ports{n} reject")
    return rules


def _chain(name: str, rules: Iterable[str], *, hook: str = "") -> str:
    lines = [hook, *rules] if hook else list(rules)
    body = "".join(f"\t\t{line}\n" for line in lines)
    return f"\tchain {name} {{\n{body}\t}}\n"


def render(firewall: Firewall) -> str:
    """The `nft -f` script that replaces ipvsd's table with the one `firewall` describes."""
    mark = f"meta mark set meta mark | {MASQUERADE_MARK:#x}"
    is_marked = f"meta mark & {MASQUERADE_MARK:#x} == {MASQUERADE_MARK:#x}"
    ports = [f"{_proto(p)} . {port}" for p, port in firewall.node_ports]
    health = [str(port) for port in firewall.health_check_ports]
    masquerade_marks = [
        *_mark_rules(firewall, True),
        *_mark_rules(firewall, False),
        f"fib daddr type local meta l4proto . th dport @node_ports {mark}",
    ]
    unmark = f"meta mark set meta mark & {~MASQUERADE_MARK & 0xFFFFFFFF:#x}"
    body = "".join(
        [
            _family_sets(firewall, True),
            _family_sets(firewall, False),
            _set("node_ports", "inet_proto . inet_service", ports),
            _set("health_check_ports", "inet_service", health),
            _chain("mark_for_masquerade", masquerade_marks),
            _chain("prerouting", ["jump mark_for_masquerade"],
                   hook="type filter hook prerouting priority mangle; policy accept;"),
            _chain("output", ["jump mark_for_masquerade", *_filter_rules(True, inbound=False),
                              *_filter_rules(False, inbound=False)],
                   hook="type route hook output priority mangle; policy accept;"),
            _chain("input", [*_filter_rules(True, inbound=True),
                             *_filter_rules(False, inbound=True),
                             "meta l4proto tcp th dport @health_check_ports accept"],
                   hook="type filter hook input priority filter; policy accept;"),
            _chain("forward", [f"{is_marked} accept"],
                   hook="type filter hook forward priority filter; policy accept;"),
            _chain("postrouting",
                   [f"{is_marked} {unmark} masquerade fully-random",
                    "ip daddr . meta l4proto . th dport . ip saddr @hairpin4 masquerade",
                    "ip6 daddr . meta l4proto . th dport . ip6 saddr @hairpin6 masquerade"],
                   hook="type nat hook postrouting priority srcnat; policy accept;"),
        ]
    )  # fmt: skip
    return f"table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n{body}}}\n"


def cleanup_script() -> str:
    """Removes ipvsd's table (for --cleanup); harmless when it does not exist."""
    return f"table inet {TABLE}\ndelete table inet {TABLE}\n"


class NftError(RuntimeError):
    """nft refused a script; the message carries nft's own explanation."""


async def run_nft(script: str, *args: str) -> str:
    """Run `nft [args] -f -` with `script`; nft's stdout, or NftError with its stderr."""
    process = await asyncio.create_subprocess_exec(
        "nft", *args, "-f", "-",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate(script.encode())
    if process.returncode:
        raise NftError(f"nft failed ({process.returncode}): {err.decode().strip()}")
    return out.decode()


class NftFirewall:
    """Applies a `Firewall` to the kernel, skipping the call when nothing changed."""

    def __init__(self) -> None:
        self._applied: Firewall | None = None

    async def apply(self, firewall: Firewall) -> bool:
        """Replace the table if `firewall` differs from the last one applied; True if it did."""
        if firewall == self._applied:
            return False
        await run_nft(render(firewall))
        self._applied = firewall
        return True

    async def cleanup(self) -> None:
        await run_nft(cleanup_script())
        self._applied = None
