"""KubeProxyConfiguration files: every field ipvsd applies, Go zero values, what is warned."""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
import yaml

from ipvsd.config.kube_proxy_configuration import (
    layer_from_document,
    layer_from_yaml,
    load_config_file,
)
from ipvsd.config.settings import Layer, ProxyConfig, build_config
from ipvsd.config.values import ConfigError, NodePortAddresses

EXAMPLE = Path(__file__).parents[2] / "config" / "kube-proxy-config.example.yaml"
HEADER = {"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration"}


def read(**fields: Any) -> Layer:
    return layer_from_document({**HEADER, **fields}, source="kp.yaml")


def config_of(layer: Layer) -> ProxyConfig:
    config, _ = build_config([layer], environ={"NODE_NAME": "node-a"}, gethostname=lambda: "h")
    return config


@pytest.mark.parametrize(
    ("fields", "name", "value"),
    [
        ({"clientConnection": {"kubeconfig": "/kp/kubeconfig"}}, "kubeconfig", "/kp/kubeconfig"),
        ({"hostnameOverride": " Node-B "}, "hostname_override", "node-b"),
        ({"clusterCIDR": "10.244.0.0/16"}, "cluster_cidrs", (ip_network("10.244.0.0/16"),)),
        ({"clusterCIDR": "10.244.0.0/16,fd00::/56"}, "cluster_cidrs",
         (ip_network("10.244.0.0/16"), ip_network("fd00::/56"))),
        ({"iptables": {"masqueradeAll": True}}, "masquerade_all", True),
        ({"nodePortAddresses": ["10.0.0.0/8"]}, "nodeport_addresses",
         NodePortAddresses((ip_network("10.0.0.0/8"),))),
        ({"nodePortAddresses": ["primary"]}, "nodeport_addresses", NodePortAddresses((), True)),
        ({"ipvs": {"scheduler": "wlc"}}, "ipvs_scheduler", "wlc"),
        ({"ipvs": {"syncPeriod": "1m"}}, "ipvs_sync_period", 60.0),
        ({"ipvs": {"minSyncPeriod": "1s"}}, "ipvs_min_sync_period", 1.0),
        ({"ipvs": {"excludeCIDRs": ["192.0.2.0/24"]}}, "ipvs_exclude_cidrs",
         (ip_network("192.0.2.0/24"),)),
        ({"ipvs": {"strictARP": True}}, "ipvs_strict_arp", True),
        ({"ipvs": {"tcpTimeout": "15m"}}, "ipvs_tcp_timeout", 900.0),
        ({"ipvs": {"tcpFinTimeout": "30s"}}, "ipvs_tcpfin_timeout", 30.0),
        ({"ipvs": {"udpTimeout": "5m"}}, "ipvs_udp_timeout", 300.0),
        ({"healthzBindAddress": "10.0.0.1"}, "healthz_bind_address", "10.0.0.1:10256"),
        ({"metricsBindAddress": "0.0.0.0:9100"}, "metrics_bind_address", "0.0.0.0:9100"),
        ({"metricsBindAddress": "::"}, "metrics_bind_address", "[::]:10249"),
        ({"logging": {"verbosity": 4}}, "verbosity", 4),
        ({"logging": {"format": "json"}}, "logging_format", "json"),
        ({"conntrack": {"maxPerCore": 0}}, "conntrack_max_per_core", 0),
        ({"conntrack": {"min": 0}}, "conntrack_min", 0),
        ({"conntrack": {"tcpEstablishedTimeout": "0s"}}, "conntrack_tcp_timeout_established", 0.0),
        ({"conntrack": {"tcpCloseWaitTimeout": "30m"}}, "conntrack_tcp_timeout_close_wait", 1800.0),
        ({"conntrack": {"tcpBeLiberal": True}}, "conntrack_tcp_be_liberal", True),
        ({"conntrack": {"udpTimeout": "30s"}}, "conntrack_udp_timeout", 30.0),
        ({"conntrack": {"udpStreamTimeout": "2m"}}, "conntrack_udp_timeout_stream", 120.0),
    ],
)  # fmt: skip
def test_every_applied_field(fields: dict[str, Any], name: str, value: object) -> None:
    layer = read(**fields)
    assert layer.values == {name: value}
    assert getattr(config_of(layer), name) == value
    assert not layer.warnings


def test_origins_name_the_field_and_the_file() -> None:
    layer = read(ipvs={"syncPeriod": "1m"})
    assert layer.origins == {"ipvs_sync_period": "ipvs.syncPeriod in kp.yaml"}


@pytest.mark.parametrize(
    "fields",
    [
        {"ipvs": {"syncPeriod": "0s", "minSyncPeriod": "0s", "scheduler": "", "strictARP": False}},
        {"ipvs": {"syncPeriod": None, "excludeCIDRs": None, "tcpTimeout": "0"}},
        {"ipvs": None, "iptables": None, "clientConnection": None, "logging": None},
        {"clusterCIDR": "", "hostnameOverride": "", "nodePortAddresses": None},
        {"healthzBindAddress": "", "metricsBindAddress": "", "logging": {"verbosity": 0}},
        {"iptables": {"masqueradeAll": False}, "clientConnection": {"kubeconfig": ""}},
    ],
)
def test_go_zero_values_mean_kube_proxys_defaults(fields: dict[str, Any]) -> None:
    layer = read(**fields)
    assert layer.values == {}
    assert config_of(layer) == config_of(Layer())


def test_ipv6_bind_address_moves_the_default_listeners_as_kube_proxy() -> None:
    layer = read(bindAddress="::")
    assert config_of(layer).healthz_bind_address == "[::]:10256"
    assert config_of(layer).metrics_bind_address == "[::1]:10249"
    explicit = read(bindAddress="::", metricsBindAddress="[::]:10249")
    assert config_of(explicit).metrics_bind_address == "[::]:10249"
    assert config_of(read(bindAddress="0.0.0.0")) == config_of(Layer())


def test_a_specific_bind_address_is_noted_as_unused() -> None:
    (note,) = read(bindAddress="10.0.0.5").notes
    assert note.startswith("bindAddress in kp.yaml: kube-proxy took 10.0.0.5")


@pytest.mark.parametrize(
    ("mode", "warned"),
    [("ipvs", False), ("", False), (None, False), ("iptables", True), ("nftables", True)],
)
def test_modes_other_than_ipvs_are_warned(mode: str | None, warned: bool) -> None:
    warnings = read(mode=mode).warnings
    assert bool(warnings) is warned
    if warned:
        assert warnings[0].startswith(f"mode in kp.yaml: {mode!r}: ipvsd programs IPVS only")


@pytest.mark.parametrize(
    ("fields", "values"),
    [
        ({"detectLocalMode": "NodeCIDR"}, {"detect_local_mode": "NodeCIDR"}),
        ({"detectLocalMode": "", "detectLocal": {"bridgeInterface": ""}}, {}),
        ({"detectLocalMode": "BridgeInterface", "detectLocal": {"bridgeInterface": "cni0"}},
         {"detect_local_mode": "BridgeInterface", "pod_bridge_interface": "cni0"}),
        ({"detectLocal": {"interfaceNamePrefix": "veth"}},
         {"pod_interface_name_prefix": "veth"}),
        ({"iptables": {"masqueradeBit": 0}}, {"masquerade_bit": 0}),  # a pointer: 0 is bit 0
        ({"iptables": {"masqueradeBit": None}}, {}),
    ],
)  # fmt: skip
def test_detect_local_and_the_masquerade_bit_are_read(
    fields: dict[str, Any], values: dict[str, object]
) -> None:
    layer = read(**fields)
    assert (layer.values, layer.warnings) == (values, [])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"detectLocalMode": "PodCIDR"}, "detectLocalMode in kp.yaml: 'PodCIDR' is not one of "
                                         "ClusterCIDR, NodeCIDR, BridgeInterface"),
        ({"detectLocal": {"bridgeInterface": 'cni0"; drop'}},
         "detectLocal.bridgeInterface in kp.yaml: 'cni0\"; drop' is not an interface name"),
        ({"iptables": {"masqueradeBit": 32}},
         "iptables.masqueradeBit in kp.yaml: must be within the range [0, 31], not 32"),
        ({"iptables": {"masqueradeBit": "14"}},
         "iptables.masqueradeBit in kp.yaml: must be an integer within [0, 31], not '14'"),
    ],
)  # fmt: skip
def test_bad_detect_local_and_masquerade_bit_values_are_named(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        read(**fields)
    assert str(raised.value).startswith(message)


def test_unknown_fields_are_one_warning_naming_them() -> None:
    layer = read(ipvs={"schedular": "wrr", "scheduler": "wrr"}, clusterCidr="10.0.0.0/8")
    assert layer.warnings == [
        "kp.yaml: fields unknown to kube-proxy's KubeProxyConfiguration ignored (misspelt?): "
        "ipvs.schedular, clusterCidr"
    ]
    assert layer.values == {"ipvs_scheduler": "wrr"}


@pytest.mark.parametrize(
    ("fields", "path", "instead"),
    [
        ({"syncPeriod": "10s"}, "syncPeriod", "ipvs.syncPeriod"),
        ({"minSyncPeriod": "1s"}, "minSyncPeriod", "ipvs.minSyncPeriod"),
        ({"masqueradeAll": True}, "masqueradeAll", "iptables.masqueradeAll"),
        ({"ipvs": {"masqueradeAll": True}}, "ipvs.masqueradeAll", "iptables.masqueradeAll"),
        ({"linux": {"masqueradeAll": True}}, "linux", "iptables.masqueradeAll"),
        ({"healthzBindAddresses": ["0.0.0.0/0"]}, "healthzBindAddresses", "healthzBindAddress"),
        ({"detectLocal": {"clusterCIDRs": ["10.0.0.0/8"]}}, "detectLocal.clusterCIDRs",
         "clusterCIDR"),
    ],
)  # fmt: skip
def test_fields_of_the_unreleased_layout_are_warned_and_not_applied(
    fields: dict[str, Any], path: str, instead: str
) -> None:
    layer = read(**fields)
    assert layer.values == {}
    (warning,) = layer.warnings
    assert warning.startswith(f"{path} in kp.yaml: not a field of kubeproxy.config.k8s.io/v1alpha1")
    assert f"; use {instead}" in warning


def test_set_fields_ipvsd_does_not_use_are_one_note() -> None:
    layer = read(
        conntrack={"maxPerCore": 32768, "min": None, "max": None},
        oomScoreAdj=-999,
        portRange="",
        winkernel={"enableDSR": False},
        iptables={"syncPeriod": "30s"},
        featureGates={"SomeGate": True},
    )
    assert layer.notes == [
        "featureGates in kp.yaml: kube-proxy feature gates ignored: SomeGate=true",
        "kp.yaml: kube-proxy settings ipvsd does not use: oomScoreAdj, iptables.syncPeriod",
    ]
    assert not layer.warnings


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"ipvs": {"syncPeriod": 30}}, r"^ipvs.syncPeriod in kp.yaml: must be a duration string"),
        ({"ipvs": {"syncPeriod": "30"}}, r"^ipvs.syncPeriod in kp.yaml: '30' is not a duration"),
        ({"ipvs": {"minSyncPeriod": "soon"}}, r"^ipvs.minSyncPeriod in kp.yaml: "),
        ({"ipvs": {"strictARP": "true"}}, r"^ipvs.strictARP in kp.yaml: must be true or false"),
        ({"ipvs": {"scheduler": "Maglev"}}, r"^ipvs.scheduler in kp.yaml: .* not an IPVS sched"),
        ({"ipvs": {"excludeCIDRs": "10.0.0.0/8"}}, r"^ipvs.excludeCIDRs in kp.yaml: must be a li"),
        ({"ipvs": {"excludeCIDRs": ["10.0.0.0"]}}, r"^ipvs.excludeCIDRs in kp.yaml: .* not a CIDR"),
        ({"ipvs": {"tcpTimeout": "5"}}, r"^ipvs.tcpTimeout in kp.yaml: "),
        ({"ipvs": "fast"}, r"^ipvs in kp.yaml: must be a mapping"),
        ({"iptables": {"masqueradeAll": 1}}, r"^iptables.masqueradeAll in kp.yaml: must be true"),
        ({"clusterCIDR": ["10.0.0.0/8"]}, r"^clusterCIDR in kp.yaml: must be a string"),
        ({"clusterCIDR": "10.0.0.0/8,10.1.0.0/16"}, r"^clusterCIDR in kp.yaml: .* one per IP"),
        ({"nodePortAddresses": ["nodes"]}, r"^nodePortAddresses in kp.yaml: .* not a CIDR"),
        ({"healthzBindAddress": "localhost:10256"}, r"^healthzBindAddress in kp.yaml: .* IP:port"),
        ({"metricsBindAddress": 10249}, r"^metricsBindAddress in kp.yaml: must be a string"),
        ({"hostnameOverride": "  "}, r"^hostnameOverride in kp.yaml: .* is blank"),
        ({"clientConnection": {"kubeconfig": 7}}, r"^clientConnection.kubeconfig in kp.yaml: "),
        ({"logging": {"verbosity": "4"}}, r"^logging.verbosity in kp.yaml: must be a non-negative"),
        ({"logging": {"verbosity": -1}}, r"^logging.verbosity in kp.yaml: must be a non-negative"),
        ({"logging": {"verbosity": True}}, r"^logging.verbosity in kp.yaml: must be a non-neg"),
        ({"logging": {"format": "xml"}}, r"^logging.format in kp.yaml: 'xml' is not a log format"),
        ({"bindAddress": "any"}, r"^bindAddress in kp.yaml: 'any' is not an IP address"),
        ({"mode": 3}, r"^mode in kp.yaml: must be a string"),
    ],
)  # fmt: skip
def test_bad_values_name_the_field_and_the_file(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read(**fields)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"ipvs": {"syncPeriod": "-1s"}}, r"^ipvs.syncPeriod in kp.yaml: must be greater than 0"),
        ({"ipvs": {"minSyncPeriod": "-1s"}}, r"^ipvs.minSyncPeriod in kp.yaml: must not be neg"),
        ({"ipvs": {"syncPeriod": "10s", "minSyncPeriod": "1m"}},
         r"^ipvs.minSyncPeriod in kp.yaml \(1m0s\) must not be longer than ipvs.syncPeriod"),
        ({"ipvs": {"minSyncPeriod": "1m"}},
         r"^ipvs.minSyncPeriod in kp.yaml \(1m0s\) must not be longer than --ipvs-sync-period"),
        ({"ipvs": {"udpTimeout": "-5s"}}, r"^ipvs.udpTimeout in kp.yaml: must not be negative"),
    ],
)  # fmt: skip
def test_range_errors_name_the_field_and_the_file(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_of(read(**fields))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (None, r"^--config: kp.yaml does not hold a KubeProxyConfiguration"),
        (["a"], r"^--config: kp.yaml does not hold a KubeProxyConfiguration"),
        ({"kind": "KubeProxyConfiguration"}, r"^apiVersion in kp.yaml: None is not supported"),
        ({**HEADER, "apiVersion": "kubeproxy.config.k8s.io/v1alpha2"},
         r"^apiVersion in kp.yaml: 'kubeproxy.config.k8s.io/v1alpha2' is not supported"),
        ({**HEADER, "apiVersion": "componentconfig/v1alpha1"}, r"^apiVersion in kp.yaml: "),
        ({**HEADER, "kind": "KubeletConfiguration"}, r"^kind in kp.yaml: 'KubeletConfiguration'"),
    ],
)  # fmt: skip
def test_documents_that_are_not_a_v1alpha1_kube_proxy_configuration(
    document: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        layer_from_document(document, source="kp.yaml")


def test_yaml_errors_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--config: kp.yaml is not valid YAML \(line 2\)"):
        layer_from_yaml("kind: x\n  bad: [\n", source="kp.yaml")
    with pytest.raises(ConfigError, match=r"^--config: cannot read .*missing.yaml: No such file"):
        load_config_file(str(tmp_path / "missing.yaml"))
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match=r"^--config: cannot read .*binary.yaml: not UTF-8"):
        load_config_file(str(binary))


def test_the_example_file_is_read_without_warnings() -> None:
    layer = load_config_file(str(EXAMPLE))
    assert (layer.warnings, layer.notes) == ([], [])
    config = config_of(layer)
    assert config.kubeconfig == "/var/lib/kube-proxy/kubeconfig.conf"
    assert config.cluster_cidrs == (ip_network("10.244.0.0/16"), ip_network("fd00:10:244::/56"))
    assert config.nodeport_addresses == NodePortAddresses(primary=True)
    assert (config.ipvs_strict_arp, config.ipvs_min_sync_period, config.verbosity) == (True, 1, 2)
    assert config.ipvs_exclude_cidrs == (ip_network("192.0.2.0/24"),)
    assert config.metrics_bind_address == "0.0.0.0:10249"


def test_a_dump_of_kube_proxys_defaults_changes_nothing() -> None:
    """What `kube-proxy --write-config-to` writes (v1.33, ipvs mode) gives ipvsd's defaults."""
    dump = yaml.safe_load(
        """
        apiVersion: kubeproxy.config.k8s.io/v1alpha1
        bindAddress: 0.0.0.0
        bindAddressHardFail: false
        clientConnection: {acceptContentTypes: "", burst: 10, contentType: application/vnd.kubernetes.protobuf, kubeconfig: "", qps: 5}
        clusterCIDR: ""
        configSyncPeriod: 15m0s
        conntrack: {maxPerCore: 32768, min: 131072, tcpBeLiberal: false, tcpCloseWaitTimeout: 1h0m0s, tcpEstablishedTimeout: 24h0m0s, udpStreamTimeout: 0s, udpTimeout: 0s}
        detectLocal: {bridgeInterface: "", interfaceNamePrefix: ""}
        detectLocalMode: ClusterCIDR
        enableProfiling: false
        healthzBindAddress: 0.0.0.0:10256
        hostnameOverride: ""
        iptables: {localhostNodePorts: true, masqueradeAll: false, masqueradeBit: 14, minSyncPeriod: 1s, syncPeriod: 30s}
        ipvs: {excludeCIDRs: null, minSyncPeriod: 0s, scheduler: "", strictARP: false, syncPeriod: 30s, tcpFinTimeout: 0s, tcpTimeout: 0s, udpTimeout: 0s}
        kind: KubeProxyConfiguration
        logging: {flushFrequency: 5s, format: text, options: {json: {infoBufferSize: "0"}, text: {infoBufferSize: "0"}}, verbosity: 0}
        metricsBindAddress: 127.0.0.1:10249
        mode: ipvs
        nftables: {masqueradeAll: false, masqueradeBit: 14, minSyncPeriod: 1s, syncPeriod: 30s}
        nodePortAddresses: null
        oomScoreAdj: -999
        portRange: ""
        showHiddenMetricsForVersion: ""
        winkernel: {enableDSR: false, forwardHealthCheckVip: false, networkName: "", rootHnsEndpointName: "", sourceVip: ""}
        """  # noqa: E501
    )
    layer = layer_from_document(dump, source="dump.yaml")
    assert not layer.warnings
    assert config_of(layer) == config_of(Layer())
