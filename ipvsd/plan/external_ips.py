"""Which of a Service's `spec.externalIPs` this proxy serves.

Any user who may write a Service can put any address in `spec.externalIPs`, and every proxy
then answers for it on every node: traffic meant for someone else's address (a DNS server,
another cluster's VIP) is captured (CVE-2020-8554). kube-proxy serves them all unless its
`AllowServiceExternalIPs` feature gate is off (KEP-5707: deprecated in v1.36, planned off by
default in v1.40), and then none. ipvsd follows the gate, and an operator may narrow the
addresses it serves to the ranges that are really routed to the cluster
(`--service-external-ip-range`, as kube-router's flag of that name). Unset, every externalIP
is served, as kube-proxy does.

An address that is not served gets nothing: no virtual server, no address on kube-ipvs0, no
firewall element (all of those derive from the planned virtual servers). The Service gets a
warning saying which address and why: a log line, a Warning Event and a line of `ipvsd
explain`. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ipvsd.model.ipvs import IPAddress
from ipvsd.model.service import IPNetwork


@dataclass(frozen=True, slots=True)
class ExternalIPPolicy:
    """`allowed`: the AllowServiceExternalIPs gate; `ranges`: --service-external-ip-range
    (empty: any address)."""

    allowed: bool = True
    ranges: tuple[IPNetwork, ...] = ()

    def admitted(self, external_ips: Sequence[IPAddress]) -> tuple[IPAddress, ...]:
        """The externalIPs this proxy serves, in the Service's order."""
        if not self.allowed:
            return ()
        if not self.ranges:
            return tuple(external_ips)
        return tuple(ip for ip in external_ips if self._in_ranges(ip))

    def warnings(self, external_ips: Sequence[IPAddress]) -> tuple[str, ...]:
        """Why each externalIP that is not served is not (nothing when all are)."""
        if not external_ips:
            return ()
        if not self.allowed:
            listed = ", ".join(str(ip) for ip in external_ips)
            return (
                f"spec.externalIPs not served ({listed}): the feature gate "
                "AllowServiceExternalIPs is false on this proxy (KEP-5707: externalIPs are "
                "deprecated; use a LoadBalancer Service)",
            )
        if not self.ranges:
            return ()
        ranges = ", ".join(str(network) for network in self.ranges)
        return tuple(
            f"spec.externalIPs: {ip} is outside --service-external-ip-range ({ranges}); it is "
            "not served (no virtual server, address or firewall entry on this node)"
            for ip in external_ips
            if not self._in_ranges(ip)
        )

    def _in_ranges(self, ip: IPAddress) -> bool:
        return any(ip.version == network.version and ip in network for network in self.ranges)
