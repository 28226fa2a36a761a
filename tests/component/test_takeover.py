"""The takeover's removal of kube-proxy's leftovers: retried until it succeeds, logged once,
run by the syncer after a full sync and never able to fail one."""

from __future__ import annotations

import logging

import pytest

from ipvsd.dataplane.addresses import FakeAddresses
from ipvsd.dataplane.ipvs_fake import FakeIpvs
from ipvsd.model.netfilter import LeftoverRemoval, NetfilterState
from ipvsd.reconcile.takeover import KubeProxyLeftovers
from tests.component.test_syncer import Cluster, RecordingFirewall, syncer_with

NODE = NetfilterState(
    ipset="create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536\n"
    "create KUBE-IPVS-IPS hash:ip family inet6 hashsize 1024 maxelem 65536\n",
    nft_tables=(("ip", "kube-proxy"),),
)


class FakeNetfilter:
    def __init__(self, refusals: list[list[str]]) -> None:
        self.refusals = refusals
        self.removals: list[LeftoverRemoval] = []
        self.cleared = False

    async def read(self) -> NetfilterState:
        return NetfilterState() if self.cleared else NODE

    async def remove(self, removal: LeftoverRemoval) -> list[str]:
        self.removals.append(removal)
        if self.refusals:
            return self.refusals.pop(0)
        self.cleared = True
        return []


async def test_a_refusal_is_logged_once_and_retried_until_it_succeeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    netfilter = FakeNetfilter([["ipset failed (1): in use"], ["ipset failed (1): in use"]])
    leftovers = KubeProxyLeftovers(netfilter)
    with caplog.at_level(logging.INFO, logger="ipvsd.reconcile.takeover"):
        assert [await leftovers.remove() for _ in range(4)] == [False, False, True, True]
    assert len(netfilter.removals) == 3  # nothing more once done
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "kube-proxy leftover ipset KUBE-IPVS-IPS is hash:ip family inet6, not kube-proxy's "
        "hash:ip family inet; left alone",
        "kube-proxy leftovers (retried at the next full sync): ipset failed (1): in use",
        "removed kube-proxy's leftovers: ipsets KUBE-CLUSTER-IP; nftables tables ip kube-proxy",
    ]


async def test_the_syncer_runs_the_removal_after_a_full_sync_and_survives_its_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    async def failing() -> None:
        calls.append("after")
        raise RuntimeError("iptables exploded")

    cluster = Cluster()
    cluster.add("web", "10.96.0.10", "10.244.1.5")
    syncer = syncer_with(RecordingFirewall(), FakeIpvs(), FakeAddresses(), cluster)
    syncer._after_full_sync = failing
    report = await syncer.sync(full=True)
    assert report.full
    assert calls == ["after"]
    assert "iptables exploded" in caplog.text
    await syncer.sync(full=False, services=[])
    assert calls == ["after"]  # partial syncs do not run it
