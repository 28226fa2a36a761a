"""The bounded drain of TCP real servers through the syncer, on the fake kernel with a fake clock.

The same behaviour with real connections on the real kernel: `tests/kernel/test_drain.py`.
"""

from __future__ import annotations

from ipvsd.dataplane.addresses import FakeAddresses
from ipvsd.dataplane.ipvs_fake import FakeIpvs
from ipvsd.model.ipvs import Family, ServiceKey, parse_address
from ipvsd.model.service import ServiceRef
from ipvsd.reconcile.syncer import Syncer, SyncSettings
from tests.component.test_syncer import Cluster, RecordingFirewall, table

WEB = ServiceKey.tcp("10.96.0.10", 80)
A, B = "10.244.1.5", "10.244.1.6"
LINE_B = f"-a -t 10.96.0.10:80 -r {B}:8080 -m -w"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def syncer_for(cluster: Cluster, kernel: FakeIpvs, clock: Clock, bound: float) -> Syncer:
    return Syncer(
        ipvs=kernel,
        addresses=FakeAddresses(host=[(parse_address("192.168.1.10"), "eth0")]),
        firewall=RecordingFirewall(),
        settings=SyncSettings(node_name="node-a", families=(Family.INET,), drain_timeout=bound),
        services=lambda: list(cluster.services.values()),
        slices_of=lambda ref: cluster.slices.get(ref, []),
        own_node=lambda: None,
        clock=clock,
    )


def weight_of_b(kernel: FakeIpvs) -> str | None:
    """B's weight as ipvsadm prints it, None once B is gone."""
    lines = [line for line in table(kernel) if line.startswith(LINE_B)]
    return lines[0].rsplit(" ", 1)[1] if lines else None


async def remove_busy_b(cluster: Cluster, kernel: FakeIpvs, syncer: Syncer) -> ServiceRef:
    web = cluster.add("web", "10.96.0.10", A, B)
    await syncer.sync(full=True)
    kernel.set_connections(WEB, B, 8080, active=1)
    cluster.add("web", "10.96.0.10", A)
    await syncer.sync(full=False, services=[web])
    return web


async def test_a_busy_removed_real_server_drains_at_weight_zero_until_the_bound_passes() -> None:
    cluster, kernel, clock = Cluster(), FakeIpvs(), Clock()
    syncer = syncer_for(cluster, kernel, clock, bound=5.0)
    await remove_busy_b(cluster, kernel, syncer)
    assert weight_of_b(kernel) == "0"
    clock.now += 4.9
    await syncer.sync(full=True)
    assert weight_of_b(kernel) == "0"
    clock.now += 0.1
    await syncer.sync(full=True)
    assert weight_of_b(kernel) is None


async def test_a_drain_ends_as_soon_as_the_connections_do() -> None:
    cluster, kernel, clock = Cluster(), FakeIpvs(), Clock()
    syncer = syncer_for(cluster, kernel, clock, bound=3600.0)
    await remove_busy_b(cluster, kernel, syncer)
    kernel.set_connections(WEB, B, 8080, active=0, inactive=1)  # e.g. in TIME_WAIT
    await syncer.sync(full=True)
    assert weight_of_b(kernel) == "0"
    kernel.set_connections(WEB, B, 8080)
    await syncer.sync(full=True)
    assert weight_of_b(kernel) is None


async def test_a_drain_timeout_of_zero_deletes_a_busy_real_server_at_once() -> None:
    cluster, kernel, clock = Cluster(), FakeIpvs(), Clock()
    syncer = syncer_for(cluster, kernel, clock, bound=0.0)
    await remove_busy_b(cluster, kernel, syncer)
    assert weight_of_b(kernel) is None


async def test_an_address_removed_again_later_drains_for_the_whole_bound_again() -> None:
    """The clock forgets a drain that ended: a pod IP reused by a new pod, removed an hour
    later, must not be cut at once because its earlier drain started long ago."""
    cluster, kernel, clock = Cluster(), FakeIpvs(), Clock()
    syncer = syncer_for(cluster, kernel, clock, bound=5.0)
    web = await remove_busy_b(cluster, kernel, syncer)
    clock.now += 1
    cluster.add("web", "10.96.0.10", A, B)  # wanted again while draining: weight back
    await syncer.sync(full=False, services=[web])
    assert weight_of_b(kernel) == "1"
    clock.now += 3600
    await syncer.sync(full=True)
    cluster.add("web", "10.96.0.10", A)
    await syncer.sync(full=False, services=[web])
    assert weight_of_b(kernel) == "0"  # draining again, not deleted at once
    clock.now += 5
    await syncer.sync(full=True)
    assert weight_of_b(kernel) is None


async def test_a_restarted_daemon_keeps_a_drain_at_weight_zero_and_bounds_it_from_its_start() -> (
    None
):
    """Across a restart: the kernel keeps no drain start time and ipvsd keeps none either, so a
    restarted daemon (a new syncer over the same kernel) leaves the draining real server at
    weight 0 (its connections go on, nothing new reaches it) and starts the bound at its own
    first sync: a drain ends no sooner than the bound after the restart, never cut short."""
    cluster, kernel, clock = Cluster(), FakeIpvs(), Clock()
    await remove_busy_b(cluster, kernel, syncer_for(cluster, kernel, clock, bound=5.0))
    clock.now += 4.0
    restarted = syncer_for(cluster, kernel, clock, bound=5.0)
    await restarted.sync(full=True)
    assert weight_of_b(kernel) == "0"
    clock.now += 4.9  # 8.9 s into the drain, 4.9 s after the restart
    await restarted.sync(full=True)
    assert weight_of_b(kernel) == "0"
    clock.now += 0.1
    await restarted.sync(full=True)
    assert weight_of_b(kernel) is None
