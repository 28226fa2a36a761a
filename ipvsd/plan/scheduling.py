"""The scheduler and scheduler flags of a Service's virtual servers, from its annotations.

Per-service schedulers were refused upstream many times; ipvsd reads them from annotations:

- `ipvsd.io/scheduler`: any scheduler the kernel has; `ipvsd.io/scheduler-flags`: a comma list
  of `mh-fallback`, `mh-port`, `sh-fallback`, `sh-port` (only those of the chosen scheduler);
- kube-router's `kube-router.io/service.scheduler` (`rr lc sh dh mh`) and
  `kube-router.io/service.schedflags` (`flag-1` fallback, `flag-2` port, `flag-3`), so Services
  written for kube-router keep working. ipvsd's own annotations win when both are present.

An invalid value never breaks the Service: the default is used and a warning is returned for
the log and a Warning Event. `mh` without explicit flags gets mh-port, as kube-proxy sets it.

A scheduler the node's kernel refused (no `ip_vs_<name>` module it can load: the syncer learns
that from the kernel, `reconcile.schedulers`) is replaced by `FALLBACK_SCHEDULER`, with a
message of its own (`SchedulerChoice.unavailable`): the Service keeps its virtual servers.
"""

from __future__ import annotations

from dataclasses import dataclass

from ipvsd.model.ipvs import KNOWN_SCHEDULERS, NO_FLAGS, SCHEDULER_FLAG_NAMES, ServiceFlag
from ipvsd.model.service import Service

SCHEDULER = "ipvsd.io/scheduler"
SCHEDULER_FLAGS = "ipvsd.io/scheduler-flags"
KUBE_ROUTER_SCHEDULER = "kube-router.io/service.scheduler"
KUBE_ROUTER_FLAGS = "kube-router.io/service.schedflags"

KUBE_ROUTER_SCHEDULERS = frozenset({"rr", "lc", "sh", "dh", "mh"})
KUBE_ROUTER_FLAG_NAMES = {
    "flag-1": ServiceFlag.SCHED1,
    "flag-2": ServiceFlag.SCHED2,
    "flag-3": ServiceFlag.SCHED3,
}


FALLBACK_SCHEDULER = "rr"  # every IPVS kernel has it (ipvsd loads ip_vs_rr at start)

# Schedulers that ignore real-server weights, and the weighted scheduler closest in spirit
# (dh keeps a destination on one server; lblc does too, weighted).
WEIGHTED_SIBLINGS = {"rr": "wrr", "lc": "wlc", "dh": "lblc"}


def weighted_scheduler(scheduler: str) -> str | None:
    """The weighted sibling of a scheduler that ignores weights (None: it honours them)."""
    return WEIGHTED_SIBLINGS.get(scheduler)


@dataclass(frozen=True, slots=True)
class SchedulerChoice:
    name: str
    flags: ServiceFlag = NO_FLAGS
    warnings: tuple[str, ...] = ()
    unavailable: tuple[str, ...] = ()  # the wanted scheduler is not on this node


def default_flags(scheduler: str) -> ServiceFlag:
    """kube-proxy hashes on the port too with mh (flag mh-port)."""
    return ServiceFlag.SCHED2 if scheduler == "mh" else NO_FLAGS


def choose_scheduler(
    service: Service,
    *,
    default: str,
    available: frozenset[str] = KNOWN_SCHEDULERS,
    missing: frozenset[str] = frozenset(),
) -> SchedulerChoice:
    """The scheduler and flags for `service`'s virtual servers (never raises). `missing`:
    schedulers this node's kernel refused; they fall back to `FALLBACK_SCHEDULER`."""
    warnings: list[str] = []
    own = service.annotation(SCHEDULER)
    router = service.annotation(KUBE_ROUTER_SCHEDULER)
    name = default
    if own is not None:
        name = _checked(own.strip(), SCHEDULER, available, default, warnings)
    elif router is not None:
        allowed = available & KUBE_ROUTER_SCHEDULERS
        name = _checked(router.strip(), KUBE_ROUTER_SCHEDULER, allowed, default, warnings)

    own_flags = service.annotation(SCHEDULER_FLAGS)
    router_flags = service.annotation(KUBE_ROUTER_FLAGS)
    if own_flags is not None:
        names = SCHEDULER_FLAG_NAMES.get(name, {})
        flags = _parse_flags(own_flags, SCHEDULER_FLAGS, names, name, warnings)
    elif router_flags is not None:
        flags = _parse_flags(
            router_flags, KUBE_ROUTER_FLAGS, KUBE_ROUTER_FLAG_NAMES, name, warnings
        )
    else:
        flags = default_flags(name)
    if name in missing and name != FALLBACK_SCHEDULER:
        note = (
            f"scheduler {name!r} is not available on this node (the kernel has no ip_vs_{name} "
            f"module it can load); using {FALLBACK_SCHEDULER!r} until it is"
        )
        return SchedulerChoice(
            FALLBACK_SCHEDULER, default_flags(FALLBACK_SCHEDULER), tuple(warnings), (note,)
        )
    return SchedulerChoice(name, flags, tuple(warnings))


def _checked(
    value: str, annotation: str, allowed: frozenset[str], default: str, warnings: list[str]
) -> str:
    if value in allowed:
        return value
    choices = " ".join(sorted(allowed))
    warnings.append(
        f"annotation {annotation}={value!r}: unknown scheduler (available: {choices}); "
        f"using {default!r}"
    )
    return default


def _parse_flags(
    value: str,
    annotation: str,
    names: dict[str, ServiceFlag],
    scheduler: str,
    warnings: list[str],
) -> ServiceFlag:
    flags = NO_FLAGS
    for item in filter(None, (part.strip() for part in value.split(","))):
        flag = names.get(item)
        if flag is None:
            valid = ", ".join(sorted(names)) or "none"
            warnings.append(
                f"annotation {annotation}: flag {item!r} does not apply to scheduler "
                f"{scheduler!r} (valid: {valid}); ignored"
            )
            continue
        flags |= flag
    return flags
