"""kube-proxy's conntrack settings: what is computed, what is written, and what a file means.

The computation follows `pkg/proxy/conntrack/sysctls.go` (v1.36 with #142035); the writes
go to a scratch /proc/sys and /sys/module; the files are read as kube-proxy's v1alpha1
defaulting reads them (a kubeadm ConfigMap's nulls are kube-proxy's defaults).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ipvsd.config.command_line import parse_args
from ipvsd.config.kube_proxy_configuration import layer_from_yaml, load_config_file
from ipvsd.config.settings import ProxyConfig, build_config
from ipvsd.config.values import ConfigError
from ipvsd.dataplane.sysctl import Sysctl
from ipvsd.model.conntrack_tuning import ConntrackTuning
from ipvsd.plan.conntrack_sysctls import (
    CONNTRACK_MAX,
    HASHSIZE,
    ConntrackSysctls,
    conntrack_max,
    conntrack_sysctls,
)
from ipvsd.reconcile.conntrack_settings import apply_conntrack_settings

EXAMPLE = Path(__file__).parents[2] / "config" / "kube-proxy-config.example.yaml"
HEADER = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
NF = "net/netfilter/nf_conntrack_"
KUBE_PROXY_DEFAULTS_ON_2_CPUS = ConntrackSysctls(
    max=131072,  # 32768 x 2 is below min
    settings={f"{NF}tcp_timeout_established": "86400", f"{NF}tcp_timeout_close_wait": "3600"},
)


@pytest.mark.parametrize(
    ("max_per_core", "minimum", "cpus", "expected"),
    [
        pytest.param(32768, 131072, 2, 131072, id="min-wins-on-small-nodes"),
        pytest.param(32768, 131072, 8, 262144, id="per-core-wins-on-larger-nodes"),
        pytest.param(67890, 1, 3, 203670, id="scaled"),
        pytest.param(1, 123456, 4, 123456, id="min-is-the-floor"),
        pytest.param(0, 123456, 4, 0, id="max-per-core-0-leaves-it-and-ignores-min"),
        pytest.param(32768, 131072, 64, 1048576, id="capped-at-1Mi"),
        pytest.param(65536, 2000000, 32, 1048576, id="the-cap-wins-over-a-larger-min"),
        pytest.param(65536, 2000000, 4, 2000000, id="a-min-above-the-cap-when-not-capped"),
    ],
)
def test_conntrack_max_as_kube_proxy_computes_it(
    max_per_core: int, minimum: int, cpus: int, expected: int
) -> None:
    tuning = ConntrackTuning(max_per_core=max_per_core, min=minimum)
    assert conntrack_max(tuning, cpus=cpus) == expected


def test_kube_proxys_defaults() -> None:
    assert conntrack_sysctls(ConntrackTuning(), cpus=2) == KUBE_PROXY_DEFAULTS_ON_2_CPUS
    assert conntrack_sysctls(ConntrackTuning(), cpus=2).hashsize == 32768


def test_every_setting_and_zero_leaves_each_alone() -> None:
    every = ConntrackTuning(
        max_per_core=100000,
        min=0,
        tcp_established_timeout=7200.9,  # whole seconds, truncated as Go's division
        tcp_close_wait_timeout=60,
        tcp_be_liberal=True,
        udp_timeout=30,
        udp_stream_timeout=120,
    )
    assert conntrack_sysctls(every, cpus=1) == ConntrackSysctls(
        max=100000,
        settings={
            f"{NF}tcp_timeout_established": "7200",
            f"{NF}tcp_timeout_close_wait": "60",
            f"{NF}tcp_be_liberal": "1",
            f"{NF}udp_timeout": "30",
            f"{NF}udp_timeout_stream": "120",
        },
    )
    nothing = ConntrackTuning(
        max_per_core=0, min=0, tcp_established_timeout=0, tcp_close_wait_timeout=0.5
    )
    assert conntrack_sysctls(nothing, cpus=4) == ConntrackSysctls()


# --- writing: only raised, never lowered; failures logged with what to do -------------------


@pytest.fixture
def sysctl(tmp_path: Path) -> Sysctl:
    (tmp_path / "proc/net/netfilter").mkdir(parents=True)
    (tmp_path / "module/nf_conntrack/parameters").mkdir(parents=True)
    for name, value in [("max", "65536"), ("tcp_timeout_established", "432000"),
                        ("tcp_timeout_close_wait", "60"), ("tcp_be_liberal", "0")]:  # fmt: skip
        (tmp_path / f"proc/{NF}{name}").write_text(f"{value}\n")
    (tmp_path / "module" / HASHSIZE).write_text("4096\n")
    return Sysctl(root=tmp_path / "proc", modules=tmp_path / "module")


def test_defaults_raise_max_and_hashsize_and_set_the_timeouts(sysctl: Sysctl) -> None:
    assert apply_conntrack_settings(ConntrackTuning(), sysctl=sysctl, cpus=2)
    assert sysctl.read(CONNTRACK_MAX) == "131072"
    assert (sysctl.modules / HASHSIZE).read_text() == "32768"
    assert sysctl.read(f"{NF}tcp_timeout_established") == "86400"  # lowered: set, not raised
    assert sysctl.read(f"{NF}tcp_timeout_close_wait") == "3600"
    assert sysctl.read(f"{NF}tcp_be_liberal") == "0"


def test_a_higher_max_and_hashsize_are_left_as_they_are(sysctl: Sysctl) -> None:
    (sysctl.root / CONNTRACK_MAX).write_text("2000000\n")
    (sysctl.modules / HASHSIZE).write_text("500000\n")
    assert apply_conntrack_settings(ConntrackTuning(), sysctl=sysctl, cpus=2)
    assert sysctl.read(CONNTRACK_MAX) == "2000000"
    assert (sysctl.modules / HASHSIZE).read_text() == "500000\n"


def test_max_per_core_0_touches_neither_max_nor_hashsize(sysctl: Sysctl) -> None:
    assert apply_conntrack_settings(ConntrackTuning(max_per_core=0), sysctl=sysctl, cpus=2)
    assert sysctl.read(CONNTRACK_MAX) == "65536"
    assert (sysctl.modules / HASHSIZE).read_text() == "4096\n"


def test_a_max_that_cannot_be_raised_is_logged_with_what_to_do_and_the_rest_goes_on(
    sysctl: Sysctl, caplog: pytest.LogCaptureFixture
) -> None:
    """As in a network namespace other than the host's: nf_conntrack_max and hashsize refuse
    writes (here: they are directories), the per-namespace timeouts still get set."""
    for path in (sysctl.root / CONNTRACK_MAX, sysctl.modules / HASHSIZE):
        path.unlink()
        path.mkdir()
    with caplog.at_level(logging.INFO):
        ok = apply_conntrack_settings(ConntrackTuning(), sysctl=sysctl, cpus=2)
    assert not ok
    assert sysctl.read(f"{NF}tcp_timeout_close_wait") == "3600"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        "cannot raise sysctl net.netfilter.nf_conntrack_max to 131072 (it is unreadable): Is a "
        "directory; it is global, writable only from the host's initial network namespace: set "
        "net.netfilter.nf_conntrack_max=131072 on the node, or give --conntrack-max-per-core=0 "
        "(conntrack.maxPerCore: 0) to leave it as it is",
        "cannot raise /sys/module/nf_conntrack/parameters/hashsize to 32768 (it is unreadable): "
        "Is a directory; it can be changed only from the host's initial network namespace with "
        "/sys writable; connection tracking works, with longer hash chains",
    ]


# --- flags and the config file ----------------------------------------------------------


def config_of(argv: list[str]) -> ProxyConfig:
    return parse_args(argv, environ={"NODE_NAME": "n"}, gethostname=lambda: "h").config


def file_config(tmp_path: Path, conntrack: str) -> ProxyConfig:
    path = tmp_path / "kp.yaml"
    path.write_text(
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
        f"conntrack:\n{conntrack}"
    )
    return config_of([f"--config={path}"])


def test_no_flags_and_no_file_are_kube_proxys_defaults() -> None:
    assert config_of([]).conntrack_tuning == ConntrackTuning()


def test_flags() -> None:
    config = config_of(
        [
            "--conntrack-max-per-core=0",
            "--conntrack-min=1000",
            "--conntrack-tcp-timeout-established=2h",
            "--conntrack-tcp-timeout-close-wait=0s",
            "--conntrack-tcp-be-liberal",
            "--conntrack-udp-timeout=30s",
            "--conntrack-udp-timeout-stream=2m",
        ]
    )
    assert config.conntrack_tuning == ConntrackTuning(
        max_per_core=0,
        min=1000,
        tcp_established_timeout=7200,
        tcp_close_wait_timeout=0,
        tcp_be_liberal=True,
        udp_timeout=30,
        udp_stream_timeout=120,
    )


def test_the_kubeadm_example_sets_what_kube_proxy_sets() -> None:
    """kubeadm's ConfigMap has every conntrack field null (or 0s): kube-proxy's defaults."""
    layer = load_config_file(str(EXAMPLE))
    config, _ = build_config([layer], environ={"NODE_NAME": "n"}, gethostname=lambda: "h")
    assert config.conntrack_tuning == ConntrackTuning()
    assert conntrack_sysctls(config.conntrack_tuning, cpus=2) == KUBE_PROXY_DEFAULTS_ON_2_CPUS
    assert not [note for note in layer.notes if "conntrack" in note]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param("  maxPerCore: null\n  min: null\n", ConntrackTuning(), id="nulls-default"),
        pytest.param("  tcpEstablishedTimeout: null\n", ConntrackTuning(), id="null-timeout"),
        pytest.param("  maxPerCore: 0\n", ConntrackTuning(max_per_core=0), id="zero-is-a-value"),
        pytest.param("  min: 0\n", ConntrackTuning(min=0), id="min-zero"),
        pytest.param(
            "  tcpEstablishedTimeout: 0s\n  tcpCloseWaitTimeout: 0s\n",
            ConntrackTuning(tcp_established_timeout=0, tcp_close_wait_timeout=0),
            id="zero-timeouts-leave-the-kernels",
        ),
        pytest.param(
            "  maxPerCore: 65536\n  min: 0\n  tcpEstablishedTimeout: 2h\n  tcpBeLiberal: true\n"
            "  udpTimeout: 30s\n  udpStreamTimeout: 2m\n",
            ConntrackTuning(
                max_per_core=65536,
                min=0,
                tcp_established_timeout=7200,
                tcp_be_liberal=True,
                udp_timeout=30,
                udp_stream_timeout=120,
            ),
            id="every-field",
        ),
        pytest.param("  udpTimeout: 0s\n  tcpBeLiberal: false\n", ConntrackTuning(), id="zeros"),
    ],
)
def test_config_file_nulls_are_defaults_and_zeros_are_values(
    tmp_path: Path, fields: str, expected: ConntrackTuning
) -> None:
    assert file_config(tmp_path, fields).conntrack_tuning == expected


def test_a_flag_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "kp.yaml"
    path.write_text(
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
        "conntrack:\n  maxPerCore: 0\n"
    )
    config = config_of([f"--config={path}", "--conntrack-max-per-core=65536"])
    assert config.conntrack_max_per_core == 65536


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--conntrack-max-per-core=-1"], r"^--conntrack-max-per-core: -1 is out of range"),
        (["--conntrack-min=lots"], r"^--conntrack-min: 'lots' is not a 32-bit integer"),
        (["--conntrack-min=2147483648"], r"^--conntrack-min: '2147483648' is not a 32-bit"),
        (["--conntrack-udp-timeout=-1s"], r"^--conntrack-udp-timeout: must not be negative"),
        (["--conntrack-tcp-timeout-established=1d"], r"^--conntrack-tcp-timeout-established: "),
        (["--conntrack-tcp-be-liberal=maybe"], r"^--conntrack-tcp-be-liberal: 'maybe' is not"),
    ],
)
def test_bad_flags_are_named(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_of(argv)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("  maxPerCore: many\n", r"^conntrack.maxPerCore in kp.yaml: must be an integer"),
        ("  min: -5\n", r"^conntrack.min in kp.yaml: -5 is out of range"),
        ("  tcpCloseWaitTimeout: 60\n", r"^conntrack.tcpCloseWaitTimeout in kp.yaml: must be a"),
        ("  udpStreamTimeout: -2s\n", r"^conntrack.udpStreamTimeout in kp.yaml: must not be neg"),
        ("  tcpBeLiberal: yes please\n", r"^conntrack.tcpBeLiberal in kp.yaml: must be true or"),
    ],
)
def test_bad_file_fields_are_named(fields: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config(
            [layer_from_yaml(f"{HEADER}conntrack:\n{fields}", source="kp.yaml")],
            environ={"NODE_NAME": "n"},
            gethostname=lambda: "h",
        )


def test_sub_second_timeouts_are_warned_about() -> None:
    parsed = parse_args(
        ["--conntrack-udp-timeout=500ms", "--conntrack-tcp-timeout-close-wait=90.5s"],
        environ={"NODE_NAME": "n"},
        gethostname=lambda: "h",
    )
    assert parsed.warnings == (
        "--conntrack-tcp-timeout-close-wait (1m30.5s): conntrack counts whole seconds, so 90s "
        "is set",
        "--conntrack-udp-timeout (500ms): conntrack counts whole seconds, so the kernel's value "
        "is kept",
    )
