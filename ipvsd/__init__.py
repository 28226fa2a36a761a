"""ipvsd: a Kubernetes service proxy that programs kernel IPVS."""

__version__ = "0.1.0"
