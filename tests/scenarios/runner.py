"""Golden scenarios: Kubernetes YAML in, the IPVS table of every node out.

A scenario is a folder:

    tests/scenarios/<name>/steps/NN-<what>.yaml     the whole cluster at that step (Nodes,
                                                    Services, EndpointSlices; multi-document)
    tests/scenarios/<name>/expected/NN-<what>/<node>.txt   `ipvsadm -Sn` of that node, sorted

Each step is a complete state, and the runner feeds the difference to the previous step to the
change tracker as informer events, so the first step exercises a full sync and later steps the
per-Service partial syncs. The raw objects go through the real converters. The table is read
back from the kernel under test: the fake's rendering on the host, the real `ipvsadm -Sn` in
the VM. `UPDATE_GOLDEN=1` rewrites the expected files from a run (review the diff!).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import yaml

from ipvsd.config.values import NodePortAddresses
from ipvsd.dataplane.addresses import Addresses
from ipvsd.dataplane.ipvs import Ipvs
from ipvsd.kube.convert import endpoint_slice_from_dict, node_from_dict, service_from_dict
from ipvsd.model.endpoint import EndpointSlice
from ipvsd.model.firewall import Firewall, FirewallChanges
from ipvsd.model.ipvs import Family, IPAddress, parse_address
from ipvsd.model.node import Node
from ipvsd.model.service import Service
from ipvsd.reconcile.syncer import Syncer, SyncSettings
from ipvsd.state.tracker import ChangeTracker

SCENARIOS = Path(__file__).parent


@dataclass
class ClusterState:
    nodes: dict[str, Node] = field(default_factory=dict)
    node_ips: dict[str, IPAddress] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    slices: dict[str, EndpointSlice] = field(default_factory=dict)


def load_step(path: Path) -> ClusterState:
    state = ClusterState()
    for raw in yaml.safe_load_all(path.read_text()):
        if not raw:
            continue
        kind, meta = raw["kind"], raw["metadata"]
        key = f"{meta.get('namespace', '')}/{meta['name']}"
        if kind == "Node":
            state.nodes[meta["name"]] = node_from_dict(raw)
            internal = [
                a["address"] for a in raw["status"]["addresses"] if a["type"] == "InternalIP"
            ]
            state.node_ips[meta["name"]] = parse_address(internal[0])
        elif kind == "Service":
            service = service_from_dict(raw)
            if service is not None:
                state.services[key] = service
        elif kind == "EndpointSlice":
            slice_ = endpoint_slice_from_dict(raw)
            if slice_ is not None:
                state.slices[key] = slice_
        else:
            raise ValueError(f"{path}: unexpected kind {kind}")
    return state


def scenario_names() -> list[str]:
    return sorted(p.name for p in SCENARIOS.iterdir() if (p / "steps").is_dir())


def steps_of(name: str) -> list[Path]:
    return sorted((SCENARIOS / name / "steps").glob("*.yaml"))


def _feed(tracker: ChangeTracker, before: ClusterState, after: ClusterState) -> None:
    for events, old_items, new_items in (
        (tracker.services, before.services, after.services),
        (tracker.endpoint_slices, before.slices, after.slices),
        (tracker.nodes, before.nodes, after.nodes),
    ):
        handler: Any = events
        for key in old_items.keys() - new_items.keys():
            handler.on_delete(old_items[key])
        for key, value in new_items.items():
            if key not in old_items:
                handler.on_add(value)
            elif old_items[key] != value:
                handler.on_update(old_items[key], value)


class _NoFirewall:
    async def apply(self, firewall: Firewall) -> bool:
        return False

    async def update(self, changes: FirewallChanges) -> None:
        return None


@dataclass
class NodeKernel:
    """The kernel under test for one node: its IPVS and addresses, and how to read the table."""

    ipvs: Ipvs
    addresses: Addresses
    read_table: Callable[[], Awaitable[list[str]]]


async def run_scenario(
    name: str,
    node: str,
    kernel: NodeKernel,
    *,
    families: tuple[Family, ...] = (Family.INET, Family.INET6),
) -> list[tuple[Path, list[str]]]:
    """Replay scenario `name` as node `node`; (expected file, actual table) per step."""
    tracker = ChangeTracker()
    state = ClusterState()
    nodes: dict[str, Node] = {}  # every Node, as the all-Nodes informer's store
    syncer = Syncer(
        ipvs=kernel.ipvs,
        addresses=kernel.addresses,
        firewall=_NoFirewall(),
        # NodePorts only on the scenario's node network, whatever else the test host has.
        settings=SyncSettings(
            node_name=node,
            families=families,
            node_ports=NodePortAddresses(cidrs=(ip_network("192.168.1.0/24"),)),
        ),
        services=lambda: list(state.services.values()),
        slices_of=lambda ref: tracker.slices_of(ref).values(),
        own_node=lambda: state.nodes.get(node),
        nodes=nodes,
    )
    results = []
    for step in steps_of(name):
        new = load_step(step)
        _feed(tracker, state, new)
        state = new
        nodes.clear()
        nodes.update(new.nodes)
        pending = tracker.take()
        await syncer.sync(full=pending.full, services=pending.services)
        expected = SCENARIOS / name / "expected" / step.stem / f"{node}.txt"
        results.append((expected, await kernel.read_table()))
    return results


def nodes_of(name: str) -> dict[str, IPAddress]:
    return load_step(steps_of(name)[0]).node_ips


def check(results: list[tuple[Path, list[str]]]) -> None:
    """Compare with the expected files (or write them with UPDATE_GOLDEN=1)."""
    for expected, actual in results:
        text = "".join(f"{line}\n" for line in actual)
        if os.environ.get("UPDATE_GOLDEN") == "1":
            expected.parent.mkdir(parents=True, exist_ok=True)
            expected.write_text(text)
            continue
        assert expected.exists(), f"{expected} is missing (UPDATE_GOLDEN=1 writes it)"
        assert text == expected.read_text(), f"{expected}: table differs:\n{text}"
