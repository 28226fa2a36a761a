"""kube-proxy's flags: those ipvsd uses, those it accepts and ignores, and those it refuses.

A DaemonSet's args move from kube-proxy to ipvsd unchanged (user-asks row 15), so every flag
of kube-proxy v1.33-v1.36 is listed here. Flags ipvsd uses keep kube-proxy's meaning and
defaults; their spellings come from `ProxyConfig`'s field metadata. Flags it has no use for
are accepted and each named in a warning, or in a note when the value is what ipvsd does
anyway (`--proxy-mode=ipvs`). Only `--init-only` and `--write-config-to` are refused: running
the proxy instead would hang an init container, or leave the operator without the file.

`flag_layer` turns the values argparse collected (text, by flag name) into a config `Layer`;
the argparse plumbing itself is `ipvsd.config.command_line`'s.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_address

from ipvsd.config.feature_gates import GATE_FIELDS, apply_feature_gates, parse_feature_gates
from ipvsd.config.settings import (
    DEFAULT_HEALTHZ_PORT,
    DEFAULT_METRICS_PORT,
    ConfigError,
    Layer,
    ProxyConfig,
    flag_of,
)
from ipvsd.config.values import (
    LOG_FORMATS,
    TOPOLOGY_SOURCES,
    parse_bind_address,
    parse_cidrs,
    parse_cluster_cidrs,
    parse_detect_local_mode,
    parse_go_bool,
    parse_go_duration,
    parse_hostname_override,
    parse_int32,
    parse_interface_name,
    parse_log_format,
    parse_masquerade_bit,
    parse_nodeport_addresses,
    parse_port_range,
    parse_proxy_name,
    parse_scheduler,
    parse_service_names,
    parse_topology_source,
    parse_verbosity,
    split_list,
)
from ipvsd.model.ipvs import format_endpoint

# --- the flags ipvsd uses ------------------------------------------------------------------

UNSET = object()  # a flag value that means "as if not given" (kube-proxy's empty override)


@dataclass(frozen=True, slots=True)
class Flag:
    """A flag that sets one ProxyConfig field; its spelling comes from the field's metadata."""

    field: str
    parse: Callable[[str, str], object]
    help: str
    metavar: str = "VALUE"
    boolean: bool = False
    repeatable: bool = False  # pflag string slices: commas, and repeats add to the list
    aliases: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return flag_of(self.field)

    @property
    def spellings(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


def _optional_text(text: str, name: str) -> str | None:
    return text.strip() or None


def _hostname_override(text: str, name: str) -> object:
    override = parse_hostname_override(text, name)
    return UNSET if override is None else override


def _listener(default_port: int) -> Callable[[str, str], str]:
    def parse(text: str, name: str) -> str:
        return parse_bind_address(text, name, default_port=default_port) if text.strip() else ""

    return parse


_DURATION = "a Go duration: 30s, 1m30s, 500ms"
FLAGS = (
    Flag(
        "kubeconfig",
        _optional_text,
        "Path to a kubeconfig file. Without it: --master alone is used unauthenticated; else, "
        "in a pod, its service account; else the first file in $KUBECONFIG, else "
        "~/.kube/config",
        "FILE",
    ),
    Flag("master", _optional_text, "The API server's URL (overrides the kubeconfig's)", "URL"),
    Flag(
        "hostname_override",
        _hostname_override,
        "This node's name (default: $NODE_NAME, else the hostname)",
        "NAME",
    ),
    Flag(
        "cluster_cidrs",
        lambda text, name: parse_cluster_cidrs(split_list(text), name),
        "The pod CIDR, or a dual-stack pair (comma-separated); traffic to a ClusterIP from "
        "outside it is masqueraded",
        "CIDRS",
    ),
    Flag("masquerade_all", parse_go_bool, "Masquerade all traffic to ClusterIPs", boolean=True),
    Flag(
        "masquerade_bit",
        parse_masquerade_bit,
        "The bit of the packet mark that asks for masquerade (default 14: 0x4000); move it "
        "where the CNI moved kube-proxy's",
        "0-31",
    ),
    Flag(
        "detect_local_mode",
        parse_detect_local_mode,
        "How traffic from this node's pods is told apart (default ClusterCIDR): ClusterCIDR "
        "(--cluster-cidr), NodeCIDR (the Node's spec.podCIDRs), BridgeInterface "
        "(--pod-bridge-interface), InterfaceNamePrefix (--pod-interface-name-prefix)",
        "MODE",
    ),
    Flag(
        "pod_bridge_interface",
        parse_interface_name,
        "With --detect-local-mode=BridgeInterface: the bridge the pods hang off",
        "NAME",
    ),
    Flag(
        "pod_interface_name_prefix",
        parse_interface_name,
        "With --detect-local-mode=InterfaceNamePrefix: the prefix of the pods' interfaces",
        "PREFIX",
    ),
    Flag(
        "nodeport_addresses",
        lambda text, name: parse_nodeport_addresses(split_list(text), name),
        "CIDRs, or 'primary' (the Node's primary IPs), where NodePorts are served "
        "(default: every node address)",
        "CIDRS",
        repeatable=True,
    ),
    Flag("ipvs_scheduler", parse_scheduler, "The IPVS scheduler (default rr)", "NAME"),
    Flag(
        "ipvs_sync_period",
        parse_go_duration,
        f"Longest time between full syncs (default 30s; {_DURATION})",
        "DURATION",
    ),
    Flag(
        "ipvs_min_sync_period",
        parse_go_duration,
        "Shortest time between syncs (default 0s)",
        "DURATION",
    ),
    Flag(
        "ipvs_exclude_cidrs",
        lambda text, name: parse_cidrs(split_list(text), name),
        "CIDRs whose virtual servers ipvsd never touches",
        "CIDRS",
        repeatable=True,
    ),
    Flag(
        "ipvs_strict_arp",
        parse_go_bool,
        "Set arp_ignore=1, arp_announce=2 (recommended with MetalLB L2)",
        boolean=True,
    ),
    Flag(
        "ipvs_tcp_timeout",
        parse_go_duration,
        "IPVS idle TCP timeout (0: the kernel's)",
        "DURATION",
    ),
    Flag(
        "ipvs_tcpfin_timeout",
        parse_go_duration,
        "IPVS TCP FIN timeout (0: the kernel's)",
        "DURATION",
    ),
    Flag("ipvs_udp_timeout", parse_go_duration, "IPVS UDP timeout (0: the kernel's)", "DURATION"),
    Flag(
        "ipvs_drain_timeout",
        parse_go_duration,
        "Longest time a removed TCP real server keeps its connections at weight 0 before it "
        "is deleted (default 2m0s; 0 deletes it at once)",
        "DURATION",
    ),
    Flag(
        "healthz_bind_address",
        _listener(DEFAULT_HEALTHZ_PORT),
        "Where /healthz and /livez listen (default 0.0.0.0:10256; empty disables)",
        "IP:PORT",
    ),
    Flag(
        "metrics_bind_address",
        _listener(DEFAULT_METRICS_PORT),
        "Where /metrics listens (default 127.0.0.1:10249; empty disables)",
        "IP:PORT",
    ),
    Flag("cleanup", parse_go_bool, "Remove what ipvsd programmed, then exit", boolean=True),
    Flag(
        "verbosity",
        parse_verbosity,
        "Log verbosity, as klog's (default 0; 4 and up: debug)",
        "N",
        aliases=("--v",),
    ),
    Flag(
        "logging_format",
        parse_log_format,
        "Log format (default text): text, or json (component-base's JSON lines, as "
        "kube-proxy's --logging-format=json writes them)",
        "|".join(LOG_FORMATS),
    ),
    Flag(
        "conntrack_max_per_core",
        parse_int32,
        "nf_conntrack_max per CPU (default 32768; 0 leaves nf_conntrack_max, and "
        "--conntrack-min, alone); only ever raised",
        "N",
    ),
    Flag(
        "conntrack_min",
        parse_int32,
        "The least nf_conntrack_max, whatever --conntrack-max-per-core gives (default 131072)",
        "N",
    ),
    Flag(
        "conntrack_tcp_timeout_established",
        parse_go_duration,
        "Idle timeout of established TCP connections in conntrack (default 24h0m0s; 0 leaves "
        "the kernel's)",
        "DURATION",
    ),
    Flag(
        "conntrack_tcp_timeout_close_wait",
        parse_go_duration,
        "conntrack timeout of TCP connections in CLOSE_WAIT (default 1h0m0s; 0 leaves the "
        "kernel's)",
        "DURATION",
    ),
    Flag(
        "conntrack_tcp_be_liberal",
        parse_go_bool,
        "Set nf_conntrack_tcp_be_liberal=1: out-of-window TCP packets are not INVALID",
        boolean=True,
    ),
    Flag(
        "conntrack_udp_timeout",
        parse_go_duration,
        "conntrack timeout of UNREPLIED UDP flows (default 0: the kernel's)",
        "DURATION",
    ),
    Flag(
        "conntrack_udp_timeout_stream",
        parse_go_duration,
        "conntrack timeout of ASSURED UDP flows (default 0: the kernel's)",
        "DURATION",
    ),
    Flag(
        "proxy_name",
        parse_proxy_name,
        "Also serve Services labelled service.kubernetes.io/service-proxy-name=NAME "
        "(default ipvsd)",
        "NAME",
    ),
    Flag(
        "serve_only_labelled",
        parse_go_bool,
        "Serve only Services labelled service.kubernetes.io/service-proxy-name=<--proxy-name> "
        "(a per-Service canary beside a live kube-proxy in iptables or nftables mode); "
        "kube-proxy's rules are then left in place",
        boolean=True,
    ),
    Flag(
        "dry_run",
        parse_go_bool,
        "Print the IPVS table this node would get (ipvsadm -Sn form) and exit; touches no "
        "kernel state and needs no root",
        boolean=True,
    ),
    Flag(
        "critical_services",
        lambda text, name: parse_service_names(split_list(text), name),
        "More Services to program before the bulk of a cold start, beside default/kubernetes "
        "and kube-system/kube-dns (which always are)",
        "NAMESPACE/NAME,...",
        repeatable=True,
    ),
    Flag("once", parse_go_bool, "Sync once after the informers listed, then exit", boolean=True),
    Flag(
        "node_port_range",
        parse_port_range,
        "The API server's --service-node-port-range (default 30000-32767): NodePort virtual "
        "servers in it are ipvsd's to manage",
        "LOW-HIGH",
    ),
    Flag(
        "service_cluster_ip_range",
        lambda text, name: parse_cidrs(split_list(text), name),
        "The API server's --service-cluster-ip-range (its CIDRs, several allowed): IPv4 ones "
        "are made local by one route each instead of one kube-ipvs0 address per ClusterIP, "
        "and the firewall rejects every port there that no Service serves (default: none, "
        "every ClusterIP is bound, as kube-proxy does)",
        "CIDRS",
        repeatable=True,
    ),
    Flag(
        "topology_source",
        parse_topology_source,
        "Where topology preferences come from (default hints): hints (EndpointSlice hints, "
        "as kube-proxy), spec (the Service's trafficDistribution), auto (hints when present, "
        "else spec)",
        "|".join(TOPOLOGY_SOURCES),
    ),
    Flag(
        "service_external_ip_ranges",
        lambda text, name: parse_cidrs(split_list(text), name),
        "Serve only the Service externalIPs inside these CIDRs (as kube-router's flag of this "
        "name; default: all, as kube-proxy); others get nothing, and a Warning Event",
        "CIDRS",
        repeatable=True,
    ),
)
FEATURE_GATES_FLAG = "feature-gates"  # kube-proxy's gates; ipvsd follows those it has
FLAG_BY_DEST = {_flag.name.lstrip("-"): _flag for _flag in FLAGS}
# kube-proxy's deprecated port flags: a port for the listener, 0 disables it.
PORT_FLAGS = {"healthz-port": "healthz_bind_address", "metrics-port": "metrics_bind_address"}

# --- kube-proxy's flags that ipvsd accepts and does not use ---------------------------------


@dataclass(frozen=True, slots=True)
class IgnoredFlag:
    reason: str
    boolean: bool = False
    agrees: Callable[[str], bool] | None = None  # the value is what ipvsd does anyway


_LOGGING = "ipvsd's logs follow -v and --logging-format only"
IGNORED_FLAGS = {
    "bind-address": IgnoredFlag("kube-proxy's override of the node's primary IP; not used"),
    "bind-address-hard-fail": IgnoredFlag("not used", boolean=True),
    "profiling": IgnoredFlag("ipvsd serves no pprof handlers", boolean=True),
    "show-hidden-metrics-for-version": IgnoredFlag("ipvsd has no hidden metrics"),
    "proxy-mode": IgnoredFlag("ipvsd programs IPVS only", agrees=lambda v: v in ("", "ipvs")),
    "kube-api-content-type": IgnoredFlag("ipvsd's API client has no such setting"),
    "kube-api-qps": IgnoredFlag("ipvsd's API client has no such setting"),
    "kube-api-burst": IgnoredFlag("ipvsd's API client has no such setting"),
    "config-sync-period": IgnoredFlag("not used"),
    "iptables-localhost-nodeports": IgnoredFlag(
        "iptables mode only; IPVS never serves NodePorts on localhost", boolean=True
    ),
    "iptables-sync-period": IgnoredFlag("iptables mode only; ipvsd uses --ipvs-sync-period"),
    "iptables-min-sync-period": IgnoredFlag(
        "iptables mode only; ipvsd uses --ipvs-min-sync-period"
    ),
    "oom-score-adj": IgnoredFlag("ipvsd leaves its OOM score to the pod spec"),
    "vmodule": IgnoredFlag(_LOGGING),
    "log-flush-frequency": IgnoredFlag(_LOGGING),
    "log-json-info-buffer-size": IgnoredFlag(_LOGGING),
    "log-json-split-stream": IgnoredFlag(_LOGGING, boolean=True),
    "log-text-info-buffer-size": IgnoredFlag(_LOGGING),
    "log-text-split-stream": IgnoredFlag(_LOGGING, boolean=True),
    "windows-service": IgnoredFlag("Windows only", boolean=True),
}
REFUSED_FLAGS = {
    "init-only": "ipvsd has no init-only mode; drop the init container that runs it "
    "(ipvsd sets its sysctls itself)",
    "write-config-to": "ipvsd does not write kube-proxy config files",
}
BOOLEAN_FLAGS = frozenset(
    [f.name.lstrip("-") for f in FLAGS if f.boolean]
    + [name for name, ignored in IGNORED_FLAGS.items() if ignored.boolean]
    + ["version"]
)


def flag_layer(given: dict[str, object]) -> Layer:
    """The settings given on the command line (consuming `given`, argparse's values by dest).

    Warnings name ignored flags; notes name ignored flags whose value ipvsd follows anyway.
    """
    layer = Layer()
    for dest, flag in FLAG_BY_DEST.items():
        if dest not in given:
            continue
        raw = given.pop(dest)
        text = ",".join(raw) if isinstance(raw, list) else str(raw)
        value = flag.parse(text, flag.name)
        if value is not UNSET:
            layer.set(flag.field, value, flag.name)
    for name, field_name in PORT_FLAGS.items():
        if name in given:
            _apply_port_flag(layer, f"--{name}", str(given.pop(name)), field_name)
    if FEATURE_GATES_FLAG in given:
        raw = given.pop(FEATURE_GATES_FLAG)
        text = ",".join(raw) if isinstance(raw, list) else str(raw)
        origin = f"--{FEATURE_GATES_FLAG}"
        ignored = apply_feature_gates(layer, parse_feature_gates(text, origin), origin)
        if ignored:
            layer.warnings.append(
                f"{origin}={','.join(ignored)}: ignored (kube-proxy's feature gates other "
                f"than {', '.join(GATE_FIELDS)} do not apply to ipvsd)"
            )
    for name, spec in IGNORED_FLAGS.items():
        if name in given:
            value = str(given.pop(name))
            if spec.agrees is not None and spec.agrees(value):
                layer.notes.append(f"--{name}={value}: accepted; ipvsd does this anyway")
            else:
                layer.warnings.append(f"--{name}={value}: ignored ({spec.reason})")
    if given:
        raise AssertionError(f"flags parsed but not handled: {sorted(given)}")
    return layer


def _apply_port_flag(layer: Layer, name: str, text: str, field_name: str) -> None:
    """kube-proxy's deprecated --healthz-port/--metrics-port: 0 disables, else the port."""
    if not re.fullmatch(r"[0-9]{1,5}", text.strip()) or int(text) > 65535:
        raise ConfigError(f"{name}: {text!r} is not a port (0 disables the server)")
    port = int(text)
    layer.warnings.append(f"{name} is deprecated (in kube-proxy too); use {flag_of(field_name)}")
    if port == 0:
        layer.set(field_name, "", name)
        return
    current = layer.values.get(field_name) or getattr(ProxyConfig(), field_name)
    host = str(current).rpartition(":")[0].strip("[]")
    layer.set(field_name, format_endpoint(ip_address(host), port), name)
