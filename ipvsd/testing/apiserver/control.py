"""`/_emulator/*`: fault injection and inspection over HTTP, for tests in another process.

    POST   /_emulator/faults    {"failNext": {"count": 3, "code": 429, "retryAfterSeconds": 2,
                                              "pathPrefix": "/api/v1/services", "method": "GET"},
                                 "delay": {"milliseconds": 200, "pathPrefix": "/apis/"},
                                 "expireNext": {"count": 1},
                                 "dropWatches": {"mode": "abort" | "end"},
                                 "compact": {"resourceVersion": 120},     (omit: everything)
                                 "restart": {"downSeconds": 0.5},
                                 "acceptAnything": {"resources": ["endpointslices"],
                                                    "enabled": true},
                                 "clear": {}}
                                any subset of the keys; applied in the order listed here
                                (after "clear", which goes first); answers the armed faults.
                                acceptAnything: store and serve those resources as
                                given, unvalidated (`Store.accept_anything`); "clear"
                                does not undo it
    GET    /_emulator/faults    the armed faults
    DELETE /_emulator/faults    disarm everything
    GET    /_emulator/requests  the request log ({"method", "path", "query", ...}, oldest first)
    DELETE /_emulator/requests  empty the log
    GET    /_emulator/state     resource versions, open watches, object counts

They need the same bearer token as the API, and are never subject to the faults themselves.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Protocol

import orjson
from aiohttp import web

from ipvsd.testing.apiserver import errors as api
from ipvsd.testing.apiserver.faults import Faults
from ipvsd.testing.apiserver.middleware import RequestRecord
from ipvsd.testing.apiserver.store import Store


class Controllable(Protocol):
    """What the control endpoints act on (the ApiServer)."""

    faults: Faults
    store: Store

    def drop_watches(self, *, mode: str = "abort") -> int: ...

    def compact(self, resource_version: int | None = None) -> int: ...

    def schedule_restart(self, down_seconds: float) -> None: ...

    def clear_requests(self) -> None: ...

    @property
    def requests(self) -> list[RequestRecord]: ...

    def state(self) -> dict[str, Any]: ...


def _json(value: object) -> web.Response:
    return web.Response(body=orjson.dumps(value), content_type="application/json")


def _section(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is None:
        return None
    if value is True:
        return {}
    if not isinstance(value, dict):
        raise api.bad_request(f"{key} must be an object")
    return value


def apply_actions(server: Controllable, body: object) -> dict[str, Any]:
    """Apply a POST /_emulator/faults body; returns what the actions reported."""
    if not isinstance(body, dict):
        raise api.bad_request("the body must be a JSON object")
    unknown = set(body) - {
        "clear",
        "failNext",
        "delay",
        "expireNext",
        "dropWatches",
        "compact",
        "restart",
        "acceptAnything",
    }
    if unknown:
        raise api.bad_request(f"unknown fault actions: {sorted(unknown)}")
    report: dict[str, Any] = {}
    try:
        if _section(body, "clear") is not None:
            server.faults.clear()
        if (fail := _section(body, "failNext")) is not None:
            server.faults.fail_next(
                int(fail.get("count", 1)),
                code=int(fail.get("code", 500)),
                retry_after=int(fail.get("retryAfterSeconds", 1)),
                path_prefix=fail.get("pathPrefix"),
                method=fail.get("method"),
            )
        if (delay := _section(body, "delay")) is not None:
            server.faults.delay(
                float(delay.get("milliseconds", 0)), path_prefix=delay.get("pathPrefix")
            )
        if (expire := _section(body, "expireNext")) is not None:
            server.faults.expire_next(int(expire.get("count", 1)))
        if (drop := _section(body, "dropWatches")) is not None:
            report["droppedWatches"] = server.drop_watches(mode=str(drop.get("mode", "abort")))
        if (compact := _section(body, "compact")) is not None:
            version = compact.get("resourceVersion")
            report["oldestResourceVersion"] = server.compact(
                None if version is None else int(version)
            )
        if (restart := _section(body, "restart")) is not None:
            server.schedule_restart(float(restart.get("downSeconds", 0)))
            report["restarting"] = True
        if (accept := _section(body, "acceptAnything")) is not None:
            for plural in accept.get("resources") or ():
                server.store.accept_anything(str(plural), enabled=bool(accept.get("enabled", True)))
            report["acceptingAnything"] = server.store.accepting_anything
    except (TypeError, ValueError, KeyError) as error:
        raise api.bad_request(f"invalid fault action: {error}") from error
    return report


def control_routes(server: Controllable) -> list[web.RouteDef]:
    async def post_faults(request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError as error:
            raise api.bad_request(f"invalid JSON: {error}") from error
        report = apply_actions(server, body)
        return _json({**server.faults.describe(), **report})

    async def get_faults(request: web.Request) -> web.Response:
        return _json(server.faults.describe())

    async def clear_faults(request: web.Request) -> web.Response:
        server.faults.clear()
        return _json(server.faults.describe())

    async def get_requests(request: web.Request) -> web.Response:
        return _json([asdict(record) for record in server.requests])

    async def clear_requests(request: web.Request) -> web.Response:
        server.clear_requests()
        return _json([])

    async def get_state(request: web.Request) -> web.Response:
        return _json(server.state())

    return [
        web.post("/_emulator/faults", post_faults),
        web.get("/_emulator/faults", get_faults),
        web.delete("/_emulator/faults", clear_faults),
        web.get("/_emulator/requests", get_requests),
        web.delete("/_emulator/requests", clear_requests),
        web.get("/_emulator/state", get_state),
    ]
