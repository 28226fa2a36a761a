"""Benchmarks: what only measures the daemon, kept out of the packages the daemon runs.

- `proxy` (parent: emulator and cluster) and `daemon` (the child under measurement):
  cold start, change latency and memory of the whole pipeline (`hack/bench.sh`);
- `informers` with `large_cluster`: the informers alone against the emulator
  (`hack/bench-informer.sh`);
- `netlink`: the IPVS adapter's batch path on a real kernel (`hack/bench-netlink.sh`).
"""
