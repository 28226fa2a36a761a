"""Inside the VM: ipvsd's adapter programs a virtual server; real requests show round robin.

Run by hack/demo.sh. Two backend namespaces serve HTTP; a client namespace sends requests to
the virtual IP; IPVS (programmed only through ipvsd's netlink adapter) balances them. Prints
the answers per backend and `ipvsadm -Ln --stats`, and exits non-zero if the split is not even.
"""

import subprocess
import sys
import time
from collections import Counter

from ipvsd.dataplane.ipvs_netlink import NetlinkIpvs
from ipvsd.model.ipvs import AddRealServer, AddService, RealServer, ServiceKey, VirtualServer
from ipvsd.testing.netns import http_get, lab

VIP, PORT, REQUESTS = "10.96.0.10", 80, 20


def main() -> int:
    subprocess.run(["modprobe", "ip_vs"], check=True)
    ipvs = NetlinkIpvs.open_sync()
    key = ServiceKey.tcp(VIP, PORT)
    with lab() as net:
        backends = [net.add_namespace(name) for name in ("pod-a", "pod-b")]
        net.add_namespace("client")
        for name, address in zip(("pod-a", "pod-b"), backends, strict=True):
            net.serve(name, address, 5678)
        net.bind_vip(VIP)
        ops = [AddService(VirtualServer(key, "rr"))]
        ops += [AddRealServer(key, RealServer.of(address, 5678)) for address in backends]
        ipvs.apply_sync(ops).raise_first()
        answers = Counter(http_get("client", VIP, PORT).split()[0] for _ in range(REQUESTS))
        print(f"{REQUESTS} requests from namespace 'client' to {VIP}:{PORT}:")
        for pod, count in sorted(answers.items()):
            print(f"  {pod}: {count}")
        time.sleep(2.5)  # the kernel folds per-CPU counters into what it reports every 2 s
        stats = ["ipvsadm", "-Ln", "--stats"]
        print(subprocess.run(stats, check=True, capture_output=True, text=True).stdout)
        even = sorted(answers.values()) == [REQUESTS // 2] * 2
        print("round robin split evenly: " + ("PASS" if even else "FAIL"))
    ipvs.close_sync()
    return 0 if even else 1


if __name__ == "__main__":
    sys.exit(main())
