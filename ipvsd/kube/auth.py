"""Where the API server is and how to prove who we are, from the `kubernetes` package's loaders.

The official client's config loaders already know every credential source users bring:
kubeconfig files (tokens, token files, client certificates, CA bundles, exec credential
plugins), the in-cluster service account, `--master` overrides. ipvsd reuses them and reads
only the resulting `kubernetes.client.Configuration`, turning it into what aiohttp needs: a
base URL, an SSLContext and an Authorization header value.

This is the only module that touches those untyped library surfaces; the rest of the package
sees the typed `Credentials` class.

Tokens change under a running proxy: the kubelet rotates projected service-account tokens
(hourly) and exec plugins hand out short-lived ones. `authorization()` runs the loader's own
refresh hook on every call (it re-reads the token file once a minute, re-runs an expired exec
plugin), and the client calls `reload()` after a 401 to load everything again at once.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes.client import Configuration
from kubernetes.config import incluster_config as _incluster_config
from kubernetes.config import kube_config as _kube_config
from kubernetes.config.config_exception import ConfigException

# The loaders carry no annotations; these names keep that untyped surface to this module.
incluster_config: Any = _incluster_config
kube_config: Any = _kube_config

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_DIR_ENV = "IPVSD_SERVICE_ACCOUNT_DIR"  # a test seam: see _in_cluster


class CredentialsError(Exception):
    """No usable API server address or credentials could be loaded."""


class KubeconfigMissing(CredentialsError):
    """The kubeconfig file given (or in $KUBECONFIG) does not exist or is not a file."""


class NoApiServer(CredentialsError):
    """Nothing says where the API server is: no kubeconfig, no --master, not in a pod."""


@dataclass(frozen=True, slots=True)
class Transport:
    """What each request needs besides the Authorization header (rebuilt on `reload`)."""

    base_url: str
    ssl: ssl.SSLContext | None  # None for plain http://
    server_hostname: str | None = None  # TLS server name when it differs from the URL's host
    proxy: str | None = None


class Credentials:
    """An API server address plus a refreshable identity, built by one of the library's loaders.

    `load` produces a fresh `kubernetes.client.Configuration`; it is called once now and again
    by `reload()`. Thread-safe, because the client runs `authorization()` and `reload()` in a
    worker thread (an exec plugin is a subprocess that may take a while).
    """

    def __init__(self, *, load: Callable[[], Any], source: str) -> None:
        self.source = source
        self._load = load
        self._lock = threading.Lock()
        self._configuration: Any = None
        self.transport = self._reload_locked()

    def authorization(self) -> str | None:
        """The Authorization header value, refreshed as the loader's refresh hook decides."""
        with self._lock:
            try:
                value = self._configuration.get_api_key_with_prefix(
                    "BearerToken", alias="authorization"
                )
            except (ConfigException, OSError) as error:  # e.g. the token file vanished
                raise CredentialsError(f"{self.source}: {error}") from error
        return value.strip() if isinstance(value, str) and value.strip() else None

    def reload(self) -> None:
        """Load everything again (after a 401: a rotated token, a renewed client certificate)."""
        with self._lock:
            self.transport = self._reload_locked()

    def _reload_locked(self) -> Transport:
        try:
            configuration = self._load()
            transport = _transport_from(configuration)
        except (ConfigException, OSError, ssl.SSLError, ValueError) as error:
            raise CredentialsError(f"{self.source}: {error}") from error
        self._configuration = configuration
        return transport


def load_credentials(
    *, kubeconfig: str | None = None, master: str | None = None, context: str | None = None
) -> Credentials:
    """Credentials the way kube-proxy finds them (client-go's BuildConfigFromFlags).

    - `kubeconfig` given: that file (and `context`), with `master` overriding its server;
    - only `master`: that URL, unauthenticated (a local insecure port or a proxy);
    - neither: the in-cluster service account when running in a pod, else `$KUBECONFIG` or
      `~/.kube/config` for a developer's machine.

    `KubeconfigMissing` for a kubeconfig path that is not a file (the loader would report it
    as "Invalid kube-config file"), `NoApiServer` when none of the above applies.
    """
    if kubeconfig:
        if not Path(kubeconfig).is_file():
            raise KubeconfigMissing(f"kubeconfig {kubeconfig} not found")
        return Credentials(
            load=lambda: _from_kubeconfig(kubeconfig, context, master), source=kubeconfig
        )
    if master:
        return Credentials(load=lambda: Configuration(host=master.rstrip("/")), source=master)
    if os.environ.get(incluster_config.SERVICE_HOST_ENV_NAME):
        return Credentials(load=_in_cluster, source="in-cluster service account")
    from_environment = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    default = from_environment or str(Path.home() / ".kube" / "config")
    if Path(default).is_file():
        return Credentials(load=lambda: _from_kubeconfig(default, context, None), source=default)
    if from_environment:
        raise KubeconfigMissing(f"kubeconfig {from_environment} (from $KUBECONFIG) not found")
    raise NoApiServer(
        "no API server configured: not in a pod (KUBERNETES_SERVICE_HOST unset), "
        f"no --kubeconfig, no --master and no {default}"
    )


def _from_kubeconfig(path: str, context: str | None, master: str | None) -> Any:
    configuration = Configuration()
    kube_config.load_kube_config(
        config_file=path,
        context=context,
        client_configuration=configuration,
        persist_config=False,
    )
    if master:
        configuration.host = master.rstrip("/")
    return configuration


def _in_cluster() -> Any:
    """The pod's service account; the loader's hook re-reads the token file every minute.

    `IPVSD_SERVICE_ACCOUNT_DIR` names another directory than the one the kubelet mounts
    (/var/run/secrets/kubernetes.io/serviceaccount): tests run ipvsd's in-cluster path, as a
    process, outside a pod. Nothing sets it in a pod."""
    directory = os.environ.get(SERVICE_ACCOUNT_DIR_ENV)
    configuration = Configuration()
    loader = incluster_config.InClusterConfigLoader(
        token_filename=(
            os.path.join(directory, "token")
            if directory
            else incluster_config.SERVICE_TOKEN_FILENAME
        ),
        cert_filename=(
            os.path.join(directory, "ca.crt")
            if directory
            else incluster_config.SERVICE_CERT_FILENAME
        ),
        try_refresh_token=True,
    )
    loader.load_and_set(configuration)
    return configuration


def _transport_from(configuration: Any) -> Transport:
    host = str(configuration.host or "").rstrip("/")
    if not host.startswith(("http://", "https://")):
        raise ValueError(f"API server address {host!r} is not an http(s) URL")
    context = _ssl_context(configuration) if host.startswith("https://") else None
    return Transport(
        base_url=host,
        ssl=context,
        server_hostname=getattr(configuration, "tls_server_name", None) or None,
        proxy=configuration.proxy or None,
    )


def _ssl_context(configuration: Any) -> ssl.SSLContext:
    """Verification as the Configuration says: its CA bundle, client certificate and key."""
    context = ssl.create_default_context(
        cafile=configuration.ssl_ca_cert or None,
        cadata=_text(getattr(configuration, "ca_cert_data", None)),
    )
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file or None)
    if not configuration.verify_ssl:
        log.warning("TLS verification of the API server is disabled (insecure-skip-tls-verify)")
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode()
    return value if isinstance(value, str) and value else None
