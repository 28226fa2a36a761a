"""Discovery and OpenAPI documents: what kubectl reads before it touches a resource.

kubectl accepts the plain (non-aggregated) discovery forms: `APIVersions` at /api,
`APIGroupList` at /apis, `APIResourceList` per group version. For `kubectl apply` it fetches
/openapi/v3 and the group version's document; when the PATCH operation of the object's kind
lists a `fieldValidation` query parameter it leaves validation to the server and skips its
client-side schema check, so the documents describe operations and parameters only (no
schemas: kubectl then takes patch metadata from its compiled-in types, which are right).
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Any

import orjson

from ipvsd.testing.apiserver.resources import (
    VERBS,
    ResourceType,
    group_versions,
    in_group_version,
)

KUBERNETES_VERSION = "v1.34.0"
VERSION_INFO = {
    "major": "1",
    "minor": "34",
    "gitVersion": f"{KUBERNETES_VERSION}+ipvsd.emulator",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-08-27T00:00:00Z",
    "goVersion": "go1.24.6",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def _resource_entries(resource: ResourceType) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {
        "name": resource.plural,
        "singularName": resource.singular,
        "namespaced": resource.namespaced,
        "kind": resource.kind,
        "verbs": list(VERBS),
    }
    if resource.short_names:
        entry["shortNames"] = list(resource.short_names)
    if resource.categories:
        entry["categories"] = list(resource.categories)
    entries = [entry]
    if resource.has_status:
        entries.append(
            {
                "name": f"{resource.plural}/status",
                "singularName": "",
                "namespaced": resource.namespaced,
                "kind": resource.kind,
                "verbs": ["get", "patch", "update"],
            }
        )
    return entries


def _group_document(group: str, versions: list[str]) -> dict[str, Any]:
    listed = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": listed, "preferredVersion": listed[0]}


@cache
def _static_documents() -> dict[str, bytes]:
    documents: dict[str, Any] = {"/version": VERSION_INFO}
    groups: dict[str, list[str]] = {}
    for group, version in group_versions():
        resources = in_group_version(group, version)
        path = resources[0].group_version_path
        documents[path] = {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": resources[0].api_version,
            "resources": [e for r in resources for e in _resource_entries(r)],
        }
        if group:
            groups.setdefault(group, []).append(version)
    documents["/apis"] = {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group_document(g, v) for g, v in groups.items()],
    }
    for group, versions in groups.items():
        documents[f"/apis/{group}"] = {
            "kind": "APIGroup",
            "apiVersion": "v1",
            **_group_document(group, versions),
        }
    return {path: orjson.dumps(document) for path, document in documents.items()}


def discovery_document(path: str, server_address: str) -> bytes | None:
    """The discovery or version document at `path`, or None when `path` is not one."""
    path = path.rstrip("/") or "/"
    if path == "/api":
        return orjson.dumps(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
                ],
            }
        )
    return _static_documents().get(path)


def _parameter(name: str, where: str = "query") -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": {"type": "string", "uniqueItems": True},
    }


_WRITE_PARAMETERS = [_parameter(n) for n in ("dryRun", "fieldManager", "fieldValidation")]
_READ_PARAMETERS = [
    _parameter(n)
    for n in (
        "allowWatchBookmarks",
        "continue",
        "fieldSelector",
        "labelSelector",
        "limit",
        "resourceVersion",
        "resourceVersionMatch",
        "sendInitialEvents",
        "timeoutSeconds",
        "watch",
    )
]
_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)


def _operation(
    resource: ResourceType, action: str, parameters: list[dict[str, Any]]
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": f"{action}{resource.kind}",
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": resource.group,
            "version": resource.version,
            "kind": resource.kind,
        },
        "parameters": parameters,
        "responses": {"200": {"description": "OK"}},
    }
    if action == "patch":
        operation["requestBody"] = {
            "content": {media: {"schema": {"type": "object"}} for media in _PATCH_TYPES},
            "required": True,
        }
    return operation


def _paths(resource: ResourceType) -> dict[str, Any]:
    base = resource.group_version_path
    collection = (
        f"{base}/namespaces/{{namespace}}/{resource.plural}"
        if resource.namespaced
        else f"{base}/{resource.plural}"
    )
    scope = [_parameter("namespace", "path")] if resource.namespaced else []
    paths = {
        collection: {
            "parameters": scope,
            "get": _operation(resource, "list", _READ_PARAMETERS),
            "post": _operation(resource, "post", _WRITE_PARAMETERS),
            "delete": _operation(resource, "deletecollection", _READ_PARAMETERS),
        },
        f"{collection}/{{name}}": {
            "parameters": [*scope, _parameter("name", "path")],
            "get": _operation(resource, "get", []),
            "put": _operation(resource, "put", _WRITE_PARAMETERS),
            "patch": _operation(resource, "patch", [*_WRITE_PARAMETERS, _parameter("force")]),
            "delete": _operation(resource, "delete", [_parameter("dryRun")]),
        },
    }
    if resource.has_status:
        paths[f"{collection}/{{name}}/status"] = {
            "parameters": [*scope, _parameter("name", "path")],
            "get": _operation(resource, "get", []),
            "put": _operation(resource, "put", _WRITE_PARAMETERS),
            "patch": _operation(resource, "patch", _WRITE_PARAMETERS),
        }
    return paths


@cache
def _openapi_documents() -> dict[str, bytes]:
    documents: dict[str, bytes] = {}
    for group, version in group_versions():
        resources = in_group_version(group, version)
        paths: dict[str, Any] = {}
        for resource in resources:
            paths.update(_paths(resource))
        document = {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
            "paths": paths,
            "components": {"schemas": {}},
        }
        documents[resources[0].group_version_path.lstrip("/")] = orjson.dumps(document)
    return documents


def openapi_root() -> bytes:
    """/openapi/v3: where each group version's document is, with a content hash."""
    paths = {
        relative: {
            "serverRelativeURL": f"/openapi/v3/{relative}?hash="
            + hashlib.sha512(document).hexdigest().upper()
        }
        for relative, document in _openapi_documents().items()
    }
    return orjson.dumps({"paths": paths})


def openapi_document(relative: str) -> bytes | None:
    """/openapi/v3/api/v1 and friends, or None for an unknown group version."""
    return _openapi_documents().get(relative.strip("/"))
