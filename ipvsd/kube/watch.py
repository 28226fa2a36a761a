"""One list/watch loop for one collection and selection: a never-ending stream of events.

`ResourceWatch.events()` yields complete snapshots (`SnapshotStarted`, one `SnapshotItem` per
object, `SnapshotEnded`) and, between them, `Change`s and `Progress` (bookmarks). A snapshot
comes either from a paginated list or from a streaming list (a watch with
`sendInitialEvents=true`, whose initial events end at the bookmark annotated
`k8s.io/initial-events-end`); the consumer cannot tell them apart and never needs to, which
keeps the informer's re-list logic in one place.

The loop owns the resourceVersion bookkeeping and every failure policy, the way client-go's
reflector does: bookmarks advance the version; 410 Gone (as an HTTP status or as an ERROR
event) means "take a fresh snapshot"; everything else (unreachable server, 5xx, 429) is retried
from the last version after a jittered exponential backoff that honours Retry-After (cut short
for an unreachable server once the client's reachability probe sees it answer again), except a
working watch whose connection breaks, which is resumed at once. It never
gives up and never raises: a proxy must keep its last view of the cluster and keep trying.

Nothing here interprets objects beyond `metadata.resourceVersion`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random as _random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from ipvsd.kube.client import ApiClient, ApiError, ApiUnreachable
from ipvsd.kube.convert import RawObject
from ipvsd.kube.resources import EVERYTHING, Resource, Selection

log = logging.getLogger(__name__)

INITIAL_EVENTS_END = "k8s.io/initial-events-end"

Sleep = Callable[[float], Awaitable[None]]
Random = Callable[[], float]
Clock = Callable[[], float]


class ListMode(enum.Enum):
    """How snapshots are taken. AUTO streams when the server can and lists when it cannot."""

    AUTO = "auto"
    LIST = "list"
    STREAM = "stream"


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Delay before retry n (from 0): min(initial * factor**n, maximum), plus up to `jitter`."""

    initial: float = 0.8
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 1.0  # fraction of the delay added at random, so proxies do not retry in step

    def delay(self, attempt: int, random: Random) -> float:
        base = min(self.initial * self.factor ** min(attempt, 64), self.maximum)
        return base * (1.0 + self.jitter * random())


@dataclass(frozen=True, slots=True)
class WatchSettings:
    """Tunables; the defaults are client-go's, tests shrink them."""

    mode: ListMode = ListMode.AUTO
    timeout_range: tuple[int, int] = (300, 600)  # server-side timeoutSeconds, random per watch
    page_size: int = 500
    initial_events_idle: float = 10.0  # silence before the end marker: the server cannot stream
    quick_close: float = 1.0  # a watch closed this fast with nothing in it counts as a failure
    resume_after: float = 1.0  # a working watch cut after this long is resumed without backoff
    backoff: BackoffPolicy = BackoffPolicy()


DEFAULT_SETTINGS = WatchSettings()


# --- what the loop yields -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnapshotStarted:
    """A full snapshot begins; discard any unfinished one."""


@dataclass(frozen=True, slots=True)
class SnapshotItem:
    obj: RawObject


@dataclass(frozen=True, slots=True)
class SnapshotEnded:
    """Every object of the snapshot has been yielded; it is consistent at `resource_version`."""

    resource_version: str


@dataclass(frozen=True, slots=True)
class Progress:
    """A bookmark: the watch has seen everything up to `resource_version` (no object changed).

    Consumers that compare versions across watches need to hear about it; most ignore it."""

    resource_version: str


ChangeType = Literal["ADDED", "MODIFIED", "DELETED"]


@dataclass(frozen=True, slots=True)
class Change:
    """One watch event; `received_at` is the client clock when its last byte arrived."""

    type: ChangeType
    obj: RawObject
    received_at: float


WatchEvent = SnapshotStarted | SnapshotItem | SnapshotEnded | Change | Progress

_CHANGE_TYPES: frozenset[str] = frozenset({"ADDED", "MODIFIED", "DELETED"})


_PREFETCH_STRIDE = 64  # items handed out between chances for the next page to make progress


def _consume_outcome(task: asyncio.Task[Any]) -> None:
    """A prefetch abandoned with its page (the snapshot was closed) must not log as unhandled."""
    if not task.cancelled():
        task.exception()


def _mapping(value: Any) -> dict[str, Any]:
    """`value` if it is an object, else empty: a malformed object's metadata (a string, a list)
    must not end the watch. The object still goes on to the informer, which skips it by name,
    and the watch resumes from the last version that was a version."""
    return value if isinstance(value, dict) else {}


class _StreamingUnsupported(Exception):
    """The server rejected a streaming list or answered it in a way that is not one."""


class _SilenceWatchdog:
    """Drops a streaming list that has gone quiet before its end marker (a server that ignores
    `sendInitialEvents` just keeps the watch open). Checks every `idle` seconds whether
    `lines` moved, so a line costs one attribute store instead of a timer reschedule, and it
    aborts the connection rather than cancelling a task that may be busy elsewhere.
    """

    def __init__(self, abort: Callable[[], None], idle: float) -> None:
        self.lines = 0
        self.fired = False
        self.reason = f"no end of initial events after {idle:g} s of silence"
        self._abort = abort
        self._idle = idle
        self._seen = 0
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = self._loop.call_later(idle, self._check)

    def _check(self) -> None:
        if self.lines == self._seen:
            self.fired = True
            self._handle = None
            self._abort()
            return
        self._seen = self.lines
        self._handle = self._loop.call_later(self._idle, self._check)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class ResourceWatch:
    """List then watch `resource` restricted to `selection`, forever."""

    def __init__(
        self,
        *,
        client: ApiClient,
        resource: Resource,
        selection: Selection = EVERYTHING,
        settings: WatchSettings = DEFAULT_SETTINGS,
        sleep: Sleep = asyncio.sleep,
        random: Random = _random.random,
        clock: Clock = time.monotonic,
    ) -> None:
        self._client = client
        self._resource = resource
        self._selection = selection
        self._settings = settings
        self._sleep = sleep
        self._random = random
        self._clock = clock
        self._streaming = settings.mode is not ListMode.LIST
        self._failures = 0
        self._opened_at = float("-inf")  # when the last watch request was answered 200
        self.resource_version: str | None = None
        self.name = f"{resource.kind} watch ({selection})"

    async def events(self) -> AsyncGenerator[WatchEvent, None]:
        """Snapshots and changes, forever. Close the generator to stop."""
        while True:
            retry_after: float | None = None
            round_started = self._clock()
            try:
                async with aclosing(self._one_round()) as round_events:
                    async for event in round_events:
                        yield event
                continue
            except ApiError as error:
                if error.is_gone:
                    log.info("%s: %s; taking a fresh snapshot", self.name, error)
                    self.resource_version = None
                    continue
                retry_after = error.retry_after
                failure = f"API error {error}"
            except ApiUnreachable as error:
                if self._healthy_watch_broke(round_started):
                    log.info("%s: the watch broke (%s); resuming at once", self.name, error)
                    continue
                await self._back_off(f"API unreachable: {error}", None, until_answered=True)
                continue
            except _StreamingUnsupported as error:
                if self._settings.mode is ListMode.AUTO:
                    self._fall_back_to_list(error)
                    continue
                failure = f"streaming list failed: {error}"
            await self._back_off(failure, retry_after)

    async def _one_round(self) -> AsyncGenerator[WatchEvent, None]:
        """A snapshot if there is no version to resume from, then one watch until it ends."""
        if self.resource_version is None and self._streaming:
            async with aclosing(self._watch(initial_events=True)) as events:
                async for event in events:
                    yield event
            return
        if self.resource_version is None:
            async with aclosing(self._list()) as events:
                async for event in events:
                    yield event
        async with aclosing(self._watch(initial_events=False)) as events:
            async for event in events:
                yield event

    async def _list(self) -> AsyncGenerator[WatchEvent, None]:
        """A paginated list: pages keep the decoded JSON in memory small.

        The next page is requested before this one is handed out, and the loop is given a
        chance to run every few items, so the server prepares it while this one is converted.
        """
        params = self._selection.params()
        params["limit"] = str(self._settings.page_size)
        yield SnapshotStarted()
        accept = self._resource.list_accept
        page = await self._client.get_json(self._resource.path, params, accept=accept)
        while True:
            metadata = page.get("metadata") or {}
            token = metadata.get("continue")
            following: asyncio.Task[dict[str, Any]] | None = None
            if token:
                params = {**params, "continue": token}
                following = asyncio.create_task(
                    self._client.get_json(self._resource.path, params, accept=accept)
                )
                following.add_done_callback(_consume_outcome)
            try:
                for count, obj in enumerate(page.get("items") or ()):
                    yield SnapshotItem(obj)
                    if following is not None and count % _PREFETCH_STRIDE == 0:
                        await asyncio.sleep(0)
            except BaseException:
                if following is not None:
                    following.cancel()
                raise
            if following is None:
                break
            page = await following
        version = str(metadata.get("resourceVersion") or "")
        self._succeeded()
        self.resource_version = version
        yield SnapshotEnded(version)

    async def _watch(self, *, initial_events: bool) -> AsyncGenerator[WatchEvent, None]:
        """One watch request; with `initial_events`, a streaming list that then keeps watching."""
        low, high = self._settings.timeout_range
        timeout = int(low + (high - low) * self._random())
        params = self._selection.params()
        params.update(watch="true", allowWatchBookmarks="true", timeoutSeconds=str(timeout))
        if initial_events:
            params.update(
                sendInitialEvents="true", resourceVersionMatch="NotOlderThan", resourceVersion=""
            )
        else:
            params["resourceVersion"] = self.resource_version or ""
        started = self._clock()
        lines = 0
        if initial_events:
            yield SnapshotStarted()
        watchdog: _SilenceWatchdog | None = None
        try:
            async with self._client.stream(
                self._resource.path,
                params,
                read_timeout=timeout + 30.0,
                accept=self._resource.watch_accept,
            ) as stream:
                self._opened_at = self._clock()
                if initial_events:
                    watchdog = _SilenceWatchdog(stream.abort, self._settings.initial_events_idle)
                async for line, received in stream:
                    lines += 1
                    if watchdog is not None:
                        watchdog.lines = lines
                    result = self._apply(self._decode(line), received, initial_events)
                    if isinstance(result, SnapshotEnded):
                        initial_events = False
                        if watchdog is not None:
                            watchdog.stop()
                        self._succeeded()
                    elif lines == 1 and not initial_events:
                        self._succeeded()
                    if result is not None:
                        yield result
        except (ApiError, ApiUnreachable) as error:
            if watchdog is not None and watchdog.fired:
                raise _StreamingUnsupported(watchdog.reason) from None
            if initial_events and isinstance(error, ApiError) and error.code in (400, 422, 501):
                raise _StreamingUnsupported(str(error)) from error
            raise
        finally:
            if watchdog is not None:
                watchdog.stop()
        if initial_events:
            reason = watchdog.reason if watchdog is not None and watchdog.fired else None
            raise _StreamingUnsupported(reason or "the stream ended before its initial events did")
        if lines == 0 and self._clock() - started < self._settings.quick_close:
            raise ApiUnreachable("the watch closed at once without an event")

    def _decode(self, line: bytes) -> dict[str, Any]:
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            raise ApiError(500, "InvalidWatchEvent", f"undecodable line: {error}") from None
        if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
            raise ApiError(500, "InvalidWatchEvent", f"not a watch event: {line[:100]!r}")
        return event

    def _apply(
        self, event: dict[str, Any], received: float, initial_events: bool
    ) -> WatchEvent | None:
        """Track the version and turn one decoded watch event into what the loop yields."""
        kind, obj = event.get("type"), event["object"]
        if kind == "ERROR":
            raise ApiError.from_status(obj)
        metadata = _mapping(obj.get("metadata"))
        version = metadata.get("resourceVersion")
        if kind == "BOOKMARK":
            if not initial_events:
                if not version:
                    return None
                self.resource_version = str(version)
                return Progress(self.resource_version)
            if _mapping(metadata.get("annotations")).get(INITIAL_EVENTS_END) != "true":
                raise _StreamingUnsupported("a bookmark arrived before the initial events ended")
            self.resource_version = str(version or "")
            return SnapshotEnded(self.resource_version)
        if kind not in _CHANGE_TYPES:
            raise ApiError(500, "InvalidWatchEvent", f"unknown event type {kind!r}")
        if initial_events:
            if kind != "ADDED":
                raise _StreamingUnsupported(f"a {kind} event among the initial events")
            return SnapshotItem(obj)
        if version and isinstance(version, str):
            self.resource_version = version
        return Change(kind, obj, received)

    def _succeeded(self) -> None:
        self._failures = 0

    def _healthy_watch_broke(self, round_started: float) -> bool:
        """Whether the round that just failed had a watch the server accepted and that then
        lived `resume_after` seconds before its connection broke: cut by a load balancer, a
        proxy or an API server replica going away. Resuming at once keeps a change made
        meanwhile within a second of the kernel instead of behind a 0.8-1.6 s backoff; the age
        rule keeps a server that cuts every watch at once from being hammered (at most one
        resumption per `resume_after`), and a resumption that fails backs off as usual."""
        opened = self._opened_at
        return opened >= round_started and self._clock() - opened >= self._settings.resume_after

    def _fall_back_to_list(self, error: Exception) -> None:
        log.warning("%s: streaming list unusable (%s); using list then watch", self.name, error)
        self._streaming = False
        self.resource_version = None

    async def _back_off(
        self, failure: str, retry_after: float | None, *, until_answered: bool = False
    ) -> None:
        """Wait before the next attempt. When the server did not answer (`until_answered`)
        the wait ends early once the client's reachability probe sees it answer again
        (`reachability`): after an outage the watch resumes within a probe interval instead
        of sleeping out a backoff that has grown to 30-60 s."""
        delay = self._settings.backoff.delay(self._failures, self._random)
        if retry_after is not None:
            delay = retry_after
        self._failures += 1
        if not until_answered:
            log.warning("%s: %s; retrying in %.1f s", self.name, failure, delay)
            await self._sleep(delay)
            return
        log.warning(
            "%s: %s; retrying in %.1f s, or once the API server answers again",
            self.name, failure, delay,
        )  # fmt: skip
        if await self._client.reachability.wait(delay, self._sleep):
            log.info("%s: the API server answers again; retrying now", self.name)
