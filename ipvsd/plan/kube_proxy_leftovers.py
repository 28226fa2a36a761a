"""What kube-proxy leaves in a node's netfilter, and the scripts that remove exactly that.

A fact sheet, then pure functions over the tools' own dumps. The lists are those of
kube-proxy's own cleanup (kubernetes/kubernetes, current sources; each entry names the file
and symbol it comes from): kube-proxy runs the cleanup of every mode it is not running in at
start-up, so a node that ran any of its Linux modes is cleared by the union of the three.

- IPVS mode (`pkg/proxy/ipvs/cleanup.go`, `cleanupIptablesLeftovers` and `cleanupLeftovers`):
  deletes each jump of `iptablesJumpChain` (`pkg/proxy/ipvs/proxier.go`) by its exact rule,
  flushes and deletes each chain of `iptablesCleanupChains` (same file), then destroys each set
  of `ipsetInfo` (same file; names and types in `pkg/proxy/ipvs/ipset.go`). Its IPVS table and
  `kube-ipvs0` are not leftovers for ipvsd: it adopts them in place.
- iptables mode (`pkg/proxy/iptables/cleanup.go`, `cleanupLeftoversForFamily`): deletes each
  jump of `iptablesJumpChains` (`pkg/proxy/iptables/proxier.go`), flushes and deletes its
  fixed nat and filter chains and, in nat, every chain that `isServiceChainName` recognises by
  prefix; deletes the mangle canary chain.
- nftables mode (`pkg/proxy/nftables/proxier.go`, `CleanupLeftovers`): deletes its table
  `kube-proxy` (`kubeProxyTable`) in the `ip` and `ip6` families.

Never touched: the kubelet's chains (`pkg/kubelet/kubelet_network_linux.go`: `KUBE-FIREWALL`
and its jumps from INPUT and OUTPUT, `KUBE-KUBELET-CANARY`, `KUBE-IPTABLES-HINT`; kube-proxy's
iptables mode writes a copy of `KUBE-FIREWALL` and leaves it too), and anything of a CNI,
Docker or the user: only the names below, in the tables below, are candidates.

Where ipvsd goes beyond kube-proxy's cleanup, on purpose: IPv6 sets. kube-proxy's dual-stack
IPVS mode names its IPv6 sets `KUBE-6-...` (`NewIPSet` in `pkg/proxy/ipvs/ipset.go`, cut to
31 characters) but its cleanup destroys only the IPv4 names; ipvsd removes both.

Bad input is left alone and named in a warning: a kube-proxy chain name in a table kube-proxy
never writes it to, a kube-proxy chain that something else still jumps to (deleting it would
fail, so it keeps its rules too), a jump to a kube-proxy chain that is not one of kube-proxy's
own, a set of an unexpected type or family, a set some remaining rule still matches on.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ipvsd.model.netfilter import (
    IptablesDump,
    IptablesRestore,
    LeftoverRemoval,
    NetfilterState,
)

# --- the fact sheet ---------------------------------------------------------------------------

_NEW = ("-m", "conntrack", "--ctstate", "NEW")


@dataclass(frozen=True, slots=True)
class Jump:
    """A rule `-A <chain> [extra] -m comment --comment <comment> -j <target>` in `table`."""

    table: str
    chain: str
    target: str
    comment: str
    extra: tuple[str, ...] = ()

    def save_line(self) -> str:
        """The rule as `iptables-save` prints it."""
        extra = "".join(f"{word} " for word in self.extra)
        return f'-A {self.chain} {extra}-m comment --comment "{self.comment}" -j {self.target}'


JUMPS: tuple[Jump, ...] = (
    # pkg/proxy/ipvs/proxier.go, iptablesJumpChain (removed by cleanupIptablesLeftovers)
    Jump("nat", "OUTPUT", "KUBE-SERVICES", "kubernetes service portals"),
    Jump("nat", "PREROUTING", "KUBE-SERVICES", "kubernetes service portals"),
    Jump("nat", "POSTROUTING", "KUBE-POSTROUTING", "kubernetes postrouting rules"),
    Jump("filter", "FORWARD", "KUBE-FORWARD", "kubernetes forwarding rules"),
    Jump("filter", "INPUT", "KUBE-NODE-PORT", "kubernetes health check rules"),
    Jump("filter", "INPUT", "KUBE-PROXY-FIREWALL", "kube-proxy firewall rules"),
    Jump("filter", "FORWARD", "KUBE-PROXY-FIREWALL", "kube-proxy firewall rules"),
    Jump("filter", "INPUT", "KUBE-IPVS-FILTER", "kubernetes ipvs access filter"),
    Jump("filter", "OUTPUT", "KUBE-IPVS-OUT-FILTER", "kubernetes ipvs access filter"),
    # pkg/proxy/iptables/proxier.go, iptablesJumpChains (removed by cleanupLeftoversForFamily)
    Jump("filter", "INPUT", "KUBE-EXTERNAL-SERVICES",
         "kubernetes externally-visible service portals", _NEW),
    Jump("filter", "FORWARD", "KUBE-EXTERNAL-SERVICES",
         "kubernetes externally-visible service portals", _NEW),
    Jump("filter", "INPUT", "KUBE-NODEPORTS", "kubernetes health check service ports"),
    Jump("filter", "FORWARD", "KUBE-SERVICES", "kubernetes service portals", _NEW),
    Jump("filter", "OUTPUT", "KUBE-SERVICES", "kubernetes service portals", _NEW),
    Jump("filter", "INPUT", "KUBE-PROXY-FIREWALL", "kubernetes load balancer firewall", _NEW),
    Jump("filter", "OUTPUT", "KUBE-PROXY-FIREWALL", "kubernetes load balancer firewall", _NEW),
    Jump("filter", "FORWARD", "KUBE-PROXY-FIREWALL", "kubernetes load balancer firewall", _NEW),
)  # fmt: skip
# The iptables mode's nat jumps (OUTPUT and PREROUTING to KUBE-SERVICES, POSTROUTING to
# KUBE-POSTROUTING) and its filter FORWARD jump to KUBE-FORWARD are the IPVS mode's, rule for
# rule, so they are listed once above.

CHAINS: Mapping[str, frozenset[str]] = {
    "nat": frozenset({
        # pkg/proxy/ipvs/proxier.go, iptablesCleanupChains
        "KUBE-SERVICES", "KUBE-POSTROUTING", "KUBE-NODE-PORT", "KUBE-LOAD-BALANCER",
        "KUBE-MARK-MASQ",
        # pkg/proxy/iptables/cleanup.go, cleanupLeftoversForFamily (nat list)
        "KUBE-NODEPORTS", "KUBE-PROXY-CANARY",
    }),
    "filter": frozenset({
        # pkg/proxy/ipvs/proxier.go, iptablesCleanupChains
        "KUBE-FORWARD", "KUBE-NODE-PORT", "KUBE-PROXY-FIREWALL", "KUBE-SOURCE-RANGES-FIREWALL",
        "KUBE-IPVS-FILTER", "KUBE-IPVS-OUT-FILTER",
        # pkg/proxy/iptables/cleanup.go, cleanupLeftoversForFamily (filter list)
        "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-NODEPORTS", "KUBE-PROXY-CANARY",
    }),
}  # fmt: skip

# pkg/proxy/iptables/proxier.go, isServiceChainName: per-Service chains in nat, by prefix
# (servicePortPolicyClusterChainNamePrefix, ...LocalChainNamePrefix, serviceFirewall...,
# serviceExternal..., servicePortEndpoint...).
SERVICE_CHAIN_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-FW-", "KUBE-EXT-", "KUBE-SEP-")

# pkg/proxy/iptables/cleanup.go: the mangle canary is deleted (DeleteChain, so only if empty).
MANGLE_CANARY = "KUBE-PROXY-CANARY"

# pkg/proxy/ipvs/proxier.go, ipsetInfo (names and types: pkg/proxy/ipvs/ipset.go constants).
IPSETS: Mapping[str, str] = {
    "KUBE-LOOP-BACK": "hash:ip,port,ip",
    "KUBE-CLUSTER-IP": "hash:ip,port",
    "KUBE-EXTERNAL-IP": "hash:ip,port",
    "KUBE-EXTERNAL-IP-LOCAL": "hash:ip,port",
    "KUBE-LOAD-BALANCER": "hash:ip,port",
    "KUBE-LOAD-BALANCER-FW": "hash:ip,port",
    "KUBE-LOAD-BALANCER-LOCAL": "hash:ip,port",
    "KUBE-LOAD-BALANCER-SOURCE-IP": "hash:ip,port,ip",
    "KUBE-LOAD-BALANCER-SOURCE-CIDR": "hash:ip,port,net",
    "KUBE-NODE-PORT-TCP": "bitmap:port",
    "KUBE-NODE-PORT-LOCAL-TCP": "bitmap:port",
    "KUBE-NODE-PORT-UDP": "bitmap:port",
    "KUBE-NODE-PORT-LOCAL-UDP": "bitmap:port",
    "KUBE-NODE-PORT-SCTP-HASH": "hash:ip,port",
    "KUBE-NODE-PORT-LOCAL-SCTP-HASH": "hash:ip,port",
    "KUBE-HEALTH-CHECK-NODE-PORT": "bitmap:port",
    "KUBE-IPVS-IPS": "hash:ip",
}

# pkg/proxy/nftables/proxier.go, kubeProxyTable, in the families CleanupLeftovers deletes.
NFT_TABLES = (("ip", "kube-proxy"), ("ip6", "kube-proxy"))


def ipv6_set_name(name: str) -> str:
    """The name kube-proxy's IPv6 proxier gives set `name` (`NewIPSet`): `KUBE-` becomes
    `KUBE-6-`, cut to ipset's 31 characters."""
    return ("KUBE-6-" + name.removeprefix("KUBE-"))[:31]


def _all_chain_names() -> frozenset[str]:
    return frozenset().union(*CHAINS.values()) | {j.target for j in JUMPS}


# --- reading iptables-save --------------------------------------------------------------------


@dataclass(slots=True)
class _Table:
    chains: dict[str, str] = field(default_factory=dict)  # name -> policy ("-" for user)
    rules: list[str] = field(default_factory=list)  # "-A CHAIN ..." lines in order


def parse_save(text: str) -> dict[str, _Table]:
    """`iptables-save` output → table name → its chains and rules."""
    tables: dict[str, _Table] = {}
    current: _Table | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            current = tables.setdefault(line[1:], _Table())
        elif current is None or line == "COMMIT":
            continue
        elif line.startswith(":"):
            name, policy = [*line[1:].split(), "-"][:2]
            current.chains[name] = policy
        elif line.startswith("-A "):
            current.rules.append(line)
    return tables


def _words(rule: str) -> list[str]:
    try:
        return shlex.split(rule)
    except ValueError:
        return rule.split()


def _chain_of(rule: str) -> str:
    return rule.split()[1]


def _targets(rule: str) -> set[str]:
    words = _words(rule)
    return {words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-j", "-g", "--jump", "--goto")}


def _sets_matched(rule: str) -> set[str]:
    words = _words(rule)
    return {words[i + 1] for i, w in enumerate(words[:-1]) if w == "--match-set"}


@dataclass(frozen=True, slots=True)
class TableRemoval:
    """What one table loses: the jump rules (exact lines) and the chains flushed and deleted."""

    table: str
    jumps: tuple[str, ...]
    chains: tuple[str, ...]
    kept_rules: tuple[str, ...]  # every rule that stays (for the set check)
    warnings: tuple[str, ...]


def table_removal(name: str, table: _Table, where: str) -> TableRemoval:
    """Decide what of one table is kube-proxy's, leaving malformed leftovers alone."""
    warnings: list[str] = []
    known = _all_chain_names()
    own = CHAINS.get(name, frozenset())
    candidates = {
        chain
        for chain in table.chains
        if chain in own or (name == "nat" and chain.startswith(SERVICE_CHAIN_PREFIXES))
    }
    if name == "mangle" and MANGLE_CANARY in table.chains:
        if any(_chain_of(rule) == MANGLE_CANARY for rule in table.rules):
            warnings.append(f"{where}: chain mangle/{MANGLE_CANARY} is not empty; left alone")
        else:
            candidates.add(MANGLE_CANARY)
    for chain in sorted(set(table.chains) - candidates - own):
        if chain in known and chain not in ("INPUT", "OUTPUT", "FORWARD"):
            warnings.append(
                f"{where}: chain {name}/{chain} has a kube-proxy name but kube-proxy never "
                f"writes it in table {name}; left alone"
            )
    expected = {j.save_line() for j in JUMPS if j.table == name}
    jumps = [rule for rule in table.rules if rule in expected]
    # A chain something else still jumps to cannot be deleted: keep it whole, and then what it
    # jumps to as well, until nothing kept refers to a chain being removed.
    while True:
        kept = [
            rule
            for rule in table.rules
            if _chain_of(rule) not in candidates and rule not in expected
        ]
        blocking = [rule for rule in kept if _targets(rule) & candidates]
        if not blocking:
            break
        for rule in blocking:
            for chain in sorted(_targets(rule) & candidates):
                warnings.append(
                    f"{where}: chain {name}/{chain} is used by a rule kube-proxy does not "
                    f"write ({rule}); left alone"
                )
            candidates -= _targets(rule)
    jumps = [rule for rule in jumps if _targets(rule) & candidates]
    kept = [rule for rule in table.rules if _chain_of(rule) not in candidates and rule not in jumps]
    return TableRemoval(name, tuple(jumps), tuple(sorted(candidates)), tuple(kept), tuple(warnings))


def restore_script(removals: Iterable[TableRemoval]) -> str:
    """The `iptables-restore --noflush` script: per table, each chain declared (which flushes
    it), the jumps deleted, the chains deleted, one COMMIT. Empty if there is nothing to do."""
    parts: list[str] = []
    for removal in removals:
        if not removal.jumps and not removal.chains:
            continue
        parts.append(f"*{removal.table}")
        parts.extend(f":{chain} - [0:0]" for chain in removal.chains)
        parts.extend("-D" + rule[2:] for rule in removal.jumps)
        parts.extend(f"-X {chain}" for chain in removal.chains)
        parts.append("COMMIT")
    return "".join(f"{line}\n" for line in parts)


# --- reading ipset save -----------------------------------------------------------------------


def parse_ipset_creates(text: str) -> dict[str, tuple[str, str | None]]:
    """`ipset save` output → set name → (type, family or None)."""
    sets: dict[str, tuple[str, str | None]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "create":
            family = words[words.index("family") + 1] if "family" in words[3:-1] else None
            sets[words[1]] = (words[2], family)
    return sets


def _expected_sets() -> dict[str, tuple[str, str]]:
    """Set name → (type, family) for both of kube-proxy's families."""
    expected = {name: (kind, "inet") for name, kind in IPSETS.items()}
    expected.update({ipv6_set_name(name): (kind, "inet6") for name, kind in IPSETS.items()})
    return expected


def ipset_removal(text: str, still_used: set[str]) -> tuple[list[str], list[str]]:
    """(sets to destroy, warnings) from `ipset save` output; `still_used` are sets a kept
    iptables rule matches on (destroying them would fail)."""
    destroy: list[str] = []
    warnings: list[str] = []
    expected = _expected_sets()
    for name, (kind, family) in sorted(parse_ipset_creates(text).items()):
        if name not in expected:
            continue
        want_kind, want_family = expected[name]
        if kind != want_kind or (family is not None and family != want_family):
            warnings.append(
                f"ipset {name} is {kind} family {family or '-'}, not kube-proxy's {want_kind} "
                f"family {want_family}; left alone"
            )
        elif name in still_used:
            warnings.append(
                f"ipset {name} is still used by a rule kube-proxy does not write; left alone"
            )
        else:
            destroy.append(name)
    return destroy, warnings


# --- the whole removal ------------------------------------------------------------------------


def _backend_name(dump: IptablesDump) -> str:
    tool = "iptables" if dump.family == "ipv4" else "ip6tables"
    return f"{tool}-{dump.backend}"


def leftover_removal(state: NetfilterState) -> LeftoverRemoval:
    """Everything of kube-proxy's in `state`, as one script per backend and family, the sets
    to destroy after them, and the nftables tables to delete."""
    restores: list[IptablesRestore] = []
    removed: list[str] = []
    warnings: list[str] = []
    still_used: set[str] = set()
    for dump in state.iptables:
        where = _backend_name(dump)
        tables = parse_save(dump.text)
        removals = [table_removal(name, table, where) for name, table in sorted(tables.items())]
        for removal in removals:
            warnings.extend(removal.warnings)
            still_used |= {s for rule in removal.kept_rules for s in _sets_matched(rule)}
            if removal.jumps or removal.chains:
                removed.append(
                    f"{where} {removal.table}: {len(removal.jumps)} jumps, "
                    f"chains {' '.join(removal.chains) or '-'}"
                )
        script = restore_script(removals)
        if script:
            restores.append(IptablesRestore(dump.backend, dump.family, script))
    destroy: list[str] = []
    if state.ipset is not None:
        destroy, set_warnings = ipset_removal(state.ipset, still_used)
        warnings.extend(set_warnings)
        if destroy:
            removed.append(f"ipsets {' '.join(destroy)}")
    nft_tables = tuple(t for t in NFT_TABLES if t in set(state.nft_tables))
    for family, name in state.nft_tables:
        if name == "kube-proxy" and (family, name) not in NFT_TABLES:
            warnings.append(
                f"nftables table {family} {name}: kube-proxy never writes it; left alone"
            )
    if nft_tables:
        removed.append("nftables tables " + ", ".join(f"{f} {n}" for f, n in nft_tables))
    return LeftoverRemoval(
        restores=tuple(restores),
        ipsets=tuple(destroy),
        nft_tables=nft_tables,
        removed=tuple(removed),
        warnings=tuple(warnings),
    )
