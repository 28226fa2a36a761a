"""kube-proxy's conntrack flags on the real kernel: the daemon's start-up step writes them.

Runs in the VM's root namespace (the initial one, as a node's kube-proxy runs), where
`nf_conntrack_max` and the hash size are writable; then in a child namespace, where 6.1 makes
`nf_conntrack_max` read-only and only the per-namespace timeouts can be set. Every value is
read back from /proc/sys and /sys/module; the originals are put back afterwards.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipvsd.app import configure_kernel
from ipvsd.config.command_line import parse_args
from ipvsd.config.settings import ProxyConfig
from ipvsd.dataplane.sysctl import Sysctl
from ipvsd.reconcile.conntrack_settings import apply_conntrack_settings
from ipvsd.testing.netns import entered

pytestmark = pytest.mark.kernel

NF = Path("/proc/sys/net/netfilter")
MAX = NF / "nf_conntrack_max"
HASHSIZE = Path("/sys/module/nf_conntrack/parameters/hashsize")
TIMEOUTS = ("tcp_timeout_established", "tcp_timeout_close_wait", "tcp_be_liberal",
            "udp_timeout", "udp_timeout_stream")  # fmt: skip
CPUS = os.cpu_count() or 1


def read(path: Path) -> str:
    return path.read_text().strip()


def timeouts() -> dict[str, str]:
    return {name: read(NF / f"nf_conntrack_{name}") for name in TIMEOUTS}


def config(*flags: str) -> ProxyConfig:
    return parse_args(["--hostname-override=node-a", *flags], environ={}).config


@pytest.fixture(autouse=True)
def restored() -> Iterator[None]:
    """The VM's values before the test, written back after it (other tests share the VM)."""
    for module in ("ip_vs", "nf_conntrack"):
        subprocess.run(["modprobe", module], check=True)
    saved = {
        path: read(path) for path in (MAX, HASHSIZE, *(NF / f"nf_conntrack_{n}" for n in TIMEOUTS))
    }
    yield
    for path, value in saved.items():
        path.write_text(value)


def test_the_flags_are_written_as_kube_proxy_writes_them() -> None:
    MAX.write_text("1000")
    HASHSIZE.write_text("1024")
    (NF / "nf_conntrack_tcp_timeout_established").write_text("432000")
    configure_kernel(
        config(
            "--conntrack-max-per-core=40000",
            "--conntrack-min=1000",
            "--conntrack-tcp-timeout-established=2h",
            "--conntrack-tcp-timeout-close-wait=30m",
            "--conntrack-tcp-be-liberal",
            "--conntrack-udp-timeout=45s",
            "--conntrack-udp-timeout-stream=3m",
        )
    )
    assert read(MAX) == str(40000 * CPUS)
    # max / 4 buckets at least (the kernel rounds the table up to whole pages)
    assert int(read(HASHSIZE)) >= 10000 * CPUS
    assert timeouts() == {
        "tcp_timeout_established": "7200",
        "tcp_timeout_close_wait": "1800",
        "tcp_be_liberal": "1",
        "udp_timeout": "45",
        "udp_timeout_stream": "180",
    }


def apply(*flags: str) -> bool:
    """The conntrack part of the daemon's start-up step alone (the test above runs it whole)."""
    return apply_conntrack_settings(config(*flags).conntrack_tuning, sysctl=Sysctl(), cpus=CPUS)


def test_defaults_never_lower_a_larger_max_and_zero_leaves_the_rest() -> None:
    MAX.write_text("2000000")
    HASHSIZE.write_text("600000")
    hashsize = read(HASHSIZE)  # rounded up to whole pages by the kernel
    before = timeouts()
    assert apply()  # kube-proxy's defaults: max(32768 x CPUs, 131072)
    assert (read(MAX), read(HASHSIZE)) == ("2000000", hashsize)
    assert timeouts() == {**before, "tcp_timeout_established": "86400",
                          "tcp_timeout_close_wait": "3600"}  # fmt: skip

    MAX.write_text("1000")
    after = timeouts()
    assert apply(
        "--conntrack-max-per-core=0",
        "--conntrack-tcp-timeout-established=0",
        "--conntrack-tcp-timeout-close-wait=0",
    )
    assert read(MAX) == "1000"
    assert timeouts() == after


def test_outside_the_initial_namespace_max_is_read_only_and_named_the_timeouts_still_set(
    caplog: pytest.LogCaptureFixture,
) -> None:
    MAX.write_text("1000")
    root_timeouts = timeouts()
    subprocess.run(["ip", "netns", "add", "ipvsd-conntrack"], check=True)
    try:
        with entered("ipvsd-conntrack"), caplog.at_level(logging.ERROR):
            ok = apply()
            child = timeouts()
    finally:
        subprocess.run(["ip", "netns", "del", "ipvsd-conntrack"], check=False)
    assert not ok
    assert caplog.messages[0].startswith(
        "cannot raise sysctl net.netfilter.nf_conntrack_max to 131072 (it is 1000): "
        "Permission denied; it is global, writable only from the host's initial network "
        "namespace"
    )
    # per namespace: set in the child, the root namespace's own untouched
    assert (child["tcp_timeout_established"], child["tcp_timeout_close_wait"]) == ("86400", "3600")
    assert read(MAX) == "1000"
    assert timeouts() == root_timeouts
