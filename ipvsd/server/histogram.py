"""A histogram whose bucket labels are spelled the way kube-proxy's Go client spells them.

prometheus_client writes bucket bounds as Python floats (`le="1.0"`, `le="0.0"`); Go's client
writes `le="1"`, `le="0"`. Prometheus before 3.0 stores label values verbatim, so a recording
rule or panel that selects `le="1"` on kube-proxy's histograms would find nothing on ipvsd's.
This collector keeps the counts itself and hands the exposition Go's spelling.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable, Sequence

from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector


def go_float(value: float) -> str:
    """Go's `strconv.FormatFloat(value, 'g', -1, 64)` for bucket bounds.

    Both languages print the shortest round-tripping decimal; they differ only in Python's
    trailing ".0" and in where exponents start, so bounds are limited to 0 and [1e-4, 1e6),
    where neither language uses an exponent (every kube-proxy bound is in that range).
    """
    if value == 0:
        return "0"
    if not 1e-4 <= abs(value) < 1e6:
        raise ValueError(f"bucket bound {value} is outside the range spelled alike in Go")
    return repr(float(value)).removesuffix(".0")


class GoHistogram(Collector):
    """A histogram, optionally with labels: `observe()` it, register it, scrape it.

    Values above the last bound count only in +Inf; values at or below a bound count in it
    (`le` is inclusive), negative values in the first bucket, as in every Prometheus client.
    Without `labelnames` the one series exists from the start; with them (kube-proxy's
    `ip_family`), a series appears at its first observation, as a Go HistogramVec's does.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        labelnames: Sequence[str] = (),
    ) -> None:
        bounds = [float(bound) for bound in buckets]
        if not bounds or bounds != sorted(set(bounds)):
            raise ValueError(f"{name}: buckets must be strictly increasing")
        self.name = name
        self._documentation = documentation
        self._bounds = bounds
        self._labelnames = tuple(labelnames)
        self._labels = [go_float(bound) for bound in bounds]
        self._series: dict[tuple[str, ...], _Series] = {}
        if not self._labelnames:
            self._series[()] = _Series(len(bounds))
        self._lock = threading.Lock()

    def observe(self, value: float, labels: Sequence[str] = ()) -> None:
        """Count `value`; `labels` are the values of `labelnames`, in order."""
        key = tuple(labels)
        if len(key) != len(self._labelnames):
            raise ValueError(f"{self.name}: expected labels {self._labelnames}, got {key}")
        index = bisect_left(self._bounds, value)
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = _Series(len(self._bounds))
            if index < len(series.counts):
                series.counts[index] += 1
            series.count += 1
            series.total += value

    def describe(self) -> Iterable[Metric]:
        return [HistogramMetricFamily(self.name, self._documentation, labels=self._labelnames)]

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(self.name, self._documentation, labels=self._labelnames)
        with self._lock:
            taken = [(key, list(s.counts), s.count, s.total) for key, s in self._series.items()]
        for key, counts, count, total in sorted(taken):
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for label, bucket_count in zip(self._labels, counts, strict=True):
                cumulative += bucket_count
                buckets.append((label, cumulative))
            buckets.append(("+Inf", count))
            family.add_metric(list(key), buckets, total)
        return [family]


class _Series:
    """One label set's bucket counts (not cumulative), observation count and sum."""

    __slots__ = ("count", "counts", "total")

    def __init__(self, size: int) -> None:
        self.counts = [0] * size
        self.count = 0
        self.total = 0.0
