"""What each client received: requests and response-body bytes, counted live.

A test that compares the API load of two ways of watching (e.g. every Node whole against every
Node's metadata) needs the bytes a client was sent, also on watches that are still open. Every
request gets an `Exchange` when it starts; plain responses add their body when they return,
streamed ones (watches, large lists) each chunk as it is written (`MeteredStreamResponse`).
Bytes are response bodies as sent (JSON), without headers or chunk framing.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

_CURRENT: contextvars.ContextVar[Exchange | None] = contextvars.ContextVar(
    "ipvsd_apiserver_exchange", default=None
)  # the request being answered (its handler runs in the middleware's task)


@dataclass(slots=True)
class Exchange:
    """One request and the body bytes sent for it so far (`done` once answered)."""

    method: str
    path: str
    query: dict[str, str]
    accept: str
    sent: int = 0
    done: bool = False
    carried_over: bool = False  # open when the meter was reset: counted since, not started

    @property
    def is_watch(self) -> bool:
        return self.query.get("watch") in ("true", "1")


@dataclass(slots=True)
class TrafficMeter:
    """Every request since the last `reset()`, oldest first."""

    exchanges: list[Exchange] = field(default_factory=list)

    def reset(self) -> None:
        """Start counting afresh: answered requests are forgotten, open ones (watches) count
        from zero and are marked `carried_over`."""
        self.exchanges = [e for e in self.exchanges if not e.done]
        for exchange in self.exchanges:
            exchange.sent = 0
            exchange.carried_over = True

    def middleware(self) -> Middleware:
        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            exchange = Exchange(
                request.method,
                request.path,
                dict(request.query),
                request.headers.get("Accept", ""),
            )
            self.exchanges.append(exchange)
            token = _CURRENT.set(exchange)
            try:
                response = await handler(request)
                if isinstance(response, web.Response) and isinstance(response.body, bytes):
                    exchange.sent += len(response.body)
                return response
            finally:
                exchange.done = True
                _CURRENT.reset(token)

        return middleware


class MeteredStreamResponse(web.StreamResponse):
    """A streamed response whose writes are counted into the request's `Exchange`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._exchange = _CURRENT.get()

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._exchange is not None:
            self._exchange.sent += len(data)
        await super().write(data)
