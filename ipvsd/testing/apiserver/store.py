"""What a write may do and what it leaves behind: the API semantics over `Storage`.

Create, update (PUT), patch and delete follow the API server: 404 for a missing object, 409
AlreadyExists on a duplicate name, 409 Conflict on a stale `resourceVersion` (an update without
one is unconditional), 422 Invalid with every field error, server-owned metadata that clients
cannot set, `status` changed only through the status subresource for kinds that have one, a
no-op update that neither bumps the resource version nor notifies watchers, and deletion that
waits for `metadata.finalizers` to empty.

`accept_anything(resource)` is a fault: from then on that resource's objects are stored and
served as given, with no decoding, defaults, allocation or validation beyond what the store
needs to key them (a JSON object whose `metadata` is an object with a string `name`, and
`namespace` for namespaced kinds). That is what a buggy controller writing through an older or
laxer server, or straight into etcd, leaves for a proxy to read.

The HTTP layer calls the `*_stored` methods (which take ownership of the documents they are
given and return `Stored` versions). Tests call the dict methods below them (`create`, `get`,
`update`, `patch`, `delete`, `load`...), which copy their input and return plain dicts; they go
through exactly the same rules, so test fixtures look like what a real cluster would hold.
Everything runs on the event loop's thread: call it from the loop that runs the server.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

import orjson

from ipvsd.testing.apiserver import errors as api
from ipvsd.testing.apiserver.errors import ApiError
from ipvsd.testing.apiserver.kinds import Strategy
from ipvsd.testing.apiserver.meta import (
    Clock,
    generated_name,
    keep_system_fields,
    stamp_new,
    timestamp,
    utc_now,
    validate_metadata,
)
from ipvsd.testing.apiserver.patch import JSON_PATCH, MERGE, STRATEGIC, apply_patch
from ipvsd.testing.apiserver.resources import (
    NAMESPACES,
    RESOURCES,
    ResourceType,
    by_kind,
    lookup,
)
from ipvsd.testing.apiserver.schema import decode
from ipvsd.testing.apiserver.selectors import filter_for
from ipvsd.testing.apiserver.storage import Storage, Stored

Document = dict[str, Any]
PatchKind = Literal["merge", "strategic", "json"]
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_PATCH_MEDIA: dict[PatchKind, str] = {"merge": MERGE, "strategic": STRATEGIC, "json": JSON_PATCH}


class Store:
    """Objects with the API server's write rules; `storage` holds them and their history."""

    def __init__(
        self,
        storage: Storage,
        strategies: dict[ResourceType, Strategy],
        *,
        clock: Clock = utc_now,
    ) -> None:
        self.storage = storage
        self._strategies = strategies
        self._clock = clock
        self._unvalidated: set[ResourceType] = set()

    @property
    def resource_version(self) -> int:
        return self.storage.resource_version

    def accept_anything(self, resource: str | ResourceType, *, enabled: bool = True) -> None:
        """Fault: store and serve `resource` as given (see the module docstring); objects
        stored meanwhile give back nothing they did not take (no allocation is released)."""
        resource = lookup(resource)
        if enabled:
            self._unvalidated.add(resource)
        else:
            self._unvalidated.discard(resource)

    @property
    def accepting_anything(self) -> list[str]:
        return sorted(resource.plural for resource in self._unvalidated)

    def now(self) -> datetime:
        return self._clock()

    def ensure_initial_namespaces(self) -> None:
        """`default`, `kube-system`, ... exist in every cluster; create the missing ones."""
        for name in INITIAL_NAMESPACES:
            if self.storage.get(NAMESPACES, ("", name)) is None:
                self.create_stored(NAMESPACES, None, {"metadata": {"name": name}})

    def restore_allocations(self) -> None:
        """After loading saved objects, let each kind take back what they hold."""
        for resource in RESOURCES:
            strategy = self._strategies[resource]
            for stored in self.storage.items(resource):
                strategy.restore(stored.to_dict())

    # -- the rules, on Stored versions (the HTTP layer) -----------------------------------------

    def read(self, resource: ResourceType, namespace: str, name: str) -> Stored:
        stored = self.storage.get(resource, (namespace if resource.namespaced else "", name))
        if stored is None:
            raise api.not_found(resource.plural, resource.group, name)
        return stored

    def _checked_document(self, resource: ResourceType, document: object) -> Document:
        if not isinstance(document, dict):
            raise api.bad_request("the body of the request must be a JSON object")
        kind, version = document.get("kind"), document.get("apiVersion")
        if (kind and kind != resource.kind) or (version and version != resource.api_version):
            raise api.bad_request(
                f"the API version in the data ({version}) and kind ({kind}) do not match the"
                f" endpoint ({resource.api_version}, {resource.kind})"
            )
        if resource in self._unvalidated:
            return self._keyable(resource, document)
        document = decode(resource, document)
        document["kind"], document["apiVersion"] = resource.kind, resource.api_version
        document.setdefault("metadata", {})
        return document

    @staticmethod
    def _keyable(resource: ResourceType, document: Document) -> Document:
        """An unvalidated document: anything, as long as the store can key it."""
        metadata = document.setdefault("metadata", {})
        if not isinstance(metadata, dict) or not isinstance(metadata.get("name", ""), str):
            raise api.bad_request("metadata must be an object with a string name")
        if not isinstance(metadata.get("namespace", ""), str):
            raise api.bad_request("metadata.namespace must be a string")
        document["kind"], document["apiVersion"] = resource.kind, resource.api_version
        return document

    def _problems(self, resource: ResourceType, metadata: Document) -> list[api.FieldError]:
        """`validate_metadata`; for an unvalidated resource only that a name is there."""
        if resource not in self._unvalidated:
            return validate_metadata(metadata, self._strategies[resource].name_rule)
        return [] if metadata.get("name") else [api.FieldError.required("metadata.name")]

    def _place(self, resource: ResourceType, namespace: str | None, metadata: Document) -> str:
        """The namespace an object lives in ("" for cluster-scoped); checks it exists."""
        if not resource.namespaced:
            metadata.pop("namespace", None)
            return ""
        given = metadata.get("namespace")
        if namespace and given and given != namespace:
            raise api.bad_request(
                "the namespace of the provided object does not match the namespace sent on the"
                " request"
            )
        chosen = namespace or given or "default"
        metadata["namespace"] = chosen
        if self.storage.get(NAMESPACES, ("", chosen)) is None:
            raise api.not_found("namespaces", "", chosen)
        return str(chosen)

    def _invalid(
        self, resource: ResourceType, name: object, problems: list[api.FieldError]
    ) -> ApiError:
        return api.invalid(resource.kind, resource.group, str(name or ""), problems)

    def create_stored(
        self, resource: ResourceType, namespace: str | None, document: object
    ) -> Stored:
        document = self._checked_document(resource, document)
        metadata = document["metadata"]
        namespace = self._place(resource, namespace, metadata)
        if metadata.get("resourceVersion"):
            raise api.bad_request("resourceVersion should not be set on objects to be created")
        if not metadata.get("name") and isinstance(metadata.get("generateName"), str):
            for _ in range(8):
                metadata["name"] = generated_name(metadata["generateName"])
                if self.storage.get(resource, (namespace, metadata["name"])) is None:
                    break
        strategy = self._strategies[resource]
        stamp_new(metadata, self._clock)
        unvalidated = resource in self._unvalidated
        if strategy.clears_status_on_create and not unvalidated:
            document.pop("status", None)
        problems = self._problems(resource, metadata)
        if problems:
            raise self._invalid(resource, metadata.get("name"), problems)
        if self.storage.get(resource, (namespace, metadata["name"])) is not None:
            raise api.already_exists(resource.plural, resource.group, metadata["name"])
        problems = [] if unvalidated else strategy.prepare_create(document)
        if problems:
            raise self._invalid(resource, metadata["name"], problems)
        return self.storage.write(resource, document)

    def replace_stored(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        document: object,
        *,
        status_only: bool = False,
    ) -> Stored:
        old = self.read(resource, namespace, name)
        document = self._checked_document(resource, document)
        metadata = document["metadata"]
        if metadata.get("name", name) != name:
            raise api.bad_request(
                f"the name of the object ({metadata['name']}) does not match the name on the URL"
                f" ({name})"
            )
        metadata["name"] = name
        self._place(resource, namespace, metadata)
        given_version = metadata.get("resourceVersion")
        if given_version and given_version != str(old.rv):
            raise api.conflict(resource.plural, resource.group, name, api.STALE)
        old_document = old.to_dict()
        old_metadata = old_document["metadata"]
        if metadata.get("uid") and metadata["uid"] != old_metadata.get("uid"):
            raise api.conflict(
                resource.plural,
                resource.group,
                name,
                f"Precondition failed: UID in precondition: {metadata['uid']}, UID in object meta:"
                f" {old_metadata.get('uid')}",
            )
        if status_only:
            document = {**old_document, "status": document.get("status")}
            if document["status"] is None:
                del document["status"]
        else:
            keep_system_fields(metadata, old_metadata)
            if resource.has_status:
                document.pop("status", None)
                if "status" in old_document:
                    document["status"] = old_document["status"]
            problems = self._problems(resource, metadata)
            if resource not in self._unvalidated:
                problems = problems or self._strategies[resource].prepare_update(
                    document, old_document
                )
            if problems:
                raise self._invalid(resource, name, problems)
        document["metadata"]["resourceVersion"] = str(old.rv)
        if document == old_document:
            return old
        if old_metadata.get("deletionTimestamp") and not document["metadata"].get("finalizers"):
            return self._remove(resource, old.key, document)
        return self.storage.write(resource, document)

    def patch_stored(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        body: bytes,
        *,
        status_only: bool = False,
    ) -> Stored:
        old = self.read(resource, namespace, name)
        patched = apply_patch(content_type, old.to_dict(), body, resource.kind)
        if not isinstance(patched, dict):
            raise ApiError(422, "Invalid", "the patched object must be a JSON object")
        return self.replace_stored(resource, namespace, name, patched, status_only=status_only)

    def delete_stored(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        *,
        preconditions: Document | None = None,
    ) -> tuple[Stored, bool]:
        """Delete, or start deleting (finalizers); returns the last version and whether it is
        gone."""
        old = self.read(resource, namespace, name)
        document = old.to_dict()
        metadata = document["metadata"]
        for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
            wanted = (preconditions or {}).get(field)
            if wanted and wanted != metadata.get(field):
                raise api.conflict(
                    resource.plural,
                    resource.group,
                    name,
                    f"Precondition failed: {label} in precondition: {wanted}, {label} in object"
                    f" meta: {metadata.get(field)}",
                )
        if resource is NAMESPACES:
            if name in PROTECTED_NAMESPACES:
                raise api.forbidden("namespaces", "", name, "this namespace may not be deleted")
            for contained in RESOURCES:
                if contained.namespaced:
                    for stored in self.storage.items(contained, name):
                        self._remove(contained, stored.key, stored.to_dict())
        if metadata.get("finalizers"):
            if not metadata.get("deletionTimestamp"):
                metadata["deletionTimestamp"] = timestamp(self._clock())
                metadata["deletionGracePeriodSeconds"] = 0
                return self.storage.write(resource, document), False
            return old, False
        return self._remove(resource, old.key, document), True

    def _remove(self, resource: ResourceType, key: tuple[str, str], document: Document) -> Stored:
        if resource not in self._unvalidated:
            self._strategies[resource].release(document)
        return self.storage.remove(resource, key)

    # -- the same rules on plain dicts (tests) ---------------------------------------------------

    @staticmethod
    def _copy(document: Any) -> Any:
        return orjson.loads(orjson.dumps(document))

    def _type_of(self, document: Document) -> ResourceType:
        resource = by_kind(str(document.get("apiVersion", "")), str(document.get("kind", "")))
        if resource is None:
            version, kind = document.get("apiVersion"), document.get("kind")
            raise ValueError(f"not served: apiVersion {version!r}, kind {kind!r}")
        return resource

    @staticmethod
    def _namespace_of(document: Document) -> str:
        return str((document.get("metadata") or {}).get("namespace") or "default")

    def create(self, document: Document) -> Document:
        """Create like a POST (defaults, allocation, validation) and return the stored object."""
        resource = self._type_of(document)
        return self.create_stored(resource, None, self._copy(document)).to_dict()

    def load(self, documents: Iterable[Document]) -> int:
        """Create many objects without HTTP (fixtures, benchmarks); returns how many."""
        count = 0
        for document in documents:
            resource = self._type_of(document)
            self.create_stored(resource, None, self._copy(document))
            count += 1
        return count

    def find(
        self, resource: str | ResourceType, name: str, *, namespace: str = "default"
    ) -> Document | None:
        resource = lookup(resource)
        stored = self.storage.get(resource, (namespace if resource.namespaced else "", name))
        return None if stored is None else stored.to_dict()

    def get(
        self, resource: str | ResourceType, name: str, *, namespace: str = "default"
    ) -> Document:
        """The object, or ApiError 404."""
        return self.read(lookup(resource), namespace, name).to_dict()

    def list(
        self,
        resource: str | ResourceType,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Document]:
        resource = lookup(resource)
        selected = filter_for(resource, namespace, label_selector, field_selector)
        return [s.to_dict() for s in self.storage.items(resource, namespace) if selected.matches(s)]

    def update(self, document: Document) -> Document:
        """PUT semantics: conflict on a stale resourceVersion, unconditional without one."""
        resource = self._type_of(document)
        name = str((document.get("metadata") or {}).get("name", ""))
        return self.replace_stored(
            resource, self._namespace_of(document), name, self._copy(document)
        ).to_dict()

    def update_status(self, document: Document) -> Document:
        """PUT to the status subresource: only `status` changes."""
        resource = self._type_of(document)
        name = str((document.get("metadata") or {}).get("name", ""))
        return self.replace_stored(
            resource, self._namespace_of(document), name, self._copy(document), status_only=True
        ).to_dict()

    def patch(
        self,
        resource: str | ResourceType,
        name: str,
        patch: Any,
        *,
        namespace: str = "default",
        patch_type: PatchKind = "merge",
        status: bool = False,
    ) -> Document:
        return self.patch_stored(
            lookup(resource),
            namespace,
            name,
            _PATCH_MEDIA[patch_type],
            orjson.dumps(patch),
            status_only=status,
        ).to_dict()

    def delete(
        self, resource: str | ResourceType, name: str, *, namespace: str = "default"
    ) -> Document:
        """Delete (or mark for deletion when finalizers remain); returns the last version."""
        stored, _ = self.delete_stored(lookup(resource), namespace, name)
        return stored.to_dict()
