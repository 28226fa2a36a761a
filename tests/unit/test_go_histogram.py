"""GoHistogram: Go's spelling of bucket bounds, inclusive buckets, cumulative exposition."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from ipvsd.server.histogram import GoHistogram, go_float

pytestmark = pytest.mark.timeout(5)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (1.0, "1"),
        (0.25, "0.25"),
        (0.001, "0.001"),
        (16.384, "16.384"),
        (300.0, "300"),
        (0.0001, "0.0001"),
        (999999.0, "999999"),
    ],
)
def test_go_float(value: float, text: str) -> None:
    assert go_float(value) == text


@pytest.mark.parametrize("value", [0.00001, 1e6, 1e21])
def test_go_float_refuses_where_go_would_use_an_exponent(value: float) -> None:
    with pytest.raises(ValueError, match="outside"):
        go_float(value)


@pytest.mark.parametrize("buckets", [[], [1.0, 1.0], [2.0, 1.0]])
def test_buckets_must_increase(buckets: list[float]) -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        GoHistogram("h", "help", buckets)


def test_counts_are_cumulative_and_inclusive() -> None:
    registry = CollectorRegistry()
    histogram = GoHistogram("h_seconds", "help", [0.0, 1.0, 2.0])
    registry.register(histogram)
    for value in (-1.0, 1.0, 1.5, 5.0):
        histogram.observe(value)

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert sample("h_seconds_bucket", le="0") == 1, "negative values land in the first bucket"
    assert sample("h_seconds_bucket", le="1") == 2, "a value equal to a bound counts in it"
    assert sample("h_seconds_bucket", le="2") == 3
    assert sample("h_seconds_bucket", le="+Inf") == 4
    assert sample("h_seconds_count") == 4
    assert sample("h_seconds_sum") == 6.5
