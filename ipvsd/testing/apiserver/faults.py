"""Failures injected on purpose, so clients' retry, backoff and relist paths get exercised.

The request-level faults live here as state the middleware consults: answer the next N
requests (optionally only those under a path prefix, or of one method) with 500 or 429 (with
Retry-After), delay responses, answer the next watch or list-from-a-resource-version with 410
Gone, and pace lists (`pace_lists`: a slow API answering a list page by page, whether the
client pages with `limit`/`continue` or streams it as a watch with `sendInitialEvents`).
Faults that act on the server itself (dropping open watches, compacting the history,
restarting) are `ApiServer` methods. Nothing is injected unless a test asks.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ipvsd.testing.apiserver import errors as api
from ipvsd.testing.apiserver.errors import ApiError


@dataclass
class FailRule:
    """Answer the next `remaining` matching requests with `code`."""

    remaining: int
    code: int = 500
    retry_after: int = 1
    path_prefix: str | None = None
    method: str | None = None

    def applies(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)

    def error(self) -> ApiError:
        if self.code == 429:
            return api.too_many_requests(self.retry_after)
        if self.code == 500:
            return api.internal_error("injected fault")
        return ApiError(self.code, "InternalError", f"injected fault ({self.code})")


@dataclass
class ListPacing:
    """Lists under `path_prefix` answered `page_size` objects at a time, `seconds` before each
    page: a paged list gets at most `page_size` items per response (the API may return fewer
    than `limit`, with a continue token) after `seconds`; a streaming list (a watch with
    `sendInitialEvents=true`) writes its initial events in groups of `page_size`, `seconds`
    before each group and before the bookmark that ends them. `done` records each paced list
    as it ends."""

    seconds: float
    page_size: int
    path_prefix: str
    done: list[PacedList] = field(default_factory=list)
    _paging: dict[str, tuple[float, int]] = field(default_factory=dict)  # by continue token

    def paged(
        self, client: str, path: str, token_in: str | None, token_out: str | None, at: float
    ) -> None:
        """One page of a paged list served (it was asked for at `at`)."""
        started, pages = self._paging.pop(token_in, (at, 0)) if token_in else (at, 0)
        if token_out:
            self._paging[token_out] = (started, pages + 1)
        else:
            self.record(client, path, "list", pages + 1, started)

    def record(self, client: str, path: str, mode: str, pages: int, started: float) -> None:
        self.done.append(PacedList(client, path, mode, pages, started, time.monotonic()))


@dataclass(frozen=True)
class PacedList:
    """One list answered slowly: who asked (address), what, how (`list`: paged; `stream`: a
    watch with sendInitialEvents), in how many pages, from and to when (time.monotonic())."""

    client: str
    path: str
    mode: str
    pages: int
    started: float
    ended: float


class Faults:
    """The request-level faults currently armed; all off by default."""

    def __init__(self) -> None:
        self.rules: list[FailRule] = []
        self.delay_seconds = 0.0
        self.delay_path_prefix: str | None = None
        self.expire_remaining = 0
        self.pacing: ListPacing | None = None

    def fail_next(
        self,
        count: int = 1,
        *,
        code: int = 500,
        retry_after: int = 1,
        path_prefix: str | None = None,
        method: str | None = None,
    ) -> None:
        """Answer the next `count` matching requests with `code` (500, 429 + Retry-After...)."""
        if count < 1 or not 400 <= code <= 599:
            raise ValueError("count must be positive and code an HTTP error code")
        self.rules.append(FailRule(count, code, retry_after, path_prefix, method))

    def delay(self, milliseconds: float, *, path_prefix: str | None = None) -> None:
        """Hold every matching response this long before handling it (0 turns it off)."""
        self.delay_seconds = max(0.0, milliseconds / 1000)
        self.delay_path_prefix = path_prefix

    def expire_next(self, count: int = 1) -> None:
        """Answer the next `count` watches or lists from a resource version with 410 Gone."""
        self.expire_remaining += count

    def pace_lists(self, seconds: float, *, page_size: int = 1, path_prefix: str) -> ListPacing:
        """Answer lists under `path_prefix` slowly, page by page (`ListPacing`); the pacing,
        whose `done` tells what was paced. `clear()` turns it off."""
        if seconds < 0 or page_size < 1:
            raise ValueError("seconds must not be negative and page_size must be positive")
        self.pacing = ListPacing(seconds, page_size, path_prefix)
        return self.pacing

    def pacing_for(self, path: str) -> ListPacing | None:
        pacing = self.pacing
        if pacing is None or not path.startswith(pacing.path_prefix):
            return None
        return pacing

    def clear(self) -> None:
        self.rules.clear()
        self.delay_seconds = 0.0
        self.delay_path_prefix = None
        self.expire_remaining = 0
        self.pacing = None

    def failure_for(self, method: str, path: str) -> ApiError | None:
        """The injected error for this request, if a rule matches (consuming one use of it)."""
        for rule in self.rules:
            if rule.applies(method, path):
                rule.remaining -= 1
                if rule.remaining == 0:
                    self.rules.remove(rule)
                return rule.error()
        return None

    def delay_for(self, path: str) -> float:
        if self.delay_path_prefix is not None and not path.startswith(self.delay_path_prefix):
            return 0.0
        return self.delay_seconds

    def take_expiry(self) -> bool:
        """True (once per armed count) when this read from a version must get 410 Gone."""
        if self.expire_remaining <= 0:
            return False
        self.expire_remaining -= 1
        return True

    def describe(self) -> dict[str, Any]:
        return {
            "failNext": [asdict(rule) for rule in self.rules],
            "delayMilliseconds": self.delay_seconds * 1000,
            "delayPathPrefix": self.delay_path_prefix,
            "expireNext": self.expire_remaining,
            "paceLists": None if self.pacing is None else {
                "seconds": self.pacing.seconds, "pageSize": self.pacing.page_size,
                "pathPrefix": self.pacing.path_prefix,
            },
        }  # fmt: skip


def forced_expiry(version: int | None) -> ApiError:
    """The 410 an armed `expire_next` produces, worded like a compacted version."""
    return api.expired(f"too old resource version: {version} (forced by the emulator)")
