"""The list/watch loop on the wire: modes, versions, 410s, backoff, huge lines.

Each test scripts the server's answers request by request (`scripted_api`), drives one
`ResourceWatch` and checks both what it yields and what it asked for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager

import orjson
import pytest

from ipvsd.kube.auth import load_credentials
from ipvsd.kube.client import ApiClient
from ipvsd.kube.resources import SERVICES, proxy_selections
from ipvsd.kube.watch import (
    BackoffPolicy,
    Change,
    ListMode,
    Progress,
    ResourceWatch,
    SnapshotEnded,
    SnapshotItem,
    SnapshotStarted,
    WatchEvent,
    WatchSettings,
)
from tests.component.scripted_api import (
    Responder,
    bookmark,
    event_line,
    json_body,
    scripted_api,
    service,
    service_list,
    status,
    stream,
)

pytestmark = pytest.mark.timeout(10)


class RecordingSleep:
    """Stands in for asyncio.sleep: remembers each delay, waits for nothing."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


def settings(mode: ListMode, **overrides: object) -> WatchSettings:
    values: dict[str, object] = {
        "mode": mode,
        "timeout_range": (5, 10),
        "initial_events_idle": 0.3,
        "quick_close": 0.0,
        "backoff": BackoffPolicy(initial=0.8, maximum=30.0, jitter=1.0),
    }
    values.update(overrides)
    return WatchSettings(**values)  # type: ignore[arg-type]


@asynccontextmanager
async def watching(
    *responders: Responder, mode: ListMode = ListMode.LIST, **overrides: object
) -> AsyncIterator[tuple[ResourceWatch, RecordingSleep, list[dict[str, str]]]]:
    async with (
        scripted_api(*responders) as api,
        ApiClient(credentials=load_credentials(master=api.url)) as client,
    ):
        sleep = RecordingSleep()
        watch = ResourceWatch(
            client=client,
            resource=SERVICES,
            selection=proxy_selections("ipvsd")[0],
            settings=settings(mode, **overrides),
            sleep=sleep,
            random=lambda: 0.0,
        )
        queries: list[dict[str, str]] = []
        api_queries = api.queries
        yield watch, sleep, queries
        queries.extend(api_queries())


async def take(watch: ResourceWatch, count: int) -> list[WatchEvent]:
    events: list[WatchEvent] = []
    async with aclosing(watch.events()) as stream_of_events:
        async for event in stream_of_events:
            events.append(event)
            if len(events) == count:
                break
    return events


def shape(events: list[WatchEvent]) -> list[str]:
    """Events as short words: started, item:NAME, ended:RV, ADDED:NAME@RV."""
    words = []
    for event in events:
        if isinstance(event, SnapshotStarted):
            words.append("started")
        elif isinstance(event, SnapshotItem):
            words.append(f"item:{event.obj['metadata']['name']}")
        elif isinstance(event, SnapshotEnded):
            words.append(f"ended:{event.resource_version}")
        elif isinstance(event, Progress):
            words.append(f"bookmark:{event.resource_version}")
        elif isinstance(event, Change):
            meta = event.obj["metadata"]
            words.append(f"{event.type}:{meta['name']}@{meta['resourceVersion']}")
    return words


async def test_list_paginates_then_watches_from_the_list_version() -> None:
    async with watching(
        service_list("", service("a", "3"), token="page-2"),
        service_list("10", service("b", "7")),
        stream(
            [event_line("ADDED", service("c", "11")), event_line("MODIFIED", service("a", "12"))]
        ),
    ) as (watch, sleep, queries):
        events = await take(watch, 6)

    assert shape(events) == [
        "started", "item:a", "item:b", "ended:10", "ADDED:c@11", "MODIFIED:a@12",
    ]  # fmt: skip
    first, second, third = queries[:3]
    assert first["labelSelector"] == (
        "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless"
    )
    assert first["limit"] == "500"
    assert "continue" not in first
    assert second["continue"] == "page-2"
    assert third["watch"] == "true"
    assert third["resourceVersion"] == "10"
    assert third["allowWatchBookmarks"] == "true"
    assert 5 <= int(third["timeoutSeconds"]) <= 10
    assert sleep.delays == []


async def test_closing_during_a_page_drops_the_prefetched_next_one_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with watching(
        service_list("", service("a", "3"), service("b", "4"), token="page-2"),
        service_list("10", service("c", "7")),
    ) as (watch, _sleep, _queries):
        events = await take(watch, 2)
        await asyncio.sleep(0.05)

    assert shape(events) == ["started", "item:a"]
    assert "never retrieved" not in caplog.text


async def test_bookmarks_advance_the_version_a_dropped_watch_resumes_from() -> None:
    async with watching(
        service_list("10"),
        stream([event_line("ADDED", service("a", "11")), bookmark("40")]),  # then closes
        stream([event_line("ADDED", service("b", "41"))]),
    ) as (watch, sleep, queries):
        events = await take(watch, 5)

    assert shape(events) == ["started", "ended:10", "ADDED:a@11", "bookmark:40", "ADDED:b@41"]
    assert [q.get("resourceVersion") for q in queries[1:3]] == ["10", "40"]
    assert sleep.delays == []  # a watch that ends after delivering events is simply renewed


async def test_streaming_list_ends_at_the_initial_events_bookmark() -> None:
    async with watching(
        stream(
            [
                event_line("ADDED", service("a", "5")),
                event_line("ADDED", service("b", "3")),
                bookmark("20", initial_events_end=True),
                event_line("MODIFIED", service("a", "21")),
            ],
            hang=True,
        ),
        mode=ListMode.AUTO,
    ) as (watch, _sleep, queries):
        events = await take(watch, 5)
        assert watch.resource_version == "21"

    assert shape(events) == ["started", "item:a", "item:b", "ended:20", "MODIFIED:a@21"]
    assert queries[0]["sendInitialEvents"] == "true"
    assert queries[0]["resourceVersionMatch"] == "NotOlderThan"
    assert queries[0]["resourceVersion"] == ""
    assert queries[0]["allowWatchBookmarks"] == "true"
    assert queries[0]["watch"] == "true"


async def test_a_server_rejecting_streaming_lists_gets_list_and_watch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with watching(
        status(422, "Invalid"),
        service_list("10", service("a", "4")),
        stream([event_line("ADDED", service("b", "11"))], hang=True),
        mode=ListMode.AUTO,
    ) as (watch, sleep, queries):
        events = await take(watch, 5)

    assert shape(events) == ["started", "started", "item:a", "ended:10", "ADDED:b@11"]
    assert "sendInitialEvents" not in queries[1]
    assert sleep.delays == []
    assert "streaming list unusable" in caplog.text


async def test_a_server_ignoring_send_initial_events_is_detected_by_its_silence() -> None:
    async with watching(
        stream([event_line("ADDED", service("a", "4"))], hang=True),  # an old server's watch
        service_list("10", service("a", "4")),
        mode=ListMode.AUTO,
    ) as (watch, _sleep, queries):
        events = await take(watch, 5)

    assert shape(events) == ["started", "item:a", "started", "item:a", "ended:10"]
    assert queries[1]["limit"] == "500"


async def test_a_plain_bookmark_before_the_end_marker_means_no_streaming() -> None:
    async with watching(
        stream([event_line("ADDED", service("a", "4")), bookmark("9")], hang=True),
        service_list("10", service("a", "4")),
        mode=ListMode.AUTO,
    ) as (watch, _sleep, _queries):
        events = await take(watch, 5)

    assert shape(events)[2:] == ["started", "item:a", "ended:10"]


async def test_stream_mode_never_falls_back_it_retries() -> None:
    async with watching(
        status(422, "Invalid"),
        stream([bookmark("20", initial_events_end=True)], hang=True),
        mode=ListMode.STREAM,
    ) as (watch, sleep, queries):
        events = await take(watch, 3)

    assert shape(events) == ["started", "started", "ended:20"]
    assert sleep.delays == [0.8]
    assert all(q["sendInitialEvents"] == "true" for q in queries[:2])


async def test_http_410_on_watch_takes_a_fresh_snapshot_without_backoff() -> None:
    async with watching(
        service_list("10", service("a", "4")),
        status(410, "Expired"),
        service_list("30", service("a", "25")),
    ) as (watch, sleep, queries):
        events = await take(watch, 6)

    assert shape(events) == ["started", "item:a", "ended:10", "started", "item:a", "ended:30"]
    assert "resourceVersion" not in queries[2]
    assert sleep.delays == []


async def test_an_error_event_with_410_takes_a_fresh_snapshot() -> None:
    gone = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}
    async with watching(
        service_list("10"),
        stream([event_line("ADDED", service("a", "11")), event_line("ERROR", gone)], hang=True),
        service_list("50", service("a", "11")),
    ) as (watch, sleep, _queries):
        events = await take(watch, 6)

    assert shape(events) == ["started", "ended:10", "ADDED:a@11", "started", "item:a", "ended:50"]
    assert sleep.delays == []


async def test_429_honours_retry_after_and_5xx_backs_off_exponentially() -> None:
    async with watching(
        status(500, "InternalError"),
        status(503, "ServiceUnavailable"),
        status(429, "TooManyRequests", retry_after=7),
        status(500, "InternalError"),
        service_list("10"),
        status(500, "InternalError"),  # the watch fails once: the backoff starts over
        stream([event_line("ADDED", service("a", "11"))], hang=True),
    ) as (watch, sleep, _queries):
        events = await take(watch, 7)

    assert shape(events) == ["started"] * 5 + ["ended:10", "ADDED:a@11"]
    assert sleep.delays == [0.8, 1.6, 7.0, 6.4, 0.8]


async def test_backoff_is_capped_and_jittered() -> None:
    policy = BackoffPolicy(initial=0.8, maximum=30.0, factor=2.0, jitter=1.0)

    assert [policy.delay(n, lambda: 0.0) for n in range(7)] == [
        0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0,
    ]  # fmt: skip
    assert policy.delay(10, lambda: 0.5) == 45.0
    assert policy.delay(1000, lambda: 0.0) == 30.0


async def test_an_unreachable_server_is_logged_and_retried_forever(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    sleep = RecordingSleep()
    async with ApiClient(credentials=load_credentials(master="http://127.0.0.1:9")) as client:
        watch = ResourceWatch(
            client=client,
            resource=SERVICES,
            settings=settings(ListMode.AUTO),
            sleep=sleep,
            random=lambda: 0.0,
        )
        seen: list[WatchEvent] = []
        async with aclosing(watch.events()) as events:
            async for event in events:  # every attempt starts a snapshot; none completes
                seen.append(event)
                if len(sleep.delays) >= 5:
                    break

    assert set(shape(seen)) == {"started"}
    assert len(sleep.delays) >= 5
    assert sleep.delays[:5] == [0.8, 1.6, 3.2, 6.4, 12.8]
    assert "Service watch (everything): API unreachable" in caplog.text


async def test_a_watch_closing_at_once_without_events_counts_as_a_failure() -> None:
    async with watching(
        service_list("10"),
        stream([]),
        stream([event_line("ADDED", service("a", "11"))], hang=True),
        quick_close=5.0,
    ) as (watch, sleep, _queries):
        events = await take(watch, 3)

    assert shape(events)[-1] == "ADDED:a@11"
    assert sleep.delays == [0.8]


async def test_a_working_watch_whose_connection_is_cut_is_resumed_at_once() -> None:
    async with watching(
        service_list("10"),
        stream([event_line("ADDED", service("a", "11"))], pause=0.3, cut=True),
        stream([event_line("ADDED", service("b", "12"))], hang=True),
        resume_after=0.2,
    ) as (watch, sleep, queries):
        events = await take(watch, 4)

    assert shape(events) == ["started", "ended:10", "ADDED:a@11", "ADDED:b@12"]
    assert [q.get("resourceVersion") for q in queries[1:3]] == ["10", "11"]
    assert sleep.delays == []  # no backoff: a change made meanwhile is not held back


async def test_a_watch_cut_soon_after_it_opened_backs_off() -> None:
    async with watching(
        service_list("10"),
        stream([event_line("ADDED", service("a", "11"))], cut=True),
        stream([event_line("ADDED", service("b", "12"))], hang=True),
        resume_after=5.0,
    ) as (watch, sleep, _queries):
        events = await take(watch, 4)

    assert shape(events)[-1] == "ADDED:b@12"
    assert sleep.delays == [0.8]  # a server cutting every watch at once is not hammered


async def test_a_watch_line_of_several_megabytes_arrives_whole() -> None:
    big = service("big", "11")
    big["metadata"]["annotations"] = {"ipvsd.io/blob": "x" * 6_000_000}
    big_line = event_line("ADDED", big)
    small = event_line("MODIFIED", service("a", "12")) + event_line("DELETED", service("a", "13"))
    chunks = [big_line[i : i + 65536] for i in range(0, len(big_line) - 10, 65536)]
    chunks[-1] = big_line[(len(chunks) - 1) * 65536 :] + small[:30]  # big tail + part of next
    chunks.append(small[30:])

    async with watching(service_list("10"), stream(chunks, hang=True)) as (watch, _s, _q):
        events = await take(watch, 5)

    assert shape(events) == ["started", "ended:10", "ADDED:big@11", "MODIFIED:a@12", "DELETED:a@13"]
    assert isinstance(events[2], Change)
    assert len(events[2].obj["metadata"]["annotations"]["ipvsd.io/blob"]) == 6_000_000


async def test_an_undecodable_line_is_a_failure_and_the_watch_resumes() -> None:
    async with watching(
        service_list("10"),
        stream([event_line("ADDED", service("a", "11")), b"{not json\n"]),
        stream([event_line("ADDED", service("b", "12"))], hang=True),
    ) as (watch, sleep, queries):
        events = await take(watch, 4)

    assert shape(events)[-2:] == ["ADDED:a@11", "ADDED:b@12"]
    assert queries[2]["resourceVersion"] == "11"
    assert sleep.delays == [0.8]


async def test_an_object_with_malformed_metadata_is_passed_on_and_the_watch_goes_on() -> None:
    """A server that stores anything (a buggy controller, an older server) can send an object
    whose metadata is not an object: the informer skips it by name; the watch must neither end
    nor take a version from it."""
    async with watching(
        service_list("10"),
        stream(
            [
                event_line("ADDED", {"metadata": "not an object"}),
                event_line("ADDED", {"metadata": {"name": "n", "resourceVersion": {"a": 1}}}),
                event_line("ADDED", service("b", "12")),
            ],
            hang=True,
        ),
    ) as (watch, sleep, _queries):
        events = await take(watch, 5)

    assert [type(e).__name__ for e in events[2:]] == ["Change"] * 3
    assert isinstance(events[2], Change)
    assert events[2].obj == {"metadata": "not an object"}
    assert shape(events[4:]) == ["ADDED:b@12"]
    assert watch.resource_version == "12"
    assert sleep.delays == []


async def test_a_non_status_error_body_still_reports_the_http_code() -> None:
    async with watching(
        json_body(["not", "a", "status"], status=502),
        service_list("10"),
    ) as (watch, sleep, _queries):
        events = await take(watch, 3)

    assert shape(events) == ["started", "started", "ended:10"]  # the failed list never ended
    assert sleep.delays == [0.8]


def test_event_lines_are_json_with_a_newline() -> None:
    assert orjson.loads(event_line("ADDED", {"a": 1})) == {"type": "ADDED", "object": {"a": 1}}
