"""The hand-packed address requests: the bytes pyroute2 sent before, and batch framing."""

from __future__ import annotations

import errno
import logging
import struct

import pytest

from ipvsd.dataplane.addresses import RTM_NEWADDR, encode_address, failure_report
from ipvsd.dataplane.genl import (
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    NLMSG_HEADER,
    pack_chunks,
)
from ipvsd.model.ipvs import parse_address

# Captured (strace) from pyroute2 0.9's IPRoute.addr("add"/"del", index=1, address=...,
# prefixlen=32/128): ifaddrmsg (family, prefix, flags 0, scope universe, index) + attributes.
PYROUTE2_V4 = bytes.fromhex("02200000 01000000 08000100 0a090909 08000200 0a090909")
PYROUTE2_V6 = bytes.fromhex("0a800000 01000000 14000100 fd000000 00000000 00000000 00000009")


def test_requests_match_what_pyroute2_sent() -> None:
    assert encode_address(parse_address("10.9.9.9"), 1) == PYROUTE2_V4
    assert encode_address(parse_address("fd00::9"), 1) == PYROUTE2_V6


def test_every_request_carries_the_flags_and_only_the_last_of_a_chunk_asks_for_an_ack() -> None:
    bodies = [encode_address(parse_address(f"10.0.0.{i}"), 7) for i in range(3)]
    (chunk,) = pack_chunks(RTM_NEWADDR, bodies, 100, NLM_F_CREATE | NLM_F_EXCL)
    headers = [NLMSG_HEADER.unpack_from(chunk.data, i * 40) for i in range(3)]
    assert [(h[0], h[1], h[3]) for h in headers] == [(40, RTM_NEWADDR, 100 + i) for i in range(3)]
    create = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL
    assert [h[2] for h in headers] == [create, create, create | NLM_F_ACK]
    assert chunk.last_seq == 102
    assert struct.unpack_from("=I", chunk.data, 40 + 16 + 4)[0] == 7  # ifa_index


def test_tolerated_errors_are_no_failure() -> None:
    addresses = [parse_address("10.0.0.1"), parse_address("10.0.0.2")]
    assert failure_report("bind", "kube-ipvs0", addresses, [0, errno.EEXIST], errno.EEXIST) is None


def test_every_failure_is_named_by_address_and_summed_up_in_one_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    addresses = [parse_address(f"10.0.0.{i}") for i in range(1, 15)] + [parse_address("ff02::1")]
    codes = [errno.EPERM] * 14 + [errno.EADDRNOTAVAIL]
    codes[0] = 0
    with caplog.at_level(logging.DEBUG):
        error = failure_report("bind", "kube-ipvs0", addresses, codes, errno.EEXIST)
    assert error is not None
    assert error.errno == errno.EPERM
    assert str(error).startswith("[Errno 1] bind 14 of 15 addresses on kube-ipvs0 failed: ")
    assert "10.0.0.2, " in str(error)
    assert "and 3 more" in str(error)
    assert "Cannot assign requested address: ff02::1" in str(error)
    assert error.refused == {
        **{parse_address(f"10.0.0.{i}"): errno.EPERM for i in range(2, 15)},
        parse_address("ff02::1"): errno.EADDRNOTAVAIL,
    }
    assert caplog.messages == [], "the caller logs (once per address, not on every retry)"
