"""One Service's failure stays its own, on the real kernel, through the whole daemon (issue 16
item 10); and strict ARP's sysctls as kube-proxy sets them (item 12).

In one daemon run, three Services each meet a failure the node really produces:
- `bad-bind` (IPv6) lists externalIP `ff05::1`, which Linux refuses as a host address;
- `bad-nft` lists externalIP 203.0.113.66, for which nft refuses the table (the test-only fault
  switch `IPVSD_FAULT_NFT_REFUSE` adds an element nft rejects to any table holding it);
- `bad-sched` asks for a scheduler whose module is not loaded while the kernel's modprobe
  (`kernel.modprobe`) is a script that refuses, as on a node without that module.
`good` and every later change keep syncing and serving; the failures are counted in
`/metrics` and tried again at the next full syncs (logging once is checked on the host,
`tests/component/test_syncer_isolation.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ipvsd.testing.netns import http_get
from tests.kernel.daemon_support import (
    SERVICES,
    SLICES,
    Api,
    bound_on_dummy,
    endpoint_slice,
    ipvsadm,
    running_daemon,
    until,
    until_serving,
)

pytestmark = pytest.mark.kernel

REFUSED_BY_NFT = "203.0.113.66"
RESTORE_FAILURES = "kubeproxy_sync_proxy_rules_iptables_restore_failures_total"
OPERATIONS = 'ipvsd_kernel_operations_total{operation="%s",result="%s"}'
SCHEDULERS = ("fo", "ovf", "twos", "nq", "lblcr", "sed")  # ones no other kernel test needs


def service(name: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("ports", [{"name": "http", "port": 80, "targetPort": 8080}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def module_loaded(module: str) -> bool:
    return Path(f"/sys/module/{module}").exists()


def unloaded_scheduler() -> str:
    """A scheduler whose module is not in the kernel now (unloaded if need be)."""
    for name in SCHEDULERS:
        module = f"ip_vs_{name}"
        if module_loaded(module):
            subprocess.run(["rmmod", module], check=False, capture_output=True)
        if not module_loaded(module):
            return name
    raise AssertionError(f"every one of {SCHEDULERS} stays loaded")


@contextlib.contextmanager
def refusing_modprobe(tmp_path: Path) -> Iterator[None]:
    """The kernel's module loader as on a node without the module: it fails."""
    script = tmp_path / "modprobe"
    script.write_text("#!/bin/sh\nexit 1\n")
    script.chmod(0o755)
    setting = Path("/proc/sys/kernel/modprobe")
    original = setting.read_text().strip()
    setting.write_text(str(script))
    try:
        yield
    finally:
        setting.write_text(original)


async def metric_values(prefix: str) -> dict[str, float]:
    async with (
        aiohttp.ClientSession() as session,
        session.get("http://127.0.0.1:10249/metrics") as response,
    ):
        text = await response.text()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix)
    }


def nft_vips() -> str:
    return subprocess.run(
        ["nft", "list", "set", "inet", "ipvsd", "vips4"], capture_output=True, text=True, check=True
    ).stdout


@contextlib.contextmanager
def arp_sysctls_cleared() -> Iterator[list[Path]]:
    """conf/all arp_ignore and arp_announce at 0 (the kernel's default), restored after."""
    paths = [Path("/proc/sys/net/ipv4/conf/all/arp_ignore"),
             Path("/proc/sys/net/ipv4/conf/all/arp_announce")]  # fmt: skip
    before = [path.read_text() for path in paths]
    for path in paths:
        path.write_text("0")
    try:
        yield paths
    finally:
        for path, value in zip(paths, before, strict=True):
            path.write_text(value)


def read(paths: list[Path]) -> list[str]:
    return [path.read_text().strip() for path in paths]


@pytest.mark.timeout(300)  # the daemon imports and starts under emulation, as elsewhere
async def test_a_failing_service_never_stops_the_others(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """(With --ipvs-strict-arp, whose sysctls are checked first: one daemon start for both.)"""
    scheduler = unloaded_scheduler()
    monkeypatch.setenv("IPVSD_FAULT_NFT_REFUSE", REFUSED_BY_NFT)
    with arp_sysctls_cleared() as arp:
        daemon = running_daemon(
            "--ipvs-strict-arp", "--ipvs-sync-period=2s", service_cidr_v6="fd00:10:96::/112"
        )
        async with daemon as (api, _net):
            await isolation(api, scheduler, tmp_path, arp)


async def isolation(api: Api, scheduler: str, tmp_path: Path, arp: list[Path]) -> None:
    """Strict ARP, then the three failures beside a serving Service."""
    good = await api.send("POST", SERVICES, service("web"))
    await api.send("POST", SLICES, endpoint_slice("web", [("10.200.1.2", "node-a")]))
    vip = good["spec"]["clusterIP"]
    await until_serving(vip, f"-a -t {vip}:80 -r 10.200.1.2:8080")  # nft's modules loaded
    assert read(arp) == ["1", "2"], "strict ARP: kube-proxy's arp_ignore and arp_announce"
    with refusing_modprobe(tmp_path):
        v6 = {"ipFamilies": ["IPv6"], "ipFamilyPolicy": "SingleStack"}
        bad_bind = await api.send(
            "POST", SERVICES, service("bad-bind", externalIPs=["ff05::1"], **v6)
        )
        await api.send("POST", SERVICES, service("bad-nft", externalIPs=[REFUSED_BY_NFT]))
        bad_sched = await api.send("POST", SERVICES, {
            **service("bad-sched"),
            "metadata": {"name": "bad-sched",
                         "annotations": {"ipvsd.io/scheduler": scheduler}},
        })  # fmt: skip
        await api.send("POST", SLICES, endpoint_slice("bad-sched", [("10.200.1.2", "node-a")]))
        assert http_get("client", vip, 80).startswith("pod-a ")

        sched_vip = bad_sched["spec"]["clusterIP"]
        await until(lambda: f"-A -t {sched_vip}:80 -s rr" in ipvsadm())
        assert f"-a -t {sched_vip}:80 -r 10.200.1.2:8080" in ipvsadm()
        assert not module_loaded(f"ip_vs_{scheduler}")

        bind_vip = bad_bind["spec"]["clusterIP"]
        await until(lambda: f" {bind_vip}/128" in bound_on_dummy())
        assert "ff05::1" not in bound_on_dummy()
        assert f"-A -t [{bind_vip}]:80 -s rr" in ipvsadm(), "its other address serves"

        assert REFUSED_BY_NFT not in ipvsadm()
        assert REFUSED_BY_NFT not in bound_on_dummy()
        assert vip in nft_vips()

        await api.send("PUT", f"{SLICES}/web-1", endpoint_slice(
            "web", [("10.200.1.2", "node-a"), ("10.200.2.2", "node-b")]))  # fmt: skip
        await until(lambda: f"-a -t {vip}:80 -r 10.200.2.2:8080" in ipvsadm())

        errors = 'ipvsd_sync_errors_total{kind="%s"}'
        first = await metric_values("ipvsd_sync_errors_total")
        for kind in ("bind", "nftables", "scheduler"):
            assert first.get(errors % kind, 0) >= 1, (kind, first)
        retried = ("bind", "nftables", "scheduler")  # at the next full syncs (every 2 s)
        second: dict[str, float] = first
        for _ in range(100):
            if all(second[errors % k] > first[errors % k] for k in retried):
                break
            await asyncio.sleep(0.2)
            second = await metric_values("ipvsd_sync_errors_total")
        assert all(second[errors % k] > first[errors % k] for k in retried), (first, second)
        restores = await metric_values("kubeproxy_sync_proxy_rules_iptables_restore")
        assert restores[f'{RESTORE_FAILURES}{{ip_family="IPv4"}}'] >= 1
        operations = await metric_values("ipvsd_kernel_operations_total")
        assert operations[OPERATIONS % ("bind_address", "error")] >= 1
        assert operations[OPERATIONS % ("add_service", "ok")] >= 4
