"""Kernel settings: what is required per kernel version, and writing only what differs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ipvsd.dataplane.sysctl import Sysctl
from ipvsd.plan.sysctls import kernel_version, required_sysctls


@pytest.mark.parametrize(
    ("kernel", "reuse"),
    [((4, 0), None), ((4, 1), "0"), ((5, 8), "0"), ((5, 9), None), ((6, 1), None)],
)
def test_conn_reuse_mode_is_set_only_where_the_default_delays_connections(
    kernel: tuple[int, int], reuse: str | None
) -> None:
    assert (
        required_sysctls(kernel=kernel, strict_arp=False).get("net/ipv4/vs/conn_reuse_mode")
        == reuse
    )


def test_strict_arp_adds_arp_ignore_and_announce() -> None:
    wanted = required_sysctls(kernel=(6, 1), strict_arp=True)
    assert wanted["net/ipv4/conf/all/arp_ignore"] == "1"
    assert wanted["net/ipv4/conf/all/arp_announce"] == "2"
    assert "net/ipv4/conf/all/arp_ignore" not in required_sysctls(kernel=(6, 1), strict_arp=False)


@pytest.mark.parametrize(
    ("release", "version"),
    [("6.1.0-56-amd64", (6, 1)), ("5.8.18", (5, 8)), ("4.19rc1", (4, 19)), ("garbage", (0, 0))],
)
def test_kernel_version(release: str, version: tuple[int, int]) -> None:
    assert kernel_version(release) == version


def test_ensure_writes_only_differences_and_survives_unwritable_keys(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "net/ipv4/vs").mkdir(parents=True)
    (tmp_path / "net/ipv4/vs/conntrack").write_text("0\n")
    (tmp_path / "net/ipv4/ip_forward").write_text("1\n")
    sysctl = Sysctl(root=tmp_path)
    with caplog.at_level(logging.ERROR):
        changed = sysctl.ensure(
            {"net/ipv4/vs/conntrack": "1", "net/ipv4/ip_forward": "1", "missing/dir/key": "1"}
        )
    assert changed == {"net/ipv4/vs/conntrack": "0"}
    assert sysctl.read("net/ipv4/vs/conntrack") == "1"
    assert "cannot set sysctl missing.dir.key=1" in caplog.text
