"""Upstream's pass rules for the conformance cases, as pure functions over the answers seen.

A client's answers are the pod names that replied, oldest first; `(ErrorName)` stands for a
request nothing answered (upstream's failed `curl` prints nothing).

- `distribution_verdict`: traffic_distribution.go's `checkTrafficDistribution`. It reads the
  client's log newest first, needs at least 20 lines, skips empty ones (failed requests), fails
  on the first answer outside the allowed set, and passes once 10 consecutive answers have come
  from it and every allowed endpoint has answered at least once.
- `sticky` / `spread`: service.go's `checkAffinity`: `AffinityConfirmCount` (15) consecutive
  answers from one pod means affinity holds; more than one pod among the answers means it does
  not.
"""

from __future__ import annotations

from collections.abc import Sequence

MIN_LINES = 20  # upstream waits for at least 20 log lines
CONSECUTIVE = 10  # good answers in a row needed
AFFINITY_CONFIRM_COUNT = 15  # service.go's AffinityConfirmCount


def failed(answer: str) -> bool:
    return answer.startswith("(")


def distribution_verdict(answers: Sequence[str], allowed: set[str]) -> str | None:
    """None when upstream's rule passes on `answers` (oldest first), else why not."""
    if len(answers) < MIN_LINES:
        return f"got {len(answers)} answers, waiting for at least {MIN_LINES}"
    unreached = set(allowed)
    good = 0
    for answer in reversed(answers):
        if failed(answer):
            continue
        if answer not in allowed:
            return f"reached {answer}, outside {sorted(allowed)}"
        good += 1
        unreached.discard(answer)
        if good >= CONSECUTIVE and not unreached:
            return None
    return f"{good} good answers in a row, {sorted(unreached)} never reached"


def sticky(answers: Sequence[str]) -> bool:
    """The last `AFFINITY_CONFIRM_COUNT` answers all came from one pod."""
    last = list(answers)[-AFFINITY_CONFIRM_COUNT:]
    return len(last) == AFFINITY_CONFIRM_COUNT and not failed(last[0]) and len(set(last)) == 1


def spread(answers: Sequence[str]) -> bool:
    """More than one pod answered."""
    return len({a for a in answers if not failed(a)}) > 1
