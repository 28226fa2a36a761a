"""Helpers and names shared by the IPVS contract classes (see ipvs_contract.py)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from ipvsd.dataplane.errors import IpvsError
from ipvsd.dataplane.ipvs import BatchResult, Ipvs
from ipvsd.model.ipvs import (
    ObservedRealServer,
    ObservedVirtualServer,
    Operation,
    RealServer,
    ServiceFlag,
    ServiceKey,
    VirtualServer,
    parse_address,
)

RulesReader = Callable[[], Awaitable[list[str]] | list[str]]

HASHED = ServiceFlag.HASHED
PERSISTENT = ServiceFlag.PERSISTENT
ONEPACKET = ServiceFlag.ONEPACKET
SCHED1, SCHED2, SCHED3 = ServiceFlag.SCHED1, ServiceFlag.SCHED2, ServiceFlag.SCHED3

WEB = ServiceKey.tcp("10.0.0.1", 80)
WEB6 = ServiceKey.tcp("fd00::1", 443)


def observed(server: VirtualServer, *real_servers: RealServer) -> ObservedVirtualServer:
    """A service as dumped right after it was programmed: zero counters, real servers sorted."""
    reals = sorted(real_servers, key=RealServer.sort_key)
    return ObservedVirtualServer(server, tuple(ObservedRealServer(real) for real in reals))


def backend(address: str, port: int, weight: int = 1, **options: Any) -> RealServer:
    """A real server from its address text; `options` are RealServer's keyword fields."""
    return RealServer(parse_address(address), port, weight, **options)


async def read_rules(ipvsadm_rules: RulesReader) -> list[str]:
    rules = ipvsadm_rules()
    if inspect.isawaitable(rules):
        rules = await rules
    return list(rules)


async def apply_ok(ipvs: Ipvs, *operations: Operation) -> None:
    result = await ipvs.apply(operations)
    assert result.ok, result.failures


async def expect_table(
    ipvs: Ipvs,
    ipvsadm_rules: RulesReader,
    dump: list[ObservedVirtualServer],
    rules: list[str],
) -> None:
    assert await ipvs.dump() == dump
    assert await read_rules(ipvsadm_rules) == rules


def assert_refused(result: BatchResult, index: int, cls: type[IpvsError], code: int) -> None:
    error = result.errors[index]
    assert type(error) is cls, f"operation {index}: expected {cls.__name__}, got {error!r}"
    assert error.errno == code, f"operation {index}: errno {error.errno}, expected {code}"
