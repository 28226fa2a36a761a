"""Failures confined to what caused them: said once while they last, counted every time.

One Service must never stop the others. When the kernel refuses one address, nft refuses one
Service's share of the table, planning one Service raises, or the node lacks a scheduler, the
syncer leaves that one thing as it was, goes on with the rest, and tries again later (the
retries are the syncer's; see `reconcile.syncer`). Retrying means meeting the same failure on
every sync, so a log line per attempt would bury everything else: `Problems` logs a problem
when it appears or its message changes, logs once when it is gone, and counts every
occurrence for `ipvsd_sync_errors_total{kind}`.

`KernelTally` counts what the syncer asked of the kernel, by operation and result, for
`ipvsd_kernel_operations_total`. Both are taken (and reset) by the sync loop after each sync,
failed ones included.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable

from ipvsd.dataplane.ipvs import BatchResult
from ipvsd.model.ipvs import (
    AddRealServer,
    AddService,
    DeleteRealServer,
    DeleteService,
    Operation,
    UpdateRealServer,
    UpdateService,
)

log = logging.getLogger(__name__)

OK, ERROR = "ok", "error"

_OPERATION_NAMES: dict[type, str] = {
    AddService: "add_service",
    UpdateService: "update_service",
    DeleteService: "delete_service",
    AddRealServer: "add_real_server",
    UpdateRealServer: "update_real_server",
    DeleteRealServer: "delete_real_server",
}


def operation_name(op: Operation) -> str:
    """The fixed label of an IPVS operation (`add_service`, `delete_real_server`, ...)."""
    return _OPERATION_NAMES[type(op)]


class KernelTally:
    """Kernel operations by (operation, result); `take()` hands them over and starts afresh."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()

    def ipvs(self, result: BatchResult) -> None:
        """One IPVS batch: each operation counted with its own result (a cold start sends
        100,000 of them: the common all-ok batch is tallied by type, in C)."""
        if result.ok:
            for kind, count in Counter(map(type, result.operations)).items():
                self._counts[(_OPERATION_NAMES[kind], OK)] += count
            return
        for op, error in zip(result.operations, result.errors, strict=True):
            self._counts[(operation_name(op), OK if error is None else ERROR)] += 1

    def record(self, operation: str, *, ok: bool, count: int = 1) -> None:
        if count:
            self._counts[(operation, OK if ok else ERROR)] += count

    def take(self) -> dict[tuple[str, str], int]:
        taken, self._counts = dict(self._counts), Counter()
        return taken


class Problems:
    """Current problems by (kind, subject): logged when new or changed and when gone."""

    def __init__(self) -> None:
        self._current: dict[tuple[str, str], str] = {}
        self._counts: Counter[str] = Counter()

    def report(self, kind: str, subject: str, message: str, *, exc_info: bool = False) -> bool:
        """Count one occurrence; log it if it is new or says something new. True if logged.
        `exc_info`: add the traceback being handled (once, with the first line)."""
        self._counts[kind] += 1
        key = (kind, subject)
        if self._current.get(key) == message:
            return False
        self._current[key] = message
        log.error("%s", message, exc_info=exc_info)
        return True

    def resolved(self, kind: str, subject: str, message: str | None = None) -> None:
        """The problem is gone: say so once (with `message`, or a generic line)."""
        if self._current.pop((kind, subject), None) is not None:
            log.info("%s", message or f"{subject}: the {kind} problem is resolved")

    def resolve_all_but(self, kind: str, subjects: Iterable[str]) -> None:
        """Every problem of `kind` whose subject is not among `subjects` is gone."""
        keep = set(subjects)
        for _, subject in [key for key in self._current if key[0] == kind]:
            if subject not in keep:
                self.resolved(kind, subject)

    def any_of(self, kind: str) -> bool:
        """Whether some problem of `kind` is current (a cheap test before resolving many)."""
        return any(k == kind for k, _ in self._current)

    def subjects(self, kind: str) -> set[str]:
        return {subject for k, subject in self._current if k == kind}

    def take_counts(self) -> dict[str, int]:
        taken, self._counts = dict(self._counts), Counter()
        return taken
