"""HTTP to the API server: GET a JSON object, or stream newline-delimited JSON lines.

Policy-free on purpose: no retries beyond one credential reload after a 401, no backoff, no
resourceVersion logic (that is `watch`'s job). Failures become two exception types the watch
loop can act on: `ApiError` (the server answered with an error status, usually a `Status`
body) and `ApiUnreachable` (no answer: refused, reset, timed out, TLS failure).

Watch streams are split into lines here (`LineStream`), from raw chunks, instead of with
aiohttp's `readline()`: that one raises once a line exceeds its 128 KiB buffer limit, and one
watch event for an EndpointSlice with 1,000 endpoints (or a Service with a large annotation)
is bigger.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson

from ipvsd.kube.auth import Credentials, CredentialsError
from ipvsd.kube.reachability import DEFAULT_INTERVAL, Reachability

log = logging.getLogger(__name__)

DEFAULT_MAX_LINE = 256 * 1024 * 1024  # far above any real object; bounds a broken stream
USER_AGENT = "ipvsd/0.1"

Clock = Callable[[], float]


class ApiError(Exception):
    """The server answered with an error: its HTTP code, Status reason and message."""

    def __init__(
        self, code: int, reason: str, message: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{code} {reason}: {message}" if message else f"{code} {reason}")
        self.code = code
        self.reason = reason
        self.message = message
        self.retry_after = retry_after

    @property
    def is_gone(self) -> bool:
        """410: the requested resourceVersion is compacted away; only a fresh list helps."""
        return self.code == 410

    @staticmethod
    def from_status(status: Mapping[str, Any], *, retry_after: float | None = None) -> ApiError:
        """From a `Status` object (an error response body or a watch ERROR event)."""
        code = status.get("code")
        return ApiError(
            code if isinstance(code, int) else 500,
            str(status.get("reason") or "Unknown"),
            str(status.get("message") or ""),
            retry_after=retry_after,
        )


class ApiUnreachable(Exception):
    """No HTTP answer: connection refused or reset, timeout, TLS or credential failure."""


class ApiClient:
    """One aiohttp session to one API server, with credentials applied to every request."""

    def __init__(
        self,
        *,
        credentials: Credentials,
        connect_timeout: float = 10.0,
        request_timeout: float = 60.0,
        max_line: int = DEFAULT_MAX_LINE,
        clock: Clock = time.perf_counter,
        probe_interval: float = DEFAULT_INTERVAL,
    ) -> None:
        """`probe_interval`: seconds between reachability probes while a watch waits to retry
        after the server did not answer (`reachability`)."""
        self._credentials = credentials
        self._connect_timeout = connect_timeout
        self._request_timeout = request_timeout
        self._max_line = max_line
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self.reachability = Reachability(self.answers, interval=probe_interval)

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.reachability.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def base_url(self) -> str:
        return self._credentials.transport.base_url

    async def get_json(
        self, path: str, params: Mapping[str, str], *, accept: str | None = None
    ) -> dict[str, Any]:
        """GET `path` and decode the JSON object it answers (`accept`: another Accept header,
        e.g. a metadata-only view)."""
        return await self._json_object(path, params, accept=accept)

    async def answers(self) -> bool:
        """Whether the server answers `GET /readyz` (public to every client, a few bytes)
        with anything but a 5xx, within the connect timeout: the reachability probe. A slow
        answer still counts: a server that has just come back is busy with every client's
        watches at once (in the disruption harness's VM a 2 s limit missed two of three)."""
        limit = self._connect_timeout
        timeout = aiohttp.ClientTimeout(total=limit, connect=limit, sock_read=limit)
        try:
            async with self._request("/readyz", {}, timeout) as response:
                await response.read()
                return response.status < 500
        except (aiohttp.ClientError, TimeoutError, OSError, ApiUnreachable):
            return False

    async def post_json(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST a JSON object (creating it) and decode what the server answers."""
        return await self._json_object(path, {}, method="POST", body=orjson.dumps(body))

    async def _json_object(
        self,
        path: str,
        params: Mapping[str, str],
        *,
        method: str = "GET",
        body: bytes | None = None,
        accept: str | None = None,
    ) -> dict[str, Any]:
        """One request whose answer must be a JSON object; errors as ApiError/ApiUnreachable."""
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self._connect_timeout, sock_read=self._request_timeout
        )
        try:
            async with self._request(
                path, params, timeout, method=method, body=body, accept=accept
            ) as response:
                await _raise_for_status(response)
                answer = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise ApiUnreachable(_describe_failure(error)) from error
        value = _decode(answer)
        if not isinstance(value, dict):
            raise ApiError(500, "InvalidResponse", "response body is not a JSON object")
        return value

    @asynccontextmanager
    async def stream(
        self,
        path: str,
        params: Mapping[str, str],
        *,
        read_timeout: float,
        accept: str | None = None,
    ) -> AsyncGenerator[LineStream, None]:
        """A streamed response (a watch) read as lines; leaving the block drops the connection.

        `read_timeout` bounds the silence between chunks, so a dead connection is noticed.
        Transport failures, also those met while iterating, leave as `ApiUnreachable`.
        """
        timeout = aiohttp.ClientTimeout(
            total=None, connect=self._connect_timeout, sock_read=read_timeout
        )
        try:
            async with self._request(path, params, timeout, accept=accept) as response:
                await _raise_for_status(response)
                yield LineStream(response, clock=self._clock, max_line=self._max_line)
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise ApiUnreachable(_describe_failure(error)) from error

    @asynccontextmanager
    async def _request(
        self,
        path: str,
        params: Mapping[str, str],
        timeouts: aiohttp.ClientTimeout,
        *,
        method: str = "GET",
        body: bytes | None = None,
        accept: str | None = None,
    ) -> AsyncGenerator[aiohttp.ClientResponse, None]:
        response = await self._send(path, params, timeouts, method=method, body=body, accept=accept)
        try:
            yield response
        finally:
            if response.content.at_eof():
                response.release()  # read to the end: the connection can serve the next page
            else:
                response.close()  # an unfinished watch: never hand this connection out again

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"Accept": "application/json", "User-Agent": USER_AGENT},
                raise_for_status=False,
            )
        return self._session

    async def _send(
        self,
        path: str,
        params: Mapping[str, str],
        timeouts: aiohttp.ClientTimeout,
        *,
        method: str = "GET",
        body: bytes | None = None,
        accept: str | None = None,
    ) -> aiohttp.ClientResponse:
        """Send once; after a 401 reload the credentials and send once more."""
        response = await self._send_once(
            path, params, timeouts, method=method, body=body, accept=accept
        )
        if response.status != 401:
            return response
        response.release()
        log.info("401 from the API server: reloading credentials (%s)", self._credentials.source)
        try:
            await asyncio.to_thread(self._credentials.reload)
        except CredentialsError as error:
            raise ApiUnreachable(str(error)) from error
        return await self._send_once(
            path, params, timeouts, method=method, body=body, accept=accept
        )

    async def _send_once(
        self,
        path: str,
        params: Mapping[str, str],
        timeouts: aiohttp.ClientTimeout,
        *,
        method: str,
        body: bytes | None,
        accept: str | None = None,
    ) -> aiohttp.ClientResponse:
        try:
            authorization = await asyncio.to_thread(self._credentials.authorization)
        except CredentialsError as error:
            raise ApiUnreachable(str(error)) from error
        transport = self._credentials.transport
        headers = {"Authorization": authorization} if authorization else {}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if accept is not None:
            headers["Accept"] = accept
        return await self._get_session().request(
            method,
            transport.base_url + path,
            params=params,
            data=body,
            headers=headers or None,
            timeout=timeouts,
            ssl=transport.ssl if transport.ssl is not None else True,
            server_hostname=transport.server_hostname,
            proxy=transport.proxy,
        )


class LineStream:
    """The lines of one streamed response, each with the clock reading when its last byte
    arrived (the start of an event's latency). `abort()` drops the connection from anywhere,
    e.g. a timer, which ends the iteration without cancelling whoever is iterating.

    A class rather than an async generator: it needs no closing, and one `readany()` chunk
    usually carries many lines, handed out without another trip through the event loop.
    """

    def __init__(self, response: aiohttp.ClientResponse, *, clock: Clock, max_line: int) -> None:
        self._response = response
        self._content = response.content
        self._clock = clock
        self._max_line = max_line
        self._ready: deque[tuple[bytes, float]] = deque()
        self._parts: list[bytes] = []  # the unfinished line, joined once (linear in its length)
        self._pending = 0
        self._eof = False

    def abort(self) -> None:
        self._response.close()

    def __aiter__(self) -> LineStream:
        return self

    async def __anext__(self) -> tuple[bytes, float]:
        ready = self._ready
        while not ready:
            if self._eof:
                raise StopAsyncIteration
            chunk = await self._content.readany()
            if chunk:
                self._split(chunk, self._clock())
            else:
                self._eof = True
                self._finish(b"".join(self._parts))
        return ready.popleft()

    def _split(self, chunk: bytes, received: float) -> None:
        parts, ready = self._parts, self._ready
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            if parts:
                parts.append(chunk[start:end])
                line = b"".join(parts)
                parts.clear()
                self._pending = 0
            else:
                line = chunk[start:end]
            start = end + 1
            if line.strip():
                ready.append((line, received))
        if start < len(chunk):
            parts.append(chunk[start:])
            self._pending += len(chunk) - start
            if self._pending > self._max_line:
                raise ApiError(
                    500, "LineTooLong", f"a streamed line exceeds {self._max_line} bytes"
                )

    def _finish(self, line: bytes) -> None:
        """A last line without a newline still counts."""
        self._parts.clear()
        if line.strip():
            self._ready.append((line, self._clock()))


async def _raise_for_status(response: aiohttp.ClientResponse) -> None:
    if response.status < 400:
        return
    body = await response.read()
    retry_after = _retry_after(response.headers.get("Retry-After"))
    try:
        status = orjson.loads(body)
    except orjson.JSONDecodeError:
        status = None
    if isinstance(status, dict) and status.get("kind") == "Status":
        status = {**status, "code": response.status}
        raise ApiError.from_status(status, retry_after=retry_after)
    text = body[:200].decode(errors="replace").strip()
    raise ApiError(response.status, response.reason or "Error", text, retry_after=retry_after)


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the API server only ever sends seconds)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _decode(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ApiError(500, "InvalidResponse", f"response is not JSON: {error}") from None


def _describe_failure(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out waiting for the API server"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
