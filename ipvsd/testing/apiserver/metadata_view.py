"""Metadata-only views: `PartialObjectMetadata(List)` for clients that ask for them.

client-go's metadata client (and its informers) lists with
`Accept: application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json`
and watches with `as=PartialObjectMetadata`. The API server then sends, for every object, only
`{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{...}}`: the whole
metadata (labels, annotations, resourceVersion, managedFields where kept), no spec, no status.
A watch still sends an event for every change of the object, status included: the event's
metadata carries the new resourceVersion. As upstream (`handlers/response.go`), the first
Accept entry the server can serve decides: a list asked for as a single `PartialObjectMetadata`
is 406 Not Acceptable (it does not fall back to the plain JSON offered after the comma), while
a watch asked for as a `PartialObjectMetadataList` sends its objects whole.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson

from ipvsd.testing.apiserver.errors import ApiError
from ipvsd.testing.apiserver.storage import Stored

META_API_VERSION = "meta.k8s.io/v1"
PARTIAL = "PartialObjectMetadata"
PARTIAL_LIST = "PartialObjectMetadataList"

VERSIONS = ("v1", "v1beta1")
View = Literal["object", "list"]


def wanted_metadata_view(accept: str) -> tuple[View, str] | None:
    """("object" or "list", the meta.k8s.io version) when the first Accept entry the emulator
    serves asks for metadata only; None for plain objects (or a Table, see `table`)."""
    for media_range in accept.split(","):
        media, *parameters = (part.strip() for part in media_range.split(";"))
        if media not in ("application/json", "*/*", "application/*"):
            continue  # protobuf and the like: not served here, the next entry decides
        values = dict(p.split("=", 1) for p in parameters if "=" in p)
        kind, group, version = values.get("as"), values.get("g"), values.get("v")
        if kind in (PARTIAL, PARTIAL_LIST) and group == "meta.k8s.io" and version in VERSIONS:
            return ("object" if kind == PARTIAL else "list"), str(version)
        return None
    return None


def not_acceptable(message: str) -> ApiError:
    return ApiError(406, "NotAcceptable", message)


def partial_object(stored: Stored, version: str = "v1") -> bytes:
    """One object's metadata as a `PartialObjectMetadata`."""
    metadata = orjson.loads(stored.body).get("metadata") or {}
    return orjson.dumps(
        {"kind": PARTIAL, "apiVersion": f"meta.k8s.io/{version}", "metadata": metadata}
    )


def partial_list(items: list[Stored], metadata: dict[str, Any], version: str = "v1") -> bytes:
    """A list's objects as a `PartialObjectMetadataList` (with the list's own metadata)."""
    head = orjson.dumps(
        {"kind": PARTIAL_LIST, "apiVersion": f"meta.k8s.io/{version}", "metadata": metadata}
    )
    return head[:-1] + b',"items":[' + b",".join(partial_object(i, version) for i in items) + b"]}"
