"""ProxyHealth, rule by rule, on a fake clock; and the JSON bodies kube-proxy's probes read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ipvsd.dataplane.families import kernel_families
from ipvsd.model.ipvs import Family
from ipvsd.server.health import (
    HealthReport,
    ProxyHealth,
    family_names,
    go_time,
    healthz_body,
    livez_body,
)

pytestmark = pytest.mark.timeout(5)

START = 1_700_000_000.0
SYNC_PERIOD = 30.0
TIMEOUT = 60.0  # twice the sync period


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def health(clock: FakeClock) -> ProxyHealth:
    return ProxyHealth(sync_period=SYNC_PERIOD, clock=clock)


def test_timeout_is_twice_the_sync_period(health: ProxyHealth) -> None:
    assert health.timeout == TIMEOUT


def test_rejects_a_sync_period_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        ProxyHealth(sync_period=0)


def test_healthy_at_start(health: ProxyHealth) -> None:
    assert health.is_healthy()


def test_first_sync_is_owed_within_the_timeout_from_start(
    health: ProxyHealth, clock: FakeClock
) -> None:
    clock.advance(TIMEOUT - 0.001)
    assert health.is_healthy()
    clock.advance(0.001)
    assert not health.is_healthy()


def test_a_first_sync_in_time_keeps_it_healthy_with_nothing_queued(
    health: ProxyHealth, clock: FakeClock
) -> None:
    clock.advance(10)
    health.updated()
    clock.advance(10 * TIMEOUT)
    assert health.is_healthy(), "nothing queued: no deadline, however old the last sync"


def test_a_queued_change_must_be_synced_within_the_timeout(
    health: ProxyHealth, clock: FakeClock
) -> None:
    health.updated()
    clock.advance(100)
    health.queued()
    clock.advance(TIMEOUT - 1)
    assert health.is_healthy()
    clock.advance(1)
    assert not health.is_healthy(), "exactly the timeout is late (kube-proxy: age < timeout)"


def test_the_oldest_queued_change_sets_the_deadline(health: ProxyHealth, clock: FakeClock) -> None:
    health.updated()
    health.queued()
    clock.advance(TIMEOUT / 2)
    health.queued()  # a newer change must not push the deadline back
    clock.advance(TIMEOUT / 2)
    assert not health.is_healthy()


def test_a_sync_clears_the_queue_and_recovers(health: ProxyHealth, clock: FakeClock) -> None:
    health.updated()
    health.queued()
    clock.advance(TIMEOUT * 3)
    assert not health.is_healthy()
    health.updated()
    assert health.is_healthy()


def test_explicit_now_overrides_the_clock(health: ProxyHealth) -> None:
    health.updated(now=START + 5)
    health.queued(now=START + 10)
    assert health.is_healthy(now=START + 10 + TIMEOUT - 1)
    assert not health.is_healthy(now=START + 10 + TIMEOUT)


def test_without_start_time_a_sync_applies_everything_queued(
    health: ProxyHealth, clock: FakeClock
) -> None:
    health.updated()
    sync_start = clock.now
    clock.advance(1)
    health.queued()  # arrives while the sync runs
    clock.advance(1)
    health.updated()  # kube-proxy's rule: everything counts as applied
    clock.advance(TIMEOUT * 2)
    assert health.is_healthy()
    assert sync_start < clock.now


def test_a_change_queued_during_a_sync_stays_owed(health: ProxyHealth, clock: FakeClock) -> None:
    health.updated()
    health.queued()
    clock.advance(1)
    sync_start = clock.now
    clock.advance(1)
    health.queued()  # arrives while the sync runs: the sync may not contain it
    clock.advance(1)
    health.updated(started=sync_start)
    assert health.is_healthy()
    clock.now = sync_start + TIMEOUT - 0.001
    assert health.is_healthy()
    clock.now = sync_start + TIMEOUT
    assert not health.is_healthy(), "aged from the sync's start (its arrival is not kept)"


def test_a_change_queued_before_the_sync_started_is_applied(
    health: ProxyHealth, clock: FakeClock
) -> None:
    health.updated()
    health.queued()
    clock.advance(1)
    health.updated(started=clock.now - 0.5)
    clock.advance(TIMEOUT * 2)
    assert health.is_healthy()


def test_a_change_only_during_the_sync_is_aged_from_its_arrival(
    health: ProxyHealth, clock: FakeClock
) -> None:
    health.updated()
    sync_start = clock.now
    clock.advance(5)
    health.queued()
    arrived = clock.now
    health.updated(started=sync_start)
    clock.now = arrived + TIMEOUT - 0.001
    assert health.is_healthy()
    clock.now = arrived + TIMEOUT
    assert not health.is_healthy()


def test_node_eligibility_only_affects_serving(health: ProxyHealth) -> None:
    assert health.report().serving
    health.set_node_eligible(False)
    report = health.report()
    assert report.healthy
    assert not report.node_eligible
    assert not report.serving
    health.set_node_eligible(True)
    assert health.report().serving


def test_report_carries_times_and_families(clock: FakeClock) -> None:
    health = ProxyHealth(sync_period=SYNC_PERIOD, clock=clock, families=("IPv6", "IPv4"))
    clock.advance(3)
    health.updated()
    clock.advance(2)
    assert health.report() == HealthReport(
        healthy=True,
        node_eligible=True,
        last_updated=START + 3,
        current_time=START + 5,
        families=("IPv6", "IPv4"),
    )


# --- bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "text"),
    [
        (0.0, "1970-01-01T00:00:00Z"),
        (START, "2023-11-14T22:13:20Z"),
        (START + 0.5, "2023-11-14T22:13:20.5Z"),
        (START + 0.123456, "2023-11-14T22:13:20.123456Z"),
        (START + 0.120001, "2023-11-14T22:13:20.120001Z"),
    ],
    ids=["epoch", "whole-second-has-no-fraction", "trailing-zeros-trimmed", "micro", "inner-zero"],
)
def test_go_time_matches_go_json_encoding(timestamp: float, text: str) -> None:
    assert go_time(timestamp) == text


def report(*, healthy: bool = True, node_eligible: bool = True) -> HealthReport:
    return HealthReport(
        healthy=healthy,
        node_eligible=node_eligible,
        last_updated=START,
        current_time=START + 90,
        families=("IPv4",),
    )


def test_healthz_body_when_serving_reports_now_as_last_updated() -> None:
    body = healthz_body(report())
    assert body == (
        b'{"lastUpdated":"2023-11-14T22:14:50Z","currentTime":"2023-11-14T22:14:50Z",'
        b'"nodeEligible":true,"healthy":true,'
        b'"status":{"IPv4":{"lastUpdated":"2023-11-14T22:13:20Z","healthy":true}}}'
    )


def test_healthz_body_when_late_reports_the_last_sync() -> None:
    body = json.loads(healthz_body(report(healthy=False)))
    assert body["lastUpdated"] == "2023-11-14T22:13:20Z"
    assert body["healthy"] is False
    assert body["status"]["IPv4"] == {"lastUpdated": "2023-11-14T22:13:20Z", "healthy": False}


def test_healthz_body_on_a_leaving_node_keeps_healthy_true_but_not_eligible() -> None:
    body = json.loads(healthz_body(report(node_eligible=False)))
    assert body["nodeEligible"] is False
    assert body["healthy"] is True
    assert body["lastUpdated"] == "2023-11-14T22:13:20Z", "a 503 shows the real last sync"


def test_livez_body_has_no_node_eligibility_and_ignores_the_node() -> None:
    body = json.loads(livez_body(report(node_eligible=False)))
    assert "nodeEligible" not in body
    assert body["lastUpdated"] == body["currentTime"], "livez answers 200 on a leaving node"
    assert list(body) == ["lastUpdated", "currentTime", "healthy", "status"]


def test_status_lists_every_family_sorted() -> None:
    both = HealthReport(
        healthy=True,
        node_eligible=True,
        last_updated=START,
        current_time=START,
        families=("IPv6", "IPv4"),
    )
    assert list(json.loads(livez_body(both))["status"]) == ["IPv4", "IPv6"]


# --- IP families (kube-proxy reports one status entry per proxier, i.e. per family) ------------


def test_dual_stack_status_appears_once_synced_with_both_families(clock: FakeClock) -> None:
    health = ProxyHealth(
        sync_period=SYNC_PERIOD, clock=clock, families=family_names(kernel_families_of(True))
    )
    before = json.loads(healthz_body(health.report()))
    assert "status" not in before, "kube-proxy: no family has updated yet, no status map"
    clock.advance(3)
    health.updated()
    clock.advance(2)
    body = json.loads(healthz_body(health.report()))
    assert body["status"] == {
        "IPv4": {"lastUpdated": "2023-11-14T22:13:23Z", "healthy": True},
        "IPv6": {"lastUpdated": "2023-11-14T22:13:23Z", "healthy": True},
    }
    assert body["healthy"] is True


def test_dual_stack_late_change_marks_every_family_and_the_whole_unhealthy(
    clock: FakeClock,
) -> None:
    health = ProxyHealth(sync_period=SYNC_PERIOD, clock=clock, families=("IPv4", "IPv6"))
    health.updated()
    health.queued()
    clock.advance(TIMEOUT)
    report = health.report()
    assert not report.serving
    body = json.loads(healthz_body(report))
    assert body["healthy"] is False
    assert {family: entry["healthy"] for family, entry in body["status"].items()} == {
        "IPv4": False,
        "IPv6": False,
    }


def kernel_families_of(ipv6: bool) -> tuple[Family, ...]:
    return (Family.INET, Family.INET6) if ipv6 else (Family.INET,)


def test_kernel_families_reads_whether_the_kernel_has_ipv6(tmp_path: Path) -> None:
    (tmp_path / "net" / "ipv4").mkdir(parents=True)
    assert kernel_families(sysctls=tmp_path) == (Family.INET,), "booted with ipv6.disable=1"
    (tmp_path / "net" / "ipv6").mkdir()
    assert kernel_families(sysctls=tmp_path) == (Family.INET, Family.INET6)
    assert family_names(kernel_families(sysctls=tmp_path)) == ("IPv4", "IPv6")
