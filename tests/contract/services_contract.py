"""The contract for virtual servers: every kind the kernel takes, and changing them in place."""

from __future__ import annotations

import pytest

from ipvsd.dataplane.ipvs import Ipvs
from ipvsd.dataplane.ipvs_fake import DEBIAN_SCHEDULERS
from ipvsd.model.ipvs import (
    AddRealServer,
    AddService,
    DeleteService,
    Family,
    ServiceFlag,
    ServiceKey,
    UpdateService,
    VirtualServer,
)
from tests.contract.support import (
    HASHED,
    ONEPACKET,
    PERSISTENT,
    SCHED1,
    SCHED2,
    SCHED3,
    WEB,
    WEB6,
    RulesReader,
    apply_ok,
    backend,
    expect_table,
    observed,
)


class ServiceContract:
    """Every kind of virtual server the kernel takes, and changing one in place."""

    async def test_a_fresh_table_is_empty(self, ipvs: Ipvs, ipvsadm_rules: RulesReader) -> None:
        await expect_table(ipvs, ipvsadm_rules, [], [])

    async def test_services_are_reported_hashed_with_their_full_netmask(
        self, ipvs: Ipvs, ipvsadm_rules: RulesReader
    ) -> None:
        await apply_ok(ipvs, AddService(VirtualServer(WEB, "rr")))

        await expect_table(
            ipvs,
            ipvsadm_rules,
            [observed(VirtualServer(WEB, "rr", HASHED, 0, 32))],
            ["-A -t 10.0.0.1:80 -s rr"],
        )

    async def test_tcp_udp_and_sctp_on_one_address_and_port_are_three_services(
        self, ipvs: Ipvs, ipvsadm_rules: RulesReader
    ) -> None:
        keys = [ServiceKey.sctp("10.0.0.5", 53), ServiceKey.udp("10.0.0.5", 53)]
        keys.append(ServiceKey.tcp("10.0.0.5", 53))
        dest = backend("10.1.0.5", 5353)
        for key in keys:
            await apply_ok(ipvs, AddService(VirtualServer(key, "rr")), AddRealServer(key, dest))

        await expect_table(
            ipvs,
            ipvsadm_rules,
            [observed(VirtualServer(key, "rr", HASHED, 0, 32), dest) for key in reversed(keys)],
            [
                "-A -t 10.0.0.5:53 -s rr",
                "-a -t 10.0.0.5:53 -r 10.1.0.5:5353 -m -w 1",
                "-A -u 10.0.0.5:53 -s rr",
                "-a -u 10.0.0.5:53 -r 10.1.0.5:5353 -m -w 1",
                "-A --sctp-service 10.0.0.5:53 -s rr",
                "-a --sctp-service 10.0.0.5:53 -r 10.1.0.5:5353 -m -w 1",
            ],
        )

    async def test_ipv6_service_with_ipv6_real_servers(
        self, ipvs: Ipvs, ipvsadm_rules: RulesReader
    ) -> None:
        second, first = backend("fd01::2", 8443, 3), backend("fd01::1", 8443)
        await apply_ok(
            ipvs,
            AddService(VirtualServer(WEB6, "wlc")),
            AddRealServer(WEB6, second),
            AddRealServer(WEB6, first),
        )

        await expect_table(
            ipvs,
            ipvsadm_rules,
            [observed(VirtualServer(WEB6, "wlc", HASHED, 0, 128), first, second)],
            [
                "-A -t [fd00::1]:443 -s wlc",
                "-a -t [fd00::1]:443 -r [fd01::1]:8443 -m -w 1",
                "-a -t [fd00::1]:443 -r [fd01::2]:8443 -m -w 3",
            ],
        )

    async def test_fwmark_services_of_both_families_can_share_a_mark(
        self, ipvs: Ipvs, ipvsadm_rules: RulesReader
    ) -> None:
        mark4, mark6 = ServiceKey.for_fwmark(7), ServiceKey.for_fwmark(7, Family.INET6)
        largest = ServiceKey.for_fwmark(2**32 - 1)
        dest4, dest6 = backend("10.1.0.1", 0), backend("fd01::1", 80)
        await apply_ok(
            ipvs,
            AddService(VirtualServer(largest, "rr")),
            AddService(VirtualServer(mark6, "rr")),
            AddService(VirtualServer(mark4, "rr")),
            AddRealServer(mark4, dest4),
            AddRealServer(mark6, dest6),
        )

        await expect_table(
            ipvs,
            ipvsadm_rules,
            [
                observed(VirtualServer(mark4, "rr", HASHED, 0, 32), dest4),
                observed(VirtualServer(mark6, "rr", HASHED, 0, 128), dest6),
                observed(VirtualServer(largest, "rr", HASHED, 0, 32)),
            ],
            [
                "-A -f 7 -s rr",
                "-a -f 7 -r 10.1.0.1:0 -m -w 1",
                "-A -f 7 -6 -s rr",
                "-a -f 7 -6 -r [fd01::1]:80 -m -w 1",
                "-A -f -1 -s rr",  # ipvsadm prints marks as signed numbers
            ],
        )

    @pytest.mark.parametrize("scheduler", DEBIAN_SCHEDULERS)
    async def test_every_scheduler_of_the_kernel_can_be_used(
        self, ipvs: Ipvs, ipvsadm_rules: RulesReader, scheduler: str
    ) -> None:
        await apply_ok(
            ipvs,
            AddService(VirtualServer(WEB, scheduler)),
            AddRealServer(WEB, backend("10.1.0.1", 80)),
        )

        await expect_table(
            ipvs,
            ipvsadm_rules,
            [observed(VirtualServer(WEB, scheduler, HASHED, 0, 32), backend("10.1.0.1", 80))],
            [f"-A -t 10.0.0.1:80 -s {scheduler}", "-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 1"],
        )

    @pytest.mark.parametrize(
        ("scheduler", "flags", "printed"),
        [
            ("sh", SCHED1 | SCHED2, "-b sh-fallback,sh-port"),
            ("sh", SCHED2, "-b sh-port"),
            ("mh", SCHED1 | SCHED2, "-b mh-fallback,mh-port"),
            ("mh", SCHED1, "-b mh-fallback"),
            ("mh", SCHED3, "-b "),  # sh and mh have no name for flag 3
            ("rr", SCHED1 | SCHED2 | SCHED3, "-b flag-1,flag-2,flag-3"),
            ("wlc", SCHED2, "-b flag-2"),
        ],
    )
    async def test_scheduler_flags_are_kept_and_named_per_scheduler(
        self,
        ipvs: Ipvs,
        ipvsadm_rules: RulesReader,
        scheduler: str,
        flags: ServiceFlag,
        printed: str,
    ) -> None:
        await apply_ok(ipvs, AddService(VirtualServer(WEB, scheduler, flags)))

        await expect_table(
            ipvs,
            ipvsadm_rules,
            [observed(VirtualServer(WEB, scheduler, HASHED | flags, 0, 32))],
            [f"-A -t 10.0.0.1:80 -s {scheduler} {printed}"],
        )

    async def test_persistence_keeps_its_timeout_and_netmask(
        self, ipvs: Ipvs, ipvsadm_rules: RulesReader
    ) -> None:
        dns = ServiceKey.udp("10.0.0.1", 53)
        whole = ServiceKey.tcp("10.0.0.2", 443)
        per_client = ServiceKey.tcp("10.0.0.3", 443)
        mark6 = ServiceKey.for_fwmark(9, Family.INET6)
        await apply_ok(
            ipvs,
            AddService(VirtualServer(dns, "rr", PERSISTENT, 300, 24)),
            AddService(VirtualServer(whole, "rr", PERSISTENT, 3600, 0)),
            AddService(VirtualServer(per_client, "rr", PERSISTENT, 10800)),
            AddService(VirtualServer(WEB6, "rr", PERSISTENT, 60, 64)),
            AddService(VirtualServer(mark6, "sh", PERSISTENT | SCHED2, 60, 48)),
        )

        await expect_table(
            ipvs,
            ipvsadm_rules,
            [
                observed(VirtualServer(whole, "rr", HASHED | PERSISTENT, 3600, 0)),
                observed(VirtualServer(per_client, "rr", HASHED | PERSISTENT, 10800, 32)),
                observed(VirtualServer(dns, "rr", HASHED | PERSISTENT, 300, 24)),
                observed(VirtualServer(WEB6, "rr", HASHED | PERSISTENT, 60, 64)),
                observed(VirtualServer(mark6, "sh", HASHED | PERSISTENT | SCHED2, 60, 48)),
            ],
            [
                "-A -t 10.0.0.2:443 -s rr -p 3600 -M 0.0.0.0",
                "-A -t 10.0.0.3:443 -s rr -p 10800",
                "-A -u 10.0.0.1:53 -s rr -p 300 -M 255.255.255.0",
                "-A -t [fd00::1]:443 -s rr -p 60 -M 64",
                "-A -f 9 -6 -s sh -p 60 -M 48 -b sh-port",
            ],
        )

    async def test_persistence_timeout_wraps_at_32_bits_of_jiffies(
        self, ipvs: Ipvs, ipvsadm_rules: RulesReader
    ) -> None:
        # Debian's HZ is 250: 20,000,000 s is 5e9 jiffies, stored modulo 2**32.
        await apply_ok(ipvs, AddService(VirtualServer(WEB, "rr", PERSISTENT, 20_000_000)))

        await expect_table(
            ipvs,
            ipvsadm_rules,
            [observed(VirtualServer(WEB, "rr", HASHED | PERSISTENT, 2_820_130, 32))],
            ["-A -t 10.0.0.1:80 -s rr -p 2820130"],
        )

    async def test_sip_engine_one_packet_and_scheduler_flags_together(
        self, ipvs: Ipvs, ipvsadm_rules: RulesReader
    ) -> None:
        sip = ServiceKey.udp("10.0.0.8", 5060)
        flags = PERSISTENT | ONEPACKET | SCHED1
        await apply_ok(ipvs, AddService(VirtualServer(sip, "sh", flags, 30, 16, "sip")))

        await expect_table(
            ipvs,
            ipvsadm_rules,
            [observed(VirtualServer(sip, "sh", HASHED | flags, 30, 16, "sip"))],
            ["-A -u 10.0.0.8:5060 -s sh -p 30 -M 255.255.0.0 --pe sip -o -b sh-fallback"],
        )

    async def test_the_kernel_accepts_what_only_ipvsadm_refuses(
        self, ipvs: Ipvs, ipvsadm_rules: RulesReader
    ) -> None:
        """Port 0 without persistence, one-packet TCP, an engine or a timeout without
        persistence, and the scheduler "none" are all fine with the kernel."""
        any_port = ServiceKey.tcp("10.0.0.4", 0)
        one_packet = ServiceKey.tcp("10.0.0.5", 80)
        engine = ServiceKey.tcp("10.0.0.6", 80)
        timeout = ServiceKey.tcp("10.0.0.7", 80)
        unscheduled = ServiceKey.tcp("10.0.0.8", 80)
        await apply_ok(
            ipvs,
            AddService(VirtualServer(any_port, "rr")),
            AddService(VirtualServer(one_packet, "rr", ONEPACKET)),
            AddService(VirtualServer(engine, "rr", persistence_engine="sip")),
            AddService(VirtualServer(timeout, "rr", timeout=300, netmask=24)),
            AddService(VirtualServer(unscheduled, "none")),
        )

        await expect_table(
            ipvs,
            ipvsadm_rules,
            [
                observed(VirtualServer(any_port, "rr", HASHED, 0, 32)),
                observed(VirtualServer(one_packet, "rr", HASHED | ONEPACKET, 0, 32)),
                observed(VirtualServer(engine, "rr", HASHED, 0, 32, "sip")),
                observed(VirtualServer(timeout, "rr", HASHED, 300, 24)),
                observed(VirtualServer(unscheduled, "none", HASHED, 0, 32)),
            ],
            [
                "-A -t 10.0.0.4:0 -s rr",
                "-A -t 10.0.0.5:80 -s rr -o",
                "-A -t 10.0.0.6:80 -s rr --pe sip",
                "-A -t 10.0.0.7:80 -s rr",  # timeout and mask only print with persistence
                "-A -t 10.0.0.8:80 -s none",
            ],
        )

    async def test_updating_a_service_changes_it_in_place_and_keeps_its_real_servers(
        self, ipvs: Ipvs, ipvsadm_rules: RulesReader
    ) -> None:
        one, two = backend("10.1.0.1", 8080, 2), backend("10.1.0.2", 8080, 3)
        await apply_ok(
            ipvs,
            AddService(VirtualServer(WEB, "rr")),
            AddRealServer(WEB, one),
            AddRealServer(WEB, two),
        )

        await apply_ok(
            ipvs, UpdateService(VirtualServer(WEB, "sh", PERSISTENT | SCHED2, 60, 24, "sip"))
        )
        await expect_table(
            ipvs,
            ipvsadm_rules,
            [
                observed(
                    VirtualServer(WEB, "sh", HASHED | PERSISTENT | SCHED2, 60, 24, "sip"), one, two
                )
            ],
            [
                "-A -t 10.0.0.1:80 -s sh -p 60 -M 255.255.255.0 --pe sip -b sh-port",
                "-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m -w 2",
                "-a -t 10.0.0.1:80 -r 10.1.0.2:8080 -m -w 3",
            ],
        )

        await apply_ok(ipvs, UpdateService(VirtualServer(WEB, "mh")))
        await expect_table(
            ipvs,
            ipvsadm_rules,
            [observed(VirtualServer(WEB, "mh", HASHED, 0, 32), one, two)],
            [
                "-A -t 10.0.0.1:80 -s mh",
                "-a -t 10.0.0.1:80 -r 10.1.0.1:8080 -m -w 2",
                "-a -t 10.0.0.1:80 -r 10.1.0.2:8080 -m -w 3",
            ],
        )

    async def test_a_fwmark_service_can_be_updated(
        self, ipvs: Ipvs, ipvsadm_rules: RulesReader
    ) -> None:
        mark = ServiceKey.for_fwmark(5)
        dest = backend("10.1.0.1", 0)
        await apply_ok(ipvs, AddService(VirtualServer(mark, "rr")), AddRealServer(mark, dest))

        await apply_ok(ipvs, UpdateService(VirtualServer(mark, "wrr", PERSISTENT, 120)))

        await expect_table(
            ipvs,
            ipvsadm_rules,
            [observed(VirtualServer(mark, "wrr", HASHED | PERSISTENT, 120, 32), dest)],
            ["-A -f 5 -s wrr -p 120", "-a -f 5 -r 10.1.0.1:0 -m -w 1"],
        )

    async def test_deleting_a_service_deletes_its_real_servers(
        self, ipvs: Ipvs, ipvsadm_rules: RulesReader
    ) -> None:
        other = ServiceKey.tcp("10.0.0.2", 80)
        await apply_ok(
            ipvs,
            AddService(VirtualServer(WEB, "rr")),
            AddRealServer(WEB, backend("10.1.0.1", 80)),
            AddService(VirtualServer(other, "rr")),
        )

        await apply_ok(ipvs, DeleteService(WEB))
        await expect_table(
            ipvs,
            ipvsadm_rules,
            [observed(VirtualServer(other, "rr", HASHED, 0, 32))],
            ["-A -t 10.0.0.2:80 -s rr"],
        )

        await apply_ok(ipvs, AddService(VirtualServer(WEB, "rr")))
        assert (await ipvs.dump_service(WEB)) == observed(VirtualServer(WEB, "rr", HASHED, 0, 32))
