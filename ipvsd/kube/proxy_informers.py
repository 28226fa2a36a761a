"""The informers a node's proxy needs, wired to the API: Services, EndpointSlices, Nodes.

Services and EndpointSlices each get two watches (kube-proxy's selection plus the objects that
name this proxy, see `resources`); the own Node one watch with a field selector; all Nodes
(for topology labels) only when a feature asks for them. `synced` is set once every informer
has listed: nothing may be programmed from a partial view of the cluster.
"""

from __future__ import annotations

import asyncio
import random as _random
import time
from collections.abc import Callable

from ipvsd.kube.client import ApiClient
from ipvsd.kube.convert import (
    RawObject,
    Warn,
    endpoint_slice_from_dict,
    node_from_dict,
    service_from_dict,
)
from ipvsd.kube.informer import Informer
from ipvsd.kube.resources import (
    DEFAULT_PROXY_NAME,
    ENDPOINT_SLICES,
    EVERYTHING,
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


def _service(raw: RawObject, _warn: Warn) -> Service | None:
    return service_from_dict(raw)


def _endpoint_slice(raw: RawObject, warn: Warn) -> EndpointSlice | None:
    return endpoint_slice_from_dict(raw, warn=warn)


def _node(raw: RawObject, _warn: Warn) -> Node:
    return node_from_dict(raw)


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
        self.nodes: Informer[Node] | None = None
        if watch_all_nodes:
            self.nodes = Informer(
                kind="Node",
                namespaced=False,
                watches=watches(NODES, EVERYTHING),
                convert=_node,
                observe_latency=observe_latency,
                clock=clock,
            )
        self.node_name = node_name
        self.synced = asyncio.Event()

    @property
    def all(self) -> tuple[Informer[Service] | Informer[EndpointSlice] | Informer[Node], ...]:
        informers = (self.services, self.endpoint_slices, self.own_node)
        return informers if self.nodes is None else (*informers, self.nodes)

    async def run(self) -> None:
        """Run every informer until cancelled; set `synced` once all of them have listed."""
        async with asyncio.TaskGroup() as group:
            for informer in self.all:
                group.create_task(informer.run(), name=f"{informer.kind} informer")
            await asyncio.gather(*(informer.synced.wait() for informer in self.all))
            self.synced.set()
