"""The informers a node's proxy needs, wired to the API: Services, EndpointSlices, Nodes.

Services and EndpointSlices each get two watches (kube-proxy's selection plus the objects that
name this proxy, see `resources`); the own Node one watch with a field selector
(`metadata.name=<node>`). The other Nodes are watched only while something needs their labels
(`watch_other_nodes`: a Service with topology keys or weights), and then as metadata only
(`resources.NODE_METADATA`, client-go's metadata informer): a Node's status, the bulk of it,
never crosses the wire. Every Node still costs an event whenever it changes, status included
(the server sends each new resourceVersion, as metadata), and those events change nothing
downstream because the converted value stays the same.

`synced` is set once every informer has listed, including the other Nodes when they were asked
for by then: nothing may be programmed from a partial view of the cluster. When they are asked
for later, `other_nodes_synced` callbacks hear when their list is complete.
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
import time
from collections.abc import Callable, Iterator, Mapping

from ipvsd.kube.client import ApiClient
from ipvsd.kube.convert import (
    RawObject,
    Warn,
    endpoint_slice_from_dict,
    node_from_dict,
    service_from_dict,
)
from ipvsd.kube.informer import EventHandler, Informer
from ipvsd.kube.resources import (
    DEFAULT_PROXY_NAME,
    ENDPOINT_SLICES,
    EVERYTHING,
    NODE_METADATA,
    NODES,
    SERVICES,
    Resource,
    Selection,
    own_node_selection,
    proxy_selections,
)
from ipvsd.kube.watch import DEFAULT_SETTINGS, ResourceWatch, Sleep, WatchSettings
from ipvsd.model.endpoint import EndpointSlice
from ipvsd.model.node import Node
from ipvsd.model.service import Service

log = logging.getLogger(__name__)


def _service(raw: RawObject, _warn: Warn) -> Service | None:
    return service_from_dict(raw)


def _endpoint_slice(raw: RawObject, warn: Warn) -> EndpointSlice | None:
    return endpoint_slice_from_dict(raw, warn=warn)


def _node(raw: RawObject, _warn: Warn) -> Node:
    return node_from_dict(raw)


class _OtherNodes(Mapping[str, Node]):
    """The other Nodes as the proxy currently sees them: empty while they are not watched."""

    def __init__(self, informers: ProxyInformers) -> None:
        self._informers = informers

    def _store(self) -> Mapping[str, Node]:
        nodes = self._informers.nodes
        return nodes.store if nodes is not None else {}

    def __getitem__(self, name: str) -> Node:
        return self._store()[name]

    def get(self, name: str, default: Node | None = None) -> Node | None:  # type: ignore[override]
        return self._store().get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._store())

    def __len__(self) -> int:
        return len(self._store())


class ProxyInformers:
    """Every informer of one proxy instance and the combined `synced` signal."""

    def __init__(
        self,
        *,
        client: ApiClient,
        node_name: str,
        proxy_name: str = DEFAULT_PROXY_NAME,
        only_labelled: bool = False,
        watch_all_nodes: bool = False,
        settings: WatchSettings = DEFAULT_SETTINGS,
        observe_latency: Callable[[float], None] | None = None,
        sleep: Sleep = asyncio.sleep,
        random: Callable[[], float] = _random.random,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """`watch_all_nodes` watches the other Nodes from the start (`watch_other_nodes`)."""

        def watches(resource: Resource, *selections: Selection) -> list[ResourceWatch]:
            return [
                ResourceWatch(
                    client=client,
                    resource=resource,
                    selection=selection,
                    settings=settings,
                    sleep=sleep,
                    random=random,
                )
                for selection in selections
            ]

        self._watches = watches
        self._observe_latency = observe_latency
        self._clock = clock
        selections = proxy_selections(proxy_name, only_labelled=only_labelled)
        self.services: Informer[Service] = Informer(
            kind="Service",
            namespaced=True,
            watches=watches(SERVICES, *selections),
            convert=_service,
            observe_latency=observe_latency,
            clock=clock,
        )
        self.endpoint_slices: Informer[EndpointSlice] = Informer(
            kind="EndpointSlice",
            namespaced=True,
            watches=watches(ENDPOINT_SLICES, *selections),
            convert=_endpoint_slice,
            observe_latency=observe_latency,
            clock=clock,
        )
        self.own_node: Informer[Node] = Informer(
            kind="Node",
            namespaced=False,
            watches=watches(NODES, own_node_selection(node_name)),
            convert=_node,
            observe_latency=observe_latency,
            clock=clock,
        )
        self.nodes: Informer[Node] | None = None  # every Node's metadata, while watched
        self.other_nodes: Mapping[str, Node] = _OtherNodes(self)
        self._node_handlers: list[EventHandler[Node]] = []
        self._on_nodes_synced: list[Callable[[], None]] = []
        self._nodes_task: asyncio.Task[None] | None = None
        self._group: asyncio.TaskGroup | None = None
        self._nodes_changed = asyncio.Event()
        self.node_name = node_name
        self.synced = asyncio.Event()
        if watch_all_nodes:
            self.watch_other_nodes(True)

    @property
    def all(self) -> tuple[Informer[Service] | Informer[EndpointSlice] | Informer[Node], ...]:
        informers = (self.services, self.endpoint_slices, self.own_node)
        return informers if self.nodes is None else (*informers, self.nodes)

    def invalid_objects(self) -> dict[str, int]:
        """How many objects of each kind the proxy cannot use right now (`Informer.invalid`);
        the own Node, watched twice while the other Nodes are, counts once."""
        found = {(informer.kind, key) for informer in self.all for key in informer.invalid}
        counts = dict.fromkeys(("Service", "EndpointSlice", "Node"), 0)
        for kind, _key in found:
            counts[kind] = counts.get(kind, 0) + 1
        return counts

    @property
    def watching_other_nodes(self) -> bool:
        return self.nodes is not None

    @property
    def other_nodes_synced(self) -> bool:
        """Whether `other_nodes` is a complete view (False while they are not watched)."""
        return self.nodes is not None and self.nodes.synced.is_set()

    def add_nodes_handler(self, handler: EventHandler[Node]) -> None:
        """Hear about the other Nodes (also across stops and starts of their watch)."""
        self._node_handlers.append(handler)
        if self.nodes is not None:
            self.nodes.add_handler(handler)

    def on_other_nodes_synced(self, callback: Callable[[], None]) -> None:
        """Called each time a newly started watch of the other Nodes has listed them all."""
        self._on_nodes_synced.append(callback)

    def watch_other_nodes(self, wanted: bool) -> None:
        """Start or stop the metadata watch of every Node. Stopping forgets them at once (and
        tells no handler: nothing needs them any more); starting lists them afresh."""
        if wanted == (self.nodes is not None):
            return
        self._nodes_changed.set()
        if not wanted:
            if self._nodes_task is not None:
                self._nodes_task.cancel()
                self._nodes_task = None
            self.nodes = None
            log.info("no Service needs other Nodes' labels: stopped watching them")
            return
        self.nodes = Informer(
            kind="Node",
            namespaced=False,
            watches=self._watches(NODE_METADATA, EVERYTHING),
            convert=_node,
            observe_latency=self._observe_latency,
            clock=self._clock,
        )
        for handler in self._node_handlers:
            self.nodes.add_handler(handler)
        if self._group is not None:
            self._nodes_task = self._group.create_task(
                self._run_nodes(self.nodes), name="Node metadata informer"
            )
        log.info("watching every Node's metadata (a Service needs their labels)")

    async def _run_nodes(self, informer: Informer[Node]) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(informer.run(), name="Node metadata watch")
            await informer.synced.wait()
            if informer is self.nodes:
                for callback in self._on_nodes_synced:
                    callback()

    async def run(self) -> None:
        """Run every informer until cancelled; set `synced` once all of them have listed."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            try:
                for informer in (self.services, self.endpoint_slices, self.own_node):
                    group.create_task(informer.run(), name=f"{informer.kind} informer")
                if self.nodes is not None:
                    self._nodes_task = group.create_task(
                        self._run_nodes(self.nodes), name="Node metadata informer"
                    )
                await asyncio.gather(
                    *(i.synced.wait() for i in (self.services, self.endpoint_slices, self.own_node))
                )
                while self.nodes is not None and not self.nodes.synced.is_set():
                    await self._nodes_listed(self.nodes)
                self.synced.set()
            except BaseException:
                self._group = None
                raise
        self._group = None

    async def _nodes_listed(self, informer: Informer[Node]) -> None:
        """Until `informer` has listed, or is stopped or replaced (then the caller looks again)."""
        self._nodes_changed.clear()
        listed = asyncio.ensure_future(informer.synced.wait())
        changed = asyncio.ensure_future(self._nodes_changed.wait())
        try:
            await asyncio.wait((listed, changed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            listed.cancel()
            changed.cancel()
