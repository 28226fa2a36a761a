"""One Service never stops the others (issue 16 item 10), on the fake kernel.

Each failure below is confined to the Service (or address) that causes it: the other Services
keep syncing, the failure is logged once however often it recurs, counted every time
(`Syncer.problems`, `ipvsd_sync_errors_total`) and tried again. The same cases run on the real
kernel through the daemon in `tests/kernel/test_isolation.py` (address, nftables, scheduler).
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace

import pytest

from ipvsd.dataplane.addresses import FakeAddresses
from ipvsd.dataplane.ipvs_fake import DEBIAN_SCHEDULERS, FakeIpvs
from ipvsd.model.endpoint import EndpointSlice
from ipvsd.model.firewall import Firewall, FirewallChanges
from ipvsd.model.ipvs import Family, IPAddress, parse_address
from ipvsd.model.service import Service, ServiceRef
from ipvsd.plan.desired import DesiredService, NodeContext, desired_service
from ipvsd.reconcile.syncer import Syncer, SyncSettings
from tests.component.test_syncer import NODE_IP, Cluster, RecordingFirewall, table

pytestmark = pytest.mark.timeout(10)

WEB = ServiceRef("default", "web")
API = ServiceRef("default", "api")


@dataclass
class RefusingFirewall(RecordingFirewall):
    """nft that refuses any table or change holding the VIP `refuse` (as it refuses an element
    the kernel rejects), and says so for `nft --check`."""

    refuse: IPAddress | None = None
    checks: int = 0

    async def apply(self, firewall: Firewall) -> bool:
        if self.refuse in firewall.vips:
            raise RuntimeError(f"nft failed (1): refused {self.refuse}")
        return await super().apply(firewall)

    async def update(self, changes: FirewallChanges) -> None:
        if self.refuse in changes.added.vips:
            raise RuntimeError(f"nft failed (1): refused {self.refuse}")
        await super().update(changes)

    async def check(self, firewall: Firewall) -> str | None:
        self.checks += 1
        return f"refused {self.refuse}" if self.refuse in firewall.vips else None


class FailingPlanner:
    """`desired_service`, except that it raises for the Services in `failing`."""

    def __init__(self) -> None:
        self.failing: set[ServiceRef] = set()

    def __call__(
        self, service: Service, slices: Iterable[EndpointSlice], node: NodeContext
    ) -> DesiredService:
        if service.ref in self.failing:
            raise KeyError("a malformed object slipped past conversion")
        return desired_service(service, slices, node)


def make_syncer(
    cluster: Cluster,
    *,
    kernel: FakeIpvs | None = None,
    firewall: RefusingFirewall | None = None,
    addresses: FakeAddresses | None = None,
    planner: FailingPlanner | None = None,
    families: tuple[Family, ...] = (Family.INET,),
) -> Syncer:
    return Syncer(
        ipvs=kernel or FakeIpvs(),
        addresses=addresses or FakeAddresses(host=[(NODE_IP, "eth0")]),
        firewall=firewall or RefusingFirewall(),
        settings=SyncSettings(node_name="node-a", families=families),
        services=lambda: list(cluster.services.values()),
        slices_of=lambda ref: cluster.slices.get(ref, []),
        own_node=lambda: None,
        **({"planner": planner} if planner is not None else {}),
    )


def errors_logged(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(1 for r in caplog.records if r.levelno >= logging.ERROR and text in r.message)


async def test_a_service_whose_planning_raises_keeps_its_table_and_the_others_sync(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    cluster, kernel, planner = Cluster(), FakeIpvs(), FailingPlanner()
    syncer = make_syncer(cluster, kernel=kernel, planner=planner)
    cluster.add("web", "10.96.0.10", "10.244.1.5")
    cluster.add("api", "10.96.0.11", "10.244.2.5")
    await syncer.sync(full=True)
    planner.failing = {API}
    cluster.add("web", "10.96.0.10", "10.244.1.6")
    cluster.add("api", "10.96.0.11", "10.244.2.6")
    await syncer.sync(full=False, services=[WEB, API])
    await syncer.sync(full=False, services=[WEB])  # api is planned again: fails again
    await syncer.sync(full=True)
    rows = table(kernel)
    assert "-a -t 10.96.0.10:80 -r 10.244.1.6:8080 -m -w 1" in rows, "web kept syncing"
    assert "-a -t 10.96.0.11:80 -r 10.244.2.5:8080 -m -w 1" in rows, "api kept its table"
    assert "-a -t 10.96.0.11:80 -r 10.244.2.6:8080 -m -w 1" not in rows
    assert syncer.problems.take_counts() == {"plan": 3}
    assert errors_logged(caplog, "Service default/api: planning failed (KeyError") == 1
    planner.failing = set()
    await syncer.sync(full=False, services=[])  # no change of its own: retried anyway
    assert "-a -t 10.96.0.11:80 -r 10.244.2.6:8080 -m -w 1" in table(kernel)
    assert "Service default/api: planned again" in caplog.messages


async def test_a_new_service_whose_planning_raises_is_left_out_and_the_sync_succeeds() -> None:
    cluster, kernel, planner = Cluster(), FakeIpvs(), FailingPlanner()
    planner.failing = {API}
    syncer = make_syncer(cluster, kernel=kernel, planner=planner)
    cluster.add("web", "10.96.0.10", "10.244.1.5")
    cluster.add("api", "10.96.0.11", "10.244.2.5")
    report = await syncer.sync(full=True)
    assert report.failures == ()
    assert table(kernel) == [
        "-A -t 10.96.0.10:80 -s rr",
        "-a -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 1",
    ]


async def test_an_address_the_kernel_refuses_stays_unbound_and_the_rest_is_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster, kernel = Cluster(), FakeIpvs()
    addresses = FakeAddresses(host=[(NODE_IP, "eth0")])
    syncer = make_syncer(
        cluster, kernel=kernel, addresses=addresses, families=(Family.INET, Family.INET6)
    )
    cluster.add("web", "10.96.0.10", "10.244.1.5")
    ref = cluster.add("api", "fd00::11", "10.244.2.5")
    cluster.services[ref] = replace(
        cluster.services[ref], external_ips=(parse_address("ff05::1"),)
    )  # IPv6 multicast: Linux refuses it as a host address (EADDRNOTAVAIL)
    report = await syncer.sync(full=True)
    await syncer.sync(full=True)
    cluster.add("db", "10.96.0.12", "10.244.3.5")
    await syncer.sync(full=False, services=[ServiceRef("default", "db")])
    assert report.failures == ()
    assert await addresses.bound() == {
        parse_address("10.96.0.10"),
        parse_address("fd00::11"),
        parse_address("10.96.0.12"),
    }
    assert "-A -t 10.96.0.12:80 -s rr" in table(kernel), "later changes keep syncing"
    assert syncer.problems.take_counts() == {"bind": 2}, "tried again on every full sync"
    assert errors_logged(caplog, "bind ff05::1 on kube-ipvs0: the kernel refused") == 1
    kernel_operations = syncer.kernel.take()
    assert kernel_operations[("bind_address", "error")] == 2
    assert kernel_operations[("bind_address", "ok")] == 3


async def test_a_service_whose_firewall_share_nft_refuses_is_held_and_the_rest_loads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster, kernel = Cluster(), FakeIpvs()
    firewall = RefusingFirewall(refuse=parse_address("10.96.0.66"))
    addresses = FakeAddresses(host=[(NODE_IP, "eth0")])
    syncer = make_syncer(cluster, kernel=kernel, firewall=firewall, addresses=addresses)
    cluster.add("web", "10.96.0.10", "10.244.1.5")
    cluster.add("api", "10.96.0.66", "10.244.2.5")
    report = await syncer.sync(full=True)
    await syncer.sync(full=True)
    assert report.failures == ()
    assert table(kernel) == [
        "-A -t 10.96.0.10:80 -s rr",
        "-a -t 10.96.0.10:80 -r 10.244.1.5:8080 -m -w 1",
    ]
    assert firewall.current is not None
    assert firewall.current.vips == {parse_address("10.96.0.10")}
    assert await addresses.bound() == {parse_address("10.96.0.10")}
    assert syncer.problems.take_counts() == {"nftables": 2}
    assert errors_logged(caplog, "Service default/api: nftables refuses its rules") == 1
    operations = syncer.kernel.take()
    assert operations[("nftables_replace", "error")] == 2
    assert operations[("nftables_check", "error")] >= 2
    firewall.refuse = None
    await syncer.sync(full=True)  # the periodic full sync tries again
    assert "-A -t 10.96.0.66:80 -s rr" in table(kernel)
    assert parse_address("10.96.0.66") in await addresses.bound()


async def test_a_refused_change_keeps_the_service_as_it_was_and_the_others_change() -> None:
    cluster, kernel = Cluster(), FakeIpvs()
    firewall = RefusingFirewall()
    syncer = make_syncer(cluster, kernel=kernel, firewall=firewall)
    cluster.add("web", "10.96.0.10", "10.244.1.5")
    cluster.add("api", "10.96.0.11", "10.244.2.5")
    await syncer.sync(full=True)
    firewall.refuse = parse_address("203.0.113.9")
    cluster.add("web", "10.96.0.10", "10.244.1.6")
    cluster.add("api", "10.96.0.11", "10.244.2.6", external_ips=(firewall.refuse,))
    report = await syncer.sync(full=False, services=[WEB, API])
    rows = table(kernel)
    assert "-a -t 10.96.0.10:80 -r 10.244.1.6:8080 -m -w 1" in rows
    assert "-a -t 10.96.0.11:80 -r 10.244.2.5:8080 -m -w 1" in rows, "api as it was"
    assert not [row for row in rows if "203.0.113.9" in row]
    assert report.full, "the refused partial sync was finished by a full one"
    operations = syncer.kernel.take()
    assert operations[("nftables_update", "error")] == 1


async def test_a_missing_scheduler_falls_back_to_rr_and_comes_back_when_the_kernel_has_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    cluster = Cluster()
    kernel = FakeIpvs(schedulers=set(DEBIAN_SCHEDULERS) - {"sed"})
    syncer = make_syncer(cluster, kernel=kernel)
    cluster.add("web", "10.96.0.10", "10.244.1.5")
    cluster.add("api", "10.96.0.11", "10.244.2.5", annotations=(("ipvsd.io/scheduler", "sed"),))
    report = await syncer.sync(full=True)
    await syncer.sync(full=True)
    await syncer.sync(full=False, services=[API])
    rows = table(kernel)
    assert "-A -t 10.96.0.11:80 -s rr" in rows, "never without its virtual server"
    assert "-a -t 10.96.0.11:80 -r 10.244.2.5:8080 -m -w 1" in rows
    assert "-A -t 10.96.0.10:80 -s rr" in rows
    assert report.failures == ()
    [note] = report.unavailable[API]
    assert note.startswith("scheduler 'sed' is not available on this node")
    assert syncer.problems.take_counts() == {"scheduler": 2}, "the refusal and one probe"
    assert errors_logged(caplog, "IPVS scheduler 'sed' is not available on this node") == 1
    kernel.schedulers = frozenset(DEBIAN_SCHEDULERS)
    report = await syncer.sync(full=True)
    assert "-A -t 10.96.0.11:80 -s sed" in table(kernel)
    assert "IPVS scheduler 'sed' is available again" in caplog.messages
    assert API not in report.unavailable


async def test_a_missing_default_scheduler_falls_back_for_every_service() -> None:
    cluster = Cluster()
    kernel = FakeIpvs(schedulers=set(DEBIAN_SCHEDULERS) - {"sed"})
    syncer = Syncer(
        ipvs=kernel,
        addresses=FakeAddresses(host=[(NODE_IP, "eth0")]),
        firewall=RefusingFirewall(),
        settings=SyncSettings(node_name="node-a", default_scheduler="sed"),
        services=lambda: list(cluster.services.values()),
        slices_of=lambda ref: cluster.slices.get(ref, []),
        own_node=lambda: None,
    )
    cluster.add("web", "10.96.0.10", "10.244.1.5")
    cluster.add("api", "10.96.0.11", "10.244.2.5")
    report = await syncer.sync(full=True)
    assert [row for row in table(kernel) if row.startswith("-A")] == [
        "-A -t 10.96.0.10:80 -s rr",
        "-A -t 10.96.0.11:80 -s rr",
    ]
    assert set(report.unavailable) == {WEB, API}
    assert report.failures == ()


def test_the_errno_of_a_refused_address_is_the_kernels() -> None:
    from ipvsd.dataplane.addresses import refused_by_the_kernel

    assert refused_by_the_kernel(parse_address("ff05::1")) == errno.EADDRNOTAVAIL
    assert refused_by_the_kernel(parse_address("224.0.0.5")) == 0


async def test_the_search_for_a_refused_share_halves_and_then_starts_from_the_last_culprits() -> (
    None
):
    cluster = Cluster()
    firewall = RefusingFirewall(refuse=parse_address("10.96.1.17"))
    syncer = make_syncer(cluster, firewall=firewall)
    for i in range(64):
        cluster.add(f"s{i}", f"10.96.1.{i}", f"10.244.1.{i}")
    await syncer.sync(full=True)
    first = firewall.checks
    firewall.checks = 0
    await syncer.sync(full=True)
    assert first <= 2 * 7 + 1, "about 2·log2(64) checks, not one per Service"
    assert firewall.checks == 2, "the table without the last culprit, then with it"
    assert syncer.problems.take_counts() == {"nftables": 2}
