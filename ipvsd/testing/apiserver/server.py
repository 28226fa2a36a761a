"""`ApiServer`: the emulator as one object, in-process (tests) or behind the CLI.

    async with ApiServer(service_cidr_v6="fd00:10:96::/112", hint_controller=True) as server:
        server.store.create({...})                       # fixtures without HTTP
        config.load_kube_config(str(server.kubeconfig_path))
        server.faults.fail_next(2, code=429)             # request-level faults
        server.drop_watches(); server.compact()          # server-level faults
        await server.restart()                           # same port, same objects

The server listens on a real socket, HTTPS only as a real API server (`tls.py`: a CA and a
serving certificate for its addresses, made at the first start and kept across restarts), and
writes a kubeconfig with the CA (`certificate-authority-data`) and a bearer token that kubectl,
the official client and ipvsd use unchanged; the CA is also written next to it
(`ca_path`, `<kubeconfig>.ca.crt`). `service_account_dir` makes a pod's service-account
directory (`token`, `ca.crt`, `namespace`) for the in-cluster loader. Requests without a token
are refused with 401 unless `allow_anonymous=True` (`--allow-anonymous`); a wrong token always.

Like a real API server it keeps `default/kubernetes` (Service and EndpointSlice) pointing at
itself (`master_service.py`): every cluster has that Service, so every test and benchmark sees it.

`stop()` then `start()` keeps every object, the resource-version counter and the history (a
restarted etcd-backed API server also serves watches from versions it still has); with a
`state_file`, `stop()` saves the objects as JSON and a new server loads them, starting its
history afresh (older versions get 410).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import shutil
import socket
import ssl
import tempfile
from collections import deque
from pathlib import Path
from typing import Any

import orjson
import yaml
from aiohttp import web

from ipvsd.testing.apiserver import errors as api
from ipvsd.testing.apiserver import master_service, tls
from ipvsd.testing.apiserver.allocators import IPRange, PortRange
from ipvsd.testing.apiserver.control import control_routes
from ipvsd.testing.apiserver.discovery import discovery_document, openapi_document, openapi_root
from ipvsd.testing.apiserver.faults import Faults
from ipvsd.testing.apiserver.handlers import ResourceHandler, json_response
from ipvsd.testing.apiserver.hints import HintController
from ipvsd.testing.apiserver.kinds import simple_strategies
from ipvsd.testing.apiserver.meta import Clock, utc_now
from ipvsd.testing.apiserver.middleware import (
    RequestRecord,
    bearer_auth,
    errors_as_status,
    injected_faults,
    request_log,
)
from ipvsd.testing.apiserver.resources import RESOURCES, SERVICES, by_kind
from ipvsd.testing.apiserver.services import ServiceStrategy
from ipvsd.testing.apiserver.storage import Storage
from ipvsd.testing.apiserver.store import Store
from ipvsd.testing.apiserver.traffic import TrafficMeter
from ipvsd.testing.apiserver.watch import WatchSettings

MAX_BODY = 3 * 1024 * 1024  # the API server's request size limit
CONTEXT = "ipvsd-emulator"
DEFAULT_PORT = 6443  # the kubernetes Service's targetPort until the listening port is known


class ApiServer:
    """A Kubernetes API server emulator over real HTTP (see the module docstring)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        kubeconfig_path: str | Path | None = None,
        service_cidr: str = "10.96.0.0/12",
        service_cidr_v6: str | None = None,
        node_port_range: str = "30000-32767",
        hint_controller: bool = False,
        state_file: str | Path | None = None,
        advertise_address: str | None = None,
        service_account_dir: str | Path | None = None,
        token: str | None = None,
        allow_anonymous: bool = False,
        history_size: int = 10_000,
        bookmark_interval: float = 1.0,
        watch_timeout: float = 1800.0,
        clock: Clock = utc_now,
    ) -> None:
        self.host = host
        self.port = port
        self.allow_anonymous = allow_anonymous
        self.bookmark_interval = bookmark_interval
        self.watch_timeout = watch_timeout
        self.state_file = Path(state_file) if state_file else None
        self.service_cidr = service_cidr
        self._advertise_address = advertise_address
        self.service_account_dir = Path(service_account_dir) if service_account_dir else None
        self._pem: tls.Pem | None = None
        self._server_ssl: ssl.SSLContext | None = None
        self._kubeconfig = Path(kubeconfig_path) if kubeconfig_path else None
        self._scratch: Path | None = None
        ranges = [IPRange(service_cidr)] + ([IPRange(service_cidr_v6)] if service_cidr_v6 else [])
        self.storage = Storage(history_size=history_size)
        self.store = Store(
            self.storage,
            {
                SERVICES: ServiceStrategy(ranges, PortRange.parse(node_port_range)),
                **simple_strategies(),
            },
            clock=clock,
        )
        self.faults = Faults()
        self.token = token or ""
        if self.state_file is not None and self.state_file.exists():
            self._load_state(self.state_file)
        self.token = self.token or secrets.token_urlsafe(24)
        self.store.ensure_initial_namespaces()
        # Before any fixture is loaded, as the API server makes it before it serves anyone.
        master_service.reconcile_service(
            self.store, service_cidr=service_cidr, port=self.port or DEFAULT_PORT
        )
        self.hints = HintController(self.store) if hint_controller else None
        self._records: deque[RequestRecord] = deque(maxlen=10_000)
        self.traffic = TrafficMeter()  # requests and body bytes per client request, live
        self._runner: web.AppRunner | None = None
        self._restarting: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @property
    def ca_path(self) -> Path:
        """The CA that signed the serving certificate, written next to the kubeconfig."""
        return self.kubeconfig_path.with_name(self.kubeconfig_path.name + ".ca.crt")

    def client_ssl_context(self) -> ssl.SSLContext:
        """For a client of this server: trusts this server's CA (and nothing else)."""
        return tls.client_context(self.ca_path)

    @property
    def advertise_address(self) -> str:
        """The address in the `kubernetes` EndpointSlice: as given, else the listening one
        (loopback when listening on every address)."""
        if self._advertise_address:
            return self._advertise_address
        if self.host in ("0.0.0.0", ""):
            return "127.0.0.1"
        return "::1" if self.host == "::" else self.host

    @property
    def kubeconfig_path(self) -> Path:
        if self._kubeconfig is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="ipvsd-apiserver-"))
            self._kubeconfig = self._scratch / "kubeconfig"
        return self._kubeconfig

    @property
    def is_serving(self) -> bool:
        return self._runner is not None

    async def start(self) -> None:
        """Listen (on the same port as before after a stop) and write the kubeconfig."""
        if self._runner is not None:
            return
        runner = web.AppRunner(
            self._application(), handler_cancellation=True, shutdown_timeout=2.0, access_log=None
        )
        await runner.setup()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self.port))
            self.port = listener.getsockname()[1]
            await web.SockSite(runner, listener, ssl_context=self._tls()).start()
        except BaseException:
            listener.close()
            await runner.cleanup()
            raise
        self._runner = runner
        master_service.reconcile(
            self.store,
            service_cidr=self.service_cidr,
            address=self.advertise_address,
            port=self.port,
        )
        self._write_kubeconfig()
        if self.service_account_dir is not None:
            self._write_service_account(self.service_account_dir)

    async def stop(self) -> None:
        """End every watch cleanly, stop listening, and save state when a state file is set."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self.drop_watches(mode="end")
        handlers = runner.server.connections if runner.server is not None else []
        transports = [h.transport for h in handlers if h.transport is not None]
        await runner.cleanup()
        # TLS close waits for the client's close_notify, which an idle pooled connection (the
        # official client's urllib3) never sends: end those sockets now, as a server exit does.
        for transport in transports:
            transport.abort()  # a no-op on those already closed
        if self.state_file is not None:
            self._save_state(self.state_file)

    async def restart(self, down_seconds: float = 0.0) -> None:
        """Stop, stay down `down_seconds` (clients see refused connections), start again."""
        await self.stop()
        await asyncio.sleep(down_seconds)
        await self.start()

    def schedule_restart(self, down_seconds: float) -> None:
        """Restart after the current request has been answered (the HTTP control endpoint)."""
        self._restarting = asyncio.get_running_loop().create_task(self.restart(down_seconds))

    async def __aenter__(self) -> ApiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._restarting is not None:
            await self._restarting
        await self.stop()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    # -- server-level faults ---------------------------------------------------------------------

    def drop_watches(self, *, mode: str = "abort") -> int:
        """End every open watch: "abort" cuts the connection (like a network failure), "end"
        finishes the stream cleanly (like a server-side timeout). Returns how many."""
        if mode not in ("abort", "end"):
            raise ValueError("mode must be 'abort' or 'end'")
        subscriptions = self.storage.subscriptions()
        for subscription in subscriptions:
            subscription.close(mode)
        return len(subscriptions)

    def compact(self, resource_version: int | None = None) -> int:
        """Forget history up to `resource_version` (default: all): older versions get 410."""
        return self.storage.compact(resource_version)

    # -- inspection ------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request served (the last 10,000), oldest first."""
        return list(self._records)

    def clear_requests(self) -> None:
        self._records.clear()

    def state(self) -> dict[str, Any]:
        return {
            "resourceVersion": self.storage.resource_version,
            "oldestResourceVersion": self.storage.oldest_resource_version,
            "watches": len(self.storage.subscriptions()),
            "objects": {rt.plural: self.storage.count(rt) for rt in RESOURCES},
        }

    # -- wiring ----------------------------------------------------------------------------------

    def _watch_settings(self, timeout_seconds: int | None, bookmarks: bool) -> WatchSettings:
        timeout = float(timeout_seconds) if timeout_seconds else self.watch_timeout
        return WatchSettings(timeout, self.bookmark_interval if bookmarks else None)

    def _application(self) -> web.Application:
        resources = ResourceHandler(self.store, self.faults, self._watch_settings)

        async def dispatch(request: web.Request) -> web.StreamResponse:
            path = request.path
            if request.method == "GET":
                document = discovery_document(path, f"{self.host}:{self.port}")
                if document is not None:
                    return json_response(document)
                if path in ("/healthz", "/livez", "/readyz"):
                    return web.Response(text="ok")
                if path.rstrip("/") == "/openapi/v3":
                    return json_response(openapi_root())
                if path.startswith("/openapi/v3/"):
                    document = openapi_document(path.removeprefix("/openapi/v3/"))
                    if document is not None:
                        return json_response(document)
            if path.startswith(("/api/", "/apis/")):
                return await resources.handle(request)
            raise api.path_not_found()

        app = web.Application(
            middlewares=[
                self.traffic.middleware(),
                request_log(self._records),
                errors_as_status,
                bearer_auth(lambda: self.token, allow_anonymous=self.allow_anonymous),
                injected_faults(self.faults),
            ],
            client_max_size=MAX_BODY,
        )
        app.add_routes(control_routes(self))
        app.router.add_route("*", "/{tail:.*}", dispatch)
        return app

    def _tls(self) -> ssl.SSLContext:
        """The serving context, made at the first start and kept: after a restart clients still
        trust the CA they were given."""
        if self._server_ssl is None:
            addresses = [self.advertise_address, master_service.cluster_ip(self.service_cidr)]
            if self.host not in ("0.0.0.0", "::", ""):
                addresses.append(self.host)
            self._pem = tls.certificates(addresses)
            self._server_ssl = tls.server_context(self._pem)
        return self._server_ssl

    def _write_service_account(self, directory: Path) -> None:
        """What the kubelet mounts at /var/run/secrets/kubernetes.io/serviceaccount."""
        assert self._pem is not None
        _write_atomically(directory / "ca.crt", self._pem.ca)
        _write_atomically(directory / "token", self.token.encode())
        _write_atomically(directory / "namespace", b"default")

    def _write_kubeconfig(self) -> None:
        assert self._pem is not None
        _write_atomically(self.ca_path, self._pem.ca)
        cluster = {
            "server": self.url,
            "certificate-authority-data": base64.b64encode(self._pem.ca).decode(),
        }
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": CONTEXT, "cluster": cluster}],
            "users": [{"name": CONTEXT, "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": CONTEXT,
                    "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": "default"},
                }
            ],
            "current-context": CONTEXT,
            "preferences": {},
        }
        _write_atomically(self.kubeconfig_path, yaml.safe_dump(config).encode())

    def _save_state(self, path: Path) -> None:
        body = self.storage.dump()
        _write_atomically(path, b'{"token":' + orjson.dumps(self.token) + b"," + body[1:])

    def _load_state(self, path: Path) -> None:
        saved = orjson.loads(path.read_bytes())
        objects = []
        for document in saved["objects"]:
            resource = by_kind(document.get("apiVersion", ""), document.get("kind", ""))
            if resource is None:
                raise ValueError(f"{path}: unknown object {document.get('kind')!r}")
            objects.append((resource, document))
        self.storage.restore(int(saved["resourceVersion"]), objects)
        self.store.restore_allocations()
        self.token = self.token or str(saved.get("token") or "")


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
    with contextlib.suppress(OSError):
        path.chmod(0o600)
