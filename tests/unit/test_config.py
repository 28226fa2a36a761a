"""ProxyConfig and its values: kube-proxy's defaults, Go's spellings, merging and validation."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import fields
from ipaddress import ip_address, ip_network

import pytest

from ipvsd.config.settings import Layer, ProxyConfig, build_config, file_field_of, flag_of
from ipvsd.config.values import (
    ConfigError,
    NodePortAddresses,
    format_go_duration,
    parse_bind_address,
    parse_cidr,
    parse_cluster_cidrs,
    parse_detect_local_mode,
    parse_go_bool,
    parse_go_duration,
    parse_hostname_override,
    parse_interface_name,
    parse_masquerade_bit,
    parse_nodeport_addresses,
    parse_port_range,
    parse_proxy_name,
    parse_scheduler,
    parse_topology_source,
    parse_verbosity,
)
from ipvsd.model.firewall import FirewallConfig
from ipvsd.model.ipvs import Timeouts


def build(*layers: Layer, environ: dict[str, str] | None = None) -> ProxyConfig:
    config, _ = build_config(
        layers, environ={"NODE_NAME": "node-a"} if environ is None else environ,
        gethostname=lambda: "host-a",
    )  # fmt: skip
    return config


def layer(origin: str = "--test", /, **values: object) -> Layer:
    result = Layer()
    for name, value in values.items():
        result.set(name, value, origin)
    return result


# --- defaults are kube-proxy's ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kube_proxy_default"),
    [
        ("kubeconfig", None),                   # in-cluster config
        ("master", None),
        ("hostname_override", None),
        ("cluster_cidrs", ()),
        ("masquerade_all", False),
        ("nodeport_addresses", NodePortAddresses()),  # every node address (ipvs mode)
        ("ipvs_scheduler", "rr"),
        ("ipvs_sync_period", 30.0),
        ("ipvs_min_sync_period", 0.0),
        ("ipvs_exclude_cidrs", ()),
        ("ipvs_strict_arp", False),
        ("ipvs_tcp_timeout", 0.0),              # 0: the kernel's
        ("ipvs_tcpfin_timeout", 0.0),
        ("ipvs_udp_timeout", 0.0),
        ("healthz_bind_address", "0.0.0.0:10256"),
        ("metrics_bind_address", "127.0.0.1:10249"),
        ("cleanup", False),
        ("verbosity", 0),
        ("node_port_range", (30000, 32767)),    # kube-apiserver's default
        ("proxy_name", "ipvsd"),
        ("topology_source", "hints"),
        ("dry_run", False),
        ("once", False),
        ("masquerade_bit", 14),
        ("detect_local_mode", "ClusterCIDR"),
        ("pod_bridge_interface", ""),
        ("pod_interface_name_prefix", ""),
        ("allow_service_external_ips", True),  # the gate's v1.36 default (KEP-5707)
        ("service_external_ip_ranges", ()),  # ipvsd's own: every externalIP is served
        ("logging_format", "text"),
        ("conntrack_max_per_core", 32768),
        ("conntrack_min", 131072),
        ("conntrack_tcp_timeout_established", 86400.0),  # 24h
        ("conntrack_tcp_timeout_close_wait", 3600.0),    # 1h
        ("conntrack_tcp_be_liberal", False),
        ("conntrack_udp_timeout", 0.0),                  # 0: the kernel's
        ("conntrack_udp_timeout_stream", 0.0),
    ],
)  # fmt: skip
def test_defaults_are_kube_proxys(name: str, kube_proxy_default: object) -> None:
    assert getattr(build(), name) == kube_proxy_default


def test_every_field_names_its_flag_and_the_applied_file_fields_are_v1alpha1s() -> None:
    flags = {f.name: flag_of(f.name) for f in fields(ProxyConfig)}
    assert all(flag.startswith("-") for flag in flags.values())
    assert {name: file_field_of(name) for name in flags if file_field_of(name)} == {
        "kubeconfig": "clientConnection.kubeconfig",
        "hostname_override": "hostnameOverride",
        "node_name": "hostnameOverride",
        "cluster_cidrs": "clusterCIDR",
        "masquerade_all": "iptables.masqueradeAll",
        "masquerade_bit": "iptables.masqueradeBit",
        "detect_local_mode": "detectLocalMode",
        "pod_bridge_interface": "detectLocal.bridgeInterface",
        "pod_interface_name_prefix": "detectLocal.interfaceNamePrefix",
        "nodeport_addresses": "nodePortAddresses",
        "ipvs_scheduler": "ipvs.scheduler",
        "ipvs_sync_period": "ipvs.syncPeriod",
        "ipvs_min_sync_period": "ipvs.minSyncPeriod",
        "ipvs_exclude_cidrs": "ipvs.excludeCIDRs",
        "ipvs_strict_arp": "ipvs.strictARP",
        "ipvs_tcp_timeout": "ipvs.tcpTimeout",
        "ipvs_tcpfin_timeout": "ipvs.tcpFinTimeout",
        "ipvs_udp_timeout": "ipvs.udpTimeout",
        "allow_service_external_ips": "featureGates",
        "healthz_bind_address": "healthzBindAddress",
        "metrics_bind_address": "metricsBindAddress",
        "verbosity": "logging.verbosity",
        "logging_format": "logging.format",
        "conntrack_max_per_core": "conntrack.maxPerCore",
        "conntrack_min": "conntrack.min",
        "conntrack_tcp_timeout_established": "conntrack.tcpEstablishedTimeout",
        "conntrack_tcp_timeout_close_wait": "conntrack.tcpCloseWaitTimeout",
        "conntrack_tcp_be_liberal": "conntrack.tcpBeLiberal",
        "conntrack_udp_timeout": "conntrack.udpTimeout",
        "conntrack_udp_timeout_stream": "conntrack.udpStreamTimeout",
    }


# --- Go durations and booleans -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds", "go_string"),
    [
        ("30s", 30.0, "30s"),
        ("1m30s", 90.0, "1m30s"),
        ("500ms", 0.5, "500ms"),
        ("2h", 7200.0, "2h0m0s"),
        ("1.5h", 5400.0, "1h30m0s"),
        ("2h45m", 9900.0, "2h45m0s"),
        (".5s", 0.5, "500ms"),
        ("1.s", 1.0, "1s"),
        ("1h0m0.25s", 3600.25, "1h0m0.25s"),
        ("1500us", 0.0015, "1.5ms"),
        ("1\u00b5s", 0.000001, "1\u00b5s"),
        ("1\u03bcs", 0.000001, "1\u00b5s"),
        ("3ns", 3e-9, "3ns"),
        ("-2s", -2.0, "-2s"),
        ("+2s", 2.0, "2s"),
        ("0", 0.0, "0s"),
        ("-0", 0.0, "0s"),
        ("0s", 0.0, "0s"),
    ],
)  # fmt: skip
def test_go_durations(text: str, seconds: float, go_string: str) -> None:
    assert parse_go_duration(text, "--x") == pytest.approx(seconds)
    assert format_go_duration(parse_go_duration(text, "--x")) == go_string


@pytest.mark.parametrize(
    "text",
    ["30", "", "s", ".s", "1.5.5s", "1mh", "1h30", "1 s", "1d", "1S", "abc", "--1s", "9999999h"],
)
def test_go_duration_errors_name_the_flag(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^--ipvs-sync-period: "):
        parse_go_duration(text, "--ipvs-sync-period")


@pytest.mark.parametrize(
    ("text", "value"),
    [(t, True) for t in ("1", "t", "T", "TRUE", "true", "True")]
    + [(f, False) for f in ("0", "f", "F", "FALSE", "false", "False")],
)
def test_go_bools(text: str, value: bool) -> None:
    assert parse_go_bool(text, "--x") is value


@pytest.mark.parametrize("text", ["yes", "no", "tRuE", "", "2", "on"])
def test_go_bool_errors_name_the_flag(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^--masquerade-all: .* is not a boolean"):
        parse_go_bool(text, "--masquerade-all")


# --- networks, addresses, ranges, names ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "network"),
    [
        ("10.96.0.0/12", "10.96.0.0/12"),
        ("10.96.0.1/12", "10.96.0.0/12"),  # host bits cleared, as Go's ParseCIDR
        (" fd00::/108 ", "fd00::/108"),
        ("0.0.0.0/0", "0.0.0.0/0"),
    ],
)
def test_cidrs(text: str, network: str) -> None:
    assert parse_cidr(text, "--x") == ip_network(network)


@pytest.mark.parametrize(
    "text", ["10.0.0.1", "10.0.0.0/255.0.0.0", "10.0.0.0/33", "x/8", "", "fe80::/64%eth0"]
)
def test_cidr_errors_name_the_flag(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^--ipvs-exclude-cidrs: .* is not a CIDR"):
        parse_cidr(text, "--ipvs-exclude-cidrs")


def test_cluster_cidrs_are_one_or_a_dual_stack_pair() -> None:
    assert parse_cluster_cidrs(["fd00::/56", "10.244.0.0/16"], "--c") == (
        ip_network("10.244.0.0/16"),
        ip_network("fd00::/56"),
    )
    for items in (["10.0.0.0/8", "10.1.0.0/16"], ["10.0.0.0/8", "fd00::/16", "fd01::/16"]):
        with pytest.raises(ConfigError, match=r"^--cluster-cidr: .* one per IP family"):
            parse_cluster_cidrs(items, "--cluster-cidr")


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("0.0.0.0:10256", "0.0.0.0:10256"),
        ("1.2.3.4", "1.2.3.4:10256"),         # a bare IP gets the default port
        ("::", "[::]:10256"),
        ("[::]:9000", "[::]:9000"),
        ("[fd00::0001]:80", "[fd00::1]:80"),
        ("::1:80", "[::1:80]:10256"),          # a bare IPv6 address, as Go reads it
    ],
)  # fmt: skip
def test_bind_addresses(text: str, canonical: str) -> None:
    assert parse_bind_address(text, "--x", default_port=10256) == canonical


@pytest.mark.parametrize(
    "text", ["localhost:80", "1.2.3.4:0", "1.2.3.4:65536", "1.2.3.4:x", ":80", "fd00::1]:80", ""]
)
def test_bind_address_errors_name_the_flag(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^--healthz-bind-address: .* is not IP:port"):
        parse_bind_address(text, "--healthz-bind-address", default_port=10256)


@pytest.mark.parametrize(
    ("text", "ports"),
    [("30000-32767", (30000, 32767)), ("30000+2767", (30000, 32767)), ("8080", (8080, 8080))],
)
def test_port_ranges_as_the_api_server_spells_them(text: str, ports: tuple[int, int]) -> None:
    assert parse_port_range(text, "--x") == ports


@pytest.mark.parametrize("text", ["32767-30000", "0-100", "1-70000", "a-b", "1:2", ""])
def test_port_range_errors_name_the_flag(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^--node-port-range: "):
        parse_port_range(text, "--node-port-range")


def test_scheduler_names() -> None:
    assert parse_scheduler("", "--x") == "rr"  # kube-proxy: empty means rr
    assert parse_scheduler("mh", "--x") == "mh"
    assert parse_scheduler("abcdefghijklmno", "--x") == "abcdefghijklmno"  # 15 letters


@pytest.mark.parametrize("text", ["RR", "round-robin", "wrr2", "abcdefghijklmnop"])
def test_scheduler_errors_name_the_flag(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^--ipvs-scheduler: .* not an IPVS scheduler name"):
        parse_scheduler(text, "--ipvs-scheduler")


def test_names_and_choices() -> None:
    assert parse_proxy_name("ipvsd-canary", "--x") == "ipvsd-canary"
    assert parse_topology_source("auto", "--x") == "auto"
    assert parse_verbosity("4", "--x") == 4
    assert parse_hostname_override(" Node-A ", "--x") == "node-a"
    assert parse_hostname_override("", "--x") is None
    for parse, text, flag in (
        (parse_proxy_name, "-bad-", "--proxy-name"),
        (parse_proxy_name, "", "--proxy-name"),
        (parse_topology_source, "zones", "--topology-source"),
        (parse_verbosity, "-1", "-v"),
        (parse_verbosity, "high", "-v"),
        (parse_hostname_override, "   ", "--hostname-override"),
    ):
        with pytest.raises(ConfigError, match=rf"^{flag}: "):
            parse(text, flag)


# --- NodePort addresses --------------------------------------------------------------------


def test_nodeport_keywords() -> None:
    parsed = parse_nodeport_addresses(["primary", "all", "10.0.0.0/8"], "--x")
    assert parsed.primary
    assert parsed.cidrs == (ip_network("0.0.0.0/0"), ip_network("10.0.0.0/8"), ip_network("::/0"))
    assert str(parse_nodeport_addresses(["localhost"], "--x")) == "127.0.0.0/8,::1/128"


@pytest.mark.parametrize(
    ("selection", "address", "served"),
    [
        (NodePortAddresses(), "192.168.1.10", True),
        (parse_nodeport_addresses(["192.168.1.0/24"], "x"), "192.168.1.10", True),
        (parse_nodeport_addresses(["192.168.1.0/24"], "x"), "10.0.0.1", False),
        (parse_nodeport_addresses(["192.168.1.0/24"], "x"), "fd00::1", True),
        (parse_nodeport_addresses(["primary"], "x"), "192.168.1.10", True),
        (parse_nodeport_addresses(["primary"], "x"), "172.16.0.5", False),
        (parse_nodeport_addresses(["primary"], "x"), "fd00::5", True),
    ],
    ids=[
        "unset-serves-every-address", "cidr-match", "cidr-mismatch",
        "family-without-cidr-serves-all-as-kube-proxy", "primary-address",
        "primary-excludes-other-addresses", "primary-family-without-primary-ip-serves-all",
    ],
)  # fmt: skip
def test_nodeport_selection(selection: NodePortAddresses, address: str, served: bool) -> None:
    primary = [ip_address("192.168.1.10")]
    assert selection.allows(ip_address(address), primary_addresses=primary) is served


# --- merging, node name, validation --------------------------------------------------------


def test_later_layers_win_and_unset_fields_keep_defaults() -> None:
    config = build(
        layer("ipvs.scheduler in f", ipvs_scheduler="wrr", ipvs_strict_arp=True),
        layer("--ipvs-scheduler", ipvs_scheduler="lc"),
    )
    assert (config.ipvs_scheduler, config.ipvs_strict_arp, config.ipvs_sync_period) == (
        "lc",
        True,
        30.0,
    )


@pytest.mark.parametrize(
    ("override", "environ", "node_name"),
    [
        ("Worker-1", {"NODE_NAME": "other"}, "worker-1"),
        (None, {"NODE_NAME": " Worker-2 "}, "worker-2"),
        (None, {"NODE_NAME": ""}, "host-a"),
        (None, {}, "host-a"),
    ],
    ids=["override-wins", "node-name-env", "empty-env-ignored", "hostname"],
)
def test_node_name(override: str | None, environ: dict[str, str], node_name: str) -> None:
    layers = [layer(hostname_override=override)] if override else []
    assert build(*layers, environ=environ).node_name == node_name


def test_node_name_from_a_mixed_case_hostname_is_lowercased() -> None:
    config, _ = build_config([], environ={}, gethostname=lambda: "Host-B\n")
    assert config.node_name == "host-b"


def test_empty_hostname_without_override_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"^--hostname-override: .*NODE_NAME"):
        build_config([], environ={}, gethostname=lambda: "")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"ipvs_sync_period": 0.0}, r"^--test: must be greater than 0 \(got 0s\)"),
        ({"ipvs_sync_period": -1.0}, r"^--test: must be greater than 0 \(got -1s\)"),
        ({"ipvs_min_sync_period": -1.0}, r"^--test: must not be negative"),
        ({"ipvs_min_sync_period": 60.0}, r"^--test \(1m0s\) must not be longer than "
                                         r"--ipvs-sync-period \(30s\)"),
        ({"ipvs_tcp_timeout": -1.0}, r"^--test: must not be negative"),
        ({"ipvs_tcpfin_timeout": -1.0}, r"^--test: must not be negative"),
        ({"ipvs_udp_timeout": -1.0}, r"^--test: must not be negative"),
        ({"verbosity": -1}, r"^--test: must not be negative"),
        ({"metrics_bind_address": "0.0.0.0:10256"}, r"^--healthz-bind-address \(0.0.0.0:10256\)"
                                                    r" and --test \(0.0.0.0:10256\) would listen"),
        ({"healthz_bind_address": "127.0.0.1:10249"}, r"^--test .* --metrics-bind-address"),
        ({"masquerade_bit": 32}, r"^--test: must be within the range \[0, 31\]"),
        ({"detect_local_mode": "BridgeInterface"},
         r"^--pod-bridge-interface: must not be empty with --test=BridgeInterface"),
        ({"detect_local_mode": "InterfaceNamePrefix", "pod_bridge_interface": "cni0"},
         r"^--pod-interface-name-prefix: must not be empty with --test=InterfaceNamePrefix"),
    ],
)  # fmt: skip
def test_validation_errors_name_the_source(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(layer(**values))


def test_min_sync_period_error_names_both_sources() -> None:
    with pytest.raises(
        ConfigError, match=r"^--ipvs-min-sync-period \(45s\) .* than ipvs.syncPeriod"
    ):
        build(
            layer("ipvs.syncPeriod in /etc/kp.yaml", ipvs_sync_period=40.0),
            layer("--ipvs-min-sync-period", ipvs_min_sync_period=45.0),
        )


def test_listeners_on_different_ports_or_hosts_are_fine() -> None:
    build(layer(metrics_bind_address="127.0.0.1:10256", healthz_bind_address="10.0.0.1:10256"))
    build(layer(metrics_bind_address="", healthz_bind_address="127.0.0.1:10249"))  # disabled


def test_doubts_are_warnings_not_errors() -> None:
    _, warnings = build_config(
        [
            layer(
                ipvs_tcp_timeout=0.5,
                ipvs_udp_timeout=90.5,
                ipvs_scheduler="twos",
                nodeport_addresses=parse_nodeport_addresses(["localhost"], "x"),
            )
        ],
        environ={"NODE_NAME": "n"},
        gethostname=lambda: "h",
    )
    assert len(warnings) == 4
    assert "0s is set (the kernel value is kept)" in warnings[0]
    assert "90s is set" in warnings[1]
    assert "ip_vs_twos" in warnings[2]
    assert "never served on loopback" in warnings[3]


def test_layer_refuses_values_of_the_wrong_type() -> None:
    for name, value in (("ipvs_sync_period", 30), ("verbosity", True), ("cluster_cidrs", [])):
        with pytest.raises(TypeError, match=name):
            layer(**{name: value})
    with pytest.raises(KeyError):
        layer(no_such_field=1)


# --- derived values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verbosity", "level"),
    [
        (0, logging.INFO),
        (2, logging.INFO),
        (3, logging.INFO),
        (4, logging.DEBUG),
        (9, logging.DEBUG),
    ],
)
def test_klog_verbosity_maps_to_logging_levels(verbosity: int, level: int) -> None:
    assert ProxyConfig(verbosity=verbosity).log_level == level


def test_ipvs_timeouts_are_whole_seconds() -> None:
    config = ProxyConfig(ipvs_tcp_timeout=900.9, ipvs_tcpfin_timeout=0.5, ipvs_udp_timeout=300.0)
    assert config.ipvs_timeouts == Timeouts(tcp=900, tcp_fin=0, udp=300)


@pytest.mark.parametrize(
    ("values", "detection"),
    [
        ({}, FirewallConfig()),
        ({"cluster_cidrs": (ip_network("10.244.0.0/16"),)},
         FirewallConfig(pod_cidrs=(ip_network("10.244.0.0/16"),))),
        ({"cluster_cidrs": (ip_network("10.244.0.0/16"),), "detect_local_mode": "NodeCIDR"},
         FirewallConfig(pod_cidrs_from_node=True)),
        ({"detect_local_mode": "BridgeInterface", "pod_bridge_interface": "cni0",
          "pod_interface_name_prefix": "veth"}, FirewallConfig(pod_interface="cni0")),
        ({"detect_local_mode": "InterfaceNamePrefix", "pod_interface_name_prefix": "veth"},
         FirewallConfig(pod_interface_prefix="veth")),
        ({"masquerade_bit": 3, "masquerade_all": True},
         FirewallConfig(masquerade_bit=3, masquerade_all=True)),
        # routed Service CIDRs: the IPv4 ones (an IPv6 range keeps per-address binding)
        ({"service_cluster_ip_range": (ip_network("10.96.0.0/12"), ip_network("fd00::/108"))},
         FirewallConfig(service_cidrs=(ip_network("10.96.0.0/12"),))),
    ],
)  # fmt: skip
def test_the_detect_local_mode_decides_how_the_firewall_tells_pods(
    values: dict[str, object], detection: FirewallConfig
) -> None:
    """Only the chosen mode's setting counts, as in kube-proxy (a --cluster-cidr beside
    NodeCIDR is not used to tell pods)."""
    assert build(layer(**values)).firewall_config == detection


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (parse_detect_local_mode, "nodecidr", "is not one of ClusterCIDR, NodeCIDR"),
        (parse_interface_name, "a-very-long-name0", "is not an interface name"),
        (parse_interface_name, "cni0 x", "is not an interface name"),
        (parse_interface_name, "..", "is not an interface name"),
        (parse_masquerade_bit, "-1", "must be within the range [0, 31]"),
        (parse_masquerade_bit, "0x4000", "must be within the range [0, 31]"),
    ],
)
def test_detect_local_and_masquerade_bit_syntax(
    parse: Callable[[str, str], object], text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(text, "--flag")
    assert str(raised.value).startswith(f"--flag: {text!r}")
    assert message in str(raised.value)
