"""Strategic merge patch for the kinds and fields the emulator serves.

Maps merge recursively and `null` deletes a key, as in a JSON merge patch. Lists differ by
field, following the `patchStrategy`/`patchMergeKey` tags of the Go types:

- merged by key: Service `spec.ports` (key `port`, so TCP and UDP entries of the same port
  collide, as upstream issue #39188 documents), Pod containers/volumes/conditions, Node
  addresses/conditions (key `type`), `metadata.ownerReferences` (key `uid`);
- merged as a set: `metadata.finalizers`;
- replaced whole: everything else, notably EndpointSlice `endpoints` and `ports` (atomic).

Directives: `$patch: replace|delete|merge` on maps and list elements, `$retainKeys`,
`$deleteFromPrimitiveList/<field>`, `$setElementOrder/<field>` (the elements it names come
first in its order; server-only elements follow in their previous order — a simplification of
upstream's interleaving that kubectl's own patches never notice).
"""

from __future__ import annotations

import copy
from typing import Any

from ipvsd.testing.apiserver.errors import bad_request

Path = tuple[str, ...]
_ELEMENT = "*"
_COMMON_KEYS: dict[Path, str] = {("metadata", "ownerReferences"): "uid"}
_SET_LISTS: frozenset[Path] = frozenset({("metadata", "finalizers")})
_KIND_KEYS: dict[str, dict[Path, str]] = {
    "Service": {("spec", "ports"): "port"},
    "Pod": {
        ("spec", "containers"): "name",
        ("spec", "initContainers"): "name",
        ("spec", "ephemeralContainers"): "name",
        ("spec", "containers", _ELEMENT, "ports"): "containerPort",
        ("spec", "containers", _ELEMENT, "env"): "name",
        ("spec", "containers", _ELEMENT, "volumeMounts"): "mountPath",
        ("spec", "volumes"): "name",
        ("spec", "imagePullSecrets"): "name",
        ("spec", "hostAliases"): "ip",
        ("status", "conditions"): "type",
        ("status", "podIPs"): "ip",
    },
    "Node": {("status", "addresses"): "type", ("status", "conditions"): "type"},
    "Namespace": {("status", "conditions"): "type"},
}


class _Deleted:
    """Marker: a `$patch: delete` map removes itself from its parent."""


_DELETED = _Deleted()


def strategic_merge(original: dict[str, Any], patch: dict[str, Any], kind: str) -> dict[str, Any]:
    keys = {**_COMMON_KEYS, **_KIND_KEYS.get(kind, {})}
    merged = _merge_map(original, patch, (), keys)
    if isinstance(merged, _Deleted):
        raise bad_request("a strategic merge patch may not delete the whole object")
    return merged


def _merge_map(
    original: dict[str, Any], patch: dict[str, Any], path: Path, keys: dict[Path, str]
) -> dict[str, Any] | _Deleted:
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETED
    if directive == "replace":
        return {
            k: _stripped(v) for k, v in patch.items() if not k.startswith("$") and v is not None
        }
    if directive not in (None, "merge"):
        raise bad_request(f"badly formed patch: unknown patch type: {directive}")
    result = dict(original)
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [x for x in result.get(field) or [] if x not in (value or [])]
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        child = (*path, key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            previous = result.get(key)
            merged = _merge_map(previous if isinstance(previous, dict) else {}, value, child, keys)
            if isinstance(merged, _Deleted):
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, child, keys)
        else:
            result[key] = value
    for key, order in patch.items():
        if key.startswith("$setElementOrder/") and isinstance(order, list):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = _reordered(result[field], order, keys.get((*path, field)))
    return result


def _stripped(value: Any) -> Any:
    """A patch fragment without directives, for places where it is taken as is."""
    if isinstance(value, dict):
        return {
            k: _stripped(v) for k, v in value.items() if not k.startswith("$") and v is not None
        }
    if isinstance(value, list):
        return [_stripped(v) for v in value if not (isinstance(v, dict) and "$patch" in v)]
    return copy.deepcopy(value)


def _merge_list(original: Any, patch: list[Any], path: Path, keys: dict[Path, str]) -> list[Any]:
    if any(isinstance(e, dict) and e.get("$patch") == "replace" for e in patch):
        return _stripped(patch)  # type: ignore[no-any-return]
    merge_key = keys.get(path)
    current = list(original) if isinstance(original, list) else []
    if path in _SET_LISTS:
        return current + [x for i, x in enumerate(patch) if x not in current and x not in patch[:i]]
    if merge_key is None:
        return _stripped(patch)  # type: ignore[no-any-return]
    element_path = (*path, _ELEMENT)
    for element in patch:
        if not isinstance(element, dict) or merge_key not in element:
            raise bad_request(f"map: {element} does not contain declared merge key: {merge_key}")
        wanted = element[merge_key]
        at = next(
            (
                i
                for i, e in enumerate(current)
                if isinstance(e, dict) and e.get(merge_key) == wanted
            ),
            None,
        )
        if element.get("$patch") == "delete":
            current = [
                e for e in current if not (isinstance(e, dict) and e.get(merge_key) == wanted)
            ]
            continue
        merged = _merge_map(current[at] if at is not None else {}, element, element_path, keys)
        if isinstance(merged, _Deleted):  # pragma: no cover - handled just above
            continue
        if at is None:
            current.append(merged)
        else:
            current[at] = merged
    return current


def _reordered(items: list[Any], order: list[Any], merge_key: str | None) -> list[Any]:
    def identity(item: Any) -> Any:
        return item.get(merge_key) if merge_key and isinstance(item, dict) else item

    wanted = [identity(entry) for entry in order]
    position = {value: index for index, value in enumerate(wanted) if _hashable(value)}
    first = [item for item in items if _hashable(identity(item)) and identity(item) in position]
    first.sort(key=lambda item: position[identity(item)])
    rest = [
        item for item in items if not (_hashable(identity(item)) and identity(item) in position)
    ]
    return first + rest


def _hashable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)
