"""Label and field selectors: parsed once per request, matched against stored objects.

The grammar is apimachinery's: label requirements `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
`k notin (a,b)`, `k` (exists) and `!k` (does not exist), joined by commas (AND); field
requirements `f=v`, `f==v`, `f!=v` over the fields each resource supports. A selector that
does not parse, or names an unsupported field, is the client's mistake: 400 BadRequest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ipvsd.testing.apiserver.errors import ApiError, bad_request
from ipvsd.testing.apiserver.resources import ResourceType

Operator = Literal["=", "!=", "in", "notin", "exists", "!"]

_TOKEN = re.compile(r"\s*(!=|==|=|!|\(|\)|,|[^\s!=(),]+)")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_NAME_PART = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class Selectable(Protocol):
    """What a selector reads from a stored object."""

    @property
    def name(self) -> str: ...

    @property
    def namespace(self) -> str: ...

    @property
    def labels(self) -> Mapping[str, str]: ...

    def to_dict(self) -> dict[str, Any]: ...


def label_key_problem(key: str) -> str | None:
    """Why `key` is not a valid label key (a qualified name), or None when it is."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain"
    if not name or len(name) > 63 or not _NAME_PART.match(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start"
            " and end with an alphanumeric character, at most 63 characters"
        )
    return None


def label_value_problem(value: str) -> str | None:
    """Why `value` is not a valid label value, or None when it is."""
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        return (
            "a valid label must be an empty string or consist of alphanumeric characters, '-',"
            " '_' or '.', and must start and end with an alphanumeric character"
        )
    return None


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        match self.operator:
            case "exists":
                return present
            case "!":
                return not present
            case "=" | "in":
                return present and labels[self.key] in self.values
            case "!=" | "notin":
                return not present or labels[self.key] not in self.values
        return False  # pragma: no cover - the match above is exhaustive


@dataclass(frozen=True, slots=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(requirement.matches(labels) for requirement in self.requirements)

    @property
    def is_empty(self) -> bool:
        return not self.requirements


def _tokens(text: str) -> list[str]:
    tokens = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        found = _TOKEN.match(text, position)
        if found is None:  # pragma: no cover - the pattern matches any non-space character
            raise bad_request(f"unable to parse requirement: unexpected {text[position:]!r}")
        tokens.append(found.group(1))
        position = found.end()
    return tokens


def _checked(requirement: Requirement) -> Requirement:
    problem = label_key_problem(requirement.key)
    if problem is None:
        problem = next(filter(None, map(label_value_problem, sorted(requirement.values))), None)
    if problem is not None:
        raise bad_request(f"unable to parse requirement: {requirement.key}: {problem}")
    return requirement


class _LabelParser:
    """Recursive descent over the tokens of one `labelSelector`."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.position = 0

    def fail(self, problem: str) -> ApiError:
        return bad_request(f"unable to parse requirement: {problem} in {self.text!r}")

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise self.fail("unexpected end")
        self.position += 1
        return token

    def values(self) -> frozenset[str]:
        if self.take() != "(":
            raise self.fail("expected '('")
        values: list[str] = []
        while True:
            token = self.take()
            if token == ")" and not values:
                return frozenset()
            if token in {",", ")"}:
                values.append("")
            else:
                values.append(token)
                token = self.take()
            if token == ")":
                return frozenset(values)
            if token != ",":
                raise self.fail("expected ',' or ')'")

    def requirement(self) -> Requirement:
        key = self.take()
        if key == "!":
            return Requirement(self.take(), "!")
        if key in _PUNCTUATION:
            raise self.fail(f"found '{key}', expected: identifier")
        operator = self.peek()
        if operator in (None, ","):
            return Requirement(key, "exists")
        self.take()
        if operator in {"=", "==", "!="}:
            value = self.peek()
            if value in (None, ","):
                value = ""
            else:
                self.take()
            return Requirement(key, "!=" if operator == "!=" else "=", frozenset({value or ""}))
        if operator in {"in", "notin"}:
            return Requirement(key, "in" if operator == "in" else "notin", self.values())
        raise self.fail(f"found '{operator}', expected: '=', '!=', '==', 'in', 'notin'")

    def selector(self) -> LabelSelector:
        requirements = []
        while self.peek() is not None:
            requirements.append(_checked(self.requirement()))
            if self.peek() is not None and self.take() != ",":
                raise self.fail("expected ','")
        return LabelSelector(tuple(requirements))


_PUNCTUATION = frozenset({"=", "==", "!=", "(", ")", ","})


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse `labelSelector`; an absent or empty selector matches everything."""
    if not text:
        return LabelSelector()
    return _LabelParser(text).selector()


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    field: str
    value: str
    equal: bool


def field_value(document: Mapping[str, Any], path: str) -> str:
    """A field selector's view of a value: missing is "", booleans are `true`/`false`."""
    current: Any = document
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return ""
        current = current.get(part)
    if path == "source" and isinstance(current, Mapping):
        return str(current.get("component", ""))
    if isinstance(current, bool):
        return "true" if current else "false"
    return "" if current is None else str(current)


@dataclass(frozen=True, slots=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.requirements

    @property
    def needs_document(self) -> bool:
        """True when a requirement reads beyond name and namespace (parse the object)."""
        return any(
            r.field not in {"metadata.name", "metadata.namespace"} for r in self.requirements
        )

    def matches(self, item: Selectable) -> bool:
        document = item.to_dict() if self.needs_document else None
        for requirement in self.requirements:
            if requirement.field == "metadata.name":
                actual = item.name
            elif requirement.field == "metadata.namespace":
                actual = item.namespace
            else:
                assert document is not None
                actual = field_value(document, requirement.field)
            if (actual == requirement.value) != requirement.equal:
                return False
        return True


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse_field_selector(text: str | None, resource: ResourceType) -> FieldSelector:
    """Parse `fieldSelector` for `resource`; unsupported fields are a 400 as upstream."""
    if not text:
        return FieldSelector()
    requirements = []
    for raw_term in _split_unescaped(text, ","):
        term = raw_term.strip()
        if not term:
            continue
        operator = next((op for op in ("!=", "==", "=") if op in term), None)
        if operator is None:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        field, _, value = term.partition(operator)
        field = field.strip()
        if field not in resource.field_labels:
            raise bad_request(f"field label not supported: {field}")
        requirements.append(FieldRequirement(field, value.strip(), operator != "!="))
    return FieldSelector(tuple(requirements))


@dataclass(frozen=True, slots=True)
class Filter:
    """Namespace, label and field restrictions of one list or watch."""

    namespace: str | None = None
    labels: LabelSelector = LabelSelector()
    fields: FieldSelector = FieldSelector()

    @property
    def selects_all(self) -> bool:
        return self.labels.is_empty and self.fields.is_empty

    def matches(self, item: Selectable) -> bool:
        if self.namespace is not None and item.namespace != self.namespace:
            return False
        return self.labels.matches(item.labels) and self.fields.matches(item)


def filter_for(
    resource: ResourceType, namespace: str | None, label_text: str | None, field_text: str | None
) -> Filter:
    """The filter a list or watch request asks for; 400 BadRequest when a selector is wrong."""
    return Filter(
        namespace, parse_label_selector(label_text), parse_field_selector(field_text, resource)
    )
