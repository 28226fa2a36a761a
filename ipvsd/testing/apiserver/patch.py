"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902), plus the dispatch by content type.

Strategic merge patch lives in `strategic.py`. A patch that cannot be applied is the client's
error: malformed JSON is 400 BadRequest; a JSON patch whose operation fails (missing path,
failed `test`) is 422, as the API server answers. Server-side apply is not offered (415).
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from ipvsd.testing.apiserver.errors import ApiError, bad_request, unsupported_media_type
from ipvsd.testing.apiserver.strategic import strategic_merge

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
PATCH_TYPES = (JSON_PATCH, MERGE, STRATEGIC)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, `null` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _unprocessable(message: str) -> ApiError:
    return ApiError(422, "Invalid", message)


def _pointer(path: object) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise _unprocessable(f"invalid JSON pointer: {path!r}")
    if path == "":
        return []
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _index(container: list[Any], token: str, *, for_add: bool) -> int:
    if token == "-" and for_add:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise _unprocessable(f"invalid array index: {token}")
    index = int(token)
    limit = len(container) if for_add else len(container) - 1
    if index > limit:
        raise _unprocessable(f"array index out of bounds: {index}")
    return index


def _parent(document: Any, tokens: list[str]) -> Any:
    current = document
    for token in tokens[:-1]:
        if isinstance(current, dict):
            if token not in current:
                raise _unprocessable(f"doc is missing path: /{'/'.join(tokens)}")
            current = current[token]
        elif isinstance(current, list):
            current = current[_index(current, token, for_add=False)]
        else:
            raise _unprocessable(f"doc is missing path: /{'/'.join(tokens)}")
    return current


def _get(document: Any, tokens: list[str]) -> Any:
    if not tokens:
        return document
    parent = _parent(document, tokens)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, for_add=False)]
    raise _unprocessable(f"doc is missing path: /{'/'.join(tokens)}")


def _add(document: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _parent(document, tokens)
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, tokens[-1], for_add=True), value)
    else:
        raise _unprocessable(f"doc is missing path: /{'/'.join(tokens)}")
    return document


def _remove(document: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise _unprocessable("cannot remove the whole document")
    parent = _parent(document, tokens)
    if isinstance(parent, dict) and tokens[-1] in parent:
        parent.pop(tokens[-1])
    elif isinstance(parent, list):
        parent.pop(_index(parent, tokens[-1], for_add=False))
    else:
        raise _unprocessable(f"unable to remove nonexistent key: {tokens[-1]}: missing value")
    return document


def _replace(document: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _parent(document, tokens)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        parent[last] = value
    elif isinstance(parent, list):
        parent[_index(parent, last, for_add=False)] = value
    else:
        raise _unprocessable(
            f"replace operation does not apply: doc is missing key: /{'/'.join(tokens)}"
        )
    return document


def json_patch(document: Any, operations: Any) -> Any:
    """RFC 6902: add, remove, replace, move, copy, test, applied in order to a copy."""
    if not isinstance(operations, list):
        raise bad_request("json patch must be a list of operations")
    result = copy.deepcopy(document)
    for operation in operations:
        if not isinstance(operation, dict):
            raise bad_request(f"json patch operation must be an object: {operation!r}")
        op = operation.get("op")
        tokens = _pointer(operation.get("path"))
        if op in ("add", "replace", "test") and "value" not in operation:
            raise _unprocessable(f"{op} operation does not apply: value is missing")
        if op == "add":
            result = _add(result, tokens, copy.deepcopy(operation["value"]))
        elif op == "remove":
            result = _remove(result, tokens)
        elif op == "replace":
            result = _replace(result, tokens, copy.deepcopy(operation["value"]))
        elif op in ("move", "copy"):
            source = _pointer(operation.get("from"))
            value = copy.deepcopy(_get(result, source))
            if op == "move":
                if tokens[: len(source)] == source and tokens != source:
                    raise _unprocessable("move operation cannot move a value into its own child")
                result = _remove(result, source)
            result = _add(result, tokens, value)
        elif op == "test":
            if _get(result, tokens) != operation["value"]:
                raise _unprocessable(f"testing value {operation.get('path')} failed: test failed")
        else:
            raise bad_request(f"Unexpected kind: {op}")
    return result


def apply_patch(content_type: str, document: dict[str, Any], body: bytes, kind: str) -> Any:
    """Apply a PATCH body of `content_type` to `document` (a fresh copy is returned)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in PATCH_TYPES:
        raise unsupported_media_type(media or "(none)")
    try:
        patch = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise bad_request(f"error decoding patch: {error}") from error
    if media == JSON_PATCH:
        return json_patch(document, patch)
    if not isinstance(patch, dict):
        raise bad_request("patch body must be a JSON object")
    if media == MERGE:
        return merge_patch(document, patch)
    return strategic_merge(document, patch, kind)
