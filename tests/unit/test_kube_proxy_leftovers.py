"""Which of a node's iptables rules, ipsets and nftables tables are kube-proxy's leftovers.

The node is kube-proxy's IPVS-mode fact sheet (`tests/kernel/data/kube-proxy/`, each rule
traced to its source) beside the kubelet's chains, a user's chain and set; the kernel tests
prove the same on real `iptables-save` output (`tests/kernel/test_takeover.py`).
"""

from __future__ import annotations

import re
from pathlib import Path

from ipvsd.model.netfilter import IptablesDump, NetfilterState
from ipvsd.plan.kube_proxy_leftovers import (
    IPSETS,
    ipv6_set_name,
    leftover_removal,
    parse_save,
    table_removal,
)

DATA = Path(__file__).parents[1] / "kernel" / "data" / "kube-proxy"

# The kubelet's chains (pkg/kubelet/kubelet_network_linux.go) and a user's, as iptables-save
# prints them.
NODE = {
    "filter": [
        ":KUBE-FIREWALL - [0:0]",
        ":KUBE-KUBELET-CANARY - [0:0]",
        ":USER-CHAIN - [0:0]",
        "-A INPUT -j KUBE-FIREWALL",
        "-A OUTPUT -j KUBE-FIREWALL",
        '-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming '
        'localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP',
        "-A INPUT -j USER-CHAIN",
        "-A USER-CHAIN -m set --match-set user-set src -j ACCEPT",
    ],
    "nat": [":KUBE-KUBELET-CANARY - [0:0]"],
    "mangle": [":KUBE-IPTABLES-HINT - [0:0]", ":KUBE-KUBELET-CANARY - [0:0]"],
}


def save_text(restore_file: str, extra: dict[str, list[str]] | None = None) -> str:
    """A restore file as iptables-save would print the result: built-in chains, `-I X 1`
    printed as `-A X`, comments dropped, plus `extra` lines per table."""
    tables: dict[str, list[str]] = {name: [] for name in ("filter", "nat", "mangle")}
    current = ""
    for line in (DATA / restore_file).read_text().splitlines():
        if line.startswith("*"):
            current = line[1:]
        elif line.startswith((":", "-A", "-I")):
            tables[current].append(re.sub(r"^-I (\S+) 1 ", r"-A \1 ", line))
    for name, lines in (extra or {}).items():
        tables[name].extend(lines)
    out = []
    for name, lines in tables.items():
        out += [f"*{name}", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]"]
        out += sorted(line for line in lines if line.startswith(":"))
        out += [line for line in lines if line.startswith("-A")]
        out.append("COMMIT")
    return "\n".join(out) + "\n"


def test_the_ipvs_mode_rules_go_and_the_kubelets_and_users_stay() -> None:
    text = save_text("ipvs-mode.iptables", NODE)
    removal = leftover_removal(NetfilterState(iptables=(IptablesDump("nft", "ipv4", text),)))

    assert removal.warnings == ()
    (restore,) = removal.restores
    script = restore.script
    for chain in (
        "KUBE-SERVICES",
        "KUBE-POSTROUTING",
        "KUBE-NODE-PORT",
        "KUBE-LOAD-BALANCER",
        "KUBE-MARK-MASQ",
        "KUBE-FORWARD",
        "KUBE-PROXY-FIREWALL",
        "KUBE-SOURCE-RANGES-FIREWALL",
        "KUBE-IPVS-FILTER",
        "KUBE-IPVS-OUT-FILTER",
    ):
        assert f"-X {chain}\n" in script  # fmt: skip
    for kept in ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT", "USER-CHAIN"):
        assert kept not in script
    assert script.count("-D ") == 9  # every iptablesJumpChain entry, once
    assert (
        '-D INPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-FILTER'
        in script
    )
    nat = script[script.index("*nat") :]
    assert (
        nat.index(":KUBE-SERVICES - [0:0]") < nat.index("-D OUTPUT") < nat.index("-X KUBE-SERVICES")
    )


def test_the_iptables_mode_chains_go_by_name_and_service_chain_prefix() -> None:
    text = save_text(
        "ipvs-mode.iptables",
        {
            "nat": [
                ":KUBE-SVC-ABCDEFGHIJKLMNOP - [0:0]",
                ":KUBE-SEP-ABCDEFGHIJKLMNOP - [0:0]",
                ":KUBE-EXT-ABCDEFGHIJKLMNOP - [0:0]",
                ":KUBE-NODEPORTS - [0:0]",
                "-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 80"
                " -j KUBE-SVC-ABCDEFGHIJKLMNOP",
                "-A KUBE-SVC-ABCDEFGHIJKLMNOP -j KUBE-SEP-ABCDEFGHIJKLMNOP",
            ],
            "filter": [
                ":KUBE-EXTERNAL-SERVICES - [0:0]",
                '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes '
                'externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
            ],
            "mangle": [":KUBE-PROXY-CANARY - [0:0]"],
        },
    )
    (restore,) = leftover_removal(
        NetfilterState(iptables=(IptablesDump("legacy", "ipv4", text),))
    ).restores
    for chain in (
        "KUBE-SVC-ABCDEFGHIJKLMNOP",
        "KUBE-SEP-ABCDEFGHIJKLMNOP",
        "KUBE-EXT-ABCDEFGHIJKLMNOP",
        "KUBE-NODEPORTS",
        "KUBE-EXTERNAL-SERVICES",
    ):
        assert f"-X {chain}\n" in restore.script  # fmt: skip
    mangle = restore.script[restore.script.index("*mangle") :]
    assert mangle.startswith("*mangle\n:KUBE-PROXY-CANARY - [0:0]\n-X KUBE-PROXY-CANARY\nCOMMIT")


def test_a_chain_someone_else_jumps_to_is_left_alone_with_what_it_needs() -> None:
    user_jump = "-A OUTPUT -d 198.51.100.1/32 -j KUBE-SERVICES"
    tables = parse_save(save_text("ipvs-mode.iptables", {"nat": [user_jump]}))
    removal = table_removal("nat", tables["nat"], "iptables-nft")

    assert "KUBE-SERVICES" not in removal.chains
    # KUBE-SERVICES keeps its rules, so what they jump to stays as well
    assert {"KUBE-NODE-PORT", "KUBE-LOAD-BALANCER", "KUBE-MARK-MASQ"}.isdisjoint(removal.chains)
    assert removal.chains == ("KUBE-POSTROUTING",)
    assert any("KUBE-SERVICES" in w and user_jump in w for w in removal.warnings)
    assert not any("KUBE-SERVICES" in rule for rule in removal.jumps)


def test_a_kube_proxy_chain_name_in_a_table_it_never_writes_is_named_and_kept() -> None:
    tables = parse_save(save_text("ipvs-mode.iptables", {"mangle": [":KUBE-SERVICES - [0:0]"]}))
    removal = table_removal("mangle", tables["mangle"], "iptables-nft")
    assert removal.chains == ()
    assert removal.warnings == (
        "iptables-nft: chain mangle/KUBE-SERVICES has a kube-proxy name but kube-proxy never "
        "writes it in table mangle; left alone",
    )


def test_a_non_empty_mangle_canary_is_not_deleted() -> None:
    tables = parse_save(
        save_text("ipvs-mode.iptables", {"mangle": [":KUBE-PROXY-CANARY - [0:0]",
                                                    "-A KUBE-PROXY-CANARY -j ACCEPT"]})
    )  # fmt: skip
    removal = table_removal("mangle", tables["mangle"], "iptables-nft")
    assert removal.chains == ()
    assert "not empty" in removal.warnings[0]


def test_kube_proxys_sets_of_both_families_go_and_others_stay() -> None:
    ipset = (DATA / "ipvs-mode.ipset").read_text() + "create user-set hash:ip family inet\n"
    removal = leftover_removal(NetfilterState(ipset=ipset))
    assert set(removal.ipsets) == set(IPSETS) | {ipv6_set_name(n) for n in IPSETS}
    assert len(removal.ipsets) == 34
    assert "KUBE-6-LOAD-BALANCER-SOURCE-CID" in removal.ipsets  # cut to 31 characters
    assert removal.warnings == ()


def test_a_set_of_an_unexpected_type_or_still_in_use_is_named_and_kept() -> None:
    ipset = (
        "create KUBE-CLUSTER-IP hash:ip family inet hashsize 1024 maxelem 65536\n"
        "create KUBE-IPVS-IPS hash:ip family inet hashsize 1024 maxelem 65536\n"
        "create KUBE-6-IPVS-IPS hash:ip family inet hashsize 1024 maxelem 65536\n"
    )
    in_use = save_text("ipvs-mode.iptables", {"filter": [
        ":MINE - [0:0]", "-A MINE -m set --match-set KUBE-IPVS-IPS dst -j ACCEPT"]})  # fmt: skip
    removal = leftover_removal(
        NetfilterState(iptables=(IptablesDump("nft", "ipv4", in_use),), ipset=ipset)
    )
    assert removal.ipsets == ()
    assert sorted(removal.warnings) == [
        "ipset KUBE-6-IPVS-IPS is hash:ip family inet, not kube-proxy's hash:ip family inet6; "
        "left alone",
        "ipset KUBE-CLUSTER-IP is hash:ip family inet, not kube-proxy's hash:ip,port family "
        "inet; left alone",
        "ipset KUBE-IPVS-IPS is still used by a rule kube-proxy does not write; left alone",
    ]


def test_the_nftables_modes_tables_go_in_ip_and_ip6_only() -> None:
    removal = leftover_removal(
        NetfilterState(
            nft_tables=(("ip", "kube-proxy"), ("ip6", "kube-proxy"), ("inet", "kube-proxy"),
                        ("inet", "ipvsd"), ("ip", "filter"))
        )
    )  # fmt: skip
    assert removal.nft_tables == (("ip", "kube-proxy"), ("ip6", "kube-proxy"))
    assert removal.warnings == (
        "nftables table inet kube-proxy: kube-proxy never writes it; left alone",
    )


def test_a_node_without_kube_proxy_needs_nothing() -> None:
    text = save_text("ipvs-mode.ip6tables", NODE)
    text = "\n".join(
        line for line in text.splitlines() if "KUBE-" not in line or any(
            k in line for k in ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT"))
    )  # fmt: skip
    removal = leftover_removal(NetfilterState(iptables=(IptablesDump("nft", "ipv6", text),)))
    assert removal.empty
    assert removal.warnings == ()
