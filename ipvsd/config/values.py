"""Setting values spelled the way kube-proxy spells them, parsed into typed values.

Operators bring kube-proxy's flags and config file along (user-asks row 15), so each value is
read with Go's rules, not Python's: durations are Go durations (`1m30s`, `500ms`), booleans
are `strconv.ParseBool` spellings, CIDRs may have host bits set (Go's `ParseCIDR` keeps only
the network), bind addresses are `IP:port` or a bare IP that gets the default port.

Every parser takes the `name` of the flag or file field the text came from and raises
`ConfigError` with that name first, so the operator knows which line of a DaemonSet or a
ConfigMap to fix. Parsers check syntax only; ranges and relations between settings are checked
once the sources are merged (`ipvsd.config.settings`), where the winning source is known.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import Literal, get_args

from ipvsd.model.ipvs import IPAddress, format_endpoint
from ipvsd.model.service import IPNetwork

TopologySource = Literal["hints", "spec", "auto"]
TOPOLOGY_SOURCES: tuple[TopologySource, ...] = get_args(TopologySource)
LogFormat = Literal["text", "json"]  # component-base's formats that kube-proxy registers
LOG_FORMATS: tuple[LogFormat, ...] = get_args(LogFormat)
# kube-proxy's --detect-local-mode: how traffic from this node's pods is told from the rest.
DetectLocalMode = Literal["ClusterCIDR", "NodeCIDR", "BridgeInterface", "InterfaceNamePrefix"]
DETECT_LOCAL_MODES: tuple[DetectLocalMode, ...] = get_args(DetectLocalMode)

ALL_ADDRESSES = (IPv4Network("0.0.0.0/0"), IPv6Network("::/0"))
LOOPBACK = (IPv4Network("127.0.0.0/8"), IPv6Network("::1/128"))


class ConfigError(ValueError):
    """A setting ipvsd cannot run with; the message starts with the flag or file field."""


# --- Go durations and booleans ------------------------------------------------------------

_NS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign, as Go accepts
    "\u03bcs": 1_000,  # Greek small mu, as Go accepts
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_UNIT = "|".join(sorted(_NS_PER_UNIT, key=len, reverse=True))
_DURATION = re.compile(rf"[-+]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:{_UNIT}))+")
_DURATION_PART = re.compile(rf"([0-9]*)\.?([0-9]*)({_UNIT})")
_MAX_NS = 2**63 - 1  # Go's time.Duration is an int64 of nanoseconds


def parse_go_duration(text: str, name: str) -> float:
    """Seconds from a Go duration (`time.ParseDuration`): `30s`, `1m30s`, `1.5h`, `-2s`, `0`.

    A unit is required except for a plain `0`, as in Go; fractions below a nanosecond are
    dropped, as Go drops them.
    """
    body = text.strip()
    sign = -1 if body.startswith("-") else 1
    if body.lstrip("+-") == "0":
        return 0.0
    if not _DURATION.fullmatch(body):
        raise ConfigError(
            f"{name}: {text!r} is not a duration; use Go's syntax, such as 30s, 1m30s, 500ms or 2h"
        )
    nanoseconds = 0
    for whole, fraction, unit in _DURATION_PART.findall(body):
        scale = _NS_PER_UNIT[unit]
        nanoseconds += int(whole or "0") * scale
        if fraction:
            nanoseconds += int(fraction) * scale // 10 ** len(fraction)
    if nanoseconds > _MAX_NS:
        raise ConfigError(f"{name}: {text!r} is longer than a Go duration can be (about 292y)")
    return sign * nanoseconds / 1e9


def format_go_duration(seconds: float) -> str:
    """Go's `Duration.String()`: `0s`, `500ms`, `1.5s`, `1m30s`, `2h0m0s` (for messages)."""
    nanoseconds = round(abs(seconds) * 1e9)
    sign = "-" if seconds < 0 and nanoseconds else ""
    if nanoseconds == 0:
        return "0s"
    if nanoseconds < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("\u00b5s", 1_000), ("ns", 1)):
            if nanoseconds >= size:
                return f"{sign}{_trimmed(nanoseconds, size)}{unit}"
    whole_seconds, _ = divmod(nanoseconds, 1_000_000_000)
    minutes, _ = divmod(whole_seconds, 60)
    hours, minutes = divmod(minutes, 60)
    secs = _trimmed(nanoseconds - (hours * 3600 + minutes * 60) * 1_000_000_000, 1_000_000_000)
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{sign}{minutes}m{secs}s"
    return f"{sign}{secs}s"


def _trimmed(value: int, unit: int) -> str:
    whole, rest = divmod(value, unit)
    if not rest:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{rest:0{digits}d}".rstrip("0")


_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
GO_BOOL_SPELLINGS = _GO_TRUE | _GO_FALSE


def parse_go_bool(text: str, name: str) -> bool:
    """A boolean as Go's `strconv.ParseBool` reads it (what pflag uses for `--flag=VALUE`)."""
    if text in _GO_TRUE:
        return True
    if text in _GO_FALSE:
        return False
    raise ConfigError(f"{name}: {text!r} is not a boolean; use true or false")


# --- lists and networks ---------------------------------------------------------------------


def split_list(text: str) -> list[str]:
    """Items of a comma-separated flag value, trimmed; empty items are dropped."""
    return [item.strip() for item in text.split(",") if item.strip()]


_DIGITS = re.compile(r"[0-9]{1,5}")


def parse_cidr(text: str, name: str) -> IPNetwork:
    """One CIDR; host bits are allowed and cleared (`10.0.0.1/8` is 10.0.0.0/8), as in Go."""
    address, slash, prefix = text.strip().partition("/")
    if slash and _DIGITS.fullmatch(prefix) and "%" not in address:
        try:
            return ip_network(f"{address}/{prefix}", strict=False)
        except ValueError:
            pass
    raise ConfigError(f"{name}: {text!r} is not a CIDR, such as 10.96.0.0/12 or fd00::/108")


def parse_cidrs(items: Iterable[str], name: str) -> tuple[IPNetwork, ...]:
    """Several CIDRs, without duplicates, IPv4 first then by address (stable equality)."""
    return sorted_networks(parse_cidr(item, name) for item in items)


def parse_cluster_cidrs(items: Iterable[str], name: str) -> tuple[IPNetwork, ...]:
    """Pod CIDRs: one, or a dual-stack pair with one of each IP family (kube-proxy's rule)."""
    networks = parse_cidrs(items, name)
    if len(networks) > 2 or (len(networks) == 2 and networks[0].version == networks[1].version):
        given = ",".join(str(net) for net in networks)
        raise ConfigError(
            f"{name}: {given!r} must be one CIDR or one per IP family "
            "(a dual-stack pair such as 10.244.0.0/16,fd00:10:244::/56)"
        )
    return networks


def sorted_networks(networks: Iterable[IPNetwork]) -> tuple[IPNetwork, ...]:
    return tuple(
        sorted(set(networks), key=lambda n: (n.version, n.network_address.packed, n.prefixlen))
    )


@dataclass(frozen=True, slots=True)
class NodePortAddresses:
    """Which of the node's addresses serve NodePorts (kube-proxy's `--nodeport-addresses`).

    Nothing set means every node address. `primary` means the Node object's primary
    addresses (the first InternalIP of each family, else ExternalIP): the answer for nodes
    with many interfaces, where opening NodePorts on all of them is a surprise. Like
    kube-proxy, the selection is per IP family: a family with no CIDR (and no primary address)
    still serves NodePorts on all its addresses.
    """

    cidrs: tuple[IPNetwork, ...] = ()
    primary: bool = False

    def allows(self, address: IPAddress, *, primary_addresses: Iterable[IPAddress] = ()) -> bool:
        """Whether NodePorts are served on `address`, given the Node's primary addresses."""
        selectors = [net for net in self.cidrs if net.version == address.version]
        if self.primary:
            primary = [ip for ip in primary_addresses if ip.version == address.version]
            selectors += [ip_network(ip) for ip in primary]
        return not selectors or any(address in net for net in selectors)

    def includes_loopback(self) -> bool:
        return any(
            net.overlaps(lo) for net in self.cidrs for lo in LOOPBACK if lo.version == net.version
        )

    def __str__(self) -> str:
        words = ["primary"] if self.primary else []
        return ",".join(words + [str(net) for net in self.cidrs])


def parse_nodeport_addresses(items: Iterable[str], name: str) -> NodePortAddresses:
    """CIDRs and the keywords `primary`, `all` (0.0.0.0/0, ::/0), `localhost` (loopback)."""
    primary = False
    networks: list[IPNetwork] = []
    for item in items:
        if item == "primary":
            primary = True
        elif item == "all":
            networks += ALL_ADDRESSES
        elif item == "localhost":
            networks += LOOPBACK
        else:
            networks.append(parse_cidr(item, name))
    return NodePortAddresses(sorted_networks(networks), primary)


# --- addresses, ranges, names ---------------------------------------------------------------


def parse_bind_address(text: str, name: str, *, default_port: int) -> str:
    """`IP:port` in canonical form (`0.0.0.0:10256`, `[::]:10256`); a bare IP gets the port.

    kube-proxy takes the same spellings and, like it, only IP literals and ports 1-65535.
    """
    body = text.strip()
    try:
        return format_endpoint(ip_address(body), default_port)
    except ValueError:
        pass
    host, colon, port = body.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        host = ""  # IPv6 with a port needs brackets, as in Go
    try:
        address = ip_address(host) if colon and "%" not in host else None
    except ValueError:
        address = None
    if address is None or not _DIGITS.fullmatch(port) or not 1 <= int(port) <= 65535:
        raise ConfigError(
            f"{name}: {text!r} is not IP:port with a port in 1-65535, "
            "such as 0.0.0.0:10256 or [::]:10256"
        )
    return format_endpoint(address, int(port))


_PORT_RANGE = re.compile(r"([0-9]{1,5})(?:([-+])([0-9]{1,5}))?")


def parse_port_range(text: str, name: str) -> tuple[int, int]:
    """`30000-32767`, `30000+2767` or one port, as kube-apiserver's --service-node-port-range."""
    match = _PORT_RANGE.fullmatch(text.strip())
    if match:
        low = int(match[1])
        high = low if match[2] is None else int(match[3]) + (low if match[2] == "+" else 0)
        if 1 <= low <= high <= 65535:
            return (low, high)
    raise ConfigError(
        f"{name}: {text!r} is not a port range within 1-65535, such as 30000-32767 "
        "(use the API server's --service-node-port-range)"
    )


_SCHEDULER = re.compile(r"[a-z]{1,15}")


def parse_scheduler(text: str, name: str) -> str:
    """An IPVS scheduler module name (`rr`, `wlc`, `mh`, ...); empty means `rr`, as kube-proxy.

    Any name of 1-15 lowercase letters is accepted (the kernel's limit is 16 bytes with the
    NUL): a node may have scheduler modules beyond the stock ones.
    """
    body = text.strip()
    if not body:
        return "rr"
    if not _SCHEDULER.fullmatch(body):
        raise ConfigError(
            f"{name}: {text!r} is not an IPVS scheduler name (1-15 lowercase letters, "
            "such as rr, wrr, lc, wlc, sh, mh)"
        )
    return body


_LABEL_VALUE = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")


def parse_proxy_name(text: str, name: str) -> str:
    """The value Services put in `service.kubernetes.io/service-proxy-name` for ipvsd."""
    if not _LABEL_VALUE.fullmatch(text):
        raise ConfigError(
            f"{name}: {text!r} is not a label value (1-63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit)"
        )
    return text


def parse_service_names(items: Iterable[str], name: str) -> tuple[tuple[str, str], ...]:
    """NAMESPACE/NAME items as (namespace, name) pairs."""
    found = []
    for item in items:
        namespace, slash, service = item.partition("/")
        if not slash or not namespace or not service or "/" in service:
            raise ConfigError(f"{name}: {item!r} is not NAMESPACE/NAME")
        found.append((namespace, service))
    return tuple(found)


def parse_topology_source(text: str, name: str) -> TopologySource:
    for source in TOPOLOGY_SOURCES:
        if text == source:
            return source
    raise ConfigError(f"{name}: {text!r} is not one of {', '.join(TOPOLOGY_SOURCES)}")


def parse_detect_local_mode(text: str, name: str) -> DetectLocalMode:
    """kube-proxy's detect-local modes; empty means the default, ClusterCIDR, as in kube-proxy."""
    if not text.strip():
        return "ClusterCIDR"
    for mode in DETECT_LOCAL_MODES:
        if text.strip() == mode:
            return mode
    raise ConfigError(f"{name}: {text!r} is not one of {', '.join(DETECT_LOCAL_MODES)}")


_INTERFACE = re.compile(r"[A-Za-z0-9_.@+-]{1,15}")


def parse_interface_name(text: str, name: str) -> str:
    """A network interface name or name prefix (`cni0`, `veth`); empty means unset.

    kube-proxy only refuses an empty one where a mode needs it (checked with the other
    settings). ipvsd also refuses what no Linux interface can be called (longer than 15
    bytes, with '/', ':', whitespace or quotes): the name ends up in an nftables rule, and a
    name no interface has would match nothing there, silently.
    """
    body = text.strip()
    if body and (not _INTERFACE.fullmatch(body) or body in (".", "..")):
        raise ConfigError(
            f"{name}: {text!r} is not an interface name (1-15 letters, digits or '_.@+-', "
            "such as cni0 or veth)"
        )
    return body


def parse_masquerade_bit(text: str, name: str) -> int:
    """The mark bit kube-proxy's rules use for masquerade (`--iptables-masquerade-bit`)."""
    body = text.strip()
    if not re.fullmatch(r"[0-9]{1,2}", body) or int(body) > 31:
        raise ConfigError(f"{name}: {text!r} must be within the range [0, 31]")
    return int(body)


def parse_verbosity(text: str, name: str) -> int:
    """klog's `-v=N` level (a non-negative integer)."""
    if not re.fullmatch(r"[0-9]{1,9}", text.strip()):
        raise ConfigError(f"{name}: {text!r} is not a log verbosity (0, 1, 2, ... as klog's -v)")
    return int(text)


def parse_hostname_override(text: str, name: str) -> str | None:
    """kube-proxy's rule: trimmed and lowercased; empty means "not overridden".

    Only spaces is an error, as in kube-proxy ("empty hostname-override is invalid").
    """
    if text and not text.strip():
        raise ConfigError(f"{name}: {text!r} is blank; give the node's name or leave it unset")
    return text.strip().lower() or None


def parse_log_format(text: str, name: str) -> LogFormat:
    """`text` (klog's lines, the default) or `json` (component-base's JSON lines)."""
    for known in LOG_FORMATS:
        if text.strip() == known:
            return known
    raise ConfigError(f"{name}: {text!r} is not a log format (text or json, as kube-proxy's)")


def parse_int32(text: str, name: str) -> int:
    """A Go int32 as pflag's Int32Var reads it (decimal, optional sign)."""
    body = text.strip()
    if not re.fullmatch(r"[-+]?[0-9]+", body) or not -(2**31) <= int(body) < 2**31:
        raise ConfigError(f"{name}: {text!r} is not a 32-bit integer")
    return int(body)
