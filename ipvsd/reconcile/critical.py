"""Critical Services first: the API's and the cluster DNS's, programmed before the bulk.

At start, before the informers begin their lists, the own Node and the critical Services are
read by name (`kube.critical`: a few small requests, answered before the server and this
process are busy with the lists) and the syncer adds them (`Syncer.program_first`: additions
only, no deletion before every list has completed). Beside the lists this step was starved by
their parsing (in the test VM at 10,000 Services it ended 10 s into a 50 s cold start); alone
it takes a few requests, one nft run and one IPVS batch.
Whatever goes wrong here is logged and leaves the Services to the first full sync, which
runs after this step has ended and programs everything as it always did.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ipvsd.kube.client import ApiClient
from ipvsd.kube.critical import read_critical, read_node
from ipvsd.model.endpoint import EndpointSlice
from ipvsd.model.node import Node
from ipvsd.model.service import Service, ServiceRef
from ipvsd.reconcile.syncer import Syncer

log = logging.getLogger(__name__)

READ_WITHIN = 5.0  # seconds; past it the informers start and the Services wait for them


@dataclass(frozen=True, slots=True)
class Critical:
    """What was read first: the own Node and the critical Services with their slices."""

    node: Node
    services: tuple[tuple[Service, tuple[EndpointSlice, ...]], ...]


async def read_first(
    client: ApiClient,
    node_name: str,
    names: Iterable[tuple[str, str]],
    *,
    proxy_name: str,
    only_labelled: bool,
    needs_other_nodes: Callable[[Service], bool] = lambda service: False,
    within: float = READ_WITHIN,
) -> Critical | None:
    """The own Node and the named Services this proxy serves now; None when the Node does
    not exist (nothing is programmed without it) or reading failed. Services that need the
    other Nodes' labels are left to the full sync, as they would be."""
    try:
        async with asyncio.timeout(within):
            node = await read_node(client, node_name)
            if node is None:
                return None
            found = await read_critical(
                client, names, proxy_name=proxy_name, only_labelled=only_labelled
            )
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("reading the critical Services first failed; the full sync programs them")
        return None
    ready = tuple((s, tuple(slices)) for s, slices in found if not needs_other_nodes(s))
    return Critical(node, ready)


async def program_first(syncer: Syncer, critical: Critical | None) -> tuple[ServiceRef, ...]:
    """Program what `read_first` read; returns the Services programmed (none on a failure)."""
    if critical is None or not critical.services:
        return ()
    try:
        return await syncer.program_first(critical.services, critical.node)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("programming the critical Services first failed; the full sync will")
        return ()
