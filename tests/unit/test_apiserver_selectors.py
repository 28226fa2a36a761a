"""Label and field selector parsing and matching (apimachinery's grammar)."""

from __future__ import annotations

import pytest

from ipvsd.testing.apiserver.errors import ApiError
from ipvsd.testing.apiserver.resources import EVENTS, PODS, SERVICES
from ipvsd.testing.apiserver.selectors import parse_field_selector, parse_label_selector
from ipvsd.testing.apiserver.storage import Stored

LABELS = {"app": "web", "tier": "front", "service.kubernetes.io/headless": ""}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app=db", False),
        ("app!=db", True),
        ("missing!=x", True),
        ("app in (db,web)", True),
        ("app in ( db , web )", True),
        ("app notin (web)", False),
        ("missing notin (web)", True),
        ("tier", True),
        ("missing", False),
        ("!missing", True),
        ("!tier", False),
        ("service.kubernetes.io/headless", True),
        ("!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless", False),
        ("!service.kubernetes.io/service-proxy-name", True),
        ("service.kubernetes.io/headless=", True),
        ("app=web,tier=back", False),
        ("app in (web),tier notin (back),!missing", True),
    ],
)
def test_label_selector(selector: str, matches: bool) -> None:
    assert parse_label_selector(selector).matches(LABELS) is matches


@pytest.mark.parametrize(
    "selector",
    [
        "app in web",
        "=web",
        "app=(",
        "app in (a",
        "app=a b",
        "Bad Key=x",
        "app=a,,",
        "a=" + "x" * 64,
    ],
)
def test_malformed_label_selectors_are_400(selector: str) -> None:
    with pytest.raises(ApiError) as error:
        parse_label_selector(selector)
    assert error.value.code == 400


def stored(resource: object, document: dict[str, object]) -> Stored:
    return Stored.of(resource, document, 1)  # type: ignore[arg-type]


def test_field_selectors_on_names_and_fields() -> None:
    pod = stored(
        PODS,
        {
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"nodeName": "n1", "hostNetwork": True},
            "status": {"phase": "Running"},
        },
    )
    assert parse_field_selector("metadata.name=web", PODS).matches(pod)
    assert parse_field_selector("metadata.namespace==default,spec.nodeName=n1", PODS).matches(pod)
    assert not parse_field_selector("spec.nodeName!=n1", PODS).matches(pod)
    assert parse_field_selector("spec.hostNetwork=true,status.phase=Running", PODS).matches(pod)
    event = stored(
        EVENTS,
        {
            "metadata": {"name": "e", "namespace": "default"},
            "involvedObject": {"name": "svc"},
            "source": {"component": "ipvsd"},
        },
    )
    assert parse_field_selector("involvedObject.name=svc,source=ipvsd", EVENTS).matches(event)
    with pytest.raises(ApiError) as error:
        parse_field_selector("spec.nodeName=n1", SERVICES)
    assert error.value.message == "field label not supported: spec.nodeName"
    with pytest.raises(ApiError):
        parse_field_selector("metadata.name", SERVICES)
