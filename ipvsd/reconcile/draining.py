"""How long each draining TCP real server has been draining, and whether its bound has passed.

A real server that is no longer wanted but still has connections is set to weight 0: the
kernel sends it no new connections and its existing ones go on (`plan.diff`). kube-proxy then
waits for its connection counts to reach 0 with no upper bound, so one idle keep-alive client
can hold a dead pod's entry for ever (#57841, #99162). ipvsd bounds the wait
(`--ipvs-drain-timeout`): the clock of a real server starts at the first sync that finds it
unwanted and busy, and once the bound has passed the next sync deletes it (with
`vs/expire_nodest_conn=1` its remaining connections then end on their next packet).

The clock forgets a real server as soon as a sync of its virtual server no longer asks about it
(deleted, wanted again, or its virtual server gone), so an address that comes back and is
removed later drains for the full bound again instead of being cut at once.

Across a restart the clock starts again. The kernel keeps no drain start time (a real server
has a weight and connection counts, no timestamps), an EndpointSlice's conditions carry no
time either (the Pod's deletionTimestamp does, but ipvsd, like kube-proxy, does not watch
Pods, and a pod whose grace ended is in no slice at all), and ipvsd writes no state of its own
on the node. A restarted daemon finds the real server at weight 0 with connections at its
first full sync, leaves it so, and starts its bound there: a drain ends at the earliest
`--ipvs-drain-timeout` after the later of its start and the daemon's last start. A restart
never cuts a drain short (what the bound promises the connections); the cost is a weight-0
entry that takes no new connection living up to one more bound per restart (a daemon
restarting more often than the bound would keep such an entry until its connections end, as
kube-proxy always does). Tested: `tests/component/test_syncer_drain.py`, and with traffic,
the disruption harness's `drain-across-restart` scenario.

The syncer asks `expired` while diffing, then calls `settle` with the virtual servers it has
just diffed (all of them on a full sync), which drops the drains nobody asked about.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ipvsd.model.ipvs import ServiceKey
from ipvsd.plan.diff import Endpoint


class DrainClock:
    """Start times of the drains in progress, by virtual server and real-server endpoint."""

    def __init__(self, bound: float, clock: Callable[[], float]) -> None:
        """`bound`: seconds a real server may drain (0 deletes it at once); `clock`: a
        monotonic clock in seconds."""
        self._bound = bound
        self._clock = clock
        # By virtual server, so that settling after a partial sync costs time in proportion
        # to its virtual servers, not to every drain in progress.
        self._started: dict[ServiceKey, dict[Endpoint, float]] = {}
        self._asked: set[tuple[ServiceKey, Endpoint]] = set()

    def expired(self, key: ServiceKey, endpoint: Endpoint) -> bool:
        """Whether this busy, unwanted real server has drained for the whole bound (its drain
        starts now if it was not draining)."""
        now = self._clock()
        self._asked.add((key, endpoint))
        started = self._started.setdefault(key, {}).setdefault(endpoint, now)
        return now - started >= self._bound

    def settle(self, diffed: Iterable[ServiceKey] | None = None) -> None:
        """Forget the drains of the `diffed` virtual servers (None: of every one) that the
        last diff did not ask about."""
        asked, self._asked = self._asked, set()
        keys = list(self._started) if diffed is None else set(diffed) & self._started.keys()
        for key in keys:
            kept = {
                endpoint: started
                for endpoint, started in self._started[key].items()
                if (key, endpoint) in asked
            }
            if kept:
                self._started[key] = kept
            else:
                del self._started[key]

    def __len__(self) -> int:
        return sum(len(drains) for drains in self._started.values())
