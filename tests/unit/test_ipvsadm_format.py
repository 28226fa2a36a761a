"""The `ipvsadm -Sn` renderer and reader, against output recorded from the real ipvsadm.

data/ipvsadm_sn_cases.txt holds the commands each case ran on a real kernel and what
`ipvsadm -Sn` printed afterwards. Here each case's table is written out as model values (in the
order ipvsadm printed it), and the renderer must reproduce the recorded text byte for byte.
"""

from __future__ import annotations

import random
import re
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipvsd.dataplane.ipvsadm_format import (
    ServiceRules,
    canonical_rules,
    inet_ntop6,
    parse_rules,
    render_rules,
    rules_lines,
)
from ipvsd.model.ipvs import (
    NO_FLAGS,
    Family,
    Forward,
    ObservedRealServer,
    ObservedVirtualServer,
    Protocol,
    RealServer,
    ServiceFlag,
    ServiceKey,
    VirtualServer,
    full_prefix,
    parse_address,
)

CASES_FILE = Path(__file__).parent / "data" / "ipvsadm_sn_cases.txt"

P = ServiceFlag.PERSISTENT
O = ServiceFlag.ONEPACKET  # noqa: E741
S1, S2, S3 = ServiceFlag.SCHED1, ServiceFlag.SCHED2, ServiceFlag.SCHED3
TCP, UDP, SCTP = ServiceKey.tcp, ServiceKey.udp, ServiceKey.sctp
FWM = ServiceKey.for_fwmark


def recorded_cases() -> dict[str, str]:
    """Case name -> the `ipvsadm -Sn` text recorded for it."""
    cases: dict[str, list[str]] = {}
    current: list[str] | None = None
    in_output = False
    for line in CASES_FILE.read_text().splitlines():
        if match := re.fullmatch(r"=== case (\S+)", line):
            current = cases.setdefault(match[1], [])
            in_output = False
        elif line == "--- ipvsadm -Sn":
            in_output = True
        elif current is not None and in_output and line:
            current.append(line)
    return {name: "".join(f"{line}\n" for line in lines) for name, lines in cases.items()}


RECORDED = recorded_cases()


def rs(address: str, port: int, weight: int = 1, forward: Forward = Forward.MASQ) -> RealServer:
    return RealServer(parse_address(address), port, weight, forward=forward)


def service(
    key: ServiceKey,
    scheduler: str,
    *real_servers: RealServer,
    flags: ServiceFlag = NO_FLAGS,
    timeout: int = 0,
    netmask: int | None = None,
    engine: str = "",
) -> ServiceRules:
    return ServiceRules(
        VirtualServer(key, scheduler, flags, timeout, netmask, engine), real_servers
    )


# Each recorded case as model values, in the order ipvsadm printed it.
EXPECTED: dict[str, list[ServiceRules]] = {
    "empty-table": [],
    "tcp-nat-weights-and-thresholds": [
        service(
            TCP("10.0.0.1", 80),
            "rr",
            rs("10.1.0.1", 8080, 0),
            RealServer(IPv4Address("10.1.0.2"), 8080, 5, upper_threshold=100, lower_threshold=10),
            rs("10.1.0.3", 8080, 2**31 - 1),
        )
    ],
    "forwarding-methods": [
        service(
            TCP("10.0.0.2", 80),
            "wlc",
            rs("10.1.0.4", 80, 1, Forward.ROUTE),
            rs("10.1.0.5", 80, 2, Forward.TUNNEL),
            rs("10.1.0.6", 8080),
        )
    ],
    "udp-persistent-with-netmask": [
        service(
            UDP("10.0.0.1", 53), "wrr", rs("10.1.0.1", 5353, 2), flags=P, timeout=300, netmask=24
        )
    ],
    "ipv4-netmask-zero": [service(TCP("10.0.0.3", 443), "rr", flags=P, timeout=3600, netmask=0)],
    "sctp-persistent": [
        service(SCTP("10.0.0.2", 9), "lc", rs("10.1.0.1", 9), flags=P, timeout=1800)
    ],
    "tcp-and-udp-on-one-address": [
        service(TCP("10.0.0.5", 53), "rr", rs("10.1.0.5", 53)),
        service(UDP("10.0.0.5", 53), "rr", rs("10.1.0.5", 53)),
    ],
    "ipv6-sh-flags": [
        service(
            TCP("fd00::1", 443), "sh", rs("fd01::1", 443), rs("fd01::2", 8443, 3), flags=S1 | S2
        )
    ],
    "ipv6-persistent-with-prefix": [
        service(TCP("2001:db8::10", 80), "rr", flags=P, timeout=120),
        service(TCP("2001:db8::11", 80), "rr", flags=P, timeout=120, netmask=128),
        service(UDP("fd00::2", 53), "rr", flags=P, timeout=60, netmask=64),
    ],
    "fwmark-ipv4-mh-flags": [
        service(FWM(7), "mh", rs("10.1.0.1", 0), rs("10.1.0.2", 8080, 4), flags=S1 | S2)
    ],
    "fwmark-ipv6-persistent": [
        service(FWM(8, Family.INET6), "dh", rs("fd01::3", 80), flags=P, timeout=60, netmask=64)
    ],
    "fwmark-largest": [service(FWM(2**32 - 1), "rr")],
    "sip-engine-and-one-packet": [
        service(UDP("10.0.0.3", 5060), "rr", flags=P | O, timeout=10, engine="sip")
    ],
    "scheduler-flags-by-scheduler": [
        service(TCP("10.0.0.4", 80), "rr", flags=S1 | S2 | S3),
        service(TCP("10.0.0.5", 80), "wlc", flags=S2),
        service(TCP("10.0.0.6", 80), "sh", flags=S2 | S3),
        service(TCP("10.0.0.7", 80), "mh", flags=S3),
        service(TCP("10.0.0.8", 80), "mh", flags=S2),
        service(TCP("10.0.0.10", 80), "sh", flags=S3),
    ],
    "every-option-on-one-service": [
        service(
            UDP("10.0.0.8", 5060), "sh", flags=P | O | S1, timeout=30, netmask=16, engine="sip"
        ),
        service(UDP("10.0.0.9", 53), "rr", flags=O | S1),
    ],
    "every-scheduler": [
        service(TCP(f"10.0.1.{n}", 80), scheduler)
        for n, scheduler in enumerate(
            ["rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh"],
            start=1,
        )
    ],
    "port-zero-needs-persistence": [
        service(TCP("10.0.0.9", 0), "rr", rs("10.1.0.9", 0), flags=P, timeout=300)
    ],
    "mixed-family-tunnel": [
        service(TCP("fd00::3", 80), "rr", rs("10.1.0.7", 80, 1, Forward.TUNNEL))
    ],
    "ipvsadm-own-sort-order": [
        service(TCP("200.0.0.1", 80), "rr"),
        service(
            TCP("10.0.0.1", 80),
            "rr",
            rs("200.1.0.1", 80),
            rs("10.1.0.1", 80),
            rs("10.1.0.1", 81),
            rs("10.1.0.2", 80),
        ),
        service(TCP("10.0.0.1", 8080), "rr"),
        service(UDP("10.0.0.1", 80), "rr"),
        service(TCP("fd00::9", 80), "rr"),
        service(FWM(1), "rr"),
        service(FWM(2), "rr"),
    ],
    "edit-in-place-keeps-real-servers": [
        service(
            TCP("10.0.0.10", 80),
            "wrr",
            rs("10.1.0.1", 80),
            rs("10.1.0.2", 80, 9),
            flags=P,
            timeout=60,
        )
    ],
    "refusals": [service(TCP("10.0.0.11", 80), "rr", rs("10.1.0.1", 80))],
    "ipv6-spelling": [
        service(TCP("::", 80), "rr"),
        service(TCP("::2", 80), "rr"),
        service(TCP("::0.1.0.0", 80), "rr"),
        service(TCP("::1.2.3.4", 80), "rr"),
        service(TCP("::ffff:0:0", 80), "rr"),
        service(TCP("::ffff:1.2.3.4", 80), "rr"),
        service(TCP("1:0:0:2:0:0:0:3", 80), "rr"),
        service(TCP("2001:db8::1", 80), "rr", rs("::5.6.7.8", 80)),
        service(TCP("2001:db8:0:0:1:0:0:1", 80), "rr"),
    ],
}


def test_every_recorded_case_has_an_expected_table() -> None:
    assert sorted(RECORDED) == sorted(EXPECTED)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_rendering_reproduces_the_real_ipvsadm_output(case: str) -> None:
    assert render_rules(EXPECTED[case]) == RECORDED[case]


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_reading_real_output_back_renders_it_unchanged(case: str) -> None:
    assert render_rules(parse_rules(RECORDED[case])) == RECORDED[case]


def test_observed_services_render_like_their_programmed_values() -> None:
    real = ObservedRealServer(rs("10.1.0.1", 80, 3), active_connections=5)
    server = VirtualServer(TCP("10.0.0.1", 80), "rr", ServiceFlag.HASHED | P, 60, 32)

    assert rules_lines([ObservedVirtualServer(server, (real,))]) == [
        "-A -t 10.0.0.1:80 -s rr -p 60",
        "-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 3",
    ]


def test_local_forwarding_prints_like_direct_routing() -> None:
    table = [service(TCP("10.0.0.1", 80), "rr", rs("10.1.0.6", 80, 1, Forward.LOCAL))]

    assert rules_lines(table)[1] == "-a -t 10.0.0.1:80 -r 10.1.0.6:80 -g -w 1"


def test_bypass_forwarding_prints_as_ipvsadm_does_without_a_name() -> None:
    # Seen on the kernel: a real server added over netlink with forwarding method 4.
    table = [service(TCP("10.0.0.1", 80), "rr", rs("10.1.0.8", 80, 1, Forward.BYPASS))]

    assert rules_lines(table)[1] == "-a -t 10.0.0.1:80 -r 10.1.0.8:80 (null) -w 1"
    assert parse_rules(render_rules(table)) == [
        service(TCP("10.0.0.1", 80), "rr", rs("10.1.0.8", 80, 1, Forward.BYPASS), netmask=32)
    ]


def test_timeout_and_netmask_print_only_with_persistence() -> None:
    table = [service(TCP("10.0.0.7", 80), "rr", timeout=300, netmask=24)]

    assert rules_lines(table) == ["-A -t 10.0.0.7:80 -s rr"]


def test_reading_undoes_ipvsadm_spellings() -> None:
    (largest,) = parse_rules(RECORDED["fwmark-largest"])
    (udp,) = parse_rules(RECORDED["udp-persistent-with-netmask"])
    flag_three = parse_rules(RECORDED["scheduler-flags-by-scheduler"])[3]
    mapped = parse_rules(RECORDED["ipv6-spelling"])[5]

    assert largest.server.key == FWM(4294967295)
    assert (udp.server.netmask, udp.server.timeout, udp.server.flags) == (24, 300, P)
    assert flag_three.server.flags == S3
    assert mapped.server.key.address == IPv6Address("::ffff:102:304")


def test_reading_gives_explicit_netmasks_and_no_thresholds() -> None:
    (web,) = parse_rules(RECORDED["tcp-nat-weights-and-thresholds"])

    assert web.server == VirtualServer(TCP("10.0.0.1", 80), "rr", netmask=32)
    assert web.real_servers[1] == rs("10.1.0.2", 8080, 5)


def test_canonical_order_is_the_dump_order_not_ipvsadms() -> None:
    assert canonical_rules(RECORDED["ipvsadm-own-sort-order"]) == [
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


def test_canonical_lines_are_kept_verbatim() -> None:
    lines = canonical_rules(RECORDED["scheduler-flags-by-scheduler"])

    assert "-A -t 10.0.0.7:80 -s mh -b " in lines  # with ipvsadm's trailing space


@pytest.mark.parametrize(
    "text",
    [
        "-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 1\n",  # real server of an undefined service
        "-A -t 10.0.0.1:80 -s rr\n-A -t 10.0.0.1:80 -s wrr\n",  # one service twice
        "-X -t 10.0.0.1:80 -s rr\n",
        "-A -t 10.0.0.1 -s rr\n",
        "-A -x 10.0.0.1:80 -s rr\n",
    ],
)
def test_text_ipvsadm_would_not_print_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        canonical_rules(text)
    with pytest.raises(ValueError, match=r"."):
        parse_rules(text)


@pytest.mark.parametrize(
    "line",
    [
        "-A -t 10.0.0.1:80 -s rr -q",
        "-A -t 10.0.0.1:80 -s rr -M 255.0.255.0",
        "-A -t 10.0.0.1:80 -s sh -b flag-1",
        "-A -t 10.0.0.1:80 -s rr -p",
        "-A -t 10.0.0.1:80 -s rr -p soon",
    ],
)
def test_service_options_ipvsadm_would_not_print_are_refused(line: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_rules(line)


@pytest.mark.parametrize(
    "line",
    [
        "-a -t 10.0.0.1:80 -r 10.1.0.1:80 -x -w 1",
        "-a -t 10.0.0.1:80 -r 10.1.0.1:80 -i -w 1 --tun-type gue --tun-port 6080",
        "-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 1 -x 5",
    ],
)
def test_real_server_options_beyond_the_model_are_refused(line: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_rules(f"-A -t 10.0.0.1:80 -s rr\n{line}\n")


@pytest.mark.parametrize(
    ("address", "spelled"),
    [
        ("::", "::"),
        ("::1", "::1"),
        ("::2", "::2"),
        ("1::", "1::"),
        ("::1.2.3.4", "::1.2.3.4"),
        ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
        ("::ffff:0:0", "::ffff:0.0.0.0"),
        ("::0.1.0.0", "::0.1.0.0"),
        ("0:0:0:0:0:1:0:0", "::1:0:0"),
        ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("1:0:1:0:1:0:1:0", "1:0:1:0:1:0:1:0"),
        ("FD00::AB", "fd00::ab"),
    ],
)
def test_ipv6_addresses_are_spelled_as_glibc_does(address: str, spelled: str) -> None:
    assert inet_ntop6(IPv6Address(address)) == spelled


# --- properties --------------------------------------------------------------------------------

ipv4 = st.integers(0, 2**32 - 1).map(IPv4Address)
ipv6 = st.one_of(
    st.integers(0, 2**128 - 1),
    st.integers(0, 2**32 - 1),  # IPv4-compatible and small addresses
    st.integers(0, 2**32 - 1).map(lambda n: 0xFFFF << 32 | n),  # IPv4-mapped
).map(IPv6Address)
ports = st.integers(0, 65535)
schedulers = st.sampled_from(["rr", "wrr", "sh", "mh", "none", "lblcr"])
flag_sets = st.integers(0, 0x3F).map(lambda bits: ServiceFlag(bits) & ~ServiceFlag.HASHED)


@st.composite
def service_keys(draw: st.DrawFn) -> ServiceKey:
    family = draw(st.sampled_from(Family))
    if draw(st.booleans()):
        return FWM(draw(st.integers(1, 2**32 - 1)), family)
    address = draw(ipv4 if family == Family.INET else ipv6)
    return ServiceKey.for_protocol(draw(st.sampled_from(Protocol)), address, draw(ports))


@st.composite
def tables(draw: st.DrawFn) -> list[ServiceRules]:
    keys = draw(st.lists(service_keys(), max_size=6, unique=True))
    table = []
    for key in keys:
        netmask = draw(st.none() | st.integers(0, full_prefix(key.family)))
        server = VirtualServer(
            key,
            draw(schedulers),
            draw(flag_sets),
            draw(st.integers(0, 2**32 - 1)),
            netmask,
            draw(st.sampled_from(["", "sip"])),
        )
        reals = draw(
            st.lists(
                st.builds(
                    RealServer,
                    address=ipv4 if key.family == Family.INET else ipv6,
                    port=ports,
                    weight=st.integers(0, 2**31 - 1),
                    forward=st.sampled_from(Forward),
                    upper_threshold=st.just(0),
                    lower_threshold=st.just(0),
                ),
                max_size=4,
                unique_by=RealServer.sort_key,
            )
        )
        table.append(ServiceRules(server, tuple(reals)))
    return table


def as_printed(rules: ServiceRules) -> ServiceRules:
    """What survives the text format: the values ipvsadm prints, the rest at its defaults."""
    server = rules.server
    flags = server.flags
    if server.scheduler in ("sh", "mh") and flags & (S1 | S2):
        flags &= ~S3  # printed as just the named flags
    persistent = bool(flags & P)
    printed = replace(
        server,
        flags=flags,
        timeout=server.timeout if persistent else 0,
        netmask=server.effective_netmask if persistent else full_prefix(server.key.family),
    )
    reals = tuple(
        real._replace(forward=Forward.ROUTE) if real.forward == Forward.LOCAL else real
        for real in rules.real_servers
    )
    return ServiceRules(printed, reals)


@given(tables())
def test_reading_rendered_text_gives_back_what_it_shows(table: list[ServiceRules]) -> None:
    assert parse_rules(render_rules(table)) == [as_printed(rules) for rules in table]


@given(tables(), st.randoms(use_true_random=False))
def test_canonical_rules_ignore_the_order_of_services_and_real_servers(
    table: list[ServiceRules], shuffler: random.Random
) -> None:
    shuffled = [
        ServiceRules(
            rules.server, tuple(shuffler.sample(rules.real_servers, len(rules.real_servers)))
        )
        for rules in shuffler.sample(table, len(table))
    ]
    in_dump_order = [
        ServiceRules(rules.server, tuple(sorted(rules.real_servers, key=RealServer.sort_key)))
        for rules in sorted(table, key=lambda rules: rules.server.key.sort_key())
    ]

    assert canonical_rules(render_rules(shuffled)) == rules_lines(in_dump_order)
