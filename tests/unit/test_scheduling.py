"""Per-Service schedulers from annotations: ipvsd's own, kube-router's, and invalid values."""

from __future__ import annotations

import pytest

from ipvsd.model.ipvs import NO_FLAGS, ServiceFlag, parse_address
from ipvsd.model.service import Service, ServiceRef, ServiceType
from ipvsd.plan.scheduling import choose_scheduler

PORT, FALLBACK = ServiceFlag.SCHED2, ServiceFlag.SCHED1


OWN, OWN_FLAGS = "ipvsd.io/scheduler", "ipvsd.io/scheduler-flags"
KR, KR_FLAGS = "kube-router.io/service.scheduler", "kube-router.io/service.schedflags"


def choose(annotations: dict[str, str]) -> tuple[str, ServiceFlag, int]:
    service = Service(
        ServiceRef("ns", "s"), "u", ServiceType.CLUSTER_IP, (parse_address("10.0.0.1"),), (),
        annotations=tuple(sorted(annotations.items())),
    )  # fmt: skip
    got = choose_scheduler(service, default="rr")
    return got.name, got.flags, len(got.warnings)


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({}, ("rr", NO_FLAGS, 0)),
        ({OWN: "wlc"}, ("wlc", NO_FLAGS, 0)),
        ({OWN: "mh"}, ("mh", PORT, 0)),
        ({OWN: "mh", OWN_FLAGS: "mh-fallback"}, ("mh", FALLBACK, 0)),
        ({OWN: "mh", OWN_FLAGS: "mh-fallback, mh-port"}, ("mh", FALLBACK | PORT, 0)),
        ({OWN: "sh", OWN_FLAGS: "sh-port"}, ("sh", PORT, 0)),
        ({OWN: "rr", OWN_FLAGS: "mh-port"}, ("rr", NO_FLAGS, 1)),
        ({OWN: "maglev"}, ("rr", NO_FLAGS, 1)),
        ({KR: "sh"}, ("sh", NO_FLAGS, 0)),
        ({KR: "mh", KR_FLAGS: "flag-1,flag-2"}, ("mh", FALLBACK | PORT, 0)),
        ({KR: "wrr"}, ("rr", NO_FLAGS, 1)),
        ({OWN: "lc", KR: "sh"}, ("lc", NO_FLAGS, 0)),
    ],
    ids=[
        "default-from-flag", "own-annotation", "mh-gets-mh-port-like-kube-proxy",
        "explicit-flags-replace-the-default", "flags-list-with-spaces", "sh-port",
        "flag-of-another-scheduler-warns", "unknown-scheduler-warns-and-uses-default",
        "kube-router-scheduler", "kube-router-flags", "kube-router-only-accepts-its-own-names",
        "own-annotation-wins-over-kube-router",
    ],
)  # fmt: skip
def test_choose_scheduler(
    annotations: dict[str, str], expected: tuple[str, ServiceFlag, int]
) -> None:
    assert choose(annotations) == expected


def test_a_scheduler_the_node_lacks_is_refused_with_a_message_naming_it() -> None:
    service = Service(
        ServiceRef("ns", "s"), "u", ServiceType.CLUSTER_IP, (parse_address("10.0.0.1"),), (),
        annotations=(("ipvsd.io/scheduler", "mh"),),
    )  # fmt: skip
    got = choose_scheduler(service, default="rr", available=frozenset({"rr", "wrr"}))
    assert got.name == "rr"
    assert got.warnings == (
        "annotation ipvsd.io/scheduler='mh': unknown scheduler (available: rr wrr); using 'rr'",
    )


@pytest.mark.parametrize(
    ("annotations", "default", "expected"),
    [
        ({OWN: "mh"}, "rr", "rr"),  # the annotation's scheduler is missing: rr, flags dropped
        ({KR: "mh", KR_FLAGS: "flag-1"}, "rr", "rr"),
        ({}, "mh", "rr"),  # the node's default is missing
        ({OWN: "wlc"}, "mh", "wlc"),  # another scheduler is unaffected
    ],
)
def test_a_scheduler_missing_on_the_node_falls_back_to_rr_with_a_note(
    annotations: dict[str, str], default: str, expected: str
) -> None:
    service = Service(
        ServiceRef("ns", "s"), "u", ServiceType.CLUSTER_IP, (parse_address("10.0.0.1"),), (),
        annotations=tuple(sorted(annotations.items())),
    )  # fmt: skip
    got = choose_scheduler(service, default=default, missing=frozenset({"mh"}))
    assert (got.name, got.flags) == (expected, NO_FLAGS)
    assert got.warnings == ()
    if expected == "rr":
        assert got.unavailable == (
            "scheduler 'mh' is not available on this node (the kernel has no ip_vs_mh module it "
            "can load); using 'rr' until it is",
        )
    else:
        assert got.unavailable == ()
