"""The VM gives the kernel tier what it needs: IPVS, dummy links and nftables on a real kernel.

These run only inside hack/kernel-run.sh's VM (the host kernel has no IPVS); they fail fast and
plainly when the environment is wrong, before the slower kernel tests run into it.
"""

from __future__ import annotations

import subprocess

import pytest

pytestmark = pytest.mark.kernel


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout


def test_ipvsadm_round_trips_a_service_with_a_destination() -> None:
    run("modprobe", "ip_vs")
    run("ipvsadm", "-A", "-t", "192.0.2.80:80", "-s", "rr")
    try:
        run("ipvsadm", "-a", "-t", "192.0.2.80:80", "-r", "198.51.100.7:8080", "-m", "-w", "3")
        saved = run("ipvsadm", "-Sn").splitlines()
        assert "-A -t 192.0.2.80:80 -s rr" in saved
        assert "-a -t 192.0.2.80:80 -r 198.51.100.7:8080 -m -w 3" in saved
    finally:
        run("ipvsadm", "-D", "-t", "192.0.2.80:80")


def test_dummy_interface_takes_an_address() -> None:
    run("ip", "link", "add", "smoke-dummy0", "type", "dummy")
    try:
        run("ip", "addr", "add", "192.0.2.81/32", "dev", "smoke-dummy0")
        assert "192.0.2.81/32" in run("ip", "-br", "addr", "show", "dev", "smoke-dummy0")
    finally:
        run("ip", "link", "del", "smoke-dummy0")


def test_nftables_accepts_and_lists_a_table() -> None:
    run("nft", "list", "ruleset")
    run("nft", "add", "table", "inet", "ipvsd_smoke")
    try:
        assert "table inet ipvsd_smoke" in run("nft", "list", "tables")
    finally:
        run("nft", "delete", "table", "inet", "ipvsd_smoke")
