"""API errors as the real API server reports them: an HTTP code and a `Status` body.

Clients branch on `code` and `reason` (client-go's `IsNotFound`, `IsConflict`, `IsGone`...) and
print `message`, so all three follow the API server's wording. `details.kind` is the resource
(`services`) for NotFound, AlreadyExists and Conflict but the Kind (`Service`) for Invalid,
exactly as upstream's `errors.New*` helpers fill it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

CauseReason = Literal[
    "FieldValueRequired",
    "FieldValueInvalid",
    "FieldValueNotSupported",
    "FieldValueDuplicate",
    "FieldValueForbidden",
    "FieldValueTooMany",
]

_CAUSE_PREFIX: dict[CauseReason, str] = {
    "FieldValueRequired": "Required value",
    "FieldValueInvalid": "Invalid value",
    "FieldValueNotSupported": "Unsupported value",
    "FieldValueDuplicate": "Duplicate value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueTooMany": "Too many",
}


def render_value(value: object) -> str:
    """A field value the way Go's field errors print it: strings quoted, numbers bare."""
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value).decode()


@dataclass(frozen=True, slots=True)
class FieldError:
    """One validation failure at a field path such as `spec.ports[0].port`."""

    reason: CauseReason
    field: str
    detail: str = ""
    value: object = None
    show_value: bool = True

    @staticmethod
    def required(path: str, detail: str = "") -> FieldError:
        return FieldError("FieldValueRequired", path, detail, show_value=False)

    @staticmethod
    def invalid(path: str, value: object, detail: str) -> FieldError:
        return FieldError("FieldValueInvalid", path, detail, value)

    @staticmethod
    def not_supported(path: str, value: object, supported: list[str]) -> FieldError:
        quoted = ", ".join(render_value(choice) for choice in supported)
        return FieldError("FieldValueNotSupported", path, f"supported values: {quoted}", value)

    @staticmethod
    def duplicate(path: str, value: object) -> FieldError:
        return FieldError("FieldValueDuplicate", path, "", value)

    @staticmethod
    def forbidden(path: str, detail: str) -> FieldError:
        return FieldError("FieldValueForbidden", path, detail, show_value=False)

    @property
    def message(self) -> str:
        """The cause's message without the field, e.g. `Invalid value: 0: must be ...`."""
        text = _CAUSE_PREFIX[self.reason]
        if self.show_value:
            text += f": {render_value(self.value)}"
        if self.detail:
            text += f": {self.detail}"
        return text

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass
class ApiError(Exception):
    """An error answered as an HTTP status with a `Status` body; raised anywhere below a handler."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def status(self) -> dict[str, Any]:
        """The `Status` object for a response body or a watch ERROR event."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }
        return body

    def body(self) -> bytes:
        return orjson.dumps(self.status())


def _details(name: str, kind: str, group: str) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    details["kind"] = kind
    return details


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, group: str, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{_qualified(resource, group)} "{name}" not found',
        _details(name, resource, group),
    )


def already_exists(resource: str, group: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{_qualified(resource, group)} "{name}" already exists',
        _details(name, resource, group),
    )


def conflict(resource: str, group: str, name: str, why: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {why}',
        _details(name, resource, group),
    )


STALE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def invalid(kind: str, group: str, name: str, errors: list[FieldError]) -> ApiError:
    """422 Invalid listing every field error, worded like upstream's `NewInvalid`."""
    if len(errors) == 1:
        summary = str(errors[0])
    else:
        summary = "[" + ", ".join(str(error) for error in errors) + "]"
    details = _details(name, kind, group)
    details["causes"] = [
        {"reason": error.reason, "message": error.message, "field": error.field} for error in errors
    ]
    qualified_kind = f"{kind}.{group}" if group else kind
    return ApiError(422, "Invalid", f'{qualified_kind} "{name}" is invalid: {summary}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def too_large_resource_version(requested: int, current: int) -> ApiError:
    """What a read at a resource version the server has not reached yet gets (504)."""
    return ApiError(
        504,
        "Timeout",
        f"Too large resource version: {requested}, current: {current}",
        {
            "causes": [
                {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
            ],
            "retryAfterSeconds": 1,
        },
    )


def method_not_allowed() -> ApiError:
    return ApiError(
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
    )


def path_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format ({content_type}) - accepted media"
        " types include: application/json, application/yaml",
    )


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(
        429,
        "TooManyRequests",
        "Too many requests, please try again later.",
        {"retryAfterSeconds": retry_after},
        {"Retry-After": str(retry_after)},
    )


def internal_error(why: str) -> ApiError:
    return ApiError(
        500,
        "InternalError",
        f"Internal error occurred: {why}",
        {"causes": [{"message": why}]},
    )


def forbidden(resource: str, group: str, name: str, why: str) -> ApiError:
    return ApiError(
        403,
        "Forbidden",
        f'{_qualified(resource, group)} "{name}" is forbidden: {why}',
        _details(name, resource, group),
    )
