"""kube-proxy's config file (`--config`): a KubeProxyConfiguration read as IPVS mode reads it.

Only `kubeproxy.config.k8s.io/v1alpha1` exists in released kube-proxy (v1alpha2 was proposed
in KEP-784 and never merged), so that is the one version accepted. In IPVS mode kube-proxy
takes the sync periods from `ipvs.*` and masquerade-all from `iptables.masqueradeAll`;
ipvsd does the same whatever `mode` says, and warns when `mode` is not ipvs.

Go zero values (`""`, `0s`, `false`, null, empty lists) mean "not set", as kube-proxy's
defaulting reads them: `ipvs.syncPeriod: 0s` is 30s, not an error. The exceptions are the
fields v1alpha1 declares as pointers (`conntrack.maxPerCore`, `min`, `tcpEstablishedTimeout`,
`tcpCloseWaitTimeout`): there null (or absent) means kube-proxy's default and 0 is a value,
"leave the kernel's setting", so a kubeadm file full of nulls sets what kube-proxy set. Values
of the wrong YAML type are errors, as they are for kube-proxy's decoder.

Operators' files carry many fields ipvsd has no use for (oomScoreAdj, winkernel, nftables,
...): those are listed in one note. Fields kube-proxy does not know are a warning (likely
typos); fields of the unreleased layout (a top-level `syncPeriod`, `linux.masqueradeAll`) are
a warning naming the v1alpha1 field to use instead: kube-proxy ignored them, so does ipvsd.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from ipaddress import ip_address
from pathlib import Path
from typing import TypeVar

import yaml

from ipvsd.config.feature_gates import apply_feature_gates
from ipvsd.config.settings import DEFAULT_HEALTHZ_PORT, DEFAULT_METRICS_PORT, Layer, file_field_of
from ipvsd.config.values import (
    ConfigError,
    parse_bind_address,
    parse_cidrs,
    parse_cluster_cidrs,
    parse_detect_local_mode,
    parse_go_duration,
    parse_hostname_override,
    parse_interface_name,
    parse_log_format,
    parse_nodeport_addresses,
    parse_scheduler,
    split_list,
)

API_VERSION = "kubeproxy.config.k8s.io/v1alpha1"
KIND = "KubeProxyConfiguration"

_UNSET = object()  # a converter's answer for a Go zero value: the default applies
Converter = Callable[[object, str], object]
_T = TypeVar("_T")


def load_config_file(path: str) -> Layer:
    """The settings of the KubeProxyConfiguration at `path` (ConfigError if unusable)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"--config: cannot read {path}: {reason}") from None
    return layer_from_yaml(text, source=path)


def layer_from_yaml(text: str, *, source: str) -> Layer:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"--config: {source} is not valid YAML{where}") from None
    return layer_from_document(document, source=source)


def layer_from_document(document: object, *, source: str) -> Layer:
    """The settings of a decoded KubeProxyConfiguration; `source` names it in messages."""
    if not isinstance(document, dict):
        raise ConfigError(f"--config: {source} does not hold a KubeProxyConfiguration object")
    for key, wanted in (("apiVersion", API_VERSION), ("kind", KIND)):
        if document.get(key) != wanted:
            raise ConfigError(
                f"{key} in {source}: {document.get(key)!r} is not supported; "
                f"ipvsd reads apiVersion {API_VERSION}, kind {KIND}, as kube-proxy does"
            )
    reader = _Reader(source)
    reader.read(document, prefix="")
    return reader.finish()


# --- converters from YAML values -----------------------------------------------------------


def _typed(value: object, kind: type[_T], name: str, expected: str) -> _T:
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{name}: must be {expected}, not {value!r}")


def _text(value: object, name: str) -> object:
    if value is None:
        return _UNSET
    return _typed(value, str, name, "a string") or _UNSET


def _string_list(value: object, name: str) -> list[str]:
    if value is None:
        return []
    items = _typed(value, list, name, "a list of strings")
    return [_typed(item, str, name, "a list of strings") for item in items]


def _boolean(value: object, name: str) -> object:
    if value is None:
        return _UNSET
    return True if _typed(value, bool, name, "true or false") else _UNSET


def _duration(value: object, name: str) -> object:
    if value is None:
        return _UNSET
    text = _typed(value, str, name, 'a duration string such as "30s" or "1m30s"')
    seconds = parse_go_duration(text, name) if text else 0.0
    return seconds if seconds != 0 else _UNSET


def _count(value: object, name: str) -> object:
    """A pointer-typed int32 (`conntrack.maxPerCore`): null is unset, 0 is a value."""
    if value is None:
        return _UNSET
    return _typed(value, int, name, "an integer")


def _optional_duration(value: object, name: str) -> object:
    """A pointer-typed duration (`conntrack.tcpEstablishedTimeout`): null is unset, 0s a value."""
    if value is None:
        return _UNSET
    text = _typed(value, str, name, 'a duration string such as "30s" or "1m30s"')
    return parse_go_duration(text, name) if text else 0.0


def _from_text(parse: Callable[[str, str], object], value: object, name: str) -> object:
    text = _text(value, name)
    return parse(text, name) if isinstance(text, str) else _UNSET


def _from_list(parse: Callable[[list[str], str], object], value: object, name: str) -> object:
    items = _string_list(value, name)
    return parse(items, name) if items else _UNSET


def _cluster_cidrs(value: object, name: str) -> object:
    text = _text(value, name)
    return parse_cluster_cidrs(split_list(text), name) if isinstance(text, str) else _UNSET


def _hostname(value: object, name: str) -> object:
    text = _text(value, name)
    override = parse_hostname_override(text, name) if isinstance(text, str) else None
    return override if override is not None else _UNSET


def _masquerade_bit(value: object, name: str) -> object:
    """A pointer field in v1alpha1: null is the default (14), and 0 is bit 0."""
    if value is None:
        return _UNSET
    bit = _typed(value, int, name, "an integer within [0, 31]")
    if not 0 <= bit <= 31:
        raise ConfigError(f"{name}: must be within the range [0, 31], not {bit}")
    return bit


def _verbosity(value: object, name: str) -> object:
    if value is None:
        return _UNSET
    level = _typed(value, int, name, "a non-negative integer")
    if level < 0:
        raise ConfigError(f"{name}: must be a non-negative integer, not {level}")
    return level or _UNSET


_APPLIED: dict[str, Converter] = {
    "kubeconfig": _text,
    "hostname_override": _hostname,
    "cluster_cidrs": _cluster_cidrs,
    "masquerade_all": _boolean,
    "masquerade_bit": _masquerade_bit,
    "detect_local_mode": partial(_from_text, parse_detect_local_mode),
    "pod_bridge_interface": partial(_from_text, parse_interface_name),
    "pod_interface_name_prefix": partial(_from_text, parse_interface_name),
    "nodeport_addresses": partial(_from_list, parse_nodeport_addresses),
    "ipvs_scheduler": partial(_from_text, parse_scheduler),
    "ipvs_sync_period": _duration,
    "ipvs_min_sync_period": _duration,
    "ipvs_exclude_cidrs": partial(_from_list, parse_cidrs),
    "ipvs_strict_arp": _boolean,
    "ipvs_tcp_timeout": _duration,
    "ipvs_tcpfin_timeout": _duration,
    "ipvs_udp_timeout": _duration,
    "healthz_bind_address": partial(
        _from_text, partial(parse_bind_address, default_port=DEFAULT_HEALTHZ_PORT)
    ),
    "metrics_bind_address": partial(
        _from_text, partial(parse_bind_address, default_port=DEFAULT_METRICS_PORT)
    ),
    "verbosity": _verbosity,
    "logging_format": partial(_from_text, parse_log_format),
    "conntrack_max_per_core": _count,
    "conntrack_min": _count,
    "conntrack_tcp_timeout_established": _optional_duration,
    "conntrack_tcp_timeout_close_wait": _optional_duration,
    "conntrack_tcp_be_liberal": _boolean,
    "conntrack_udp_timeout": _duration,
    "conntrack_udp_timeout_stream": _duration,
}


def _path_of(name: str) -> str:
    path = file_field_of(name)
    if path is None:
        raise LookupError(f"ProxyConfig.{name} has no config-file field")
    return path


_FIELD_AT = {_path_of(name): name for name in _APPLIED}

# --- the rest of v1alpha1, and what is not in it --------------------------------------------

_SECTIONS = frozenset(
    {"clientConnection", "logging", "iptables", "ipvs", "nftables", "detectLocal", "conntrack"}
)
# Known to kube-proxy, not used by ipvsd (a whole subtree where the path is a section).
_UNUSED = frozenset(
    {
        "bindAddressHardFail",
        "enableProfiling",
        "showHiddenMetricsForVersion",
        "winkernel",
        "oomScoreAdj",
        "conntrack.max",  # removed from v1alpha1 (1.19); older kubeadm files still carry it
        "configSyncPeriod",
        "portRange",
        "udpIdleTimeout",
        "windowsRunAsService",
        "clientConnection.acceptContentTypes",
        "clientConnection.contentType",
        "clientConnection.qps",
        "clientConnection.burst",
        "logging.flushFrequency",
        "logging.vmodule",
        "logging.options",
        "iptables.localhostNodePorts",
        "iptables.snatNodeInternalIP",
        "iptables.syncPeriod",
        "iptables.minSyncPeriod",
        "nftables.masqueradeBit",
        "nftables.masqueradeAll",
        "nftables.syncPeriod",
        "nftables.minSyncPeriod",
    }
)
# Fields of kube-proxy's internal (and the unreleased v1alpha2) layout that people put in
# v1alpha1 files: kube-proxy's decoder drops them, so the value never took effect.
_MISPLACED = {
    "syncPeriod": "ipvs.syncPeriod",
    "minSyncPeriod": "ipvs.minSyncPeriod",
    "masqueradeAll": "iptables.masqueradeAll",
    "ipvs.masqueradeAll": "iptables.masqueradeAll",
    "linux": "iptables.masqueradeAll, conntrack or oomScoreAdj",
    "healthzBindAddresses": "healthzBindAddress",
    "healthzBindPort": "healthzBindAddress",
    "metricsBindAddresses": "metricsBindAddress",
    "metricsBindPort": "metricsBindAddress",
    "detectLocal.clusterCIDRs": "clusterCIDR",
}


class _Reader:
    """One pass over a document, collecting settings, notes and warnings into a Layer."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.layer = Layer()
        self.unused: list[str] = []
        self.unknown: list[str] = []
        self.bind_address_v6 = False
        self._special: dict[str, Callable[[object, str], None]] = {
            "apiVersion": lambda value, name: None,
            "kind": lambda value, name: None,
            "mode": self._mode,
            "bindAddress": self._bind_address,
            "featureGates": self._feature_gates,
        }

    def read(self, section: Mapping[object, object], *, prefix: str) -> None:
        for key, value in section.items():
            path = f"{prefix}{key}"
            name = f"{path} in {self.source}"
            if path in _FIELD_AT:
                converted = _APPLIED[_FIELD_AT[path]](value, name)
                if converted is not _UNSET:
                    self.layer.set(_FIELD_AT[path], converted, name)
            elif path in self._special:
                self._special[path](value, name)
            elif path in _SECTIONS:
                if value is not None:
                    mapping = _typed(value, dict, name, "a mapping")
                    self.read(mapping, prefix=f"{path}.")
            elif path in _MISPLACED:
                self.layer.warnings.append(
                    f"{name}: not a field of {API_VERSION}, so kube-proxy ignored it and so "
                    f"does ipvsd; use {_MISPLACED[path]}"
                )
            elif path in _UNUSED:
                if not _is_zero(value):
                    self.unused.append(path)
            else:
                self.unknown.append(path)

    def finish(self) -> Layer:
        if self.bind_address_v6:
            # kube-proxy's defaults follow bindAddress's family (v1alpha1 defaulting).
            for name, default in (
                ("healthz_bind_address", f"[::]:{DEFAULT_HEALTHZ_PORT}"),
                ("metrics_bind_address", f"[::1]:{DEFAULT_METRICS_PORT}"),
            ):
                if name not in self.layer.values:
                    self.layer.set(name, default, f"bindAddress in {self.source}")
        if self.unknown:
            self.layer.warnings.append(
                f"{self.source}: fields unknown to kube-proxy's {KIND} ignored "
                f"(misspelt?): {', '.join(self.unknown)}"
            )
        if self.unused:
            self.layer.notes.append(
                f"{self.source}: kube-proxy settings ipvsd does not use: {', '.join(self.unused)}"
            )
        return self.layer

    def _mode(self, value: object, name: str) -> None:
        mode = _typed(value, str, name, "a string") if value is not None else ""
        if mode not in ("", "ipvs"):
            self.layer.warnings.append(
                f"{name}: {mode!r}: ipvsd programs IPVS only; it reads the ipvs section and "
                "iptables.masqueradeAll, as kube-proxy's ipvs mode does"
            )

    def _bind_address(self, value: object, name: str) -> None:
        text = _typed(value, str, name, "an IP address") if value is not None else ""
        if not text:
            return
        try:
            address = ip_address(text)
        except ValueError:
            raise ConfigError(f"{name}: {text!r} is not an IP address") from None
        self.bind_address_v6 = address.version == 6
        if not address.is_unspecified:
            self.layer.notes.append(
                f"{name}: kube-proxy took {text} as this node's primary IP; ipvsd takes the "
                "Node object's addresses"
            )

    def _feature_gates(self, value: object, name: str) -> None:
        expected = "a mapping of gate names to true or false"
        gates = _typed(value, dict, name, expected) if value else {}
        checked = {
            str(gate): _typed(on, bool, f"{name}: {gate}", "true or false")
            for gate, on in gates.items()
        }
        ignored = apply_feature_gates(self.layer, checked, name)
        if ignored:
            listed = ", ".join(ignored)
            self.layer.notes.append(f"{name}: kube-proxy feature gates ignored: {listed}")


def _is_zero(value: object) -> bool:
    """Go's zero value: what an omitted field decodes to (dumped defaults are not news)."""
    if isinstance(value, dict):
        return all(_is_zero(item) for item in value.values())
    return value in (None, "", "0", "0s", []) or (isinstance(value, int | float) and value == 0)
