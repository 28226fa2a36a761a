"""The firewall ledger: per-Service shares counted, only flipped elements reported."""

from __future__ import annotations

from ipvsd.model.firewall import Firewall, FirewallConfig
from ipvsd.model.ipvs import parse_address
from ipvsd.model.service import ServiceRef
from ipvsd.plan.firewall_ledger import FirewallLedger

A, B = ServiceRef("default", "a"), ServiceRef("default", "b")
POD_1, POD_2 = (parse_address("10.244.1.5"), 6, 8080), (parse_address("10.244.1.6"), 6, 8080)


def share(*pods: tuple[object, int, int]) -> Firewall:
    return Firewall(hairpin=frozenset(pods))  # type: ignore[arg-type]


def test_reset_gives_the_union_and_no_changes() -> None:
    ledger = FirewallLedger(FirewallConfig())
    whole = ledger.reset({A: share(POD_1), B: share(POD_1, POD_2)})
    assert whole.hairpin == {POD_1, POD_2}
    assert ledger.take_changes().empty


def test_an_element_shared_by_two_services_goes_with_the_last_of_them() -> None:
    ledger = FirewallLedger(FirewallConfig())
    ledger.reset({A: share(POD_1), B: share(POD_1)})
    ledger.set_part(A, None)
    assert ledger.take_changes().empty
    ledger.set_part(B, None)
    assert ledger.take_changes().removed.hairpin == {POD_1}
    assert ledger.snapshot() == Firewall()


def test_an_element_that_goes_and_comes_back_before_the_sync_is_no_change() -> None:
    ledger = FirewallLedger(FirewallConfig())
    ledger.reset({A: share(POD_1)})
    ledger.set_part(A, None)
    ledger.set_part(B, share(POD_1, POD_2))
    changes = ledger.take_changes()
    assert changes.added.hairpin == {POD_2}
    assert changes.removed.hairpin == frozenset()


def test_changes_carry_the_ledgers_config() -> None:
    config = FirewallConfig(masquerade_all=True)
    ledger = FirewallLedger(config)
    ledger.set_part(A, share(POD_1))
    assert ledger.take_changes().added == Firewall(config=config, hairpin=frozenset({POD_1}))
    assert ledger.take_changes().empty
