"""The start-up check of ipvsd's nftables table (`nft.check_support`) on the real kernel: it
accepts the table, loads what the rules need, and leaves the network namespace untouched."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.kernel

CHECK_THEN_LIST = """
import subprocess
from ipvsd.dataplane.nft import check_support
from ipvsd.model.firewall import Firewall, FirewallConfig
from ipaddress import ip_network
config = FirewallConfig(pod_cidrs=(ip_network("10.128.0.0/14"),), masquerade_all=True)
print(repr(check_support(Firewall(config=config))))
print(subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout.strip())
"""


def test_the_table_is_accepted_and_nothing_is_created() -> None:
    done = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", CHECK_THEN_LIST],
        capture_output=True,
        text=True,
        check=True,
    )
    verdict, listed = done.stdout.split("\n", 1)
    assert verdict == "None", done.stdout
    assert listed.strip() == "", "a checked transaction must not create ipvsd's table"
    modules = subprocess.run(["lsmod"], capture_output=True, text=True, check=True).stdout
    assert "nft_masq" in modules or "nft_masq" in _builtin(), "the check loads the rules' modules"


def _builtin() -> str:
    release = subprocess.run(["uname", "-r"], capture_output=True, text=True, check=True)
    release_name = release.stdout.strip()
    try:
        with open(f"/lib/modules/{release_name}/modules.builtin") as builtin:
            return builtin.read()
    except OSError:
        return ""
