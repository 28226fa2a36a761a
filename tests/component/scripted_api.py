"""A tiny HTTP server that answers each request with the next scripted response.

For the wire edge cases the API emulator is too well-behaved to produce on demand: a watch line
of several megabytes split across chunks, a server that ignores `sendInitialEvents`, a 429 with
Retry-After, a stream that stops mid-line.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

Responder = Callable[[web.Request, asyncio.Event], Awaitable[web.StreamResponse]]


@dataclass
class ScriptedApi:
    url: str
    script: deque[Responder]
    requests: list[web.Request] = field(default_factory=list)

    def then(self, *responders: Responder) -> ScriptedApi:
        self.script.extend(responders)
        return self

    def queries(self) -> list[dict[str, str]]:
        return [dict(request.query) for request in self.requests]


@asynccontextmanager
async def scripted_api(
    *responders: Responder, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[ScriptedApi]:
    """Serve on 127.0.0.1 (TLS with `ssl_context`); once the script is used up, requests hang
    until teardown."""
    closing = asyncio.Event()
    api = ScriptedApi(url="", script=deque(responders))

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path == "/readyz":  # the client's reachability probe: not part of a script
            return web.Response(text="ok")
        api.requests.append(request)
        if api.script:
            return await api.script.popleft()(request, closing)
        await closing.wait()
        return web.Response(status=503)

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    api.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
    try:
        yield api
    finally:
        closing.set()
        await runner.cleanup()


def json_body(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Responder:
    async def respond(_request: web.Request, _closing: asyncio.Event) -> web.StreamResponse:
        return web.Response(
            body=orjson.dumps(body),
            status=status,
            headers=headers,
            content_type="application/json",
        )

    return respond


def status(code: int, reason: str, retry_after: int | None = None) -> Responder:
    """An error answer with a `Status` body, as the API server sends it."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    body = {
        "kind": "Status",
        "status": "Failure",
        "reason": reason,
        "code": code,
        "message": reason,
    }
    return json_body(body, status=code, headers=headers)


def stream(
    chunks: Iterable[bytes], *, hang: bool = False, pause: float = 0.0, cut: bool = False
) -> Responder:
    """A 200 streamed as exactly these chunks (`pause` after each); then close, stay open until
    teardown (`hang`), or `cut` the connection mid-response as a dying proxy would."""

    async def respond(request: web.Request, closing: asyncio.Event) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_type = "application/json"
        await response.prepare(request)
        for chunk in chunks:
            await response.write(chunk)
            if pause:
                await asyncio.sleep(pause)
        if cut:
            assert request.transport is not None
            request.transport.abort()
            return response
        if hang:
            await closing.wait()
        await response.write_eof()
        return response

    return respond


def event_line(kind: str, obj: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": kind, "object": obj}) + b"\n"


def bookmark(rv: str, *, initial_events_end: bool = False) -> bytes:
    metadata: dict[str, Any] = {"resourceVersion": rv}
    if initial_events_end:
        metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
    return event_line("BOOKMARK", {"kind": "Service", "metadata": metadata})


def service(name: str, rv: str, *, port: int = 80, ip: str = "10.96.0.1") -> dict[str, Any]:
    return {
        "metadata": {"namespace": "default", "name": name, "resourceVersion": rv},
        "spec": {"clusterIP": ip, "ports": [{"port": port}]},
    }


def service_list(rv: str, *items: dict[str, Any], token: str = "") -> Responder:
    metadata = {"resourceVersion": rv, **({"continue": token} if token else {})}
    return json_body({"kind": "ServiceList", "metadata": metadata, "items": list(items)})
