"""The image itself, run with podman on the host: entry point, tools, nothing left over."""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

import pytest

from tests.image.support import ROOT, podman, run_in_image

pytestmark = pytest.mark.image

# Each tool an operator or ipvsd's takeover needs, as `--version` (or `-V`) reports it.
# ipvsadm is missing here: even `ipvsadm --version` opens IPVS first, and this host has none;
# the VM test runs it inside the DaemonSet's container instead.
TOOLS = {
    "nft": (["--version"], r"^nftables v1\."),
    "iptables-nft": (["-V"], r"^iptables v1\.\S+ \(nf_tables\)"),
    "iptables-legacy": (["-V"], r"^iptables v1\.\S+ \(legacy\)"),
    "ip6tables-nft": (["-V"], r"^ip6tables v1\.\S+ \(nf_tables\)"),
    "ip6tables-legacy": (["-V"], r"^ip6tables v1\.\S+ \(legacy\)"),
    "iptables-nft-save": (["-V"], r"^iptables-nft-save v1\.\S+ \(nf_tables\)"),
    "iptables-legacy-save": (["-V"], r"^iptables-save v1\.\S+ \(legacy\)"),
    "ip6tables-nft-save": (["-V"], r"^ip6tables-nft-save v1\.\S+ \(nf_tables\)"),
    "ip6tables-legacy-save": (["-V"], r"^ip6tables-save v1\.\S+ \(legacy\)"),
    "conntrack": (["--version"], r"^conntrack v1\."),
    "ip": (["-V"], r"^ip utility, iproute2-"),
    "modprobe": (["--version"], r"^kmod version \d+"),
}


def test_the_default_base_is_the_public_python_image() -> None:
    """hack/image.sh passes a stand-in only as a build argument; the Dockerfile keeps its base."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE=python:3\.11-slim-bookworm$", dockerfile, re.MULTILINE)
    # Stages start from the base or from the `deps` stage built on it.
    assert re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE) == [
        "${BASE}",
        "deps",
        "deps",
        "${BASE}",
    ]


def test_the_entry_point_is_ipvsd(build: dict[str, Any]) -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert run_in_image(build["image"], "--version").strip() == f"ipvsd {version}"
    assert run_in_image(build["image"], "--help").startswith("usage: ipvsd ")


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_the_tool_runs(build: dict[str, Any], tool: str) -> None:
    args, expected = TOOLS[tool]
    output = run_in_image(build["image"], *args, entrypoint=tool)
    assert re.search(expected, output, re.MULTILINE), output


def test_ipset_runs(build: dict[str, Any]) -> None:
    """ipset asks the kernel for its protocol version: that needs CAP_NET_ADMIN."""
    done = podman("run", "--rm", "--network", "none", "--timeout", "90", "--privileged",
                  "--entrypoint", "ipset", build["image"], "--version")  # fmt: skip
    assert done.stdout.startswith("ipset v7."), done.stdout + done.stderr


# The package the image runs: only the runtime part (the emulator and the test harnesses stay
# out) and no pip (nothing installs at run time).
PACKAGE = """
import importlib.util, os, ipvsd
print("package", os.path.dirname(ipvsd.__file__))
print("testing", importlib.util.find_spec("ipvsd.testing"))
print("pip", importlib.util.find_spec("pip"))
"""

# Build leftovers: the build stage's wheel and sources, pip's cache, apt's package lists and
# downloaded packages.
LEFTOVERS = """
import fnmatch, os
unwanted = ("/wheels", "/src", "/root/.cache/pip", "*.whl", "/var/lib/apt/lists/*",
            "/var/cache/apt/*.bin", "/var/cache/apt/archives/*.deb")
for top, dirs, files in os.walk("/"):
    if top == "/":
        dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev")]
    for name in dirs + files:
        path = os.path.join(top, name)
        if any(fnmatch.fnmatch(path, pattern) for pattern in unwanted):
            print(path)
"""


def test_only_the_runtime_package(build: dict[str, Any]) -> None:
    output = run_in_image(build["image"], "-c", PACKAGE, entrypoint="python3")
    assert output.splitlines() == [
        "package /opt/ipvsd/lib/python3.11/site-packages/ipvsd",
        "testing None",
        "pip None",
    ], output


def test_no_build_leftovers(build: dict[str, Any]) -> None:
    """What the base itself has (its own ensurepip wheels, say) is not the build's."""
    found = run_in_image(build["image"], "-c", LEFTOVERS, entrypoint="python3").splitlines()
    in_base = run_in_image(build["base"], "-c", LEFTOVERS, entrypoint="python3").splitlines()
    assert [path for path in found if path not in in_base] == []


def test_a_new_version_is_one_small_layer(build: dict[str, Any]) -> None:
    """The package is the image's last layer and the dependencies the one before: a node
    pulling a new version of ipvsd downloads the package (a megabyte or so), not the venv."""
    history = json.loads(podman("history", "--format", "json", build["image"]).stdout)
    layers = [entry for entry in history if entry["size"] > 0]  # not ENV, ENTRYPOINT, ...
    package, dependencies = layers[0], layers[1]  # newest first
    assert package["CreatedBy"].rstrip().endswith(" in /"), package  # COPY --from=build /stage/
    assert package["size"] < 5_000_000, package
    assert dependencies["CreatedBy"].rstrip().endswith(" in /opt/ipvsd"), dependencies
    assert dependencies["size"] > 50_000_000, dependencies
