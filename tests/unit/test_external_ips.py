"""Which Service externalIPs are served: --service-external-ip-range and the
AllowServiceExternalIPs feature gate (KEP-5707), from the flags and file to the plan."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_network
from pathlib import Path

import pytest

from ipvsd.config.command_line import ParsedCommand, parse_args
from ipvsd.config.kube_proxy_configuration import layer_from_document
from ipvsd.config.settings import ProxyConfig
from ipvsd.config.values import ConfigError
from ipvsd.explain import explain_context, render
from ipvsd.model.endpoint import Endpoint, EndpointPort, EndpointSlice
from ipvsd.model.firewall import FirewallConfig
from ipvsd.model.ipvs import Family, Protocol, parse_address
from ipvsd.model.node import Node
from ipvsd.model.service import Service, ServicePort, ServiceRef, ServiceType, TrafficPolicy
from ipvsd.plan.context import NodeContext
from ipvsd.plan.desired import VipKind, desired_service
from ipvsd.plan.external_ips import ExternalIPPolicy
from ipvsd.plan.firewall import firewall_for

ROUTED = parse_address("192.0.2.5")  # inside the allowed range
FOREIGN = parse_address("203.0.113.7")  # someone else's address
ROUTED_V6 = parse_address("2001:db8::5")
RANGES = (ip_network("192.0.2.0/24"), ip_network("2001:db8::/64"))
REF = ServiceRef("default", "web")


def web(*external_ips: str, **changes: object) -> Service:
    fields: dict[str, object] = {
        "ref": REF, "uid": "web", "type": ServiceType.CLUSTER_IP,
        "cluster_ips": (parse_address("10.96.0.10"),),
        "ports": (ServicePort("http", Protocol.TCP, 80),),
        "external_ips": tuple(parse_address(ip) for ip in external_ips),
    }  # fmt: skip
    fields.update(changes)
    return Service(**fields)  # type: ignore[arg-type]


SLICE = EndpointSlice(
    "default", "web-1", REF, Family.INET, (EndpointPort("http", Protocol.TCP, 8080),),
    (Endpoint(parse_address("10.244.1.5"), node_name="node-a"),),
)  # fmt: skip


def context(policy: ExternalIPPolicy) -> NodeContext:
    return NodeContext(name="node-a", families=(Family.INET, Family.INET6), external_ips=policy)


# --- the policy -----------------------------------------------------------------------------


def test_by_default_every_external_ip_is_served_as_kube_proxy_does() -> None:
    policy = ExternalIPPolicy()
    assert policy.admitted((FOREIGN, ROUTED)) == (FOREIGN, ROUTED)
    assert policy.warnings((FOREIGN, ROUTED)) == ()


def test_ranges_admit_only_addresses_inside_them_of_either_family() -> None:
    policy = ExternalIPPolicy(ranges=RANGES)
    assert policy.admitted((FOREIGN, ROUTED, ROUTED_V6)) == (ROUTED, ROUTED_V6)
    assert policy.warnings((FOREIGN, ROUTED, ROUTED_V6)) == (
        "spec.externalIPs: 203.0.113.7 is outside --service-external-ip-range (192.0.2.0/24, "
        "2001:db8::/64); it is not served (no virtual server, address or firewall entry on "
        "this node)",
    )


def test_the_gate_off_serves_none_and_says_so_once() -> None:
    policy = ExternalIPPolicy(allowed=False, ranges=RANGES)
    assert policy.admitted((ROUTED, FOREIGN)) == ()
    assert policy.warnings((ROUTED, FOREIGN)) == (
        "spec.externalIPs not served (192.0.2.5, 203.0.113.7): the feature gate "
        "AllowServiceExternalIPs is false on this proxy (KEP-5707: externalIPs are "
        "deprecated; use a LoadBalancer Service)",
    )
    assert policy.warnings(()) == ()


# --- the plan -------------------------------------------------------------------------------


def test_an_external_ip_outside_the_ranges_gets_no_server_no_address_and_no_firewall_entry() -> (
    None
):
    service = web("192.0.2.5", "203.0.113.7")
    desired = desired_service(service, [SLICE], context(ExternalIPPolicy(ranges=RANGES)))
    external = [d.server.key for d in desired.virtual_servers if d.kind is VipKind.EXTERNAL_IP]
    assert [str(key) for key in external] == ["TCP 192.0.2.5:80"]
    assert FOREIGN not in desired.bound_addresses
    assert ROUTED in desired.bound_addresses
    firewall = firewall_for([(service, desired)], FirewallConfig())
    assert FOREIGN not in firewall.vips
    assert all(FOREIGN not in element for element in firewall.masquerade_ports)
    assert desired.external_ip_warnings == ExternalIPPolicy(ranges=RANGES).warnings((FOREIGN,))
    assert desired.warnings == ()  # not an annotation problem: its own Event reason


def test_without_ranges_the_same_service_serves_both() -> None:
    desired = desired_service(web("192.0.2.5", "203.0.113.7"), [SLICE], context(ExternalIPPolicy()))
    assert {FOREIGN, ROUTED} <= set(desired.bound_addresses)
    assert desired.external_ip_warnings == ()


def test_with_the_gate_off_external_ips_do_not_make_etp_local_apply() -> None:
    """kube-proxy's ExternalIPs() is empty with the gate off, so a ClusterIP Service whose only
    external exposure was an externalIP is not externally accessible: its ClusterIP keeps the
    cluster set and nothing is planned for the address."""
    service = web("192.0.2.5", external_traffic_policy=TrafficPolicy.LOCAL)
    desired = desired_service(service, [SLICE], context(ExternalIPPolicy(allowed=False)))
    assert [d.kind for d in desired.virtual_servers] == [VipKind.CLUSTER_IP]
    assert desired.bound_addresses == (parse_address("10.96.0.10"),)
    assert len(desired.external_ip_warnings) == 1


# --- flags and the config file ----------------------------------------------------------------


def parse(*argv: str) -> ParsedCommand:
    return parse_args(argv, environ={"NODE_NAME": "node-a"}, gethostname=lambda: "host-a")


def test_the_range_flag_takes_cidrs_with_commas_and_repeats() -> None:
    parsed = parse(
        "--service-external-ip-range=2001:db8::/64,192.0.2.0/24",
        "--service-external-ip-range",
        "198.51.100.0/24",
    )
    assert parsed.config.service_external_ip_ranges == (
        ip_network("192.0.2.0/24"), ip_network("198.51.100.0/24"), ip_network("2001:db8::/64"),
    )  # fmt: skip
    assert parsed.warnings == ()


def test_a_bad_range_names_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"^--service-external-ip-range: "):
        parse("--service-external-ip-range=192.0.2.0/33")


def test_defaults_serve_every_external_ip() -> None:
    config = parse().config
    assert (config.allow_service_external_ips, config.service_external_ip_ranges) == (True, ())


def test_the_feature_gate_flag_sets_allow_service_external_ips() -> None:
    parsed = parse("--feature-gates=AllowServiceExternalIPs=false")
    assert parsed.config.allow_service_external_ips is False
    assert parsed.warnings == ()
    assert parse(
        "--feature-gates", "AllowServiceExternalIPs=true"
    ).config.allow_service_external_ips


def test_other_feature_gates_are_warned_about_and_repeats_merge() -> None:
    parsed = parse(
        "--feature-gates=TopologyAwareHints=true, AllowServiceExternalIPs=false",
        "--feature-gates=NFTablesProxyMode=true",
    )
    assert parsed.config.allow_service_external_ips is False
    assert parsed.warnings == (
        "--feature-gates=TopologyAwareHints=true,NFTablesProxyMode=true: ignored (kube-proxy's "
        "feature gates other than AllowServiceExternalIPs do not apply to ipvsd)",
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("AllowServiceExternalIPs", r"^--feature-gates: 'AllowServiceExternalIPs' is not GATE="),
        ("=true", r"^--feature-gates: '=true' is not GATE="),
        ("AllowServiceExternalIPs=no", r"^--feature-gates AllowServiceExternalIPs: 'no' is not"),
    ],
)
def test_a_malformed_feature_gate_flag_is_an_error(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(f"--feature-gates={value}")


def document(**fields: object) -> dict[str, object]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        **fields,
    }


def test_the_config_files_feature_gates_set_it_and_note_the_others() -> None:
    layer = layer_from_document(
        document(featureGates={"AllowServiceExternalIPs": False, "SomeGate": True}),
        source="kp.yaml",
    )
    assert layer.values == {"allow_service_external_ips": False}
    assert layer.notes == [
        "featureGates in kp.yaml: kube-proxy feature gates ignored: SomeGate=true"
    ]


def test_a_feature_gate_that_is_not_a_boolean_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"^featureGates in kp.yaml: AllowServiceExternalIPs: "):
        layer_from_document(
            document(featureGates={"AllowServiceExternalIPs": "false"}), source="kp.yaml"
        )


def test_a_flag_overrides_the_files_gate(tmp_path: Path) -> None:
    path = tmp_path / "kp.yaml"
    path.write_text(
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
        "featureGates:\n  AllowServiceExternalIPs: false\n"
    )
    parsed = parse(f"--config={path}", "--feature-gates=AllowServiceExternalIPs=true")
    assert parsed.config.allow_service_external_ips is True


# --- explain ----------------------------------------------------------------------------------


def test_explain_plans_with_the_flags_and_says_why_an_external_ip_is_not_served() -> None:
    config = ProxyConfig(node_name="node-a", service_external_ip_ranges=RANGES)
    node = Node("node-a")
    planned_for = explain_context(config, node, {})
    assert planned_for.external_ips == ExternalIPPolicy(ranges=RANGES)
    service = web("192.0.2.5", "203.0.113.7")
    text = render(service, desired_service(service, [SLICE], planned_for), planned_for)
    assert "  warning: spec.externalIPs: 203.0.113.7 is outside --service-external-ip-range" in text
    assert "TCP 192.0.2.5:80 (ExternalIP)" in text
    assert "203.0.113.7:80" not in text
    gate_off = explain_context(replace(config, allow_service_external_ips=False), node, {})
    assert gate_off.external_ips.allowed is False
