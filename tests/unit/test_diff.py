"""The diff between desired and observed IPVS tables: ownership, in-place edits, draining."""

from __future__ import annotations

from ipvsd.model.ipvs import (
    AddRealServer,
    AddService,
    DeleteRealServer,
    DeleteService,
    ObservedRealServer,
    ObservedVirtualServer,
    RealServer,
    ServiceFlag,
    ServiceKey,
    UpdateRealServer,
    UpdateService,
    VirtualServer,
    parse_address,
)
from ipvsd.plan.diff import diff_tables

WEB = ServiceKey.tcp("10.96.0.10", 80)
DNS = ServiceKey.udp("10.96.0.53", 53)
FOREIGN = ServiceKey.tcp("192.0.2.1", 80)
A, B = RealServer.of("10.244.1.5", 8080), RealServer.of("10.244.2.7", 8080)


def owned(key: ServiceKey) -> bool:
    return key != FOREIGN


def seen(server: VirtualServer, *reals: ObservedRealServer) -> ObservedVirtualServer:
    return ObservedVirtualServer(server, reals)


def busy(real: RealServer, active: int = 1) -> ObservedRealServer:
    return ObservedRealServer(real, active_connections=active)


def idle(real: RealServer) -> ObservedRealServer:
    return ObservedRealServer(real)


def test_missing_service_is_added_before_its_real_servers() -> None:
    web = VirtualServer(WEB, "rr")
    assert diff_tables({WEB: (web, (A, B))}, [], owns=owned) == [
        AddService(web),
        AddRealServer(WEB, A),
        AddRealServer(WEB, B),
    ]


def test_equal_tables_need_nothing() -> None:
    web = VirtualServer(WEB, "rr")
    observed = [seen(VirtualServer(WEB, "rr", ServiceFlag.HASHED, netmask=32), idle(A))]
    assert diff_tables({WEB: (web, (A,))}, observed, owns=owned) == []


def test_changed_scheduler_and_affinity_are_updated_in_place() -> None:
    wanted = VirtualServer(WEB, "wrr", ServiceFlag.PERSISTENT, timeout=600)
    observed = [seen(VirtualServer(WEB, "rr"), idle(A))]
    assert diff_tables({WEB: (wanted, (A,))}, observed, owns=owned) == [UpdateService(wanted)]


def test_changed_weight_is_updated_in_place() -> None:
    heavier = RealServer.of("10.244.1.5", 8080, weight=5)
    observed = [seen(VirtualServer(WEB, "rr"), busy(A))]
    ops = diff_tables({WEB: (VirtualServer(WEB, "rr"), (heavier,))}, observed, owns=owned)
    assert ops == [UpdateRealServer(WEB, heavier)]


def test_unwanted_idle_real_server_is_deleted_at_once() -> None:
    observed = [seen(VirtualServer(WEB, "rr"), idle(A), idle(B))]
    ops = diff_tables({WEB: (VirtualServer(WEB, "rr"), (A,))}, observed, owns=owned)
    assert ops == [DeleteRealServer(WEB, B.address, B.port)]


def test_unwanted_tcp_real_server_with_connections_drains_at_weight_zero() -> None:
    observed = [seen(VirtualServer(WEB, "rr"), idle(A), busy(B))]
    ops = diff_tables({WEB: (VirtualServer(WEB, "rr"), (A,))}, observed, owns=owned)
    assert ops == [UpdateRealServer(WEB, RealServer.of("10.244.2.7", 8080, weight=0))]


def test_draining_real_server_is_left_alone_until_its_connections_end_or_time_is_up() -> None:
    draining = RealServer.of("10.244.2.7", 8080, weight=0)
    observed = [seen(VirtualServer(WEB, "rr"), idle(A), busy(draining))]
    desired = {WEB: (VirtualServer(WEB, "rr"), (A,))}
    assert diff_tables(desired, observed, owns=owned) == []
    expired = diff_tables(desired, observed, owns=owned, drain_expired=lambda k, e: True)
    assert expired == [DeleteRealServer(WEB, B.address, B.port)]


def test_draining_real_server_wanted_again_gets_its_weight_back_in_place() -> None:
    draining = RealServer.of("10.244.2.7", 8080, weight=0)
    observed = [seen(VirtualServer(WEB, "rr"), busy(draining))]
    ops = diff_tables({WEB: (VirtualServer(WEB, "rr"), (B,))}, observed, owns=owned)
    assert ops == [UpdateRealServer(WEB, B)]


def test_udp_real_server_is_deleted_even_with_connections() -> None:
    dns = VirtualServer(DNS, "rr")
    observed = [seen(dns, busy(A), busy(B))]
    assert diff_tables({DNS: (dns, (A,))}, observed, owns=owned) == [
        DeleteRealServer(DNS, B.address, B.port)
    ]


def test_only_owned_virtual_servers_are_deleted() -> None:
    observed = [seen(VirtualServer(WEB, "rr"), busy(A)), seen(VirtualServer(FOREIGN, "wlc"))]
    assert diff_tables({}, observed, owns=owned) == [DeleteService(WEB)]


def test_address_family_is_part_of_identity_for_real_servers() -> None:
    v6 = ServiceKey.tcp("fd00::10", 80)
    real = RealServer(parse_address("fd00:244::5"), 8080)
    observed = [seen(VirtualServer(v6, "rr"), idle(real))]
    assert diff_tables({v6: (VirtualServer(v6, "rr"), (real,))}, observed, owns=owned) == []
