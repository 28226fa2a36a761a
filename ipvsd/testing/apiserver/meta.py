"""Object metadata rules shared by every kind: names, labels, annotations, system fields.

Clients may not set system fields (uid, creationTimestamp, deletionTimestamp, resourceVersion on
create); the server fills or keeps them. Validation here produces field errors that the store
turns into one 422 Invalid, as the API server does; field types were already checked when the
body was decoded (`schema.py`).
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from ipvsd.testing.apiserver.errors import FieldError
from ipvsd.testing.apiserver.selectors import label_key_problem, label_value_problem

NameRule = Literal["dns1123-label", "dns1035-label", "dns1123-subdomain"]
Clock = Callable[[], datetime]

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's: no vowels, no look-alikes
_ANNOTATIONS_LIMIT = 256 * 1024
SYSTEM_FIELDS = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds")


def utc_now() -> datetime:
    return datetime.now(UTC)


def timestamp(moment: datetime) -> str:
    """RFC 3339 with second precision and `Z`, the form Kubernetes writes."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def name_problem(rule: NameRule, name: str) -> str | None:
    """Why `name` breaks `rule`, worded as upstream, or None."""
    if rule == "dns1123-subdomain":
        if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
            return (
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters,"
                " '-' or '.', and must start and end with an alphanumeric character"
            )
        return None
    pattern = _DNS1123_LABEL if rule == "dns1123-label" else _DNS1035_LABEL
    if len(name) > 63 or not pattern.match(name):
        if rule == "dns1123-label":
            return (
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or"
                " '-', and must start and end with an alphanumeric character"
            )
        return (
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start"
            " with an alphabetic character, and end with an alphanumeric character"
        )
    return None


def generated_name(prefix: str) -> str:
    """`generateName` + 5 random characters, as the API server appends."""
    return prefix + "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))


def validate_labels(labels: dict[str, str] | None, path: str) -> list[FieldError]:
    errors = []
    for key, value in (labels or {}).items():
        problem = label_key_problem(key)
        if problem:
            errors.append(FieldError.invalid(path, key, problem))
        elif problem := label_value_problem(value):
            errors.append(FieldError.invalid(path, value, problem))
    return errors


def validate_annotations(annotations: dict[str, str] | None, path: str) -> list[FieldError]:
    errors = []
    for key in annotations or {}:
        problem = label_key_problem(key.lower())
        if problem:
            errors.append(FieldError.invalid(path, key, problem))
    if sum(len(k) + len(v) for k, v in (annotations or {}).items()) > _ANNOTATIONS_LIMIT:
        errors.append(FieldError("FieldValueTooMany", path, "must have at most 262144 bytes"))
    return errors


def validate_metadata(metadata: dict[str, Any], rule: NameRule) -> list[FieldError]:
    errors: list[FieldError] = []
    name = metadata.get("name")
    if not name:
        errors.append(FieldError.required("metadata.name", "name or generateName is required"))
    elif problem := name_problem(rule, name):
        errors.append(FieldError.invalid("metadata.name", name, problem))
    errors += validate_labels(metadata.get("labels"), "metadata.labels")
    errors += validate_annotations(metadata.get("annotations"), "metadata.annotations")
    return errors


def stamp_new(metadata: dict[str, Any], clock: Clock) -> None:
    """Fill the fields the server owns on create; drop what clients may not set."""
    for key in (*SYSTEM_FIELDS, "resourceVersion", "selfLink", "managedFields", "generation"):
        metadata.pop(key, None)
    metadata["uid"] = str(uuid.uuid4())
    metadata["creationTimestamp"] = timestamp(clock())


def keep_system_fields(metadata: dict[str, Any], old: dict[str, Any]) -> None:
    """On update the server's fields stay as they were, whatever the client sent."""
    for key in (*SYSTEM_FIELDS, "selfLink", "managedFields"):
        metadata.pop(key, None)
        if key in old:
            metadata[key] = old[key]
