"""Failures injected on purpose, so clients' retry, backoff and relist paths get exercised.

The request-level faults live here as state the middleware consults: answer the next N
requests (optionally only those under a path prefix, or of one method) with 500 or 429 (with
Retry-After), delay responses, and answer the next watch or list-from-a-resource-version with
410 Gone. Faults that act on the server itself (dropping open watches, compacting the
history, restarting) are `ApiServer` methods. Nothing is injected unless a test asks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
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


class Faults:
    """The request-level faults currently armed; all off by default."""

    def __init__(self) -> None:
        self.rules: list[FailRule] = []
        self.delay_seconds = 0.0
        self.delay_path_prefix: str | None = None
        self.expire_remaining = 0

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

    def clear(self) -> None:
        self.rules.clear()
        self.delay_seconds = 0.0
        self.delay_path_prefix = None
        self.expire_remaining = 0

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
        }


def forced_expiry(version: int | None) -> ApiError:
    """The 410 an armed `expire_next` produces, worded like a compacted version."""
    return api.expired(f"too old resource version: {version} (forced by the emulator)")
