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
    """A label-less histogram: `observe()` it, register it, scrape it.

    Values above the last bound count only in +Inf; values at or below a bound count in it
    (`le` is inclusive), negative values in the first bucket, as in every Prometheus client.
    """

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        bounds = [float(bound) for bound in buckets]
        if not bounds or bounds != sorted(set(bounds)):
            raise ValueError(f"{name}: buckets must be strictly increasing")
        self.name = name
        self._documentation = documentation
        self._bounds = bounds
        self._labels = [go_float(bound) for bound in bounds]
        self._counts = [0] * len(bounds)
        self._count = 0
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        index = bisect_left(self._bounds, value)
        with self._lock:
            if index < len(self._counts):
                self._counts[index] += 1
            self._count += 1
            self._sum += value

    def describe(self) -> Iterable[Metric]:
        return [HistogramMetricFamily(self.name, self._documentation, labels=())]

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            counts, count, total = list(self._counts), self._count, self._sum
        cumulative = 0
        buckets: list[tuple[str, float]] = []
        for label, bucket_count in zip(self._labels, counts, strict=True):
            cumulative += bucket_count
            buckets.append((label, cumulative))
        buckets.append(("+Inf", count))
        return [HistogramMetricFamily(self.name, self._documentation, buckets, total)]
