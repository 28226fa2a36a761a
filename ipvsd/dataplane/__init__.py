"""Kernel I/O: the only code that talks to IPVS, addresses, nftables and sysctls.

Nothing here decides anything: it executes operations planned elsewhere and reports exactly
what the kernel said.
"""
