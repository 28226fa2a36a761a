"""The conformance cases' pass rules, and the table and JSON line the driver prints."""

from __future__ import annotations

import json

import pytest

from ipvsd.testing.conformance import Row, summary, table
from ipvsd.testing.conformance_rules import distribution_verdict, spread, sticky


def test_a_client_passes_once_ten_good_answers_in_a_row_reached_every_allowed_pod() -> None:
    answers = ["(TimeoutError)", "c"] + ["a", "b"] * 9  # an old bad one, then 18 good
    assert distribution_verdict(answers, {"a", "b"}) is None


def test_an_answer_outside_the_allowed_set_among_the_recent_ones_fails() -> None:
    answers = ["a"] * 15 + ["c"] + ["a"] * 5
    assert distribution_verdict(answers, {"a"}) == "reached c, outside ['a']"


def test_an_allowed_pod_never_reached_fails_and_too_few_answers_wait() -> None:
    assert "never reached" in str(distribution_verdict(["a"] * 20, {"a", "b"}))
    assert "at least 20" in str(distribution_verdict(["a"] * 19, {"a"}))


def test_failed_requests_are_skipped_as_upstream_skips_empty_log_lines() -> None:
    answers = ["a", "(ConnectionRefusedError)"] * 10
    assert distribution_verdict(answers, {"a"}) is None


@pytest.mark.parametrize(
    ("answers", "is_sticky", "is_spread"),
    [
        (["a"] * 15, True, False),
        (["b"] + ["a"] * 15, True, True),
        (["a"] * 14 + ["b"], False, True),
        (["(TimeoutError)"] * 15, False, False),
    ],
)
def test_affinity_is_fifteen_in_a_row_from_one_pod(
    answers: list[str], is_sticky: bool, is_spread: bool
) -> None:
    assert (sticky(answers), spread(answers)) == (is_sticky, is_spread)


def test_the_json_line_counts_each_kind_and_names_every_case() -> None:
    rows = [
        Row("case one", "test/e2e/network/service.go", "t::one", "PASS"),
        Row("case two", "test/e2e/network/service.go", "t::two", "FAIL: expected failure: x"),
        Row("case three", "test/e2e/network/service.go", "-", "SKIP: out of scope"),
    ]
    assert json.loads(summary(rows)) == {
        "passed": 1, "failed": 1, "skipped": 1,
        "cases": {"case one": "PASS", "case two": "FAIL: expected failure: x",
                  "case three": "SKIP: out of scope"},
    }  # fmt: skip
    assert "| case two | service.go | `t::two` | FAIL: expected failure: x |" in table(rows)
