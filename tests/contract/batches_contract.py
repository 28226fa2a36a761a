"""The contract for batches, reading the table back, timeouts and closing."""

from __future__ import annotations

import errno
from ipaddress import IPv4Address

import pytest

from ipvsd.dataplane.errors import InvalidArgument
from ipvsd.dataplane.ipvs import BatchResult, Ipvs
from ipvsd.model.ipvs import (
    AddRealServer,
    AddService,
    DeleteRealServer,
    Operation,
    ServiceKey,
    Stats,
    Timeouts,
    UpdateService,
    VirtualServer,
)
from tests.contract.support import (
    HASHED,
    WEB,
    RulesReader,
    apply_ok,
    backend,
    expect_table,
    observed,
    read_rules,
)


class BatchContract:
    """Batches, dumps, counters, timeouts and closing."""

    # --- batches and reading -----------------------------------------------------------------

    async def test_a_batch_keeps_going_after_failures_and_reports_each_at_its_index(
        self, ipvs: Ipvs, ipvsadm_rules: RulesReader
    ) -> None:
        missing = ServiceKey.tcp("10.0.0.9", 80)
        last = ServiceKey.udp("10.0.0.1", 53)
        dest = backend("10.1.0.1", 80)
        operations: list[Operation] = [
            AddService(VirtualServer(WEB, "rr")),
            AddService(VirtualServer(WEB, "rr")),
            AddRealServer(missing, dest),
            AddRealServer(WEB, dest),
            DeleteRealServer(WEB, IPv4Address("10.1.0.2"), 80),
            UpdateService(VirtualServer(WEB, "nosuch")),
            AddRealServer(WEB, dest),
            AddService(VirtualServer(last, "wrr")),
        ]

        result = await ipvs.apply(operations)

        assert result.operations == tuple(operations)
        assert not result.ok
        assert [type(e).__name__ if e else None for e in result.errors] == [
            None,
            "ServiceExists",
            "ServiceNotFound",
            None,
            "DestinationNotFound",
            "SchedulerNotFound",
            "DestinationExists",
            None,
        ]
        await expect_table(
            ipvs,
            ipvsadm_rules,
            [
                observed(VirtualServer(WEB, "rr", HASHED, 0, 32), dest),
                observed(VirtualServer(last, "wrr", HASHED, 0, 32)),
            ],
            [
                "-A -t 10.0.0.1:80 -s rr",
                "-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 1",
                "-A -u 10.0.0.1:53 -s wrr",
            ],
        )

    async def test_an_empty_batch_succeeds(self, ipvs: Ipvs) -> None:
        result = await ipvs.apply([])

        assert result == BatchResult((), ())
        assert result.ok

    async def test_dump_is_sorted_by_service_then_real_server(
        self, ipvs: Ipvs, ipvsadm_rules: RulesReader
    ) -> None:
        """ipvsadm's own order differs (it puts 200.0.0.1 before 10.0.0.1); dump() never."""
        keys = [
            ServiceKey.for_fwmark(2),
            ServiceKey.for_fwmark(1),
            ServiceKey.tcp("fd00::9", 80),
            ServiceKey.udp("10.0.0.1", 80),
            ServiceKey.tcp("200.0.0.1", 80),
            ServiceKey.tcp("10.0.0.1", 8080),
            WEB,
        ]
        reals = [
            backend("200.1.0.1", 80),
            backend("10.1.0.2", 80),
            backend("10.1.0.1", 81),
            backend("10.1.0.1", 80),
        ]
        await apply_ok(
            ipvs,
            *(AddService(VirtualServer(key, "rr")) for key in keys),
            *(AddRealServer(WEB, real) for real in reals),
        )

        table = await ipvs.dump()

        assert [s.key for s in table] == [
            WEB,
            ServiceKey.tcp("10.0.0.1", 8080),
            ServiceKey.tcp("200.0.0.1", 80),
            ServiceKey.udp("10.0.0.1", 80),
            ServiceKey.tcp("fd00::9", 80),
            ServiceKey.for_fwmark(1),
            ServiceKey.for_fwmark(2),
        ]
        assert [r.server for r in table[0].real_servers] == list(reversed(reals))
        assert await read_rules(ipvsadm_rules) == [
            "-A -t 10.0.0.1:80 -s rr",
            "-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 1",
            "-a -t 10.0.0.1:80 -r 10.1.0.1:81 -m -w 1",
            "-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m -w 1",
            "-a -t 10.0.0.1:80 -r 200.1.0.1:80 -m -w 1",
            "-A -t 10.0.0.1:8080 -s rr",
            "-A -t 200.0.0.1:80 -s rr",
            "-A -u 10.0.0.1:80 -s rr",
            "-A -t [fd00::9]:80 -s rr",
            "-A -f 1 -s rr",
            "-A -f 2 -s rr",
        ]

    async def test_dump_service_returns_that_service_or_none(self, ipvs: Ipvs) -> None:
        dest = backend("10.1.0.1", 80)
        other = ServiceKey.tcp("10.0.0.2", 80)
        await apply_ok(
            ipvs,
            AddService(VirtualServer(WEB, "rr")),
            AddRealServer(WEB, dest),
            AddService(VirtualServer(other, "wrr")),
        )

        assert await ipvs.dump_service(WEB) == observed(
            VirtualServer(WEB, "rr", HASHED, 0, 32), dest
        )
        assert await ipvs.dump_service(ServiceKey.tcp("10.0.0.3", 80)) is None
        assert await ipvs.dump_service(ServiceKey.for_fwmark(1)) is None

    async def test_a_fresh_table_has_zero_counters_and_rates(self, ipvs: Ipvs) -> None:
        await apply_ok(
            ipvs,
            AddService(VirtualServer(WEB, "rr")),
            AddRealServer(WEB, backend("10.1.0.1", 80)),
        )

        (service,) = await ipvs.dump()

        assert service.stats == Stats()
        (real,) = service.real_servers
        assert (real.active_connections, real.inactive_connections) == (0, 0)
        assert real.persistent_connections == 0
        assert real.stats == Stats()

    # --- timeouts and lifecycle --------------------------------------------------------------

    async def test_timeouts_change_only_where_a_value_is_given(self, ipvs: Ipvs) -> None:
        before = await ipvs.get_timeouts()
        try:
            await ipvs.set_timeouts(Timeouts(tcp=1000, tcp_fin=0, udp=10))
            assert await ipvs.get_timeouts() == Timeouts(1000, before.tcp_fin, 10)

            await ipvs.set_timeouts(Timeouts())
            assert await ipvs.get_timeouts() == Timeouts(1000, before.tcp_fin, 10)

            await ipvs.set_timeouts(Timeouts(tcp_fin=30))
            assert await ipvs.get_timeouts() == Timeouts(1000, 30, 10)
        finally:
            await ipvs.set_timeouts(before)
        assert await ipvs.get_timeouts() == before

    async def test_timeouts_beyond_int_max_jiffies_refuse_the_whole_request(
        self, ipvs: Ipvs
    ) -> None:
        before = await ipvs.get_timeouts()
        try:
            await ipvs.set_timeouts(Timeouts(tcp=8_589_934))  # INT_MAX // HZ (250)
            assert (await ipvs.get_timeouts()).tcp == 8_589_934

            with pytest.raises(InvalidArgument) as refused:
                await ipvs.set_timeouts(Timeouts(tcp=100, udp=8_589_935))

            assert refused.value.errno == errno.EINVAL
            assert await ipvs.get_timeouts() == Timeouts(8_589_934, before.tcp_fin, before.udp)
        finally:
            await ipvs.set_timeouts(before)

    async def test_close_can_be_called_twice(self, ipvs: Ipvs) -> None:
        await ipvs.close()
        await ipvs.close()
