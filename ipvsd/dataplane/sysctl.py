"""Read and write kernel settings under /proc/sys (a root folder can be given for tests)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)


class Sysctl:
    def __init__(self, *, root: Path = Path("/proc/sys")) -> None:
        self.root = root

    def read(self, key: str) -> str | None:
        try:
            return (self.root / key).read_text().strip()
        except OSError:
            return None

    def ensure(self, wanted: Mapping[str, str]) -> dict[str, str]:
        """Write each setting that differs; returns those changed (old values), logs failures.

        A failure (read-only /proc in an unprivileged container, a missing module) is logged
        and the rest continue: the proxy still serves what it can.
        """
        changed: dict[str, str] = {}
        for key, value in wanted.items():
            current = self.read(key)
            if current == value:
                continue
            try:
                (self.root / key).write_text(value)
            except OSError as exc:
                log.error("cannot set sysctl %s=%s: %s", key.replace("/", "."), value, exc)
                continue
            changed[key] = current or ""
            log.info("set sysctl %s=%s (was %s)", key.replace("/", "."), value, current)
        return changed
