"""Whether the proxy applies changes within a deadline: the state behind /healthz and /livez.

The rule is kube-proxy's (`pkg/proxy/healthcheck/proxy_health.go`): the oldest change queued
since the last finished sync must not be older than the health timeout, twice the sync period;
with nothing queued the proxy is healthy however long ago it last synced. kube-proxy marks a
sync at the start of its sync loop "in case Sync() never succeeds"; ipvsd goes one step
further and counts its own start as a change that is owed, so a proxy that never completes a
first sync turns unhealthy after the timeout even when no event arrived (kube-proxy stays
healthy then). The Node's eligibility (not being deleted, not tainted
ToBeDeletedByClusterAutoscaler) only affects /healthz; /livez and the per-Service health
checks look at the proxy alone, as kube-proxy's do.

Also here: the JSON bodies, byte for byte what kube-proxy's `json.Marshal` of its ProxyHealth
produces. Nothing in this module does I/O; the clock is a parameter so tests drive time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from ipvsd.model.ipvs import Family

HEALTH_TIMEOUT_SYNC_PERIODS = 2  # kube-proxy: healthTimeout = 2 * syncPeriod
IPV4 = "IPv4"
IPV6 = "IPv6"


def family_names(families: Iterable[Family]) -> tuple[str, ...]:
    """The names kube-proxy's bodies use for IP families (Kubernetes' `IPFamily` values)."""
    return tuple(IPV4 if family is Family.INET else IPV6 for family in families)


@dataclass(frozen=True, slots=True)
class HealthReport:
    """One reading of the health state, taken at `current_time` (seconds since the epoch).

    `healthy` is the proxy's own health (changes applied in time); `serving` is what /healthz
    answers, which also needs the Node to be staying. `families` get a `status` entry each
    (none before the first sync).
    """

    healthy: bool
    node_eligible: bool
    last_updated: float
    current_time: float
    families: tuple[str, ...]

    @property
    def serving(self) -> bool:
        return self.healthy and self.node_eligible


class ProxyHealth:
    """Records queued changes and finished syncs; answers whether the proxy keeps up.

    `families` names the IP families the node runs (`dataplane.families`); one sync covers
    all of them. They label the per-family `status` entries of the bodies, as kube-proxy
    reports one per proxier, and, as there, an entry appears once its family has synced: before
    the first sync the bodies carry no `status`.
    """

    def __init__(
        self,
        *,
        sync_period: float,
        clock: Callable[[], float] = time.time,
        families: Iterable[str] = (IPV4,),
    ) -> None:
        if sync_period <= 0:
            raise ValueError(f"sync period must be positive, got {sync_period}")
        self.timeout = HEALTH_TIMEOUT_SYNC_PERIODS * sync_period
        self.families = tuple(families)
        self._clock = clock
        start = clock()
        self._last_updated = start
        self._oldest_pending: float | None = start  # the first sync is owed from the start
        self._newest_queued: float | None = None
        self._node_eligible = True  # eligible until the own Node says otherwise
        self._synced = False  # no family has synced yet: no per-family status

    def queued(self, now: float | None = None) -> None:
        """A change arrived that the next sync must apply."""
        at = self._now(now)
        if self._oldest_pending is None:
            self._oldest_pending = at
        if self._newest_queued is None or at > self._newest_queued:
            self._newest_queued = at

    def updated(self, now: float | None = None, *, started: float | None = None) -> None:
        """A sync finished and applied every change queued before it `started`.

        Without `started`, every queued change counts as applied (kube-proxy's rule). With it,
        a change queued while the sync ran stays owed, aged from the later of its own arrival
        and the sync's start, so a sync that hangs right after a busy one is still noticed.
        """
        at = self._now(now)
        self._last_updated = at
        self._synced = True
        newest = self._newest_queued
        if started is not None and newest is not None and newest >= started:
            oldest = self._oldest_pending
            self._oldest_pending = started if oldest is None else max(oldest, started)
        else:
            self._oldest_pending = None

    def set_node_eligible(self, eligible: bool) -> None:
        """False while the own Node is being deleted or tainted ToBeDeletedByClusterAutoscaler."""
        self._node_eligible = eligible

    def is_healthy(self, now: float | None = None) -> bool:
        """The proxy's own health, ignoring the Node (what per-Service health checks use)."""
        at = self._now(now)
        pending = self._oldest_pending
        return pending is None or at - pending < self.timeout

    def report(self, now: float | None = None) -> HealthReport:
        at = self._now(now)
        return HealthReport(
            healthy=self.is_healthy(at),
            node_eligible=self._node_eligible,
            last_updated=self._last_updated,
            current_time=at,
            families=self.families if self._synced else (),
        )

    def _now(self, now: float | None) -> float:
        return self._clock() if now is None else now


def go_time(timestamp: float) -> str:
    """A time as Go's JSON encoding writes it: RFC 3339, UTC as "Z", no trailing zeros.

    Floats carry microseconds, so the fraction has at most six digits.
    """
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    fraction = f".{moment.microsecond:06d}".rstrip("0") if moment.microsecond else ""
    return f"{moment:%Y-%m-%dT%H:%M:%S}{fraction}Z"


def healthz_body(report: HealthReport) -> bytes:
    """/healthz: 200 iff `report.serving`; includes nodeEligible."""
    return _body(report, answered_ok=report.serving, node_eligible=report.node_eligible)


def livez_body(report: HealthReport) -> bytes:
    """/livez: 200 iff `report.healthy`; the Node is not mentioned."""
    return _body(report, answered_ok=report.healthy, node_eligible=None)


def _body(report: HealthReport, *, answered_ok: bool, node_eligible: bool | None) -> bytes:
    # kube-proxy reports lastUpdated as "now" on a 200 (older releases showed the last loop
    # run there and probes learned to expect a recent time); the per-family entries keep the
    # real time of the last sync.
    last_updated = report.current_time if answered_ok else report.last_updated
    body: dict[str, object] = {
        "lastUpdated": go_time(last_updated),
        "currentTime": go_time(report.current_time),
    }
    if node_eligible is not None:
        body["nodeEligible"] = node_eligible
    body["healthy"] = report.healthy
    if report.families:
        entry = {"lastUpdated": go_time(report.last_updated), "healthy": report.healthy}
        body["status"] = dict.fromkeys(sorted(report.families), entry)
    return json.dumps(body, separators=(",", ":")).encode()
