"""ipvsd's nftables table: fixed rules, Service-dependent sets, changed in one transaction.

`render(firewall)` writes the whole table as an `nft -f` script that first deletes the old
table, so the kernel swaps old for new atomically (one netlink transaction): no moment without
rules, and nothing of the previous generation survives. Full syncs do that. Between them, a
change adds and deletes only the set elements that changed (`render_changes`), also in one
`nft -f` transaction: at 10,000 Services the whole table is 100,000 elements, and rendering and
loading it took most of a change's time. kube-proxy's iptables/ipset mode ran an `ipset`
command per changed entry, a known cause of slow syncs (#133773).

Hook priorities matter with IPVS: it takes packets for a VIP in LOCAL_IN at priority 99 (and
locally generated ones in LOCAL_OUT at -99), so the filters that must see a packet before IPVS
does run at priority `filter` (0) on input and `mangle` (-150) on output.

The masquerade mark is kube-proxy's (bit 14, 0x4000, unless `--iptables-masquerade-bit` moves
it), so a node can be migrated without surprises and a CNI that moved kube-proxy's bit keeps
working. Which traffic comes from this node's pods (kube-proxy's detect-local) is a match on
the source address (`pod_cidrs4/6`) or on the interface the packet came in on (`iifname`).
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable, Iterable
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from ipvsd.dataplane.faults import KernelFaults, NftFaults, kernel_faults
from ipvsd.model.firewall import Firewall, FirewallChanges, FirewallConfig
from ipvsd.model.ipvs import IPAddress, Protocol
from ipvsd.model.service import IPNetwork

TABLE = "ipvsd"
_PROTOCOL_NAMES = {int(p): p.name.lower() for p in Protocol}


def _proto(number: int) -> str:
    return _PROTOCOL_NAMES[number]


def _is_v4(value: IPAddress | IPNetwork) -> bool:
    return isinstance(value, IPv4Address | IPv4Network)


def _set(name: str, kind: str, elements: Iterable[str], *, interval: bool = False) -> str:
    """A set, or a map where `kind` has a value type (`key : value`)."""
    items = sorted(elements)
    flags = "\t\tflags interval\n" if interval else ""
    body = f"\t\telements = {{ {', '.join(items)} }}\n" if items else ""
    keyword = "map" if " : " in kind else "set"
    return f"\t{keyword} {name} {{\n\t\ttype {kind}\n{flags}{body}\t}}\n"


def _vip_port(element: tuple[IPAddress, int, int]) -> str:
    address, protocol, port = element
    return f"{address} . {_PROTOCOL_NAMES[protocol]} . {port}"


def _hairpin(element: tuple[IPAddress, int, int]) -> str:
    address, protocol, port = element
    return f"{address} . {_PROTOCOL_NAMES[protocol]} . {port} . {address}"


def _lb_allowed(element: tuple[IPAddress, int, int, IPNetwork]) -> str:
    address, protocol, port, network = element
    return f"{address} . {_PROTOCOL_NAMES[protocol]} . {port} . {network}"


def _redirect(element: tuple[IPAddress, int, int, IPAddress, int]) -> str:
    address, protocol, port, cluster_ip, cluster_port = element
    return f"{address} . {_PROTOCOL_NAMES[protocol]} . {port} : {cluster_ip} . {cluster_port}"


# Per `Firewall` field: the nft sets it fills (one per family when it holds addresses), their
# element type, interval flag, and how one element is written.
_FAMILY_SETS: tuple[tuple[str, str, bool, Callable[[Any], str]], ...] = (
    ("vips", "{addr}", False, str),
    ("vip_ports", "{addr} . inet_proto . inet_service", False, _vip_port),
    ("cluster_ip_ports", "{addr} . inet_proto . inet_service", False, _vip_port),
    ("masquerade_ports", "{addr} . inet_proto . inet_service", False, _vip_port),
    ("lb_restricted", "{addr} . inet_proto . inet_service", False, _vip_port),
    ("hairpin", "{addr} . inet_proto . inet_service . {addr}", False, _hairpin),
    ("lb_allowed", "{addr} . inet_proto . inet_service . {addr}", True, _lb_allowed),
    ("local_redirects", "{addr} . inet_proto . inet_service : {addr} . inet_service", False,
     _redirect),
)  # fmt: skip


def _family_elements(firewall: Firewall) -> dict[str, list[str]]:
    """nft set name (e.g. `hairpin4`) → its elements written as nft writes them."""
    out: dict[str, list[str]] = {}
    for name, _kind, _interval, write in _FAMILY_SETS:
        v4, v6 = out.setdefault(f"{name}4", []), out.setdefault(f"{name}6", [])
        for element in getattr(firewall, name):
            address = element if name == "vips" else element[0]
            (v4 if isinstance(address, IPv4Address) else v6).append(write(element))
    return out


def _other_elements(firewall: Firewall) -> dict[str, list[str]]:
    return {
        "node_ports": [f"{_proto(p)} . {port}" for p, port in firewall.node_ports],
        "health_check_ports": [str(port) for port in firewall.health_check_ports],
    }


def _family_sets(firewall: Firewall, elements: dict[str, list[str]], v4: bool) -> str:
    n, addr = ("4", "ipv4_addr") if v4 else ("6", "ipv6_addr")
    declared = [
        _set(f"{name}{n}", kind.format(addr=addr), elements[f"{name}{n}"], interval=interval)
        for name, kind, interval, _write in _FAMILY_SETS
    ]
    cidrs = [str(net) for net in firewall.config.pod_cidrs if _is_v4(net) == v4]
    declared.append(_set(f"pod_cidrs{n}", addr, cidrs, interval=True))
    ranges = [str(net) for net in firewall.config.service_cidrs if _is_v4(net) == v4]
    declared.append(_set(f"service_cidrs{n}", addr, ranges, interval=True))
    return "".join(declared)


def render_changes(changes: FirewallChanges) -> str:
    """The `nft -f` script that deletes and adds exactly `changes`' elements, in one
    transaction: either every element changes or, if nft refuses one, none does."""
    lines: list[str] = []
    for verb, firewall in (("delete", changes.removed), ("add", changes.added)):
        elements = {**_family_elements(firewall), **_other_elements(firewall)}
        lines.extend(
            f"{verb} element inet {TABLE} {name} {{ {', '.join(sorted(items))} }}\n"
            for name, items in elements.items()
            if items
        )
    return "".join(lines)


def _mark(config: FirewallConfig) -> str:
    return f"meta mark set meta mark | {config.masquerade_mark:#x}"


def _from_pods(config: FirewallConfig, v4: bool) -> tuple[str, str] | None:
    """(matches traffic from this node's pods, matches the rest) in one family, per the
    detect-local mode; None when pods cannot be told apart in that family."""
    n, ip = ("4", "ip") if v4 else ("6", "ip6")
    if config.pod_interface:
        return f'iifname "{config.pod_interface}"', f'iifname != "{config.pod_interface}"'
    if config.pod_interface_prefix:
        pattern = f'"{config.pod_interface_prefix}*"'
        return f"iifname {pattern}", f"iifname != {pattern}"
    if any(_is_v4(net) == v4 for net in config.pod_cidrs):
        return f"{ip} saddr @pod_cidrs{n}", f"{ip} saddr != @pod_cidrs{n}"
    return None


def _mark_rules(firewall: Firewall, v4: bool) -> list[str]:
    n, ip = ("4", "ip") if v4 else ("6", "ip6")
    config = firewall.config
    mark = _mark(config)
    match = f"{ip} daddr . meta l4proto . th dport"
    pods = _from_pods(config, v4)
    rules = []
    if config.masquerade_all:
        rules.append(f"{match} @cluster_ip_ports{n} {mark}")
    elif pods is not None:
        rules.append(f"{match} @cluster_ip_ports{n} {pods[1]} {mark}")
    else:
        # kube-proxy's `src,dst` match: pods cannot be told apart, but the node's own
        # connections to a ClusterIP leave from that ClusterIP (the address on kube-ipvs0 the
        # route picks); unmasqueraded, a pod on another node would answer its own copy of it.
        rules.append(f"{ip} saddr . meta l4proto . th dport @cluster_ip_ports{n} {mark}")
    rules.append(f"{match} @masquerade_ports{n} {mark}")
    return rules


def _redirect_rules(config: FirewallConfig, v4: bool) -> list[str]:
    """This node's pods reaching an externalTrafficPolicy: Local frontend go to its Service's
    ClusterIP instead (DNAT before IPVS sees the packet), where the cluster set serves them;
    loadBalancerSourceRanges still apply first (a refused source is left to the filter)."""
    pods = _from_pods(config, v4)
    if pods is None:
        return []
    n, ip = ("4", "ip") if v4 else ("6", "ip6")
    match = f"{ip} daddr . meta l4proto . th dport"
    return [
        f"{match} @lb_restricted{n} {match} . {ip} saddr != @lb_allowed{n} return",
        f"{pods[0]} dnat {ip} to {match} map @local_redirects{n}",
    ]


def _filter_rules(v4: bool, *, inbound: bool) -> list[str]:
    n, ip = ("4", "ip") if v4 else ("6", "ip6")
    match = f"{ip} daddr . meta l4proto . th dport"
    rules = [f"{match} @lb_restricted{n} {match} . {ip} saddr != @lb_allowed{n} drop"]
    if inbound:
        rules.append(f"ct state new {ip} daddr @vips{n} {match} != @vip_ports{n} reject")
        # the routed Service CIDRs: every address is local, with a Service or without one
        rules.append(f"ct state new {ip} daddr @service_cidrs{n} {match} != @vip_ports{n} reject")
    return rules


def _chain(name: str, rules: Iterable[str], *, hook: str = "") -> str:
    lines = [hook, *rules] if hook else list(rules)
    body = "".join(f"\t\t{line}\n" for line in lines)
    return f"\tchain {name} {{\n{body}\t}}\n"


def render(firewall: Firewall) -> str:
    """The `nft -f` script that replaces ipvsd's table with the one `firewall` describes."""
    config = firewall.config
    mark, bit = _mark(config), config.masquerade_mark
    is_marked = f"meta mark & {bit:#x} == {bit:#x}"
    elements = _family_elements(firewall)
    other = _other_elements(firewall)
    masquerade_marks = [
        *_mark_rules(firewall, True),
        *_mark_rules(firewall, False),
        f"fib daddr type local meta l4proto . th dport @node_ports {mark}",
    ]
    unmark = f"meta mark set meta mark & {~bit & 0xFFFFFFFF:#x}"
    body = "".join(
        [
            _family_sets(firewall, elements, True),
            _family_sets(firewall, elements, False),
            _set("node_ports", "inet_proto . inet_service", other["node_ports"]),
            _set("health_check_ports", "inet_service", other["health_check_ports"]),
            _chain("mark_for_masquerade", masquerade_marks),
            _chain("prerouting", ["jump mark_for_masquerade"],
                   hook="type filter hook prerouting priority mangle; policy accept;"),
            _chain("pods_to_cluster_set",
                   [*_redirect_rules(config, True), *_redirect_rules(config, False)],
                   hook="type nat hook prerouting priority dstnat; policy accept;"),
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


def check_support(firewall: Firewall) -> str | None:
    """Check `firewall`'s table with `nft --check` (nothing is changed); nft's complaint, or
    None when the kernel takes it.

    Run once at start-up: a kernel or nft that lacks something ipvsd's rules use is named
    before any sync, and the kernel loads the nftables modules those rules need now (it does
    so for a checked transaction too) instead of during the first sync, where loading
    fourteen modules took most of the table's first load (5.8 s of ~8 s in the test VM).
    """
    try:
        done = subprocess.run(
            ["nft", "--check", "-f", "-"],
            input=render(firewall),
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as error:
        return f"cannot run nft: {error}"
    return (done.stderr.strip() or f"nft exited {done.returncode}") if done.returncode else None


class NftFirewall:
    """Applies a `Firewall` to the kernel: whole (`apply`) or as element changes (`update`).

    `refuse` is a test-only fault switch (`faults.NftFaults`): a table or change holding that
    VIP gets one more element for a set that does not exist, so nft really refuses it."""

    def __init__(
        self, *, refuse: IPAddress | None = None, faults: KernelFaults | None = None
    ) -> None:
        self._applied: Firewall | None = None
        self._refuse = refuse if refuse is not None else NftFaults.from_environment().refuse
        self._kernel_faults = faults if faults is not None else kernel_faults()

    def _injected(self, what: str) -> None:
        """Fail here if the test-only kernel fault switch says so (`faults.KernelFaults`)."""
        if self._kernel_faults.fails(what):
            raise NftError(f"nft failed (injected fault): {what}")

    async def apply(self, firewall: Firewall) -> bool:
        """Replace the table if `firewall` differs from the last one applied, or if the table
        is gone (deleted by hand: `nft delete table inet ipvsd`, `nft flush ruleset`); True if
        it did. Only the table's presence is checked (`nft list tables inet`, a few bytes
        whatever the table's size), not its contents."""
        if firewall == self._applied and await self._present():
            return False
        self._injected("table load")
        await run_nft(render(firewall) + self._fault(firewall))
        self._applied = firewall
        return True

    async def _present(self) -> bool:
        try:
            listing = await run_nft("list tables inet\n")
        except NftError:
            return False
        return f"table inet {TABLE}" in listing.splitlines()

    async def update(self, changes: FirewallChanges) -> None:
        """Add and delete set elements in one transaction. nft refuses the whole script if the
        table is not as `changes` assumes (an element to delete is missing, the table is gone):
        NftError, and the caller replaces the table with `apply`."""
        self._applied = None  # no longer known without rebuilding it: the next apply replaces
        if not changes.empty:
            self._injected("element changes")
            await run_nft(render_changes(changes) + self._fault(changes.added))

    async def check(self, firewall: Firewall) -> str | None:
        """nft's complaint about `firewall`'s table (`nft --check`: nothing changes), or None."""
        try:
            await run_nft(render(firewall) + self._fault(firewall), "--check")
        except NftError as error:
            return str(error)
        return None

    def _fault(self, firewall: Firewall) -> str:
        if self._refuse is None or self._refuse not in firewall.vips:
            return ""
        return f"add element inet {TABLE} refused_by_fault_switch {{ {self._refuse} }}\n"

    async def cleanup(self) -> None:
        await run_nft(cleanup_script())
        self._applied = None
