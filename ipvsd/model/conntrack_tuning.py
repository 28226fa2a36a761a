"""kube-proxy's conntrack settings (its `KubeProxyConntrackConfiguration`), as one value.

The defaults are kube-proxy's v1alpha1 defaults, so a node that ran kube-proxy keeps the same
kernel settings under ipvsd. Zero means "leave the kernel's value as it is" for every field,
as in kube-proxy; `ipvsd.plan.conntrack_sysctls` turns the value into sysctls. It lives here,
below `config` and `plan`, because the first fills it and the second reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_PER_CORE = 32 * 1024
DEFAULT_MIN = 128 * 1024
DEFAULT_TCP_ESTABLISHED_TIMEOUT = 24 * 3600.0  # seconds: one day (a fifth of the kernel's)
DEFAULT_TCP_CLOSE_WAIT_TIMEOUT = 3600.0  # seconds: one hour (kubernetes #32551)


@dataclass(frozen=True, slots=True)
class ConntrackTuning:
    """Entries per CPU and the floor for `nf_conntrack_max`; timeouts in seconds."""

    max_per_core: int = DEFAULT_MAX_PER_CORE
    min: int = DEFAULT_MIN
    tcp_established_timeout: float = DEFAULT_TCP_ESTABLISHED_TIMEOUT
    tcp_close_wait_timeout: float = DEFAULT_TCP_CLOSE_WAIT_TIMEOUT
    tcp_be_liberal: bool = False
    udp_timeout: float = 0.0
    udp_stream_timeout: float = 0.0
