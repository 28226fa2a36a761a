"""List and watch semantics: which objects and events a read gets, at which resource version.

- list: no `resourceVersion` or "0" reads the current state; `resourceVersion=N` reads a state
  not older than N (the current one); with `resourceVersionMatch=Exact` the state exactly at N,
  rebuilt from the event history, or 410 Expired when N is older than the history window.
  `limit`/`continue` page through one consistent snapshot (the first page's version); a
  continue token older than the window is 410 Expired, as upstream.
- watch: no version or "0" starts with ADDED for every object; N replays every event after N
  (an ERROR event with a 410 Status when N is older than the window); `sendInitialEvents=true`
  (with `resourceVersionMatch=NotOlderThan` and bookmarks) is the streaming list: ADDED for
  every object, then a BOOKMARK annotated `k8s.io/initial-events-end: "true"`.
The snapshot and the subscription are taken in one step on the loop thread, so no event falls
between them.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

import orjson

from ipvsd.testing.apiserver import errors as api
from ipvsd.testing.apiserver.errors import ApiError, FieldError
from ipvsd.testing.apiserver.resources import ResourceType
from ipvsd.testing.apiserver.selectors import Filter
from ipvsd.testing.apiserver.storage import Event, EventType, Storage, Stored, Subscription

INITIAL_EVENTS_END = "k8s.io/initial-events-end"


def _list_options_invalid(problem: FieldError) -> ApiError:
    return api.invalid("ListOptions", "meta.k8s.io", "", [problem])


def parse_version(text: str | None) -> int | None:
    """`resourceVersion` as a number; None when absent or empty ("0" is 0: "any")."""
    if text is None or text == "":
        return None
    if not text.isdigit():
        raise api.bad_request(f"invalid resource version: {text!r}")
    return int(text)


def _too_old(requested: int, oldest: int) -> ApiError:
    return api.expired(f"too old resource version: {requested} ({oldest})")


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Stored]
    resource_version: int
    continue_token: str | None = None
    remaining: int | None = None


def _encode_continue(resource_version: int, last: tuple[str, str]) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": resource_version, "start": list(last)})
    return base64.urlsafe_b64encode(raw).decode()


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["rv"]), (str(data["start"][0]), str(data["start"][1]))
    except (binascii.Error, ValueError, KeyError, IndexError, TypeError) as error:
        raise api.bad_request(f"invalid continue token: {error}") from error


def list_page(
    storage: Storage,
    resource: ResourceType,
    selected: Filter,
    *,
    version: str | None,
    match: str | None,
    limit: int | None,
    continue_token: str | None,
) -> Page:
    """The objects a list request gets (see the module docstring for the rules)."""
    requested = parse_version(version)
    current = storage.resource_version
    start_after: tuple[str, str] | None = None
    in_namespace = False  # whether `items` is already restricted to the filter's namespace
    if match not in (None, "", "Exact", "NotOlderThan"):
        raise _list_options_invalid(
            FieldError.not_supported("resourceVersionMatch", match, ["Exact", "NotOlderThan"])
        )
    if match and requested is None:
        raise _list_options_invalid(
            FieldError.forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            )
        )
    if continue_token:
        at, start_after = _decode_continue(continue_token)
        if at < storage.oldest_resource_version:
            raise api.expired(
                "The provided continue parameter is too old to display a consistent list result."
                " You can start a new list without the continue parameter."
            )
        items = storage.items_at(resource, at)
    elif match == "Exact":
        assert requested is not None
        if requested == 0:
            raise _list_options_invalid(
                FieldError.forbidden(
                    "resourceVersionMatch",
                    'resourceVersionMatch "exact" is forbidden for resourceVersion "0"',
                )
            )
        if requested > current:
            raise api.too_large_resource_version(requested, current)
        if requested < storage.oldest_resource_version:
            raise _too_old(requested, storage.oldest_resource_version)
        at, items = requested, storage.items_at(resource, requested)
    else:
        if requested is not None and requested > current:
            raise api.too_large_resource_version(requested, current)
        at, items = current, storage.items(resource, selected.namespace)
        in_namespace = True
    if start_after is not None:
        items = [s for s in items if s.key > start_after]
    if not selected.selects_all or (selected.namespace is not None and not in_namespace):
        items = [s for s in items if selected.matches(s)]
    if limit and len(items) > limit:
        remaining = len(items) - limit if selected.selects_all else None
        page = items[:limit]
        return Page(page, at, _encode_continue(at, page[-1].key), remaining)
    return Page(items, at)


@dataclass
class WatchStart:
    """What a watch sends first, and the inbox for what follows."""

    initial: list[tuple[EventType, Stored]] = field(default_factory=list)
    replay: list[Event] = field(default_factory=list)
    initial_events_end: int | None = None  # the BOOKMARK version closing a streaming list
    subscription: Subscription | None = None
    error: ApiError | None = None


def _watch_options(match: str | None, send_initial: bool | None, bookmarks: bool) -> None:
    if match == "Exact":
        raise _list_options_invalid(
            FieldError.forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            )
        )
    if match not in (None, "", "NotOlderThan"):
        raise _list_options_invalid(
            FieldError.not_supported("resourceVersionMatch", match, ["NotOlderThan"])
        )
    if send_initial is not None and match != "NotOlderThan":
        raise _list_options_invalid(
            FieldError.forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for watch"
                " unless resourceVersionMatch is set to NotOlderThan",
            )
        )
    if match == "NotOlderThan" and send_initial is None:
        raise _list_options_invalid(
            FieldError.forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            )
        )
    if send_initial and not bookmarks:
        raise _list_options_invalid(
            FieldError.forbidden(
                "allowWatchBookmarks",
                "allowWatchBookmarks must be set to true when sendInitialEvents is set to true",
            )
        )


def open_watch(
    storage: Storage,
    resource: ResourceType,
    selected: Filter,
    *,
    version: str | None,
    match: str | None,
    send_initial: bool | None,
    bookmarks: bool,
) -> WatchStart:
    """Validate a watch request, then take its snapshot or replay and subscribe, atomically."""
    _watch_options(match, send_initial, bookmarks)
    requested = parse_version(version)
    current = storage.resource_version
    if requested is not None and requested > current:
        return WatchStart(error=api.too_large_resource_version(requested, current))
    start = WatchStart()
    if send_initial or (send_initial is None and not requested):
        start.initial = [
            ("ADDED", s) for s in storage.items(resource, selected.namespace) if selected.matches(s)
        ]
        if send_initial:
            start.initial_events_end = current
    elif requested:
        if requested < storage.oldest_resource_version:
            return WatchStart(error=_too_old(requested, storage.oldest_resource_version))
        start.replay = storage.events_after(resource, requested)
    start.subscription = storage.subscribe(resource)
    return start


def visible(selected: Filter, event: Event) -> tuple[EventType, Stored] | None:
    """How one event looks to a watcher with this filter (objects moving in or out of its view
    become ADDED or DELETED, the latter carrying the old content at the event's version)."""
    if selected.namespace is None and selected.selects_all:
        return event.type, event.obj
    now = event.type != "DELETED" and selected.matches(event.obj)
    before = event.old is not None and selected.matches(event.old)
    if now:
        return ("MODIFIED" if before else "ADDED"), event.obj
    if not before:
        return None
    if event.type == "DELETED":
        return "DELETED", event.obj
    assert event.old is not None
    return "DELETED", event.old.stamped(event.rv)
