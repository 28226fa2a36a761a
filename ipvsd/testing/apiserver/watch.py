"""The watch stream: newline-delimited JSON events over one chunked 200 response.

Each event is written (and so flushed to the socket) as soon as it commits; bursts that are
already queued (the initial ADDED events, a replay) go out in writes of about 1 MiB. A watch
ends cleanly at `timeoutSeconds` (or the server's default), ends when the server stops, and is
cut without a clean end when a test drops it (like a network failure). Errors found before the
stream starts are plain Status responses; a resource version that is too old is a 200 stream
with one ERROR event carrying a 410 Status, which is what clients expect.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from aiohttp import web

from ipvsd.testing.apiserver.errors import ApiError
from ipvsd.testing.apiserver.faults import ListPacing
from ipvsd.testing.apiserver.reads import INITIAL_EVENTS_END, WatchStart, visible
from ipvsd.testing.apiserver.resources import ResourceType
from ipvsd.testing.apiserver.selectors import Filter
from ipvsd.testing.apiserver.storage import EventType, Storage, Stored, Subscription
from ipvsd.testing.apiserver.traffic import MeteredStreamResponse

Render = Callable[[Stored], bytes]  # an event's object on the wire (the object, or a Table)
WRITE_CHUNK = 1 << 20
WATCH_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-cache, private"}


def event_line(kind: EventType | str, document: bytes) -> bytes:
    return b'{"type":"' + kind.encode() + b'","object":' + document + b"}\n"


TypeName = tuple[str, str]  # (kind, apiVersion) of the objects a watch sends


def bookmark_line(
    resource: ResourceType,
    rv: int,
    *,
    initial_events_end: bool = False,
    as_type: TypeName | None = None,
) -> bytes:
    """A BOOKMARK event; `as_type` when the watch sends another type than the resource's own
    (a metadata-only watch's bookmarks are `PartialObjectMetadata`, as its objects)."""
    metadata: dict[str, object] = {"resourceVersion": str(rv)}
    if initial_events_end:
        metadata["annotations"] = {INITIAL_EVENTS_END: "true"}
    kind, api_version = as_type or (resource.kind, resource.api_version)
    document = {"kind": kind, "apiVersion": api_version, "metadata": metadata}
    return event_line("BOOKMARK", orjson.dumps(document))


@dataclass(frozen=True, slots=True)
class WatchSettings:
    """How one watch behaves: `timeout` seconds, bookmarks every `bookmark_interval` or never."""

    timeout: float
    bookmark_interval: float | None


async def _write_all(response: web.StreamResponse, lines: list[bytes]) -> None:
    batch: list[bytes] = []
    size = 0
    for line in lines:
        batch.append(line)
        size += len(line)
        if size >= WRITE_CHUNK:
            await response.write(b"".join(batch))
            batch, size = [], 0
    if batch:
        await response.write(b"".join(batch))


async def _write_paced(
    response: web.StreamResponse, lines: list[bytes], pacing: ListPacing, request: web.Request
) -> None:
    """A streaming list's initial events `pacing.page_size` at a time, `pacing.seconds` before
    each group and before the closing bookmark (the last line), each group flushed as written:
    the client sees the list arrive slowly, as from an overloaded API server."""
    started, client, path = time.monotonic(), request.remote or "", request.path
    events, end = lines[:-1], lines[-1:]
    groups = [events[i : i + pacing.page_size] for i in range(0, len(events), pacing.page_size)]
    for group in [*groups, end]:
        await asyncio.sleep(pacing.seconds)
        await response.write(b"".join(group))
    pacing.record(client, path, "stream", len(groups), started)


async def start_stream(request: web.Request) -> web.StreamResponse:
    response = MeteredStreamResponse(status=200, headers=WATCH_HEADERS)
    response.enable_chunked_encoding()
    await response.prepare(request)
    return response


async def send_error_event(request: web.Request, error: ApiError) -> web.StreamResponse:
    """A watch that cannot start: one ERROR event with the Status, then a clean end."""
    response = await start_stream(request)
    await response.write(event_line("ERROR", error.body()))
    await response.write_eof()
    return response


def _drain(subscription: Subscription, selected: Filter, render: Render) -> list[bytes]:
    lines = []
    while subscription.pending:
        shown = visible(selected, subscription.pending.popleft())
        if shown is not None:
            lines.append(event_line(shown[0], render(shown[1])))
    return lines


def _opening_lines(
    resource: ResourceType,
    start: WatchStart,
    selected: Filter,
    render: Render,
    as_type: TypeName | None = None,
) -> list[bytes]:
    lines = [event_line(kind, render(stored)) for kind, stored in start.initial]
    for event in start.replay:
        shown: tuple[EventType, Stored] | None = visible(selected, event)
        if shown is not None:
            lines.append(event_line(shown[0], render(shown[1])))
    if start.initial_events_end is not None:
        lines.append(
            bookmark_line(
                resource, start.initial_events_end, initial_events_end=True, as_type=as_type
            )
        )
    return lines


async def serve_watch(
    request: web.Request,
    *,
    storage: Storage,
    resource: ResourceType,
    selected: Filter,
    start: WatchStart,
    settings: WatchSettings,
    render: Render,
    as_type: TypeName | None = None,
    pacing: ListPacing | None = None,
) -> web.StreamResponse:
    """Stream `start`'s opening events, then live events and bookmarks until the watch ends.
    With `pacing` (an injected fault), a streaming list's opening events go out slowly."""
    subscription = start.subscription
    assert subscription is not None
    loop = asyncio.get_running_loop()
    try:
        response = await start_stream(request)
        opening = _opening_lines(resource, start, selected, render, as_type)
        if pacing is not None and start.initial_events_end is not None:
            await _write_paced(response, opening, pacing, request)
        else:
            await _write_all(response, opening)
        deadline = loop.time() + settings.timeout
        interval = settings.bookmark_interval
        next_bookmark = loop.time() + interval if interval else math.inf
        while subscription.closing is None:
            lines = _drain(subscription, selected, render)
            if lines:
                await _write_all(response, lines)
                continue
            now = loop.time()
            if now >= deadline:
                break
            if now >= next_bookmark and interval:
                await response.write(
                    bookmark_line(resource, storage.resource_version, as_type=as_type)
                )
                next_bookmark = now + interval
                continue
            subscription.ready.clear()
            if subscription.pending or subscription.closing is not None:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    subscription.ready.wait(), min(deadline, next_bookmark) - now
                )
    finally:
        storage.unsubscribe(subscription)
    if subscription.closing == "abort":
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response
