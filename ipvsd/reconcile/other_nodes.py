"""The other Nodes are watched exactly while some Service needs their labels.

`OtherNodesDemand` hears every Service: while at least one needs other Nodes' labels
(`plan.node_labels`) the informers watch every Node's metadata, otherwise only the own Node.
Switching is seamless: a Service that needs the labels is not planned from a view without them.
While the Nodes are being listed, `plannable` hands the syncer the Service as it was last synced
(its kernel state stays as it is; a Service not synced before waits, unprogrammed), and once
the list is complete a full sync plans everything with the labels (`on_listed`). At start-up
the informers report `synced` only after that list, so nothing is ever planned without them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ipvsd.kube.proxy_informers import ProxyInformers
from ipvsd.model.service import Service, ServiceRef

log = logging.getLogger(__name__)

Needs = Callable[[Service], bool]


class OtherNodesDemand:
    """A Service handler that turns the other Nodes' watch on and off with demand."""

    def __init__(self, informers: ProxyInformers, needs: Needs) -> None:
        self._informers = informers
        self._needs = needs
        self._needing: set[ServiceRef] = set()

    @property
    def needing(self) -> frozenset[ServiceRef]:
        return frozenset(self._needing)

    def on_add(self, new: Service) -> None:
        self._set(new.ref, self._needs(new))

    def on_update(self, old: Service, new: Service) -> None:
        self._set(new.ref, self._needs(new))

    def on_delete(self, old: Service) -> None:
        self._set(old.ref, False)

    def _set(self, ref: ServiceRef, needed: bool) -> None:
        before = bool(self._needing)
        if needed:
            self._needing.add(ref)
        else:
            self._needing.discard(ref)
        if bool(self._needing) != before:
            if self._needing:
                log.info("Service %s needs other Nodes' labels", ref)
            self._informers.watch_other_nodes(bool(self._needing))


def plannable(
    service: Service | None,
    last_synced: Service | None,
    *,
    informers: ProxyInformers,
    needs: Needs,
) -> Service | None:
    """The version of a Service the syncer may plan now: itself, unless it needs the other
    Nodes' labels and they are not all known yet; then the version last synced (None if
    there is none: the Service waits)."""
    if service is None or informers.other_nodes_synced or not needs(service):
        return service
    return last_synced
