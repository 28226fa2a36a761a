"""The test-only switches of the IPVS adapter (`ipvsd.dataplane.faults`): inert unless set."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from ipvsd.dataplane.faults import IpvsFaults


def test_nothing_set_means_no_fault_and_no_hold() -> None:
    faults = IpvsFaults.from_environment({})
    assert not faults.flush_on_start
    assert faults.hold_step is None
    faults.reached("dump")  # returns at once


def test_the_switches_are_read_from_the_environment(tmp_path: Path) -> None:
    faults = IpvsFaults.from_environment({
        "IPVSD_FAULT_FLUSH_ON_START": "1",
        "IPVSD_HOLD_AT": "apply:3",
        "IPVSD_HOLD_FILE": str(tmp_path / "hold"),
    })  # fmt: skip
    assert faults.flush_on_start
    assert (faults.hold_step, faults.hold_call) == ("apply", 3)


def test_a_hold_needs_a_known_step_and_a_file(tmp_path: Path) -> None:
    assert IpvsFaults.from_environment({"IPVSD_HOLD_AT": "dump"}).hold_step is None
    unknown = {"IPVSD_HOLD_AT": "plan", "IPVSD_HOLD_FILE": str(tmp_path / "hold")}
    assert IpvsFaults.from_environment(unknown).hold_step is None


def test_the_nth_call_holds_until_the_file_is_removed(tmp_path: Path) -> None:
    hold = tmp_path / "hold"
    faults = IpvsFaults.from_environment({"IPVSD_HOLD_AT": "dump:2", "IPVSD_HOLD_FILE": str(hold)})
    faults.reached("apply")
    faults.reached("dump")  # the first dump passes
    assert not hold.exists()
    released = threading.Event()

    def second_dump() -> None:
        faults.reached("dump")
        released.set()

    worker = threading.Thread(target=second_dump)
    worker.start()
    deadline = time.monotonic() + 5
    while not hold.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert hold.read_text().split()[1] == "dump:2"
    assert not released.wait(0.2)  # held
    hold.unlink()
    assert released.wait(5)
    worker.join()


def test_the_nft_refusal_switch_is_inert_unless_set_and_names_one_vip() -> None:
    from ipaddress import ip_address

    from ipvsd.dataplane.faults import NftFaults
    from ipvsd.dataplane.nft import NftFirewall
    from ipvsd.model.firewall import Firewall

    assert NftFaults.from_environment({}).refuse is None
    refuse = NftFaults.from_environment({"IPVSD_FAULT_NFT_REFUSE": "203.0.113.66"}).refuse
    assert refuse == ip_address("203.0.113.66")
    firewall = NftFirewall(refuse=refuse)
    assert firewall._fault(Firewall(vips=frozenset({ip_address("10.96.0.10")}))) == ""
    assert firewall._fault(Firewall(vips=frozenset({refuse}))) == (
        "add element inet ipvsd refused_by_fault_switch { 203.0.113.66 }\n"
    )
