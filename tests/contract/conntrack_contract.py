"""What every `Conntrack` implementation does, checked alike against the fake and the kernel.

A subclass named `Test...` provides two fixtures:
- `conntrack`: the implementation under test, over an empty table (of the test's entries);
- `track`: a callable that puts an entry into the table as traffic would (on the kernel,
  `conntrack -I`; on the fake, `FakeConntrack.track`), taking a `TrackedFlow` without id.

Entries are compared without their id (the kernel chooses it). A deletion carries the id it
read, and the kernel deletes nothing when the entry under that tuple has another id
(`test_an_entry_with_another_id_is_left_alone`). The kernel's id is a hash of the entry's
memory address and its original tuple only, so a new flow with the same original tuple made
after the old entry was freed may reuse the memory and so the id, and then be deleted in its
place: the id narrows the race between dump and delete, it cannot close it. That costs the
new flow nothing but a fresh entry at its next datagram (IPVS keeps its own connection table).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ipvsd.dataplane.conntrack import Conntrack
from ipvsd.model.ipvs import Family, Protocol, parse_address
from ipvsd.model.tracked_flow import FlowEnd, FlowTuple, TrackedFlow

Track = Callable[[TrackedFlow], Awaitable[None]]


def end(text: str) -> FlowEnd:
    address, _, port = text.rpartition(":")
    return FlowEnd(parse_address(address.strip("[]")), int(port))


def flow(original: str, reply: str, protocol: Protocol = Protocol.UDP) -> TrackedFlow:
    """An entry from `"src -> dst"` strings of both directions."""
    o_src, o_dst = (end(part) for part in original.split(" -> "))
    r_src, r_dst = (end(part) for part in reply.split(" -> "))
    return TrackedFlow(
        Family.of(o_src.address), int(protocol), FlowTuple(o_src, o_dst), FlowTuple(r_src, r_dst)
    )


# A client's flow to a ClusterIP, answered by a pod (IPVS rewrote the reply tuple).
TO_POD = flow("10.250.0.2:12345 -> 10.96.250.1:53", "10.250.1.2:8053 -> 10.250.0.2:12345")
# A flow to the same frontend that nobody answered: its reply tuple is the plain inverse.
UNANSWERED = flow("10.250.0.3:12345 -> 10.96.250.1:53", "10.96.250.1:53 -> 10.250.0.3:12345")
TCP = flow(
    "10.250.0.2:23456 -> 10.96.250.1:53", "10.250.1.2:8053 -> 10.250.0.2:23456", Protocol.TCP
)
V6 = flow("[fd00:250::2]:12345 -> [fd00:96::1]:53", "[fd00:250:1::2]:8053 -> [fd00:250::2]:12345")


def without_ids(flows: list[TrackedFlow]) -> set[TrackedFlow]:
    return {f._replace(entry_id=None) for f in flows}


class ConntrackContract:
    """Every contract test; subclass it as `Test...` and provide `conntrack` and `track`."""

    async def test_flows_are_read_by_family_and_protocol(
        self, conntrack: Conntrack, track: Track
    ) -> None:
        for entry in (TO_POD, UNANSWERED, TCP, V6):
            await track(entry)
        assert without_ids(await conntrack.flows(Family.INET, Protocol.UDP)) >= {TO_POD, UNANSWERED}
        assert TCP not in without_ids(await conntrack.flows(Family.INET, Protocol.UDP))
        assert TCP in without_ids(await conntrack.flows(Family.INET, Protocol.TCP))
        assert without_ids(await conntrack.flows(Family.INET6, Protocol.UDP)) >= {V6}
        assert V6 not in without_ids(await conntrack.flows(Family.INET, Protocol.UDP))

    async def test_delete_removes_exactly_the_given_entries(
        self, conntrack: Conntrack, track: Track
    ) -> None:
        for entry in (TO_POD, UNANSWERED, V6):
            await track(entry)
        v4 = await conntrack.flows(Family.INET, Protocol.UDP)
        v6 = await conntrack.flows(Family.INET6, Protocol.UDP)
        doomed = [f for f in v4 + v6 if f._replace(entry_id=None) in (UNANSWERED, V6)]
        assert await conntrack.delete(doomed) == 2
        assert without_ids(await conntrack.flows(Family.INET, Protocol.UDP)) & {
            TO_POD,
            UNANSWERED,
        } == {TO_POD}
        assert V6 not in without_ids(await conntrack.flows(Family.INET6, Protocol.UDP))

    async def test_an_entry_already_gone_is_skipped(
        self, conntrack: Conntrack, track: Track
    ) -> None:
        await track(UNANSWERED)
        (read,) = [
            f
            for f in await conntrack.flows(Family.INET, Protocol.UDP)
            if f._replace(entry_id=None) == UNANSWERED
        ]
        assert await conntrack.delete([read]) == 1
        assert await conntrack.delete([read]) == 0
        assert await conntrack.delete([]) == 0

    async def test_an_entry_with_another_id_is_left_alone(
        self, conntrack: Conntrack, track: Track
    ) -> None:
        await track(TO_POD)
        (read,) = [
            f
            for f in await conntrack.flows(Family.INET, Protocol.UDP)
            if f._replace(entry_id=None) == TO_POD
        ]
        assert read.entry_id is not None
        other = read._replace(entry_id=read.entry_id ^ 0x5A5A5A5A)
        assert await conntrack.delete([other]) == 0
        assert TO_POD in without_ids(await conntrack.flows(Family.INET, Protocol.UDP))
        assert await conntrack.delete([read]) == 1
        assert TO_POD not in without_ids(await conntrack.flows(Family.INET, Protocol.UDP))
