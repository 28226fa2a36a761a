"""A connection-tracking entry as the UDP cleanup sees it: the two directions of one flow.

Netfilter keeps, per flow, the tuple the client sent (`original`) and the tuple the answer is
expected to carry (`reply`). When IPVS masquerades a flow to a real server (`vs/conntrack=1`),
the reply tuple's source becomes that real server: `reply.source` is where the flow goes now.
A flow whose entry was made while no real server took it (the host answered, or nobody) has
the virtual IP itself as reply source. Both cases are what the cleanup looks for
(`plan.udp_conntrack`); these values carry what it needs and what deleting one exact entry
needs (its zone and id), nothing else.
"""

from __future__ import annotations

from typing import NamedTuple

from ipvsd.model.ipvs import Family, IPAddress


class FlowEnd(NamedTuple):
    """An address and port (the port is 0 for protocols without ports)."""

    address: IPAddress
    port: int

    def __str__(self) -> str:
        if self.address.version == 6:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


class FlowTuple(NamedTuple):
    """One direction of a flow: source and destination."""

    source: FlowEnd
    destination: FlowEnd


class TrackedFlow(NamedTuple):
    """One conntrack entry. `entry_id` is the kernel's id of the entry (deleting by tuple and
    id spares a newer entry that reuses the tuple, unless it also reused the old one's memory
    and so its id); `zone` its conntrack zone (0 usually).

    A NamedTuple: a busy node has tens of thousands of entries, read on every cleanup."""

    family: Family
    protocol: int
    original: FlowTuple
    reply: FlowTuple
    zone: int = 0
    entry_id: int | None = None

    def __str__(self) -> str:
        return (
            f"{self.original.source} -> {self.original.destination} "
            f"(reply from {self.reply.source})"
        )
