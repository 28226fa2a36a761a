"""The disruption table's per-change convergence (watch-faults): the slowest change decides the
row's `converge_s`, and a change that never arrived leaves it None, so a lost change can
never read as converged."""

from __future__ import annotations

from ipvsd.testing.disruption_harness import Row, fold_changes


def test_the_slowest_change_becomes_the_rows_convergence() -> None:
    row = Row("watch-faults", converge_s=0.4)
    fold_changes(row, [("cut", 0.3, 2.0), ("429", 2.6, 3.0), ("410", 0.9, 2.0)])
    assert row.converge_s == 2.6
    assert row.notes == [
        "3 changes timed one by one: median 0.90 s, slowest 2.60 s; "
        "over their bound (2 s, + Retry-After): none"
    ]


def test_a_change_over_its_bound_is_named() -> None:
    row = Row("watch-faults", converge_s=0.4)
    fold_changes(row, [("cut", 2.5, 2.0), ("429", 2.6, 3.0)])
    assert row.converge_s == 2.6
    assert "over their bound (2 s, + Retry-After): cut (2.50 s)" in row.notes[0]


def test_a_change_that_never_arrived_leaves_the_row_unconverged() -> None:
    row = Row("watch-faults", converge_s=0.4)
    fold_changes(row, [("cut", 0.3, 2.0), ("410", None, 2.0)])
    assert row.converge_s is None
    assert "410 (never)" in row.notes[0]


def test_no_timed_changes_leave_the_row_alone() -> None:
    row = Row("kill9", converge_s=1.5)
    fold_changes(row, [])
    assert (row.converge_s, row.notes) == (1.5, [])
