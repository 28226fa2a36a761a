"""What every `Ipvs` implementation does, checked alike against the fake and the kernel.

A subclass named `Test...` provides two fixtures:
- `ipvs`: the implementation under test, with an empty table and default timeouts, per test;
- `ipvsadm_rules`: a callable, sync or async, returning the current table as canonical
  `ipvsadm -Sn` lines (`ipvsadm_format.canonical_rules`). On the kernel it runs the real
  ipvsadm binary; on the fake it is the fake's own renderer.

Every check of table state goes through both `ipvs.dump()` and `ipvsadm_rules()`, with the
expected values written out by hand from what Debian 12's 6.1 kernel and ipvsadm 1.31 were seen
to do. Run on the kernel, the suite proves the netlink adapter; run on the fake, it proves the
fake keeps the kernel's rules and that its rendering matches the real ipvsadm.
"""

from __future__ import annotations

from tests.contract.batches_contract import BatchContract
from tests.contract.real_servers_contract import RealServerContract
from tests.contract.services_contract import ServiceContract


class IpvsContract(ServiceContract, RealServerContract, BatchContract):
    """Every contract test; subclass it as `Test...` and provide `ipvs` and `ipvsadm_rules`."""
