"""A Kubernetes API server emulator for ipvsd's tests and benchmarks (real HTTP, real clients).

Serves what ipvsd and the tools around it use: discovery and OpenAPI for kubectl; Namespaces,
Services (cluster IP, node port and health-check node port allocation, dual-stack), Endpoint
Slices, Nodes, Pods and Events with get/list/watch/create/update/patch/delete; one global
resource version with a bounded event history (410 Gone past it), bookmarks and streaming
lists; optional EndpointSlice hint writing; injected faults; bearer-token auth.

    python -m ipvsd.testing.apiserver --listen 127.0.0.1:6443 --kubeconfig-out kubeconfig

or in-process: `async with ApiServer() as server: ...` (see `server.py`).
"""

from __future__ import annotations

from ipvsd.testing.apiserver.errors import ApiError
from ipvsd.testing.apiserver.faults import Faults
from ipvsd.testing.apiserver.middleware import RequestRecord
from ipvsd.testing.apiserver.server import ApiServer
from ipvsd.testing.apiserver.store import Store

__all__ = ["ApiError", "ApiServer", "Faults", "RequestRecord", "Store"]
