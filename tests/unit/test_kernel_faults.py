"""The test-only kernel fault switch (`IPVSD_FAULT_KERNEL_RATE`): a seeded share of IPVS,
address and nftables operations fails without being sent; inert unless set. And the nftables
adapter's drift check: a table deleted by hand is loaded again at the next full sync."""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence
from ipaddress import ip_address
from typing import Any

import pytest

from ipvsd.dataplane import nft
from ipvsd.dataplane.addresses import RtnlAddresses
from ipvsd.dataplane.errors import IpvsError
from ipvsd.dataplane.faults import KernelFaults
from ipvsd.dataplane.ipvs import BatchResult
from ipvsd.dataplane.ipvs_netlink import NetlinkIpvs
from ipvsd.model.firewall import Firewall
from ipvsd.model.ipvs import AddService, Family, Operation, ServiceKey, VirtualServer


def test_unset_means_inert() -> None:
    faults = KernelFaults.from_environment({})
    assert not faults.active
    assert not any(faults.fails("op") for _ in range(1000))


def test_the_rate_fails_that_share_in_a_reproducible_sequence() -> None:
    environ = {"IPVSD_FAULT_KERNEL_RATE": "0.1", "IPVSD_FAULT_KERNEL_SEED": "7"}
    first = KernelFaults.from_environment(environ)
    second = KernelFaults.from_environment(environ)
    draws = [first.fails("op") for _ in range(2000)]
    assert draws == [second.fails("op") for _ in range(2000)]
    assert 150 <= sum(draws) <= 250
    assert first.injected == sum(draws)


def operations(count: int) -> list[Operation]:
    return [
        AddService(VirtualServer(ServiceKey(Family.INET, socket.IPPROTO_TCP,
                                            ip_address(f"10.96.0.{i + 1}"), 80), "rr"))
        for i in range(count)
    ]  # fmt: skip


def test_failed_ipvs_operations_are_not_sent_and_answer_enomem() -> None:
    adapter: Any = object.__new__(NetlinkIpvs)
    adapter._kernel_faults = KernelFaults(rate=0.5, seed=3)
    sent: list[Operation] = []

    def send(ops: Sequence[Operation]) -> BatchResult:
        sent.extend(ops)
        return BatchResult(tuple(ops), (None,) * len(ops))

    adapter._send_sync = send
    ops = operations(40)
    result = adapter.apply_sync(ops)

    failed = [op for op, error in zip(ops, result.errors, strict=True) if error is not None]
    assert result.operations == tuple(ops)
    assert 5 <= len(failed) <= 35
    assert sent == [op for op in ops if op not in failed]
    assert {error.errno for _, error in result.failures} == {errno.ENOMEM}


def test_failed_ipvs_dumps_raise() -> None:
    adapter: Any = object.__new__(NetlinkIpvs)
    adapter._kernel_faults = KernelFaults(rate=1.0)
    with pytest.raises(IpvsError, match="injected fault"):
        adapter.dump_sync()


def test_failed_address_changes_are_not_sent_and_answer_enomem(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    faults = KernelFaults(rate=0.5, seed=5)
    monkeypatch.setattr("ipvsd.dataplane.addresses.kernel_faults", lambda: faults)
    sent: list[bytes] = []

    class Netlink:
        def send_batch(self, kind: int, bodies: Sequence[bytes], flags: int) -> list[int]:
            sent.extend(bodies)
            return [0] * len(bodies)

    adapter: Any = object.__new__(RtnlAddresses)
    adapter._netlink = Netlink
    bodies = [bytes([i]) for i in range(40)]
    codes = adapter._send("bind", 20, bodies, 0)

    assert set(codes) == {0, errno.ENOMEM}
    assert sent == [body for body, code in zip(bodies, codes, strict=True) if code == 0]


class FakeNft:
    """`run_nft` recorded; `list tables` answers whether ipvsd's table exists."""

    def __init__(self) -> None:
        self.scripts: list[str] = []
        self.table = False

    async def __call__(self, script: str, *args: str) -> str:
        self.scripts.append(script)
        if script.startswith("list tables"):
            return "table inet other\ntable inet ipvsd\n" if self.table else "table inet other\n"
        self.table = True
        return ""


async def test_a_table_deleted_by_hand_is_loaded_again_at_the_next_apply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeNft()
    monkeypatch.setattr(nft, "run_nft", fake)
    firewall = nft.NftFirewall(faults=KernelFaults())

    assert await firewall.apply(Firewall())  # first load
    assert not await firewall.apply(Firewall())  # unchanged and present: nothing to do
    loads = [s for s in fake.scripts if not s.startswith("list")]
    assert len(loads) == 1

    fake.table = False  # nft delete table inet ipvsd
    assert await firewall.apply(Firewall())
    assert len([s for s in fake.scripts if not s.startswith("list")]) == 2


async def test_failed_nft_transactions_raise_without_running_nft(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeNft()
    monkeypatch.setattr(nft, "run_nft", fake)
    firewall = nft.NftFirewall(faults=KernelFaults(rate=1.0))
    with pytest.raises(nft.NftError, match="injected fault"):
        await firewall.apply(Firewall())
    assert fake.scripts == []
