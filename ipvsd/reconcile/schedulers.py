"""Which IPVS schedulers this node's kernel can use, learnt from the kernel itself.

A scheduler is a kernel module (`ip_vs_<name>`) that the kernel loads the first time a virtual
server asks for it. A node may lack one (a trimmed kernel, a module blacklisted, modprobe
refusing): the kernel then refuses to add or change the virtual server with ENOENT
(`SchedulerNotFound`). Asking the kernel is the only reliable test (a module may be built in,
loadable or neither), so ipvsd asks it by using the scheduler and reacts to the refusal:

- the scheduler is marked missing; the syncer plans the Services that wanted it again at once,
  with `plan.scheduling.FALLBACK_SCHEDULER` (rr) and a Warning Event each, so no Service is left
  without its virtual servers; the missing scheduler is logged once and counted per refusal;
- after each full sync the syncer tries the missing scheduler again on one virtual server that
  wanted it (`probes`). If the kernel takes it, the scheduler is no longer missing and its
  Services are planned again with it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import replace

from ipvsd.dataplane.errors import SchedulerNotFound
from ipvsd.dataplane.ipvs import BatchResult
from ipvsd.model.ipvs import AddService, DeleteService, Operation, ServiceKey, UpdateService
from ipvsd.model.service import ServiceRef
from ipvsd.plan.desired import DesiredService
from ipvsd.reconcile.isolation import Problems

KIND = "scheduler"


class SchedulerAvailability:
    def __init__(self, problems: Problems) -> None:
        self._problems = problems
        self._missing: dict[str, ServiceKey] = {}  # scheduler → a virtual server that wanted it

    @property
    def missing(self) -> frozenset[str]:
        return frozenset(self._missing)

    def refused(self, result: BatchResult) -> set[ServiceKey]:
        """Note the schedulers the kernel refused in `result`; the virtual servers refused."""
        keys = set()
        for op, error in result.failures:
            if isinstance(error, SchedulerNotFound) and isinstance(op, AddService | UpdateService):
                name = op.server.scheduler
                self._missing.setdefault(name, op.server.key)
                keys.add(op.server.key)
                self._problems.report(
                    KIND,
                    name,
                    f"IPVS scheduler {name!r} is not available on this node (the kernel "
                    f"refused it: {os.strerror(error.errno)}); its Services use rr and it is "
                    f"tried again after every full sync",
                )
        return keys

    def probes(self, programmed: Mapping[ServiceRef, DesiredService]) -> list[UpdateService]:
        """One change per missing scheduler that asks the kernel for it again: the virtual
        server that wanted it, as programmed now (with the fallback), with it. A scheduler
        whose virtual server is gone is simply forgotten: the next plan asks the kernel."""
        servers = {
            d.server.key: d.server
            for desired in programmed.values()
            for d in desired.virtual_servers
        }
        probes = []
        for name, key in sorted(self._missing.items()):
            server = servers.get(key)
            if server is None:
                self._missing.pop(name)
                self._problems.resolved(
                    KIND, name, f"IPVS scheduler {name!r}: no Service asks for it any more"
                )
            else:
                probes.append(UpdateService(replace(server, scheduler=name)))
        return probes

    def probed(self, result: BatchResult) -> bool:
        """Read the probes' outcome; True if a scheduler is available again."""
        again = False
        for op, error in zip(result.operations, result.errors, strict=True):
            if error is None and isinstance(op, UpdateService):
                self._available(op.server.scheduler)
                again = True
        self.refused(result)  # counted, said once
        return again

    def _available(self, name: str) -> None:
        self._missing.pop(name, None)
        self._problems.resolved(KIND, name, f"IPVS scheduler {name!r} is available again")


def wanting(
    programmed: Mapping[ServiceRef, DesiredService], keys: Iterable[ServiceKey]
) -> set[ServiceRef]:
    """The Services that own any of `keys` (none, at no cost, without keys: every sync asks)."""
    wanted = set(keys)
    if not wanted:
        return set()
    return {
        ref
        for ref, desired in programmed.items()
        if any(d.server.key in wanted for d in desired.virtual_servers)
    }


def operation_key(op: Operation) -> ServiceKey:
    """The virtual server an IPVS operation is about."""
    if isinstance(op, AddService | UpdateService):
        return op.server.key
    if isinstance(op, DeleteService):
        return op.key
    return op.service


def fell_back(programmed: Mapping[ServiceRef, DesiredService]) -> set[ServiceRef]:
    """The Services planned with a fallback scheduler."""
    return {ref for ref, desired in programmed.items() if desired.unavailable}
