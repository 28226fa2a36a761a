"""The emulator's three patch formats as pure functions (the HTTP path is a component test)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ipvsd.testing.apiserver.errors import ApiError
from ipvsd.testing.apiserver.patch import apply_patch, json_patch, merge_patch
from ipvsd.testing.apiserver.strategic import strategic_merge

SERVICE: dict[str, Any] = {
    "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}, "finalizers": ["a"]},
    "spec": {
        "ports": [
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
            {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443},
        ],
        "selector": {"app": "web"},
        "externalIPs": ["192.0.2.1", "192.0.2.2"],
    },
}


def test_merge_patch_merges_maps_replaces_lists_and_deletes_nulls() -> None:
    patched = merge_patch(
        SERVICE,
        {"metadata": {"labels": {"tier": None, "new": "x"}}, "spec": {"ports": [{"port": 81}]}},
    )
    assert patched["metadata"]["labels"] == {"app": "web", "new": "x"}
    assert patched["spec"]["ports"] == [{"port": 81}]
    assert patched["spec"]["selector"] == {"app": "web"}
    assert SERVICE["metadata"]["labels"]["tier"] == "front"  # the original is untouched


def test_merge_patch_of_the_seed_command() -> None:
    patched = merge_patch(SERVICE, {"spec": {"trafficDistribution": "PreferSameNode"}})
    assert patched["spec"]["trafficDistribution"] == "PreferSameNode"
    assert patched["spec"]["ports"] == SERVICE["spec"]["ports"]


def test_strategic_merge_merges_service_ports_by_port() -> None:
    patched = strategic_merge(
        SERVICE,
        {"spec": {"ports": [{"port": 443, "targetPort": 9443}, {"port": 8080, "name": "alt"}]}},
        "Service",
    )
    assert patched["spec"]["ports"] == [
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
        {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 9443},
        {"port": 8080, "name": "alt"},
    ]


def test_strategic_merge_replaces_lists_without_a_merge_key() -> None:
    patched = strategic_merge(SERVICE, {"spec": {"externalIPs": ["198.51.100.1"]}}, "Service")
    assert patched["spec"]["externalIPs"] == ["198.51.100.1"]
    slice_ = {"endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]}
    patched = strategic_merge(slice_, {"endpoints": [{"addresses": ["10.0.0.3"]}]}, "EndpointSlice")
    assert patched["endpoints"] == [{"addresses": ["10.0.0.3"]}]  # atomic, as upstream


def test_strategic_merge_directives() -> None:
    deleted = strategic_merge(
        SERVICE, {"spec": {"ports": [{"$patch": "delete", "port": 80}]}}, "Service"
    )
    assert [p["port"] for p in deleted["spec"]["ports"]] == [443]
    replaced = strategic_merge(
        SERVICE, {"spec": {"selector": {"$patch": "replace", "role": "x"}}}, "Service"
    )
    assert replaced["spec"]["selector"] == {"role": "x"}
    list_replaced = strategic_merge(
        SERVICE, {"spec": {"ports": [{"$patch": "replace"}, {"port": 1}]}}, "Service"
    )
    assert list_replaced["spec"]["ports"] == [{"port": 1}]
    ordered = strategic_merge(
        SERVICE, {"spec": {"$setElementOrder/ports": [{"port": 443}, {"port": 80}]}}, "Service"
    )
    assert [p["port"] for p in ordered["spec"]["ports"]] == [443, 80]
    retained = strategic_merge(
        SERVICE, {"spec": {"$retainKeys": ["ports"], "ports": []}}, "Service"
    )
    assert set(retained["spec"]) == {"ports"}
    finalizers = strategic_merge(SERVICE, {"metadata": {"finalizers": ["b", "a"]}}, "Service")
    assert finalizers["metadata"]["finalizers"] == ["a", "b"]  # merged as a set
    removed = strategic_merge(
        SERVICE, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}, "Service"
    )
    assert removed["metadata"]["finalizers"] == []
    nulled = strategic_merge(SERVICE, {"spec": {"selector": None}}, "Service")
    assert "selector" not in nulled["spec"]


def test_strategic_merge_refuses_elements_without_the_merge_key() -> None:
    with pytest.raises(ApiError) as error:
        strategic_merge(SERVICE, {"spec": {"ports": [{"name": "http"}]}}, "Service")
    assert error.value.code == 400


def test_kubectl_apply_style_patch() -> None:
    patch = {
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {
            "$setElementOrder/ports": [{"port": 80}],
            "ports": [{"port": 80, "targetPort": 9999}, {"$patch": "delete", "port": 443}],
        },
    }
    patched = strategic_merge(SERVICE, patch, "Service")
    assert patched["spec"]["ports"] == [
        {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 9999}
    ]


def test_json_patch_operations() -> None:
    operations = [
        {"op": "add", "path": "/metadata/labels/new", "value": "x"},
        {"op": "remove", "path": "/metadata/labels/tier"},
        {"op": "replace", "path": "/spec/ports/0/targetPort", "value": 9090},
        {"op": "add", "path": "/spec/ports/-", "value": {"port": 8000}},
        {"op": "copy", "from": "/spec/selector", "path": "/spec/copied"},
        {"op": "move", "from": "/spec/copied", "path": "/metadata/annotations"},
        {"op": "test", "path": "/metadata/annotations/app", "value": "web"},
        {"op": "add", "path": "/metadata/labels/a~1b", "value": "slash"},
    ]
    patched = json_patch(SERVICE, operations)
    assert patched["metadata"]["labels"] == {"app": "web", "new": "x", "a/b": "slash"}
    assert patched["spec"]["ports"][0]["targetPort"] == 9090
    assert patched["spec"]["ports"][-1] == {"port": 8000}
    assert "copied" not in patched["spec"]
    assert patched["metadata"]["annotations"] == {"app": "web"}
    assert SERVICE["spec"]["ports"][0]["targetPort"] == 8080


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "test", "path": "/spec/selector/app", "value": "db"},
        {"op": "remove", "path": "/spec/nothing"},
        {"op": "replace", "path": "/spec/nothing", "value": 1},
        {"op": "add", "path": "/spec/ports/9", "value": {}},
        {"op": "add", "path": "no-slash", "value": 1},
    ],
)
def test_json_patch_failures_are_422(operation: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as error:
        json_patch(SERVICE, [operation])
    assert error.value.code == 422


def test_dispatch_by_content_type() -> None:
    body = orjson.dumps({"metadata": {"labels": None}})
    assert (
        "labels"
        not in apply_patch("application/merge-patch+json", SERVICE, body, "Service")["metadata"]
    )
    assert (
        "labels"
        not in apply_patch(
            "application/strategic-merge-patch+json; charset=utf-8", SERVICE, body, "Service"
        )["metadata"]
    )
    with pytest.raises(ApiError) as error:
        apply_patch("application/apply-patch+yaml", SERVICE, b"{}", "Service")
    assert error.value.code == 415
    with pytest.raises(ApiError) as error:
        apply_patch("application/merge-patch+json", SERVICE, b"{oops", "Service")
    assert error.value.code == 400
