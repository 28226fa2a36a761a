"""A pytest plugin that records each conformance case's verdict for the table.

Loaded with `-p ipvsd.testing.conformance_plugin`; it appends one JSON line per test to the file
named by `IPVSD_CONFORMANCE_RECORD`: the node id, the `upstream(name, file)` mark (if any) and
the verdict: `PASS`, `FAIL: <first line>` (a strict expected failure counts as FAIL, with its
measured reason), or `SKIP: <reason>`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from typing import Any

import pytest

RECORD_VARIABLE = "IPVSD_CONFORMANCE_RECORD"


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def verdict(report: pytest.TestReport) -> str | None:
    """The verdict this phase's report settles, or None when it settles nothing yet."""
    if hasattr(report, "wasxfail"):
        if report.skipped:
            return f"FAIL: expected failure: {report.wasxfail}"
        return f"FAIL: passed though marked as failing ({report.wasxfail})"
    if report.failed:
        return f"FAIL: {_first_line(str(report.longrepr))}"
    if report.skipped:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        return f"SKIP: {reason.removeprefix('Skipped: ')}"
    if report.when == "call":
        return "PASS"
    return None


class Recorder:
    def __init__(self, path: str) -> None:
        self.path = path
        self.verdicts: dict[str, str] = {}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[Any]
    ) -> Generator[None, Any, None]:
        outcome = yield
        report: pytest.TestReport = outcome.get_result()
        settled = verdict(report)
        if settled is None or item.nodeid in self.verdicts:
            return
        self.verdicts[item.nodeid] = settled
        mark = item.get_closest_marker("upstream")
        line = {
            "nodeid": item.nodeid,
            "upstream": list(mark.args) if mark is not None else None,
            "verdict": settled,
            "seconds": round(report.duration, 1),
        }
        with open(self.path, "a") as out:
            out.write(json.dumps(line) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    path = os.environ.get(RECORD_VARIABLE)
    if path:
        config.pluginmanager.register(Recorder(path), "conformance-recorder")
