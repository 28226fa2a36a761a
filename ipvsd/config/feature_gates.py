"""kube-proxy's feature gates (`--feature-gates`, the config file's `featureGates`).

ipvsd follows the gates that change what a proxy programs; each maps to a `ProxyConfig`
field. Only one exists so far:

- `AllowServiceExternalIPs` (KEP-5707; deprecated, default true since v1.36, planned to
  default to false in v1.40): when false, kube-proxy programs nothing for `spec.externalIPs`,
  and neither does ipvsd.

kube-proxy's other gates concern its own modes (iptables, nftables, Windows) or features
ipvsd has anyway: they are accepted and named in one message, as kube-proxy's unused flags
and fields are.
A malformed `--feature-gates` value is an error, as it is for kube-proxy.
"""

from __future__ import annotations

from collections.abc import Mapping

from ipvsd.config.settings import Layer
from ipvsd.config.values import ConfigError, parse_go_bool, split_list

GATE_FIELDS = {"AllowServiceExternalIPs": "allow_service_external_ips"}


def parse_feature_gates(text: str, name: str) -> dict[str, bool]:
    """pflag's map of gates: `Gate1=true,Gate2=false` (spaces around items are ignored)."""
    gates: dict[str, bool] = {}
    for item in split_list(text):
        gate, equals, value = item.partition("=")
        if not equals or not gate.strip():
            raise ConfigError(f"{name}: {item!r} is not GATE=true or GATE=false")
        gates[gate.strip()] = parse_go_bool(value.strip(), f"{name} {gate.strip()}")
    return gates


def apply_feature_gates(layer: Layer, gates: Mapping[str, bool], origin: str) -> list[str]:
    """Set the fields of the gates ipvsd follows; return the others as `Gate=value` items
    (for the caller's message: a warning for the flag, a note for the config file, as
    kube-proxy's other unused flags and fields are)."""
    ignored = []
    for gate, enabled in gates.items():
        field_name = GATE_FIELDS.get(gate)
        if field_name is None:
            ignored.append(f"{gate}={str(enabled).lower()}")
        else:
            layer.set(field_name, enabled, f"{origin} {gate}")
    return ignored
