"""The command line: kube-proxy's flags as pflag reads them, precedence over --config, explain."""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path

import pytest

from ipvsd.config.command_line import ExplainRequest, ParsedCommand, UsageError, parse_args
from ipvsd.config.flags import FLAGS, IGNORED_FLAGS, PORT_FLAGS, REFUSED_FLAGS
from ipvsd.config.settings import ProxyConfig
from ipvsd.config.values import ConfigError, NodePortAddresses

DEFAULTS = ProxyConfig(node_name="node-a")


def parse(*argv: str, environ: dict[str, str] | None = None) -> ParsedCommand:
    return parse_args(
        argv, environ={"NODE_NAME": "node-a"} if environ is None else environ,
        gethostname=lambda: "host-a",
    )  # fmt: skip


def write_config(tmp_path: Path, body: str) -> str:
    path = tmp_path / "config.conf"
    path.write_text(
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n" + body
    )
    return str(path)


# --- every flag ipvsd uses -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "name", "value"),
    [
        (["--kubeconfig=/etc/kp/kubeconfig"], "kubeconfig", "/etc/kp/kubeconfig"),
        (["--kubeconfig", "/etc/kp/kubeconfig"], "kubeconfig", "/etc/kp/kubeconfig"),
        (["--master=https://10.0.0.1:6443"], "master", "https://10.0.0.1:6443"),
        (["--hostname-override=Worker-7"], "hostname_override", "worker-7"),
        (["--hostname-override=Worker-7"], "node_name", "worker-7"),
        (["--cluster-cidr=10.244.0.0/16"], "cluster_cidrs", (ip_network("10.244.0.0/16"),)),
        (["--cluster-cidr", "10.244.0.0/16,fd00::/56"], "cluster_cidrs",
         (ip_network("10.244.0.0/16"), ip_network("fd00::/56"))),
        (["--masquerade-all"], "masquerade_all", True),
        (["--nodeport-addresses=primary"], "nodeport_addresses", NodePortAddresses((), True)),
        (["--nodeport-addresses", "10.0.0.0/8,192.168.0.0/16"], "nodeport_addresses",
         NodePortAddresses((ip_network("10.0.0.0/8"), ip_network("192.168.0.0/16")))),
        (["--ipvs-scheduler=mh"], "ipvs_scheduler", "mh"),
        (["--ipvs-scheduler="], "ipvs_scheduler", "rr"),
        (["--ipvs-sync-period=1m"], "ipvs_sync_period", 60.0),
        (["--ipvs-sync-period", "45s"], "ipvs_sync_period", 45.0),
        (["--ipvs-min-sync-period=500ms"], "ipvs_min_sync_period", 0.5),
        (["--ipvs-exclude-cidrs=192.0.2.0/24"], "ipvs_exclude_cidrs",
         (ip_network("192.0.2.0/24"),)),
        (["--ipvs-strict-arp"], "ipvs_strict_arp", True),
        (["--ipvs-tcp-timeout=15m"], "ipvs_tcp_timeout", 900.0),
        (["--ipvs-tcpfin-timeout=30s"], "ipvs_tcpfin_timeout", 30.0),
        (["--ipvs-udp-timeout=5m"], "ipvs_udp_timeout", 300.0),
        (["--ipvs-drain-timeout=5s"], "ipvs_drain_timeout", 5.0),
        (["--ipvs-drain-timeout=0s"], "ipvs_drain_timeout", 0.0),
        (["--service-external-ip-range=192.0.2.0/24"], "service_external_ip_ranges",
         (ip_network("192.0.2.0/24"),)),
        (["--healthz-bind-address=10.0.0.1:8080"], "healthz_bind_address", "10.0.0.1:8080"),
        (["--healthz-bind-address=::"], "healthz_bind_address", "[::]:10256"),
        (["--healthz-bind-address="], "healthz_bind_address", ""),
        (["--metrics-bind-address=0.0.0.0"], "metrics_bind_address", "0.0.0.0:10249"),
        (["--metrics-bind-address", ""], "metrics_bind_address", ""),
        (["--cleanup"], "cleanup", True),
        (["-v=4"], "verbosity", 4),
        (["-v", "2"], "verbosity", 2),
        (["-v5"], "verbosity", 5),
        (["--v=3"], "verbosity", 3),
        (["--proxy-name=ipvsd-canary"], "proxy_name", "ipvsd-canary"),
        (["--serve-only-labelled"], "serve_only_labelled", True),
        (["--dry-run"], "dry_run", True),
        (["--once"], "once", True),
        (["--node-port-range=30000-31000"], "node_port_range", (30000, 31000)),
        (["--service-cluster-ip-range=10.96.0.0/12,fd00:10:96::/108"], "service_cluster_ip_range",
         (ip_network("10.96.0.0/12"), ip_network("fd00:10:96::/108"))),
        (["--topology-source=auto"], "topology_source", "auto"),
        (["--topology-source", "spec"], "topology_source", "spec"),
        (
            ["--critical-services=kube-system/coredns", "--critical-services", "a/b,c/d"],
            "critical_services",
            (("kube-system", "coredns"), ("a", "b"), ("c", "d")),
        ),
        (["--logging-format=json"], "logging_format", "json"),
        (["--logging-format", "text"], "logging_format", "text"),
        (["--conntrack-max-per-core=0"], "conntrack_max_per_core", 0),
        (["--conntrack-min", "65536"], "conntrack_min", 65536),
        (["--conntrack-tcp-timeout-established=2h"], "conntrack_tcp_timeout_established", 7200.0),
        (["--conntrack-tcp-timeout-close-wait=0"], "conntrack_tcp_timeout_close_wait", 0.0),
        (["--conntrack-tcp-be-liberal"], "conntrack_tcp_be_liberal", True),
        (["--conntrack-udp-timeout=30s"], "conntrack_udp_timeout", 30.0),
        (["--conntrack-udp-timeout-stream=2m"], "conntrack_udp_timeout_stream", 120.0),
        (["--iptables-masquerade-bit=15"], "masquerade_bit", 15),
        (["--detect-local-mode", "NodeCIDR"], "detect_local_mode", "NodeCIDR"),
        (["--detect-local-mode="], "detect_local_mode", "ClusterCIDR"),
        (["--pod-bridge-interface=cni0"], "pod_bridge_interface", "cni0"),
        (["--pod-interface-name-prefix", "veth"], "pod_interface_name_prefix", "veth"),
    ],
)  # fmt: skip
def test_every_flag(argv: list[str], name: str, value: object) -> None:
    parsed = parse(*argv)
    assert parsed.command == "run"
    assert getattr(parsed.config, name) == value
    assert parsed.warnings == ()


def test_every_flag_of_the_table_is_tested_above() -> None:
    tested = {
        "--kubeconfig", "--master", "--hostname-override", "--cluster-cidr", "--masquerade-all",
        "--nodeport-addresses", "--ipvs-scheduler", "--ipvs-sync-period",
        "--ipvs-min-sync-period", "--ipvs-exclude-cidrs", "--ipvs-strict-arp",
        "--ipvs-tcp-timeout", "--ipvs-tcpfin-timeout", "--ipvs-udp-timeout",
        "--healthz-bind-address", "--metrics-bind-address", "--cleanup", "-v", "--proxy-name",
        "--dry-run", "--once", "--node-port-range", "--topology-source", "--critical-services",
        "--serve-only-labelled", "--ipvs-drain-timeout", "--service-external-ip-range",
        "--service-cluster-ip-range",
        "--iptables-masquerade-bit", "--detect-local-mode", "--pod-bridge-interface",
        "--pod-interface-name-prefix",
        "--logging-format", "--conntrack-max-per-core", "--conntrack-min",
        "--conntrack-tcp-timeout-established", "--conntrack-tcp-timeout-close-wait",
        "--conntrack-tcp-be-liberal", "--conntrack-udp-timeout", "--conntrack-udp-timeout-stream",
    }  # fmt: skip
    assert {flag.name for flag in FLAGS} == tested


def test_no_flags_give_kube_proxys_defaults() -> None:
    parsed = parse()
    assert (parsed.command, parsed.config, parsed.warnings, parsed.notes) == (
        "run",
        DEFAULTS,
        (),
        (),
    )


@pytest.mark.parametrize("flag", [f.name for f in FLAGS if f.boolean])
@pytest.mark.parametrize(
    ("spelling", "value"),
    [("", True), ("=true", True), ("=True", True), ("=1", True), ("=t", True),
     ("=false", False), ("=FALSE", False), ("=0", False), ("=f", False)],
)  # fmt: skip
def test_booleans_as_pflag_reads_them(flag: str, spelling: str, value: bool) -> None:
    name = next(f.field for f in FLAGS if f.name == flag)
    assert getattr(parse(f"{flag}{spelling}").config, name) is value


@pytest.mark.parametrize("following", ["false", "true", "0", "1"])
def test_a_spaced_boolean_value_is_refused_with_the_right_spelling(following: str) -> None:
    with pytest.raises(
        UsageError, match=rf"^--masquerade-all: write --masquerade-all={following};"
    ):
        parse("--masquerade-all", following)


def test_a_bare_boolean_does_not_swallow_the_next_argument() -> None:
    parsed = parse("--dry-run", "explain", "web")
    assert parsed.config.dry_run
    assert parsed.explain == ExplainRequest("default", "web", "node-a")


def test_list_flags_take_commas_and_repeats_add_up() -> None:
    config = parse(
        "--ipvs-exclude-cidrs=10.0.0.0/8, 172.16.0.0/12",
        "--ipvs-exclude-cidrs",
        "fd00::/8",
        "--nodeport-addresses=primary",
        "--nodeport-addresses=10.1.0.0/16",
    ).config
    assert config.ipvs_exclude_cidrs == (
        ip_network("10.0.0.0/8"),
        ip_network("172.16.0.0/12"),
        ip_network("fd00::/8"),
    )
    assert config.nodeport_addresses == NodePortAddresses((ip_network("10.1.0.0/16"),), True)


def test_single_value_flags_repeated_take_the_last() -> None:
    assert parse("--ipvs-scheduler=wrr", "--ipvs-scheduler=lc").config.ipvs_scheduler == "lc"


def test_an_empty_hostname_override_is_as_if_not_given() -> None:
    assert parse("--hostname-override=").config.node_name == "node-a"


# --- kube-proxy flags ipvsd does not use ---------------------------------------------------

# cmd/kube-proxy/app/options.go (v1.33-v1.36) and component-base's logging flags.
KUBE_PROXY_FLAGS = (
    "config", "write-config-to", "cleanup", "init-only", "feature-gates", "version", "help",
    "kubeconfig", "master", "kube-api-content-type", "kube-api-burst", "kube-api-qps",
    "hostname-override", "bind-address", "bind-address-hard-fail", "proxy-mode",
    "healthz-bind-address", "metrics-bind-address", "healthz-port", "metrics-port",
    "profiling", "show-hidden-metrics-for-version", "config-sync-period",
    "masquerade-all", "cluster-cidr", "nodeport-addresses", "detect-local-mode",
    "pod-bridge-interface", "pod-interface-name-prefix", "oom-score-adj",
    "iptables-masquerade-bit", "iptables-localhost-nodeports", "iptables-sync-period",
    "iptables-min-sync-period",
    "ipvs-sync-period", "ipvs-min-sync-period", "ipvs-scheduler", "ipvs-exclude-cidrs",
    "ipvs-strict-arp", "ipvs-tcp-timeout", "ipvs-tcpfin-timeout", "ipvs-udp-timeout",
    "conntrack-max-per-core", "conntrack-min", "conntrack-tcp-timeout-established",
    "conntrack-tcp-timeout-close-wait", "conntrack-tcp-be-liberal", "conntrack-udp-timeout",
    "conntrack-udp-timeout-stream",
    "v", "vmodule", "logging-format", "log-flush-frequency", "log-json-info-buffer-size",
    "log-json-split-stream", "log-text-info-buffer-size", "log-text-split-stream",
)  # fmt: skip


def test_every_kube_proxy_flag_is_known() -> None:
    known = (
        {f.name.lstrip("-") for f in FLAGS}
        | set(IGNORED_FLAGS)
        | set(PORT_FLAGS)
        | set(REFUSED_FLAGS)
        | {"config", "v", "version", "help", "feature-gates"}
    )
    assert set(KUBE_PROXY_FLAGS) - known == set()


@pytest.mark.parametrize("name", sorted(IGNORED_FLAGS))
def test_ignored_flags_are_accepted_and_warned(name: str) -> None:
    flag = f"--{name}" if IGNORED_FLAGS[name].boolean else f"--{name}=something"
    parsed = parse(flag)
    assert parsed.config == DEFAULTS
    (warning,) = parsed.warnings
    assert warning.startswith(f"{flag}{'=true' if IGNORED_FLAGS[name].boolean else ''}: ignored (")


@pytest.mark.parametrize("name", [n for n, spec in IGNORED_FLAGS.items() if not spec.boolean])
def test_ignored_value_flags_take_a_spaced_value(name: str) -> None:
    parsed = parse(f"--{name}", "x", "--once")
    assert parsed.config.once
    assert parsed.warnings[0].startswith(f"--{name}=x: ignored")


@pytest.mark.parametrize(
    "argv",
    [
        ["--proxy-mode=ipvs"], ["--proxy-mode", ""],
    ],
)  # fmt: skip
def test_ignored_flags_whose_value_ipvsd_follows_are_only_noted(argv: list[str]) -> None:
    parsed = parse(*argv)
    assert parsed.warnings == ()
    assert parsed.notes[0].endswith(": accepted; ipvsd does this anyway")


def test_a_kube_proxy_daemonset_command_line_keeps_working() -> None:
    parsed = parse(
        "--config=",  # empty, as kube-proxy: no file
        "--proxy-mode=ipvs",
        "--hostname-override=Node-9",
        "--cluster-cidr=10.244.0.0/16",
        "--ipvs-scheduler=wrr",
        "--ipvs-strict-arp=true",
        "--conntrack-max-per-core=0",
        "--feature-gates=TopologyAwareHints=true",
        "--v=2",
    )
    assert parsed.config.node_name == "node-9"
    assert (parsed.config.ipvs_scheduler, parsed.config.ipvs_strict_arp) == ("wrr", True)
    assert parsed.config.conntrack_max_per_core == 0
    assert [w.split(":")[0] for w in parsed.warnings] == [
        "--feature-gates=TopologyAwareHints=true",
    ]


@pytest.mark.parametrize("flag", ["--init-only", "--write-config-to=/tmp/kp.yaml"])
def test_refused_flags_say_why(flag: str) -> None:
    with pytest.raises(UsageError, match=rf"^{flag.partition('=')[0]}: ipvsd "):
        parse(flag)


def test_deprecated_port_flags() -> None:
    parsed = parse("--healthz-port=0", "--metrics-port=9100")
    assert parsed.config.healthz_bind_address == ""
    assert parsed.config.metrics_bind_address == "127.0.0.1:9100"
    assert parsed.warnings == (
        "--healthz-port is deprecated (in kube-proxy too); use --healthz-bind-address",
        "--metrics-port is deprecated (in kube-proxy too); use --metrics-bind-address",
    )
    with_host = parse("--healthz-bind-address=[::1]:1", "--healthz-port=8081").config
    assert with_host.healthz_bind_address == "[::1]:8081"
    with pytest.raises(ConfigError, match=r"^--metrics-port: 'x' is not a port"):
        parse("--metrics-port=x")


# --- precedence with --config --------------------------------------------------------------


def test_the_file_applies_where_no_flag_is_given(tmp_path: Path) -> None:
    path = write_config(tmp_path, "ipvs:\n  scheduler: wrr\n  strictARP: true\n")
    config = parse(f"--config={path}").config
    assert (config.ipvs_scheduler, config.ipvs_strict_arp) == ("wrr", True)


def test_explicit_flags_win_over_the_file_even_at_their_default(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, "ipvs:\n  scheduler: wrr\n  syncPeriod: 1m\niptables:\n  masqueradeAll: true\n"
    )
    parsed = parse("--config", path, "--ipvs-scheduler=rr", "--masquerade-all=false")
    assert (parsed.config.ipvs_scheduler, parsed.config.masquerade_all) == ("rr", False)
    assert parsed.config.ipvs_sync_period == 60.0  # from the file: no flag given
    assert parsed.warnings == (
        "flags applied over the --config file: --masquerade-all, --ipvs-scheduler; kube-proxy "
        "ignored them when --config was given, so remove them to keep kube-proxy's behaviour",
    )


def test_hostname_override_and_verbosity_win_over_the_file_as_in_kube_proxy(
    tmp_path: Path,
) -> None:
    path = write_config(tmp_path, "hostnameOverride: from-file\nlogging:\n  verbosity: 2\n")
    assert parse(f"--config={path}").config.node_name == "from-file"
    parsed = parse(f"--config={path}", "--hostname-override=from-flag", "-v=5")
    assert (parsed.config.node_name, parsed.config.verbosity) == ("from-flag", 5)
    assert parsed.warnings == ()


def test_flags_without_a_file_field_are_not_overrides(tmp_path: Path) -> None:
    path = write_config(tmp_path, "mode: ipvs\n")
    parsed = parse(f"--config={path}", "--master=https://api:6443", "--once", "--dry-run")
    assert parsed.warnings == ()


def test_file_warnings_and_notes_are_passed_on(tmp_path: Path) -> None:
    path = write_config(tmp_path, "mode: iptables\noomScoreAdj: -999\n")
    parsed = parse(f"--config={path}")
    assert parsed.warnings[0].startswith(f"mode in {path}: 'iptables'")
    assert parsed.notes == (f"{path}: kube-proxy settings ipvsd does not use: oomScoreAdj",)


def test_a_file_value_and_a_flag_value_are_checked_together(tmp_path: Path) -> None:
    path = write_config(tmp_path, "ipvs:\n  syncPeriod: 10s\n")
    with pytest.raises(
        ConfigError,
        match=r"^--ipvs-min-sync-period \(20s\) must not be longer than ipvs.syncPeriod in ",
    ):
        parse(f"--config={path}", "--ipvs-min-sync-period=20s")


# --- explain, help, version ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "request_"),
    [
        (["explain", "kube-system/kube-dns"], ExplainRequest("kube-system", "kube-dns", "node-a")),
        (["explain", "web"], ExplainRequest("default", "web", "node-a")),
        (["explain", "web", "--node", "Worker-3"], ExplainRequest("default", "web", "worker-3")),
        (["explain", "--node=w2", "shop/cart"], ExplainRequest("shop", "cart", "w2")),
        (["--hostname-override=w9", "explain", "web"], ExplainRequest("default", "web", "w9")),
    ],
)  # fmt: skip
def test_explain(argv: list[str], request_: ExplainRequest) -> None:
    parsed = parse(*argv)
    assert (parsed.command, parsed.explain) == ("explain", request_)


def test_explain_takes_every_flag_before_and_after_it(tmp_path: Path) -> None:
    parsed = parse("--kubeconfig=/a", "explain", "web", "--ipvs-scheduler=sh", "--proxy-mode=ipvs")
    assert (parsed.config.kubeconfig, parsed.config.ipvs_scheduler) == ("/a", "sh")
    assert parsed.notes == ("--proxy-mode=ipvs: accepted; ipvsd does this anyway",)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["explain"], r"^SERVICE: explain needs a Service"),
        (["explain", "a/b/c"], r"^SERVICE: 'a/b/c' is not NAMESPACE/NAME or NAME"),
        (["explain", "ns/"], r"^SERVICE: 'ns/' is not"),
        (["explain", "/web"], r"^SERVICE: '/web' is not"),
        (["explain", "web", "--node="], r"^--node: give a node name"),
        (["explain", "web", "extra"], r"unrecognized arguments: extra"),
    ],
)
def test_explain_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse(*argv)


@pytest.mark.parametrize(
    ("argv", "first_line"),
    [
        (["--help"], "usage: ipvsd [FLAGS]  |  ipvsd explain SERVICE"),
        (["-h", "--ipvs-sync-period=bad"], "usage: ipvsd [FLAGS]"),  # help wins over values
        (["explain", "-h"], "usage: ipvsd explain SERVICE [--node NODE] [FLAGS]"),
    ],
)
def test_help(argv: list[str], first_line: str) -> None:
    parsed = parse(*argv)
    assert parsed.command == "help"
    assert parsed.help_text.startswith(first_line)


def test_help_lists_every_flag_and_the_ignored_ones_apart() -> None:
    text = parse("--help").help_text
    used, _, ignored = text.partition("kube-proxy flags accepted and not used:")
    assert all(f"{flag.name} " in used for flag in FLAGS)
    assert all(f"--{name} " in ignored for name in IGNORED_FLAGS)


def test_version() -> None:
    assert parse("--version").command == "version"
    assert parse("--version=false").command == "run"


@pytest.mark.parametrize(
    ("argv", "raw"),
    [(["--version"], False), (["--version=true"], False), (["--version=raw"], True)],
)
def test_version_takes_kube_proxys_raw(argv: list[str], raw: bool) -> None:
    parsed = parse(*argv)
    assert (parsed.command, parsed.version_raw) == ("version", raw)


def test_values_that_look_like_flags_are_not_taken_for_unknown_flags() -> None:
    assert parse("-v5", "--v", "3", "-v", "4").config.verbosity == 4
    with pytest.raises(ConfigError, match=r"^--ipvs-min-sync-period: '-1' is not a duration"):
        parse("--ipvs-min-sync-period", "-1")


def test_help_names_the_refused_flags_and_why() -> None:
    text = parse("--help").help_text
    _, _, refused = text.partition("kube-proxy flags refused")
    for name, reason in REFUSED_FLAGS.items():
        assert f"--{name} " in refused
        assert " ".join(reason.split()[:4]) in " ".join(refused.split())


def test_kubeconfig_help_states_the_fallback_order() -> None:
    text = " ".join(parse("--help").help_text.split())
    assert (
        "--kubeconfig FILE Path to a kubeconfig file. Without it: --master alone is used "
        "unauthenticated; else, in a pod, its service account; else the first file in "
        "$KUBECONFIG, else ~/.kube/config"
    ) in text


# --- errors name the flag ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--cluster-cidr=10.244.0.0"], r"^--cluster-cidr: '10.244.0.0' is not a CIDR"),
        (["--cluster-cidr=10.0.0.0/8,10.1.0.0/16"], r"^--cluster-cidr: .* one per IP family"),
        (["--ipvs-exclude-cidrs=nope"], r"^--ipvs-exclude-cidrs: 'nope' is not a CIDR"),
        (["--nodeport-addresses=all-nodes"], r"^--nodeport-addresses: 'all-nodes' is not a CIDR"),
        (["--ipvs-sync-period=30"], r"^--ipvs-sync-period: '30' is not a duration"),
        (["--ipvs-sync-period=0s"], r"^--ipvs-sync-period: must be greater than 0"),
        (["--ipvs-sync-period=-5s"], r"^--ipvs-sync-period: must be greater than 0"),
        (["--ipvs-min-sync-period=-1s"], r"^--ipvs-min-sync-period: must not be negative"),
        (["--ipvs-min-sync-period=31s"], r"^--ipvs-min-sync-period \(31s\) must not be longer "
                                         r"than --ipvs-sync-period \(30s\)"),
        (["--ipvs-tcp-timeout=-1s"], r"^--ipvs-tcp-timeout: must not be negative"),
        (["--ipvs-tcpfin-timeout=forever"], r"^--ipvs-tcpfin-timeout: 'forever' is not a dur"),
        (["--ipvs-udp-timeout=-1m"], r"^--ipvs-udp-timeout: must not be negative"),
        (["--ipvs-drain-timeout=-1s"], r"^--ipvs-drain-timeout: must not be negative"),
        (["--ipvs-scheduler=Round_Robin"], r"^--ipvs-scheduler: 'Round_Robin' is not an IPVS"),
        (["--masquerade-all=yes"], r"^--masquerade-all: 'yes' is not a boolean"),
        (["--ipvs-strict-arp=on"], r"^--ipvs-strict-arp: 'on' is not a boolean"),
        (["--healthz-bind-address=localhost:10256"], r"^--healthz-bind-address: .* IP:port"),
        (["--metrics-bind-address=0.0.0.0:99999"], r"^--metrics-bind-address: .* IP:port"),
        (["--metrics-bind-address=0.0.0.0:10256"], r"^--healthz-bind-address \(0.0.0.0:10256\) "
                                                   r"and --metrics-bind-address"),
        (["--hostname-override= "], r"^--hostname-override: ' ' is blank"),
        (["-v=high"], r"^-v: 'high' is not a log verbosity"),
        (["--proxy-name=-x-"], r"^--proxy-name: '-x-' is not a label value"),
        (["--node-port-range=32767-30000"], r"^--node-port-range: '32767-30000' is not a port"),
        (["--topology-source=zones"], r"^--topology-source: 'zones' is not one of hints"),
        (["--version=full"], r"^--version: 'full' is not true, false or raw"),
    ],
)  # fmt: skip
def test_errors_name_the_flag(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(*argv)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ipvs-schedular=wrr"], r"^unknown flag --ipvs-schedular \(did you mean "
                                   r"--ipvs-scheduler\? ipvsd --help lists every flag\)$"),
        (["--ipvs-schedular", "wrr"], r"^unknown flag --ipvs-schedular \(did you mean "
                                      r"--ipvs-scheduler\?"),
        (["explain", "web", "--nod", "n"], r"^unknown flag --nod \(did you mean --node\?"),
        (["--ipvs-sched=wrr"], r"^unknown flag --ipvs-sched \(did you mean"),  # no abbreviations
        (["--zzzz"], r"^unknown flag --zzzz \(ipvsd --help lists every flag\)$"),
        (["--ipvs-sync-period"], r"argument --ipvs-sync-period: expected one argument"),
        (["run"], r"argument COMMAND: invalid choice: 'run'"),
        (["--help=true"], r"argument -h/--help: ignored explicit argument 'true'"),
    ],
)  # fmt: skip
def test_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse(*argv)


def test_an_unreadable_config_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--config: cannot read .*nowhere.yaml"):
        parse(f"--config={tmp_path / 'nowhere.yaml'}")
