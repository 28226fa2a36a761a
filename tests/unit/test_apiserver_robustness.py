"""Whatever a client sends, the emulator answers with a Status, never with a crash.

Random JSON shaped like the objects the emulator serves (right keys, wrong types and values)
goes through the same store rules the HTTP handlers call; anything but an ApiError in the
4xx range is a bug in the emulator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipvsd.testing.apiserver import ApiError, ApiServer
from ipvsd.testing.apiserver.patch import JSON_PATCH, MERGE, STRATEGIC
from ipvsd.testing.apiserver.resources import ENDPOINT_SLICES, SERVICES

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=70000),
    st.sampled_from(
        [
            "",
            "None",
            "TCP",
            "IPv4",
            "IPv6",
            "10.96.0.10",
            "fd00:10:96::5",
            "x",
            "LoadBalancer",
            "NodePort",
            "Local",
            "PreferDualStack",
            "RequireDualStack",
            "ExternalName",
        ]
    ),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "port",
                    "name",
                    "protocol",
                    "nodePort",
                    "targetPort",
                    "addresses",
                    "ready",
                    "a",
                    "$patch",
                ]
            ),
            inner,
            max_size=3,
        )
    ),
    max_leaves=8,
)
SPEC_KEYS = [
    "type",
    "clusterIP",
    "clusterIPs",
    "ipFamilies",
    "ipFamilyPolicy",
    "ports",
    "selector",
    "externalName",
    "externalTrafficPolicy",
    "internalTrafficPolicy",
    "healthCheckNodePort",
    "sessionAffinity",
    "sessionAffinityConfig",
    "externalIPs",
    "loadBalancerSourceRanges",
    "trafficDistribution",
    "allocateLoadBalancerNodePorts",
]
SLICE_KEYS = ["addressType", "endpoints", "ports"]


NAMES = st.sampled_from(["web", "web", "web", "Web", "", "a" * 70])
METADATA = st.one_of(
    st.just({"name": "web"}),
    st.fixed_dictionaries(
        {"name": NAMES},
        optional=dict.fromkeys(("labels", "annotations", "finalizers", "namespace", "uid"), VALUES),
    ),
)


def documents(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"metadata": METADATA, **dict.fromkeys(keys[:1], VALUES)},
        optional=dict.fromkeys(keys[1:], VALUES),
    )


def services() -> st.SearchStrategy[dict[str, Any]]:
    spec = st.dictionaries(st.sampled_from(SPEC_KEYS), VALUES, min_size=1, max_size=5)
    return st.fixed_dictionaries({"metadata": METADATA, "spec": spec})


def answered(action: Callable[[], object]) -> bool:
    """True when `action` succeeds or fails as the client's fault (a full range is a 500
    upstream too); an emulator bug raises something else, which fails the test."""
    try:
        action()
    except ApiError as error:
        return 400 <= error.code < 500 or (error.code == 500 and "range" in error.message)
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=services(), patch=VALUES, kind=st.sampled_from([MERGE, STRATEGIC, JSON_PATCH]))
def test_any_service_document_or_patch_is_answered(
    document: dict[str, Any], patch: Any, kind: str
) -> None:
    store = ApiServer(service_cidr_v6="fd00:10:96::/112").store
    assert answered(lambda: store.create_stored(SERVICES, "default", document))
    good = store.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "target"},
            "spec": {"ports": [{"port": 80}]},
        }
    )
    body = orjson.dumps(patch)
    assert answered(lambda: store.patch_stored(SERVICES, "default", "target", kind, body))
    replacement = {**good, "spec": patch}
    assert answered(lambda: store.replace_stored(SERVICES, "default", "target", replacement))


@settings(max_examples=200, deadline=None)
@given(document=documents(SLICE_KEYS))
def test_any_endpoint_slice_document_is_answered(document: dict[str, Any]) -> None:
    store = ApiServer(hint_controller=True).store
    assert answered(lambda: store.create_stored(ENDPOINT_SLICES, "default", document))
