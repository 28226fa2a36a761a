"""Cross-cutting request handling: the request log, Status bodies for every error, bearer-token
authentication, and the request-level injected faults.

Order, outermost first: log, errors, auth, faults, handler. So every failure (an ApiError
raised anywhere, an aiohttp 404/405/413, an unexpected exception) leaves as a Status body and
is logged with the status it got; unauthenticated requests are refused before any fault or
handler sees them; control endpoints (`/_emulator/`) are never faulted.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ipvsd.testing.apiserver import errors as api
from ipvsd.testing.apiserver.errors import ApiError
from ipvsd.testing.apiserver.faults import Faults

CONTROL_PREFIX = "/_emulator/"
PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version"})
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the emulator saw it (for tests that check what a client asked)."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str
    status: int


def status_response(error: ApiError) -> web.Response:
    return web.Response(
        body=error.body(),
        status=error.code,
        content_type="application/json",
        headers=error.headers,
    )


def _from_http_exception(error: web.HTTPException) -> ApiError:
    if error.status == 404:
        return api.path_not_found()
    if error.status == 405:
        return api.method_not_allowed()
    if error.status == 413:
        return ApiError(413, "RequestEntityTooLarge", f"Request entity too large: {error.text}")
    return ApiError(error.status, error.reason.replace(" ", ""), error.text or error.reason)


def request_log(records: deque[RequestRecord]) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        finally:
            records.append(
                RequestRecord(
                    request.method,
                    request.path,
                    dict(request.query),
                    request.headers.get("Content-Type", ""),
                    status,
                )
            )

    return middleware


@web.middleware
async def errors_as_status(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return status_response(error)
    except web.HTTPException as error:
        return status_response(_from_http_exception(error))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as error:
        log.exception("emulator bug answering %s %s", request.method, request.path_qs)
        return status_response(api.internal_error(f"{type(error).__name__}: {error}"))


def bearer_auth(token: Callable[[], str], *, allow_anonymous: bool) -> Middleware:
    """Accept `Authorization: Bearer <token>`; any other credential is 401 Unauthorized.

    A request with no credentials at all is anonymous: allowed for health and version paths
    (the API server's public-info role), and elsewhere only with `allow_anonymous` (for a
    client that has no token at all; kubectl, the official client and ipvsd send theirs over
    the emulator's HTTPS and are held to it).
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Authorization")
        if header is None:
            if allow_anonymous or request.path in PUBLIC_PATHS:
                return await handler(request)
            raise api.unauthorized()
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), token().encode()
        ):
            raise api.unauthorized()
        return await handler(request)

    return middleware


def injected_faults(faults: Faults) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return await handler(request)
        delay = faults.delay_for(request.path)
        if delay:
            await asyncio.sleep(delay)
        failure = faults.failure_for(request.method, request.path)
        if failure is not None:
            raise failure
        return await handler(request)

    return middleware
