"""What the firewall kernel tests share: the lab (a pod in the cluster CIDR, an outside
client), the Service `web` with a ClusterIP and an externalIP on port 80 → pod-a:8080, and
the real syncer over the real adapters."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from ipvsd.dataplane.addresses import RtnlAddresses
from ipvsd.dataplane.ipvs_netlink import NetlinkIpvs
from ipvsd.dataplane.nft import NftFirewall
from ipvsd.model.endpoint import EndpointSlice
from ipvsd.model.ipvs import Protocol, parse_address
from ipvsd.model.service import Service, ServicePort, ServiceRef, ServiceType
from ipvsd.reconcile.syncer import Syncer, SyncSettings
from ipvsd.testing.netns import Lab, lab

REF = ServiceRef("default", "web")
CLUSTER_IP, EXTERNAL_IP = "10.96.0.10", "203.0.113.5"
POD_ADDRESS = "10.200.1.2"  # pod-a, inside the cluster CIDR 10.200.1.0/24
DEVICE = "kube-ipvs0"


def firewall_lab() -> Iterator[Lab]:
    """pod-a (10.200.1.2, serving HTTP on 8080) and client (10.200.2.2); IPVS with conntrack,
    without which netfilter NAT never sees IPVS-forwarded packets."""
    subprocess.run(["modprobe", "ip_vs"], check=True)
    subprocess.run(["sysctl", "-qw", "net.ipv4.vs.conntrack=1"], check=True)
    with lab() as created:
        pod = created.add_namespace("pod-a")
        created.add_namespace("client")
        created.serve("pod-a", pod, 8080)
        yield created
    subprocess.run(["ip", "link", "del", DEVICE], check=False)


def web(**changes: object) -> Service:
    base = Service(
        REF, "u", ServiceType.CLUSTER_IP, (parse_address(CLUSTER_IP),),
        (ServicePort("http", Protocol.TCP, 80),), external_ips=(parse_address(EXTERNAL_IP),),
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def kernel_syncer(
    settings: SyncSettings,
    services: Mapping[ServiceRef, Service],
    slices_of: Callable[[ServiceRef], list[EndpointSlice]],
    addresses: RtnlAddresses | None = None,
    **extra: Any,
) -> AsyncIterator[tuple[Syncer, NftFirewall]]:
    """The syncer for node-a over the real IPVS, addresses (these, or a new adapter) and
    nftables, serving `services` as the test changes it; `extra` goes to `Syncer` (routes,
    say). Afterwards the IPVS table and ipvsd's nftables table are gone, the adapters closed."""
    ipvs = await NetlinkIpvs.open()
    addresses = addresses or RtnlAddresses()
    firewall = NftFirewall()
    syncer = Syncer(
        ipvs=ipvs,
        addresses=addresses,
        firewall=firewall,
        settings=settings,
        services=lambda: list(services.values()),
        slices_of=slices_of,
        own_node=lambda: None,
        **extra,
    )
    try:
        yield syncer, firewall
    finally:
        subprocess.run(["ipvsadm", "-C"], check=True)
        await firewall.cleanup()
        await addresses.close()
        await ipvs.close()
