"""ipvsd's configuration: one frozen value, built from layers of settings, validated once.

`ProxyConfig` holds every setting with kube-proxy's default (reference §6-§9), so a DaemonSet
that ran kube-proxy in IPVS mode runs ipvsd with the same behaviour. Each field names, in its
metadata, the kube-proxy flag and the KubeProxyConfiguration field that set it: messages
about a setting use the spelling the operator wrote, and the flag table (`config.flags`) and
the file loader (`config.kube_proxy_configuration`) read those names from here rather than
keeping copies.

Settings arrive as `Layer`s (the config file, then the command line); a later layer wins per
field. `build_config` merges them over the defaults, resolves the node name, and checks
ranges and relations (sync periods, timeouts, listener clashes) naming the source that set
the offending value. This module does no I/O and decides nothing about the dataplane.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ipvsd.config.values import (
    ConfigError,
    DetectLocalMode,
    LogFormat,
    NodePortAddresses,
    TopologySource,
    format_go_duration,
)
from ipvsd.model.conntrack_tuning import (
    DEFAULT_MAX_PER_CORE,
    DEFAULT_MIN,
    DEFAULT_TCP_CLOSE_WAIT_TIMEOUT,
    DEFAULT_TCP_ESTABLISHED_TIMEOUT,
    ConntrackTuning,
)
from ipvsd.model.firewall import FirewallConfig
from ipvsd.model.ipvs import KNOWN_SCHEDULERS, Timeouts
from ipvsd.model.service import IPNetwork

__all__ = [
    "DEFAULT_HEALTHZ_PORT",
    "DEFAULT_METRICS_PORT",
    "ConfigError",
    "Layer",
    "NodePortAddresses",
    "ProxyConfig",
    "TopologySource",
    "build_config",
    "file_field_of",
    "flag_of",
    "resolve_node_name",
]

DEFAULT_HEALTHZ_PORT = 10256
DEFAULT_METRICS_PORT = 10249
DEFAULT_NODE_PORT_RANGE = (30000, 32767)  # the API server's --service-node-port-range


def _named(flag: str, file: str | None = None) -> dict[str, str | None]:
    """Field metadata: the flag and the config-file field operators know a setting by."""
    return {"flag": flag, "file": file}


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """Everything the proxy is told by its operator; defaults are kube-proxy's.

    Durations are seconds. Bind addresses are canonical `IP:port` text (`[::]:10256` for
    IPv6), the form `ipvsd.server.http.parse_bind_address` reads; empty disables the server.
    `node_name` is resolved (see `resolve_node_name`); construct through `build_config` to get
    a validated value, directly only where the values are known to be good (tests, wiring).

    `ipvs_strict_arp` defaults to false as in kube-proxy, so a migration changes nothing;
    ipvsd recommends true wherever MetalLB (or anything announcing LoadBalancer IPs with
    L2/ARP) runs, otherwise every node answers ARP for every VIP on kube-ipvs0 and the
    announced IP flaps between nodes (metallb #153).
    """

    kubeconfig: str | None = field(
        default=None, metadata=_named("--kubeconfig", "clientConnection.kubeconfig")
    )
    master: str | None = field(default=None, metadata=_named("--master"))
    hostname_override: str | None = field(
        default=None, metadata=_named("--hostname-override", "hostnameOverride")
    )
    node_name: str = field(default="", metadata=_named("--hostname-override", "hostnameOverride"))

    cluster_cidrs: tuple[IPNetwork, ...] = field(
        default=(), metadata=_named("--cluster-cidr", "clusterCIDR")
    )
    masquerade_all: bool = field(
        default=False, metadata=_named("--masquerade-all", "iptables.masqueradeAll")
    )
    masquerade_bit: int = field(
        default=14, metadata=_named("--iptables-masquerade-bit", "iptables.masqueradeBit")
    )
    detect_local_mode: DetectLocalMode = field(
        default="ClusterCIDR", metadata=_named("--detect-local-mode", "detectLocalMode")
    )
    pod_bridge_interface: str = field(
        default="", metadata=_named("--pod-bridge-interface", "detectLocal.bridgeInterface")
    )
    pod_interface_name_prefix: str = field(
        default="",
        metadata=_named("--pod-interface-name-prefix", "detectLocal.interfaceNamePrefix"),
    )
    nodeport_addresses: NodePortAddresses = field(
        default=NodePortAddresses(), metadata=_named("--nodeport-addresses", "nodePortAddresses")
    )
    node_port_range: tuple[int, int] = field(
        default=DEFAULT_NODE_PORT_RANGE, metadata=_named("--node-port-range")
    )
    service_cluster_ip_range: tuple[IPNetwork, ...] = field(
        default=(), metadata=_named("--service-cluster-ip-range")
    )  # empty: every ClusterIP is bound as an address on kube-ipvs0, as kube-proxy does

    ipvs_scheduler: str = field(default="rr", metadata=_named("--ipvs-scheduler", "ipvs.scheduler"))
    ipvs_sync_period: float = field(
        default=30.0, metadata=_named("--ipvs-sync-period", "ipvs.syncPeriod")
    )
    ipvs_min_sync_period: float = field(
        default=0.0, metadata=_named("--ipvs-min-sync-period", "ipvs.minSyncPeriod")
    )
    ipvs_exclude_cidrs: tuple[IPNetwork, ...] = field(
        default=(), metadata=_named("--ipvs-exclude-cidrs", "ipvs.excludeCIDRs")
    )
    ipvs_strict_arp: bool = field(
        default=False, metadata=_named("--ipvs-strict-arp", "ipvs.strictARP")
    )
    ipvs_tcp_timeout: float = field(
        default=0.0, metadata=_named("--ipvs-tcp-timeout", "ipvs.tcpTimeout")
    )
    ipvs_tcpfin_timeout: float = field(
        default=0.0, metadata=_named("--ipvs-tcpfin-timeout", "ipvs.tcpFinTimeout")
    )
    ipvs_udp_timeout: float = field(
        default=0.0, metadata=_named("--ipvs-udp-timeout", "ipvs.udpTimeout")
    )
    ipvs_drain_timeout: float = field(default=120.0, metadata=_named("--ipvs-drain-timeout"))

    healthz_bind_address: str = field(
        default=f"0.0.0.0:{DEFAULT_HEALTHZ_PORT}",
        metadata=_named("--healthz-bind-address", "healthzBindAddress"),
    )
    metrics_bind_address: str = field(
        default=f"127.0.0.1:{DEFAULT_METRICS_PORT}",
        metadata=_named("--metrics-bind-address", "metricsBindAddress"),
    )

    conntrack_max_per_core: int = field(
        default=DEFAULT_MAX_PER_CORE,
        metadata=_named("--conntrack-max-per-core", "conntrack.maxPerCore"),
    )
    conntrack_min: int = field(
        default=DEFAULT_MIN, metadata=_named("--conntrack-min", "conntrack.min")
    )
    conntrack_tcp_timeout_established: float = field(
        default=DEFAULT_TCP_ESTABLISHED_TIMEOUT,
        metadata=_named("--conntrack-tcp-timeout-established", "conntrack.tcpEstablishedTimeout"),
    )
    conntrack_tcp_timeout_close_wait: float = field(
        default=DEFAULT_TCP_CLOSE_WAIT_TIMEOUT,
        metadata=_named("--conntrack-tcp-timeout-close-wait", "conntrack.tcpCloseWaitTimeout"),
    )
    conntrack_tcp_be_liberal: bool = field(
        default=False, metadata=_named("--conntrack-tcp-be-liberal", "conntrack.tcpBeLiberal")
    )
    conntrack_udp_timeout: float = field(
        default=0.0, metadata=_named("--conntrack-udp-timeout", "conntrack.udpTimeout")
    )
    conntrack_udp_timeout_stream: float = field(
        default=0.0,
        metadata=_named("--conntrack-udp-timeout-stream", "conntrack.udpStreamTimeout"),
    )

    cleanup: bool = field(default=False, metadata=_named("--cleanup"))
    verbosity: int = field(default=0, metadata=_named("-v", "logging.verbosity"))
    logging_format: LogFormat = field(
        default="text", metadata=_named("--logging-format", "logging.format")
    )
    proxy_name: str = field(default="ipvsd", metadata=_named("--proxy-name"))
    serve_only_labelled: bool = field(default=False, metadata=_named("--serve-only-labelled"))
    topology_source: TopologySource = field(default="hints", metadata=_named("--topology-source"))
    allow_service_external_ips: bool = field(
        default=True, metadata=_named("--feature-gates", "featureGates")
    )  # the AllowServiceExternalIPs gate (KEP-5707), as kube-proxy v1.36 defaults it
    service_external_ip_ranges: tuple[IPNetwork, ...] = field(
        default=(), metadata=_named("--service-external-ip-range")
    )  # empty: every externalIP is served, as kube-proxy does
    critical_services: tuple[tuple[str, str], ...] = field(
        default=(), metadata=_named("--critical-services")
    )  # programmed first, beside default/kubernetes and kube-system/kube-dns
    dry_run: bool = field(default=False, metadata=_named("--dry-run"))
    once: bool = field(default=False, metadata=_named("--once"))

    @property
    def log_level(self) -> int:
        """klog's -v mapped onto `logging`: 0-3 is INFO, 4 and more (klog's debug) is DEBUG.

        klog prints its plain Info lines at every verbosity and uses V(2) for steady-state
        detail and V(4) for debugging; Python has no level between INFO and DEBUG, so the
        DaemonSets' usual -v=2 keeps INFO and -v=4 turns on debugging, as it did.
        """
        return logging.DEBUG if self.verbosity >= 4 else logging.INFO

    @property
    def ipvs_timeouts(self) -> Timeouts:
        """The IPVS connection timeouts in whole seconds (0 keeps the kernel's), as kube-proxy."""
        return Timeouts(
            tcp=int(self.ipvs_tcp_timeout),
            tcp_fin=int(self.ipvs_tcpfin_timeout),
            udp=int(self.ipvs_udp_timeout),
        )

    @property
    def conntrack_tuning(self) -> ConntrackTuning:
        """The conntrack settings kube-proxy applies at start (`plan.conntrack_sysctls`)."""
        return ConntrackTuning(
            max_per_core=self.conntrack_max_per_core,
            min=self.conntrack_min,
            tcp_established_timeout=self.conntrack_tcp_timeout_established,
            tcp_close_wait_timeout=self.conntrack_tcp_timeout_close_wait,
            tcp_be_liberal=self.conntrack_tcp_be_liberal,
            udp_timeout=self.conntrack_udp_timeout,
            udp_stream_timeout=self.conntrack_udp_timeout_stream,
        )

    @property
    def firewall_config(self) -> FirewallConfig:
        """What the nftables rules depend on besides the Services: how traffic from this
        node's pods is told apart (--detect-local-mode), --masquerade-all and the mark bit.

        In NodeCIDR mode the pod CIDRs are the own Node's `spec.podCIDRs`, known only once
        the Node is read: the syncer fills them in (`FirewallConfig.pod_cidrs_from_node`).
        """
        mode = self.detect_local_mode
        return FirewallConfig(
            pod_cidrs=self.cluster_cidrs if mode == "ClusterCIDR" else (),
            pod_cidrs_from_node=mode == "NodeCIDR",
            pod_interface=self.pod_bridge_interface if mode == "BridgeInterface" else "",
            pod_interface_prefix=(
                self.pod_interface_name_prefix if mode == "InterfaceNamePrefix" else ""
            ),
            masquerade_all=self.masquerade_all,
            masquerade_bit=self.masquerade_bit,
            service_cidrs=self.routed_service_cidrs,
        )

    @property
    def routed_service_cidrs(self) -> tuple[IPNetwork, ...]:
        """The Service CIDRs made local by one route each (`dataplane.service_routes`)
        instead of one kube-ipvs0 address per ClusterIP: the IPv4 ones of
        --service-cluster-ip-range. IPv6 ClusterIPs stay bound one by one (a host connection
        to an IPv6 local route's address leaves from ::1; the module says more)."""
        return tuple(net for net in self.service_cluster_ip_range if net.version == 4)


_FIELDS = {f.name: f for f in fields(ProxyConfig)}
# What Layer.set accepts per field: the default's type (and str where the default is None).
_ACCEPTED: dict[str, tuple[type, ...]] = {
    f.name: (str, type(None)) if f.default is None else (type(f.default),) for f in _FIELDS.values()
}


def flag_of(name: str) -> str:
    """The command-line flag that sets field `name`, as kube-proxy spells it (`--cluster-cidr`)."""
    flag: str = _FIELDS[name].metadata["flag"]
    return flag


def file_field_of(name: str) -> str | None:
    """The KubeProxyConfiguration field that sets `name` (`ipvs.syncPeriod`), if there is one."""
    path: str | None = _FIELDS[name].metadata["file"]
    return path


@dataclass(slots=True)
class Layer:
    """Settings from one source, by ProxyConfig field, with where each came from.

    `origins` holds the name shown in messages (`--ipvs-sync-period`, or
    `ipvs.syncPeriod in /etc/kube-proxy/config.conf`). `warnings` and `notes` are for the log
    (WARNING and INFO): parsing happens before logging is configured, so they travel as data.
    """

    values: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def set(self, name: str, value: object, origin: str) -> None:
        """Record `value` for field `name`; a wrong name or type is a bug in the caller."""
        if not isinstance(value, _ACCEPTED[name]) or isinstance(value, bool) is not isinstance(
            _FIELDS[name].default, bool
        ):
            raise TypeError(f"ProxyConfig.{name} cannot be {value!r}")
        self.values[name] = value
        self.origins[name] = origin


def resolve_node_name(
    override: str | None, *, environ: Mapping[str, str], gethostname: Callable[[], str]
) -> str:
    """The Node this proxy serves: the override, else `$NODE_NAME`, else the hostname.

    kube-proxy uses the override or the hostname; `$NODE_NAME` (the downward API's
    `spec.nodeName`) is ipvsd's addition, since a hostname that differs from the Node's name
    makes a proxy silently treat every endpoint as remote. Trimmed and lowercased like
    kube-proxy's names.
    """
    for candidate in (override, environ.get("NODE_NAME")):
        if candidate and candidate.strip():
            return candidate.strip().lower()
    hostname = gethostname().strip().lower()
    if not hostname:
        raise ConfigError(
            "--hostname-override: the node name is unknown (the hostname is empty); "
            "set --hostname-override or NODE_NAME"
        )
    return hostname


def build_config(
    layers: Sequence[Layer], *, environ: Mapping[str, str], gethostname: Callable[[], str]
) -> tuple[ProxyConfig, tuple[str, ...]]:
    """The validated configuration from `layers` (later ones win) over the defaults.

    Returns the value and warnings about settings that are legal but probably not what the
    operator meant. Raises ConfigError naming the flag or file field of a bad value.
    """
    values: dict[str, Any] = {}  # checked per field by Layer.set
    origins: dict[str, str] = {}
    for layer in layers:
        values.update(layer.values)
        origins.update(layer.origins)
    config = replace(ProxyConfig(), **values)
    node_name = resolve_node_name(
        config.hostname_override, environ=environ, gethostname=gethostname
    )
    config = replace(config, node_name=node_name)

    def origin(name: str) -> str:
        return origins.get(name, flag_of(name))

    _check(config, origin)
    return config, tuple(_doubts(config, origin))


def _check(config: ProxyConfig, origin: Callable[[str], str]) -> None:
    """Ranges and relations kube-proxy validates, plus listener clashes it found only at bind."""
    period, minimum = config.ipvs_sync_period, config.ipvs_min_sync_period
    if period <= 0:
        raise ConfigError(
            f"{origin('ipvs_sync_period')}: must be greater than 0 (got {_dur(period)})"
        )
    if minimum < 0:
        raise ConfigError(f"{origin('ipvs_min_sync_period')}: must not be negative")
    if minimum > period:
        raise ConfigError(
            f"{origin('ipvs_min_sync_period')} ({_dur(minimum)}) must not be longer than "
            f"{origin('ipvs_sync_period')} ({_dur(period)})"
        )
    for name in ("ipvs_tcp_timeout", "ipvs_tcpfin_timeout", "ipvs_udp_timeout"):
        if getattr(config, name) < 0:
            raise ConfigError(f"{origin(name)}: must not be negative (0 keeps the kernel's)")
    if config.ipvs_drain_timeout < 0:
        raise ConfigError(
            f"{origin('ipvs_drain_timeout')}: must not be negative (0 deletes a removed real "
            "server at once)"
        )
    if config.verbosity < 0:
        raise ConfigError(f"{origin('verbosity')}: must not be negative")
    if not 0 <= config.masquerade_bit <= 31:
        raise ConfigError(f"{origin('masquerade_bit')}: must be within the range [0, 31]")
    for mode, name in (
        ("BridgeInterface", "pod_bridge_interface"),
        ("InterfaceNamePrefix", "pod_interface_name_prefix"),
    ):
        if config.detect_local_mode == mode and not getattr(config, name):
            raise ConfigError(
                f"{origin(name)}: must not be empty with "
                f"{origin('detect_local_mode')}={mode} (it names the pods' interface)"
            )
    healthz, metrics = config.healthz_bind_address, config.metrics_bind_address
    if healthz and metrics and _listeners_clash(healthz, metrics):
        raise ConfigError(
            f"{origin('healthz_bind_address')} ({healthz}) and "
            f"{origin('metrics_bind_address')} ({metrics}) would listen on the same port"
        )
    _check_conntrack(config, origin)


# kube-proxy's conntrack counts are int32 fields (its flags refuse more, its file too).
_CONNTRACK_COUNTS = ("conntrack_max_per_core", "conntrack_min")
_CONNTRACK_TIMEOUTS = (
    "conntrack_tcp_timeout_established",
    "conntrack_tcp_timeout_close_wait",
    "conntrack_udp_timeout",
    "conntrack_udp_timeout_stream",
)


def _check_conntrack(config: ProxyConfig, origin: Callable[[str], str]) -> None:
    """kube-proxy's validation: no negative count or timeout (0 leaves the kernel's value)."""
    for name in _CONNTRACK_COUNTS:
        count: int = getattr(config, name)
        if not 0 <= count <= 2**31 - 1:
            raise ConfigError(
                f"{origin(name)}: {count} is out of range (0 to 2147483647; 0 leaves the "
                "kernel's nf_conntrack_max)"
            )
    for name in _CONNTRACK_TIMEOUTS:
        if getattr(config, name) < 0:
            raise ConfigError(f"{origin(name)}: must not be negative (0 keeps the kernel's)")


def _listeners_clash(first: str, second: str) -> bool:
    host_a, _, port_a = first.rpartition(":")
    host_b, _, port_b = second.rpartition(":")
    wildcards = {"0.0.0.0", "[::]"}
    return port_a == port_b and (host_a == host_b or host_a in wildcards or host_b in wildcards)


def _doubts(config: ProxyConfig, origin: Callable[[str], str]) -> list[str]:
    """Legal settings that deserve a warning in the log."""
    doubts: list[str] = []
    for name in ("ipvs_tcp_timeout", "ipvs_tcpfin_timeout", "ipvs_udp_timeout"):
        seconds: float = getattr(config, name)
        if seconds != int(seconds):
            doubts.append(
                f"{origin(name)} ({_dur(seconds)}): IPVS counts whole seconds, so "
                f"{int(seconds)}s is set{' (the kernel value is kept)' if seconds < 1 else ''}, "
                "as kube-proxy did"
            )
    for name in _CONNTRACK_TIMEOUTS:
        seconds = getattr(config, name)
        if seconds != int(seconds):
            doubts.append(
                f"{origin(name)} ({_dur(seconds)}): conntrack counts whole seconds, so "
                + (f"{int(seconds)}s is set" if seconds >= 1 else "the kernel's value is kept")
            )
    if config.ipvs_scheduler not in KNOWN_SCHEDULERS:
        doubts.append(
            f"{origin('ipvs_scheduler')}: {config.ipvs_scheduler!r} is not a stock kernel "
            f"scheduler ({', '.join(sorted(KNOWN_SCHEDULERS))}); the kernel refuses virtual "
            f"servers unless module ip_vs_{config.ipvs_scheduler} exists"
        )
    if config.nodeport_addresses.includes_loopback():
        doubts.append(
            f"{origin('nodeport_addresses')}: NodePorts are never served on loopback "
            "addresses in IPVS mode (kube-proxy's IPVS mode did not either)"
        )
    return doubts


def _dur(seconds: float) -> str:
    return format_go_duration(seconds)
