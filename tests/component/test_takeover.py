"""The takeover's removal of kube-proxy's leftovers: retried until it succeeds, logged once,
run by the syncer after a full sync and never able to fail one."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web

from ipvsd.config.command_line import parse_args
from ipvsd.dataplane.addresses import FakeAddresses
from ipvsd.dataplane.ipvs_fake import FakeIpvs
from ipvsd.kube.resources import proxy_selections
from ipvsd.model.netfilter import LeftoverRemoval, NetfilterState
from ipvsd.reconcile.takeover import KubeProxyLeftovers, KubeProxyRunning, check_live_kube_proxy
from ipvsd.server.kube_proxy_probe import kube_proxy_mode
from ipvsd.server.metrics import ProxyMetrics
from ipvsd.server.metrics_server import metrics_app
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


# --- a live kube-proxy on the node -----------------------------------------------------------


async def answering_proxy_mode(body: str, headers: dict[str, str] | None = None) -> web.AppRunner:
    async def proxy_mode(_: web.Request) -> web.Response:
        return web.Response(text=body, headers=headers)

    app = web.Application()
    app.router.add_get("/proxyMode", proxy_mode)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


def bound(runner: web.AppRunner) -> str:
    host, port = runner.addresses[0][:2]
    return f"{host}:{port}"


@pytest.mark.parametrize("mode", ["ipvs", "iptables", "nftables"])
async def test_a_kube_proxy_on_the_metrics_port_is_seen_with_its_mode(mode: str) -> None:
    runner = await answering_proxy_mode(f"{mode}\n")
    try:
        assert await kube_proxy_mode(bound(runner)) == mode
    finally:
        await runner.cleanup()


async def test_ipvsd_own_metrics_server_is_not_taken_for_kube_proxy() -> None:
    runner = web.AppRunner(metrics_app(ProxyMetrics()))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        assert await kube_proxy_mode(bound(runner)) is None
    finally:
        await runner.cleanup()


async def test_nothing_listening_or_something_else_answering_is_no_kube_proxy() -> None:
    runner = await answering_proxy_mode("<html>hello</html>")
    try:
        address = bound(runner)
        assert await kube_proxy_mode(address) is None
    finally:
        await runner.cleanup()
    assert await kube_proxy_mode(address, wait=1.0) is None  # closed now


def test_kube_proxy_in_ipvs_mode_is_refused_and_other_modes_need_the_labelled_mode() -> None:
    with pytest.raises(KubeProxyRunning, match="move this node off kube-proxy's DaemonSet"):
        check_live_kube_proxy("ipvs", only_labelled=True)
    warning = check_live_kube_proxy("iptables", only_labelled=False)
    assert warning is not None
    assert "--serve-only-labelled" in warning
    assert check_live_kube_proxy("nftables", only_labelled=True) is None
    assert check_live_kube_proxy(None, only_labelled=False) is None


def test_the_labelled_mode_watches_only_services_naming_this_proxy() -> None:
    assert [str(s) for s in proxy_selections("ipvsd", only_labelled=True)] == [
        "labels service.kubernetes.io/service-proxy-name=ipvsd,!service.kubernetes.io/headless"
    ]
    assert len(proxy_selections("ipvsd")) == 2
    flags = parse_args(["--serve-only-labelled", "--proxy-name=canary"], environ={})
    assert flags.config.serve_only_labelled
    assert flags.config.proxy_name == "canary"
