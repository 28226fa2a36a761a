"""Read and write kernel settings under /proc/sys and /sys/module (roots can be given for tests)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)


class Sysctl:
    def __init__(
        self, *, root: Path = Path("/proc/sys"), modules: Path = Path("/sys/module")
    ) -> None:
        self.root = root
        self.modules = modules

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

    def raise_to(self, key: str, minimum: int, *, hint: str = "") -> bool:
        """Make sysctl `key` at least `minimum`: written only when it is lower (or unreadable),
        never lowered. False when the write failed; that is logged, with `hint` appended."""
        return _raise_to(self.root / key, f"sysctl {key.replace('/', '.')}", minimum, hint)

    def raise_module_parameter(self, key: str, minimum: int, *, hint: str = "") -> bool:
        """`raise_to` for a module parameter, `key` under /sys/module (`nf_conntrack/parameters/
        hashsize`)."""
        return _raise_to(self.modules / key, f"/sys/module/{key}", minimum, hint)


def _raise_to(path: Path, label: str, minimum: int, hint: str) -> bool:
    try:
        current: int | None = int(path.read_text().strip())
    except (OSError, ValueError):
        current = None
    if current is not None and current >= minimum:
        return True
    try:
        path.write_text(str(minimum))
    except OSError as exc:
        log.error(
            "cannot raise %s to %d (it is %s): %s%s",
            label,
            minimum,
            "unreadable" if current is None else current,
            exc.strerror or exc,
            f"; {hint}" if hint else "",
        )
        return False
    log.info("set %s=%d (was %s)", label, minimum, current)
    return True
