"""REST dispatch for /api and /apis: which resource a path names, and each verb's response.

Paths follow the API server's layout: `/api/v1/services` (all namespaces),
`/api/v1/namespaces/{ns}/services[/{name}[/status]]`, `/apis/discovery.k8s.io/v1/...`, and
cluster-scoped `/api/v1/nodes[/{name}[/status]]`. A path that names nothing is 404 and a verb a
path does not take is 405, both with a Status body. Lists are assembled from stored bytes and
streamed in ~1 MiB writes, so a 20 MB list costs a join, not a serialization.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import yaml
from aiohttp import web

from ipvsd.testing.apiserver import errors as api
from ipvsd.testing.apiserver.errors import ApiError
from ipvsd.testing.apiserver.faults import Faults, forced_expiry
from ipvsd.testing.apiserver.metadata_view import (
    PARTIAL,
    not_acceptable,
    partial_list,
    partial_object,
    wanted_metadata_view,
)
from ipvsd.testing.apiserver.reads import list_page, open_watch, parse_version
from ipvsd.testing.apiserver.resources import ResourceType, by_path
from ipvsd.testing.apiserver.selectors import Filter, filter_for
from ipvsd.testing.apiserver.storage import Stored
from ipvsd.testing.apiserver.store import Store
from ipvsd.testing.apiserver.table import render_table, wanted_table_version
from ipvsd.testing.apiserver.traffic import MeteredStreamResponse
from ipvsd.testing.apiserver.watch import Render, WatchSettings, send_error_event, serve_watch

JSON = "application/json"
STREAM_THRESHOLD = 1 << 20
_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}


@dataclass(frozen=True, slots=True)
class Target:
    """What a path names: a collection (`name` None) or one object, maybe its status."""

    resource: ResourceType
    namespace: str | None
    name: str | None = None
    status: bool = False


def parse_target(path: str) -> Target | None:
    parts = [part for part in path.split("/") if part]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        scoped = by_path(group, version, rest[2])
        if scoped is not None and scoped.namespaced:
            namespace, rest = rest[1], rest[2:]
    resource = by_path(group, version, rest[0])
    if resource is None or len(rest) > 3:
        return None
    name = rest[1] if len(rest) > 1 else None
    status = len(rest) == 3
    if status and (rest[2] != "status" or not resource.has_status):
        return None
    if resource.namespaced and name is not None and namespace is None:
        return None
    return Target(resource, namespace, name, status)


def json_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type=JSON)


def parse_bool(query: Any, name: str) -> bool | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise api.bad_request(f'invalid boolean value for {name}: "{value}"')


def parse_int(query: Any, name: str) -> int | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError as error:
        raise api.bad_request(f'invalid value for {name}: "{value}"') from error
    if number < 0:
        raise api.bad_request(f"{name} must not be negative")
    return number


async def read_document(request: web.Request) -> object:
    """The request body as JSON (or YAML); 400 when it does not parse, 415 for other media
    (kubectl's typed generators such as `kubectl create service` send protobuf, which the
    emulator does not speak)."""
    media = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if media not in ("application/json", "application/yaml", "application/x-yaml", ""):
        raise api.unsupported_media_type(media)
    body = await request.read()
    try:
        if media in ("application/yaml", "application/x-yaml"):
            return yaml.safe_load(body)
        return orjson.loads(body)
    except (orjson.JSONDecodeError, yaml.YAMLError) as error:
        raise api.bad_request(f"the body of the request could not be decoded: {error}") from error


async def send_list(
    request: web.Request, resource: ResourceType, items: list[Stored], metadata: dict[str, Any]
) -> web.StreamResponse:
    """A `<Kind>List` built from stored bytes; large ones are streamed in ~1 MiB writes."""
    head = (
        f'{{"kind":"{resource.list_kind}","apiVersion":"{resource.api_version}","metadata":'.encode()
        + orjson.dumps(metadata)
        + b',"items":['
    )
    bodies = [stored.body for stored in items]
    size = len(head) + sum(map(len, bodies)) + max(len(bodies) - 1, 0) + len(b"]}")
    if size < STREAM_THRESHOLD:
        return json_response(head + b",".join(bodies) + b"]}")
    response = MeteredStreamResponse(status=200, headers={"Content-Type": JSON})
    response.content_length = size
    await response.prepare(request)
    pending: list[bytes] = [head]
    pending_size = len(head)
    for index, body in enumerate(bodies):
        if index:
            pending.append(b",")
        pending.append(body)
        pending_size += len(body) + 1
        if pending_size >= STREAM_THRESHOLD:
            await response.write(b"".join(pending))
            pending, pending_size = [], 0
    pending.append(b"]}")
    await response.write(b"".join(pending))
    await response.write_eof()
    return response


def deleted_status(resource: ResourceType, stored: Stored) -> bytes:
    details: dict[str, Any] = {"name": stored.name, "kind": resource.plural}
    if resource.group:
        details["group"] = resource.group
    uid = stored.to_dict()["metadata"].get("uid")
    if uid:
        details["uid"] = uid
    return orjson.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        }
    )


def _document(stored: Stored) -> bytes:
    return stored.document


def _internal_group(resource: ResourceType) -> str:
    """The Go package upstream names in its 406 messages (`core`, `discovery`, ...)."""
    return resource.group.split(".", 1)[0] if resource.group else "core"


def _metadata_type(request: web.Request) -> tuple[str, str] | None:
    """(kind, apiVersion) of a metadata-only watch's objects and bookmarks, else None."""
    view = wanted_metadata_view(request.headers.get("Accept", ""))
    if view is None or view[0] != "object":
        return None
    return PARTIAL, f"meta.k8s.io/{view[1]}"


class ResourceHandler:
    """Answers every request under /api and /apis that is not discovery."""

    def __init__(
        self,
        store: Store,
        faults: Faults,
        watch_settings: Callable[[int | None, bool], WatchSettings],
    ) -> None:
        self.store = store
        self.faults = faults
        self.watch_settings = watch_settings

    async def handle(self, request: web.Request) -> web.StreamResponse:
        target = parse_target(request.path)
        if target is None:
            raise api.path_not_found()
        if request.query.get("dryRun"):
            raise api.bad_request("dryRun is not supported by the ipvsd API emulator")
        method = request.method
        if target.name is None:
            if method == "GET":
                if parse_bool(request.query, "watch"):
                    return await self._watch(request, target)
                return await self._list(request, target)
            if method == "POST" and (target.namespace or not target.resource.namespaced):
                return await self._create(request, target)
            if method == "DELETE":
                return await self._delete_collection(request, target)
        elif method == "GET":
            return self._get(request, target)
        elif method == "PUT":
            return await self._replace(request, target)
        elif method == "PATCH":
            return await self._patch(request, target)
        elif method == "DELETE" and not target.status:
            return await self._delete(request, target)
        raise api.method_not_allowed()

    def _filter_of(self, request: web.Request, target: Target) -> Filter:
        return filter_for(
            target.resource,
            target.namespace,
            request.query.get("labelSelector"),
            request.query.get("fieldSelector"),
        )

    def _expired_by_fault(self, request: web.Request) -> ApiError | None:
        version = parse_version(request.query.get("resourceVersion"))
        reads_from_version = bool(version) or bool(request.query.get("continue"))
        if reads_from_version and self.faults.take_expiry():
            return forced_expiry(version)
        return None

    async def _list(self, request: web.Request, target: Target) -> web.StreamResponse:
        query = request.query
        selected = self._filter_of(request, target)
        forced = self._expired_by_fault(request)
        if forced is not None:
            raise forced
        limit = parse_int(query, "limit")
        pacing = self.faults.pacing_for(request.path)
        if pacing is not None:  # a slow API: at most a page of items, after a while
            limit = min(limit or pacing.page_size, pacing.page_size)
            started = time.monotonic()
            await asyncio.sleep(pacing.seconds)
        page = list_page(
            self.store.storage,
            target.resource,
            selected,
            version=query.get("resourceVersion"),
            match=query.get("resourceVersionMatch"),
            limit=limit,
            continue_token=query.get("continue"),
        )
        if pacing is not None:
            client = request.remote or ""
            pacing.paged(client, request.path, query.get("continue"), page.continue_token, started)
        metadata: dict[str, Any] = {"resourceVersion": str(page.resource_version)}
        if page.continue_token:
            metadata["continue"] = page.continue_token
        if page.remaining is not None:
            metadata["remainingItemCount"] = page.remaining
        view = wanted_metadata_view(request.headers.get("Accept", ""))
        if view is not None:
            kind, version = view
            if kind == "object":
                raise not_acceptable(
                    "you requested PartialObjectMetadata, but the requested object is a list "
                    f"(*{_internal_group(target.resource)}.{target.resource.list_kind})"
                )
            return json_response(partial_list(page.items, metadata, version))
        table = self._table_version(request)
        if table is not None:
            return json_response(
                render_table(
                    target.resource,
                    page.items,
                    metadata,
                    version=table,
                    include=request.query.get("includeObject", "Metadata"),
                    now=self.store.now(),
                )
            )
        return await send_list(request, target.resource, page.items, metadata)

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        query = request.query
        selected = self._filter_of(request, target)
        bookmarks = bool(parse_bool(query, "allowWatchBookmarks"))
        settings = self.watch_settings(parse_int(query, "timeoutSeconds"), bookmarks)
        forced = self._expired_by_fault(request)
        if forced is not None:
            return await send_error_event(request, forced)
        start = open_watch(
            self.store.storage,
            target.resource,
            selected,
            version=query.get("resourceVersion"),
            match=query.get("resourceVersionMatch"),
            send_initial=parse_bool(query, "sendInitialEvents"),
            bookmarks=bookmarks,
        )
        if start.error is not None:
            return await send_error_event(request, start.error)
        return await serve_watch(
            request,
            storage=self.store.storage,
            resource=target.resource,
            selected=selected,
            start=start,
            settings=settings,
            render=self._renderer(request, target.resource),
            as_type=_metadata_type(request),
            pacing=self.faults.pacing_for(request.path),
        )

    def _get(self, request: web.Request, target: Target) -> web.Response:
        assert target.name is not None
        stored = self.store.read(target.resource, target.namespace or "", target.name)
        view = wanted_metadata_view(request.headers.get("Accept", ""))
        if view is not None and view[0] == "list":
            raise not_acceptable(
                "you requested PartialObjectMetadataList, but the requested object is not a list "
                f"(*{_internal_group(target.resource)}.{target.resource.kind})"
            )
        return json_response(self._renderer(request, target.resource)(stored))

    @staticmethod
    def _table_version(request: web.Request) -> str | None:
        return wanted_table_version(request.headers.get("Accept", ""))

    def _renderer(self, request: web.Request, resource: ResourceType) -> Render:
        """How objects go out: as themselves, as their metadata (a metadata client), or as
        one-row Tables when kubectl asks. A watch asked for as a metadata *list* sends its
        objects whole, as upstream's watch encoder falls back to the untransformed object."""
        view = wanted_metadata_view(request.headers.get("Accept", ""))
        if view is not None and view[0] == "object":
            meta_version = view[1]
            return lambda stored: partial_object(stored, meta_version)
        version = self._table_version(request)
        if version is None:
            return _document
        include = request.query.get("includeObject", "Metadata")
        metadata = {"resourceVersion": ""}

        def as_table(stored: Stored) -> bytes:
            metadata["resourceVersion"] = str(stored.rv)
            return render_table(
                resource, [stored], metadata, version=version, include=include, now=self.store.now()
            )

        return as_table

    async def _create(self, request: web.Request, target: Target) -> web.Response:
        document = await read_document(request)
        stored = self.store.create_stored(target.resource, target.namespace, document)
        return json_response(stored.document, 201)

    async def _replace(self, request: web.Request, target: Target) -> web.Response:
        assert target.name is not None
        document = await read_document(request)
        stored = self.store.replace_stored(
            target.resource,
            target.namespace or "",
            target.name,
            document,
            status_only=target.status,
        )
        return json_response(stored.document)

    async def _patch(self, request: web.Request, target: Target) -> web.Response:
        assert target.name is not None
        body = await request.read()
        stored = self.store.patch_stored(
            target.resource,
            target.namespace or "",
            target.name,
            request.headers.get("Content-Type", ""),
            body,
            status_only=target.status,
        )
        return json_response(stored.document)

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        options = await read_document(request)
        if options is None:
            return {}
        if not isinstance(options, dict):
            raise api.bad_request("DeleteOptions must be a JSON object")
        return options

    async def _delete(self, request: web.Request, target: Target) -> web.Response:
        assert target.name is not None
        options = await self._delete_options(request)
        preconditions = options.get("preconditions")
        stored, gone = self.store.delete_stored(
            target.resource,
            target.namespace or "",
            target.name,
            preconditions=preconditions if isinstance(preconditions, dict) else None,
        )
        if target.resource.returns_deleted or not gone:
            return json_response(stored.document)
        return json_response(deleted_status(target.resource, stored))

    async def _delete_collection(self, request: web.Request, target: Target) -> web.StreamResponse:
        selected = self._filter_of(request, target)
        await self._delete_options(request)
        deleted = []
        for stored in self.store.storage.items(target.resource, target.namespace):
            if selected.matches(stored):
                tombstone, _ = self.store.delete_stored(
                    target.resource, stored.namespace, stored.name
                )
                deleted.append(tombstone)
        metadata = {"resourceVersion": str(self.store.resource_version)}
        return await send_list(request, target.resource, deleted, metadata)
