"""Taking a node over from kube-proxy's IPVS mode, and handing it back.

The node is built from kube-proxy's own rules (`takeover_support`, data/kube-proxy/): its
iptables and ip6tables rules, its ipsets of both families, kube-ipvs0 and its IPVS table,
beside the kubelet's chains, a user's chain and set and a hand-made virtual server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ipvsd.dataplane.kube_proxy_leftovers import NetfilterLeftovers
from ipvsd.reconcile.takeover import KubeProxyLeftovers
from tests.kernel.takeover_support import (
    HAND_MADE,
    Backend,
    clean_node,
    ipsets,
    ipvs_rules,
    kube_proxy_was_here,
    node_before,
    saved,
)

pytestmark = pytest.mark.kernel


@pytest.fixture
def node() -> Iterator[None]:
    clean_node()
    yield
    clean_node()


def loaded(module: str) -> bool:
    return any(line.split()[0] == module for line in Path("/proc/modules").read_text().splitlines())


@pytest.mark.parametrize("backend", ["nft", "legacy"])
async def test_kube_proxys_rules_and_sets_go_and_nothing_else_does(
    node: None, backend: Backend
) -> None:
    legacy_before = loaded("ip_tables")
    node_before(backend)
    before = {family: saved(backend, family) for family in ("ipv4", "ipv6")}
    sets_before = ipsets()
    kube_proxy_was_here(backend)
    assert "KUBE-IPVS-FILTER" in saved(backend)
    assert len(ipsets()) == len(sets_before) + 34
    ipvs = ipvs_rules()

    assert await KubeProxyLeftovers(NetfilterLeftovers()).remove()

    assert saved(backend, "ipv4") == before["ipv4"]
    assert saved(backend, "ipv6") == before["ipv6"]
    assert ipsets() == sets_before == ["user-set"]
    assert ipvs_rules() == ipvs  # IPVS is adopted, not removed
    assert HAND_MADE in ipvs
    if backend == "nft":
        assert loaded("ip_tables") == legacy_before  # the legacy backend was not loaded to look
