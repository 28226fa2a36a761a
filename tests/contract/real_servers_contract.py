"""The contract for real servers, and for what the kernel refuses (services and real servers)."""

from __future__ import annotations

import errno
from ipaddress import IPv4Address

import pytest

from ipvsd.dataplane.errors import (
    DestinationExists,
    DestinationNotFound,
    InvalidArgument,
    SchedulerNotFound,
    ServiceExists,
    ServiceNotFound,
)
from ipvsd.dataplane.ipvs import Ipvs
from ipvsd.model.ipvs import (
    AddRealServer,
    AddService,
    DeleteRealServer,
    DeleteService,
    Family,
    Forward,
    ServiceKey,
    UpdateRealServer,
    UpdateService,
    VirtualServer,
    parse_address,
)
from tests.contract.support import (
    HASHED,
    PERSISTENT,
    WEB,
    WEB6,
    RulesReader,
    apply_ok,
    assert_refused,
    backend,
    expect_table,
    observed,
    read_rules,
)


class RealServerContract:
    """Real servers, and what the kernel refuses to do with services and real servers."""

    async def test_real_servers_keep_weight_thresholds_and_forwarding(
        self, ipvs: Ipvs, ipvsadm_rules: RulesReader
    ) -> None:
        reals = [
            backend("10.1.0.1", 8080, 0),
            backend("10.1.0.2", 8080, 5, upper_threshold=100, lower_threshold=10),
            backend("10.1.0.3", 8080, 2**31 - 1),
            backend("10.1.0.4", 80, forward=Forward.ROUTE),
            backend("10.1.0.5", 80, 2, forward=Forward.TUNNEL),
            backend("10.1.0.6", 80, forward=Forward.LOCAL),
            backend("10.1.0.7", 80, forward=Forward.BYPASS),
        ]
        await apply_ok(
            ipvs,
            AddService(VirtualServer(WEB, "wrr")),
            *(AddRealServer(WEB, real) for real in reversed(reals)),
        )

        await expect_table(
            ipvs,
            ipvsadm_rules,
            [observed(VirtualServer(WEB, "wrr", HASHED, 0, 32), *reals)],
            [
                "-A -t 10.0.0.1:80 -s wrr",
                "-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m -w 0",
                "-a -t 10.0.0.1:80 -r 10.1.0.2:8080 -m -w 5",  # thresholds never print
                "-a -t 10.0.0.1:80 -r 10.1.0.3:8080 -m -w 2147483647",
                "-a -t 10.0.0.1:80 -r 10.1.0.4:80 -g -w 1",
                "-a -t 10.0.0.1:80 -r 10.1.0.5:80 -i -w 2 --tun-type ipip",
                "-a -t 10.0.0.1:80 -r 10.1.0.6:80 -g -w 1",  # local prints as routing
                "-a -t 10.0.0.1:80 -r 10.1.0.7:80 (null) -w 1",  # ipvsadm has no name for it
            ],
        )

    async def test_updating_a_real_server_changes_it_in_place(
        self, ipvs: Ipvs, ipvsadm_rules: RulesReader
    ) -> None:
        one, two = backend("10.1.0.1", 8080, 2), backend("10.1.0.2", 8080, 3)
        await apply_ok(
            ipvs,
            AddService(VirtualServer(WEB, "wrr")),
            AddRealServer(WEB, one),
            AddRealServer(WEB, two),
        )
        drained = backend("10.1.0.1", 8080, 0, upper_threshold=50, lower_threshold=5)
        routed = backend("10.1.0.2", 8080, 7, forward=Forward.ROUTE)

        await apply_ok(ipvs, UpdateRealServer(WEB, drained), UpdateRealServer(WEB, routed))

        await expect_table(
            ipvs,
            ipvsadm_rules,
            [observed(VirtualServer(WEB, "wrr", HASHED, 0, 32), drained, routed)],
            [
                "-A -t 10.0.0.1:80 -s wrr",
                "-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m -w 0",
                "-a -t 10.0.0.1:80 -r 10.1.0.2:8080 -g -w 7",
            ],
        )

    async def test_deleting_a_real_server_keeps_the_others_and_it_can_come_back(
        self, ipvs: Ipvs, ipvsadm_rules: RulesReader
    ) -> None:
        one, two = backend("10.1.0.1", 80), backend("10.1.0.1", 81)
        await apply_ok(
            ipvs,
            AddService(VirtualServer(WEB, "rr")),
            AddRealServer(WEB, one),
            AddRealServer(WEB, two),
        )

        await apply_ok(ipvs, DeleteRealServer(WEB, one.address, 80))
        await expect_table(
            ipvs,
            ipvsadm_rules,
            [observed(VirtualServer(WEB, "rr", HASHED, 0, 32), two)],
            ["-A -t 10.0.0.1:80 -s rr", "-a -t 10.0.0.1:80 -r 10.1.0.1:81 -m -w 1"],
        )

        again = backend("10.1.0.1", 80, 4)
        await apply_ok(ipvs, AddRealServer(WEB, again))
        await expect_table(
            ipvs,
            ipvsadm_rules,
            [observed(VirtualServer(WEB, "rr", HASHED, 0, 32), again, two)],
            [
                "-A -t 10.0.0.1:80 -s rr",
                "-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 4",
                "-a -t 10.0.0.1:80 -r 10.1.0.1:81 -m -w 1",
            ],
        )

    async def test_a_real_server_of_the_other_family_needs_tunnel_forwarding(
        self, ipvs: Ipvs, ipvsadm_rules: RulesReader
    ) -> None:
        service = ServiceKey.tcp("fd00::3", 80)
        nat, tunnel = backend("10.1.0.8", 80), backend("10.1.0.7", 80, forward=Forward.TUNNEL)
        await apply_ok(ipvs, AddService(VirtualServer(service, "rr")))

        result = await ipvs.apply(
            [
                AddRealServer(service, nat),
                AddRealServer(service, tunnel),
                UpdateRealServer(service, backend("10.1.0.7", 80, 5)),
            ]
        )

        assert_refused(result, 0, InvalidArgument, errno.EINVAL)
        assert result.errors[1] is None
        assert_refused(result, 2, InvalidArgument, errno.EINVAL)
        await expect_table(
            ipvs,
            ipvsadm_rules,
            [observed(VirtualServer(service, "rr", HASHED, 0, 128), tunnel)],
            [
                "-A -t [fd00::3]:80 -s rr",
                "-a -t [fd00::3]:80 -r 10.1.0.7:80 -i -w 1 --tun-type ipip",
            ],
        )
        await apply_ok(ipvs, DeleteRealServer(service, tunnel.address, 80))
        assert await read_rules(ipvsadm_rules) == ["-A -t [fd00::3]:80 -s rr"]

    @pytest.mark.parametrize(
        "address", ["0.0.0.0", "224.0.0.1", "239.255.255.255", "255.255.255.255"]
    )
    async def test_ipv4_real_servers_must_be_unicast(
        self, ipvs: Ipvs, ipvsadm_rules: RulesReader, address: str
    ) -> None:
        await apply_ok(ipvs, AddService(VirtualServer(WEB, "rr")))

        result = await ipvs.apply([AddRealServer(WEB, backend(address, 80))])

        assert_refused(result, 0, InvalidArgument, errno.EINVAL)
        await expect_table(
            ipvs,
            ipvsadm_rules,
            [observed(VirtualServer(WEB, "rr", HASHED, 0, 32))],
            ["-A -t 10.0.0.1:80 -s rr"],
        )

    @pytest.mark.parametrize(
        "address", ["::", "ff00::", "ff02::1", "fe80::1", "febf::1", "::ffff:10.0.0.1"]
    )
    async def test_ipv6_real_servers_must_be_unicast_and_not_link_local(
        self, ipvs: Ipvs, ipvsadm_rules: RulesReader, address: str
    ) -> None:
        await apply_ok(ipvs, AddService(VirtualServer(WEB6, "rr")))

        result = await ipvs.apply([AddRealServer(WEB6, backend(address, 80))])

        assert_refused(result, 0, InvalidArgument, errno.EINVAL)
        assert await read_rules(ipvsadm_rules) == ["-A -t [fd00::1]:443 -s rr"]

    async def test_unusual_unicast_real_servers_are_accepted(
        self, ipvs: Ipvs, ipvsadm_rules: RulesReader
    ) -> None:
        reals4 = [backend(a, 80) for a in ("0.1.2.3", "127.0.0.1", "169.254.1.1", "240.0.0.1")]
        reals6 = [backend(a, 80) for a in ("::1", "::5.6.7.8", "fe7f::1", "fec0::1")]
        await apply_ok(
            ipvs,
            AddService(VirtualServer(WEB, "rr")),
            AddService(VirtualServer(WEB6, "rr")),
            *(AddRealServer(WEB, real) for real in reals4),
            *(AddRealServer(WEB6, real) for real in reals6),
        )

        await expect_table(
            ipvs,
            ipvsadm_rules,
            [
                observed(VirtualServer(WEB, "rr", HASHED, 0, 32), *reals4),
                observed(VirtualServer(WEB6, "rr", HASHED, 0, 128), *reals6),
            ],
            [
                "-A -t 10.0.0.1:80 -s rr",
                "-a -t 10.0.0.1:80 -r 0.1.2.3:80 -m -w 1",  # only 0.0.0.0 of 0/8 is refused
                "-a -t 10.0.0.1:80 -r 127.0.0.1:80 -m -w 1",
                "-a -t 10.0.0.1:80 -r 169.254.1.1:80 -m -w 1",
                "-a -t 10.0.0.1:80 -r 240.0.0.1:80 -m -w 1",
                "-A -t [fd00::1]:443 -s rr",
                "-a -t [fd00::1]:443 -r [::1]:80 -m -w 1",
                "-a -t [fd00::1]:443 -r [::5.6.7.8]:80 -m -w 1",  # glibc's spelling
                "-a -t [fd00::1]:443 -r [fe7f::1]:80 -m -w 1",
                "-a -t [fd00::1]:443 -r [fec0::1]:80 -m -w 1",
            ],
        )

    # --- refusals ----------------------------------------------------------------------------

    async def test_adding_an_existing_service_fails_and_changes_nothing(
        self, ipvs: Ipvs, ipvsadm_rules: RulesReader
    ) -> None:
        await apply_ok(ipvs, AddService(VirtualServer(WEB, "rr")))

        result = await ipvs.apply([AddService(VirtualServer(WEB, "wrr", PERSISTENT, 60))])

        assert_refused(result, 0, ServiceExists, errno.EEXIST)
        await expect_table(
            ipvs,
            ipvsadm_rules,
            [observed(VirtualServer(WEB, "rr", HASHED, 0, 32))],
            ["-A -t 10.0.0.1:80 -s rr"],
        )

    async def test_every_operation_on_a_missing_service_fails_with_service_not_found(
        self, ipvs: Ipvs, ipvsadm_rules: RulesReader
    ) -> None:
        dest = backend("10.1.0.1", 80)
        result = await ipvs.apply(
            [
                UpdateService(VirtualServer(WEB, "rr")),
                DeleteService(WEB),
                AddRealServer(WEB, dest),
                UpdateRealServer(WEB, dest),
                DeleteRealServer(WEB, dest.address, 80),
            ]
        )

        for index in range(5):
            assert_refused(result, index, ServiceNotFound, errno.ESRCH)
        await expect_table(ipvs, ipvsadm_rules, [], [])
        assert await ipvs.dump_service(WEB) is None

    async def test_adding_an_existing_real_server_fails_and_keeps_the_first(
        self, ipvs: Ipvs, ipvsadm_rules: RulesReader
    ) -> None:
        await apply_ok(
            ipvs,
            AddService(VirtualServer(WEB, "rr")),
            AddRealServer(WEB, backend("10.1.0.1", 80, 3)),
        )

        result = await ipvs.apply([AddRealServer(WEB, backend("10.1.0.1", 80, 9))])

        assert_refused(result, 0, DestinationExists, errno.EEXIST)
        await expect_table(
            ipvs,
            ipvsadm_rules,
            [observed(VirtualServer(WEB, "rr", HASHED, 0, 32), backend("10.1.0.1", 80, 3))],
            ["-A -t 10.0.0.1:80 -s rr", "-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 3"],
        )

    async def test_changing_or_deleting_a_missing_real_server_fails_with_not_found(
        self, ipvs: Ipvs, ipvsadm_rules: RulesReader
    ) -> None:
        present = backend("10.1.0.1", 80)
        await apply_ok(ipvs, AddService(VirtualServer(WEB, "rr")), AddRealServer(WEB, present))

        result = await ipvs.apply(
            [
                UpdateRealServer(WEB, backend("10.1.0.1", 81, 5)),
                DeleteRealServer(WEB, IPv4Address("10.1.0.9"), 80),
                DeleteRealServer(WEB, parse_address("fd01::1"), 80),
            ]
        )

        for index in range(3):
            assert_refused(result, index, DestinationNotFound, errno.ENOENT)
        await expect_table(
            ipvs,
            ipvsadm_rules,
            [observed(VirtualServer(WEB, "rr", HASHED, 0, 32), present)],
            ["-A -t 10.0.0.1:80 -s rr", "-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 1"],
        )

    async def test_an_unknown_scheduler_or_engine_fails_with_scheduler_not_found(
        self, ipvs: Ipvs, ipvsadm_rules: RulesReader
    ) -> None:
        other = ServiceKey.tcp("10.0.0.2", 80)
        await apply_ok(ipvs, AddService(VirtualServer(WEB, "rr")))

        result = await ipvs.apply(
            [
                AddService(VirtualServer(other, "nosuch")),
                AddService(VirtualServer(other, "rr", PERSISTENT, 60, persistence_engine="nosuch")),
                UpdateService(VirtualServer(WEB, "nosuch", PERSISTENT, 60)),
                UpdateService(VirtualServer(WEB, "wrr", PERSISTENT, 60, persistence_engine="x")),
            ]
        )

        for index in range(4):
            assert_refused(result, index, SchedulerNotFound, errno.ENOENT)
        await expect_table(  # a refused update changes nothing, not even the other attributes
            ipvs,
            ipvsadm_rules,
            [observed(VirtualServer(WEB, "rr", HASHED, 0, 32))],
            ["-A -t 10.0.0.1:80 -s rr"],
        )

    async def test_an_ipv6_persistence_prefix_of_zero_is_invalid(
        self, ipvs: Ipvs, ipvsadm_rules: RulesReader
    ) -> None:
        other = ServiceKey.tcp("fd00::2", 80)
        await apply_ok(ipvs, AddService(VirtualServer(WEB6, "rr", PERSISTENT, 60, 64)))

        result = await ipvs.apply(
            [
                AddService(VirtualServer(other, "rr", PERSISTENT, 60, 0)),
                UpdateService(VirtualServer(WEB6, "wrr", PERSISTENT, 30, 0)),
                AddService(VirtualServer(ServiceKey.for_fwmark(3, Family.INET6), "rr", netmask=0)),
            ]
        )

        for index in range(3):
            assert_refused(result, index, InvalidArgument, errno.EINVAL)
        await expect_table(
            ipvs,
            ipvsadm_rules,
            [observed(VirtualServer(WEB6, "rr", HASHED | PERSISTENT, 60, 64))],
            ["-A -t [fd00::1]:443 -s rr -p 60 -M 64"],
        )
