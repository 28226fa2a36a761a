"""What the fake offers beyond the shared contract: its settings, counters and call log."""

from __future__ import annotations

import errno
from ipaddress import IPv4Address

import pytest

from ipvsd.dataplane.errors import InvalidArgument, SchedulerNotFound
from ipvsd.dataplane.ipvs_fake import FakeIpvs
from ipvsd.model.ipvs import (
    AddRealServer,
    AddService,
    DeleteRealServer,
    DeleteService,
    ObservedRealServer,
    RealServer,
    ServiceFlag,
    ServiceKey,
    Stats,
    Timeouts,
    UpdateRealServer,
    VirtualServer,
)

WEB = ServiceKey.tcp("10.0.0.1", 80)
ONE = RealServer.of("10.1.0.1", 8080)
TWO = RealServer.of("10.1.0.2", 8080)


async def web_with_two_backends() -> FakeIpvs:
    fake = FakeIpvs()
    result = await fake.apply(
        [AddService(VirtualServer(WEB, "rr")), AddRealServer(WEB, ONE), AddRealServer(WEB, TWO)]
    )
    result.raise_first()
    return fake


async def test_timeouts_start_at_the_kernel_defaults() -> None:
    # `ipvsadm -L --timeout` on a fresh Debian 6.1 kernel: "900 120 300".
    assert await FakeIpvs().get_timeouts() == Timeouts(tcp=900, tcp_fin=120, udp=300)


async def test_only_the_configured_schedulers_and_none_are_available() -> None:
    fake = FakeIpvs(schedulers=["rr"], persistence_engines=[])

    result = await fake.apply(
        [
            AddService(VirtualServer(WEB, "wrr")),
            AddService(VirtualServer(WEB, "rr", persistence_engine="sip")),
            AddService(VirtualServer(ServiceKey.tcp("10.0.0.2", 80), "none")),
            AddService(VirtualServer(WEB, "rr")),
        ]
    )

    errors = [None if e is None else type(e) for e in result.errors]
    assert errors == [SchedulerNotFound, SchedulerNotFound, None, None]


async def test_persistence_engine_names_longer_than_the_netlink_policy_are_invalid() -> None:
    fake = FakeIpvs(persistence_engines=["a" * 16])

    result = await fake.apply(
        [
            AddService(VirtualServer(WEB, "rr", persistence_engine="a" * 17)),
            AddService(VirtualServer(WEB, "rr", persistence_engine="a" * 16)),
        ]
    )

    assert isinstance(result.errors[0], InvalidArgument)
    assert result.errors[0].errno == errno.EINVAL
    assert result.errors[1] is None


async def test_timeouts_wrap_and_limit_with_the_configured_tick_rate() -> None:
    fake = FakeIpvs(hz=1000)
    await fake.apply([AddService(VirtualServer(WEB, "rr", ServiceFlag.PERSISTENT, 5_000_000))])

    (service,) = await fake.dump()

    assert service.server.timeout == (5_000_000_000 % 2**32) // 1000
    await fake.set_timeouts(Timeouts(tcp=2_147_483))
    with pytest.raises(InvalidArgument):
        await fake.set_timeouts(Timeouts(tcp=2_147_484))


async def test_connections_and_traffic_show_in_the_dump() -> None:
    fake = await web_with_two_backends()

    fake.set_connections(WEB, "10.1.0.1", 8080, active=3, inactive=2, persistent=1)
    fake.add_traffic(WEB, "10.1.0.1", 8080, connections=5, packets_in=10, bytes_in=1000)
    fake.add_traffic(WEB, "10.1.0.1", 8080, connections=1, packets_out=7, bytes_out=70)
    fake.add_traffic(WEB, connections=2)
    fake.set_rates(WEB, cps=4, bps_out=9)
    fake.set_rates(WEB, IPv4Address("10.1.0.2"), 8080, pps_in=6)

    (service,) = await fake.dump()
    one, two = service.real_servers
    assert one == ObservedRealServer(ONE, 3, 2, 1, Stats(6, 10, 7, 1000, 70))
    assert two == ObservedRealServer(TWO, stats=Stats(pps_in=6))
    assert service.stats == Stats(8, 10, 7, 1000, 70, cps=4, bps_out=9)


async def test_connections_survive_an_update_but_not_a_delete() -> None:
    fake = await web_with_two_backends()
    fake.set_connections(WEB, "10.1.0.1", 8080, active=3)

    await fake.apply([UpdateRealServer(WEB, RealServer.of("10.1.0.1", 8080, 0))])
    (service,) = await fake.dump()
    assert service.real_servers[0].active_connections == 3
    assert service.real_servers[0].server.weight == 0

    await fake.apply([DeleteRealServer(WEB, ONE.address, 8080), AddRealServer(WEB, ONE)])
    (service,) = await fake.dump()
    assert service.real_servers[0].active_connections == 0


async def test_counter_helpers_name_what_is_missing() -> None:
    fake = await web_with_two_backends()

    with pytest.raises(KeyError, match="no service"):
        fake.set_connections(ServiceKey.tcp("10.0.0.9", 80), "10.1.0.1", 8080, active=1)
    with pytest.raises(KeyError, match=r"no real server 10\.1\.0\.9:8080"):
        fake.add_traffic(WEB, "10.1.0.9", 8080, connections=1)
    with pytest.raises(TypeError, match="address and a port"):
        fake.set_rates(WEB, "10.1.0.1", cps=1)


async def test_the_call_log_shows_every_batch_and_call() -> None:
    fake = await web_with_two_backends()
    await fake.dump()
    await fake.dump_service(WEB)
    refused = await fake.apply([DeleteService(ServiceKey.tcp("10.0.0.9", 80))])

    assert fake.calls == {"apply": 2, "dump": 1, "dump_service": 1}
    assert len(fake.batches) == 2
    assert fake.batches[-1] is refused
    assert fake.operations == [
        AddService(VirtualServer(WEB, "rr")),
        AddRealServer(WEB, ONE),
        AddRealServer(WEB, TWO),
        DeleteService(ServiceKey.tcp("10.0.0.9", 80)),
    ]

    fake.clear_log()
    assert (fake.batches, fake.operations, dict(fake.calls)) == ([], [], {})
    assert len(fake.table()) == 1  # the log is cleared, not the table


async def test_render_prints_the_table_as_ipvsadm_save_text() -> None:
    fake = await web_with_two_backends()

    assert fake.render() == (
        "-A -t 10.0.0.1:80 -s rr\n"
        "-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m -w 1\n"
        "-a -t 10.0.0.1:80 -r 10.1.0.2:8080 -m -w 1\n"
    )


async def test_a_closed_fake_refuses_to_be_used() -> None:
    fake = FakeIpvs()
    await fake.close()

    assert fake.closed
    with pytest.raises(RuntimeError, match="closed"):
        await fake.dump()
