"""Credentials as the official client's loaders produce them, used by ipvsd's aiohttp client:
kubeconfig tokens, client certificates with a CA, in-cluster service accounts whose token
rotates, exec plugins, --master."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from ipvsd.kube import auth
from ipvsd.kube.auth import CredentialsError, load_credentials
from ipvsd.kube.client import ApiClient, ApiUnreachable
from tests.component.scripted_api import Responder, json_body, scripted_api, status

pytestmark = pytest.mark.timeout(20)

EMPTY_LIST = {"kind": "ServiceList", "metadata": {"resourceVersion": "1"}, "items": []}


@dataclass(frozen=True)
class Pki:
    """A throwaway CA with a server certificate for 127.0.0.1 and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def server_context(self, *, require_client_cert: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.server_cert, self.server_key)
        if require_client_cert:
            context.load_verify_locations(self.ca)
            context.verify_mode = ssl.CERT_REQUIRED
        return context


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _issue(directory: Path, name: str, subject: str, extensions: str) -> None:
    (directory / f"{name}.ext").write_text(extensions)
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject,
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "1", "-out", f"{name}.crt", "-extfile", f"{name}.ext",
        cwd=directory,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Made with the openssl CLI (the `cryptography` package is not a dependency)."""
    directory = tmp_path_factory.mktemp("pki")
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=ipvsd-test-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    leaf = "basicConstraints=CA:FALSE\nauthorityKeyIdentifier=keyid,issuer\n"
    _issue(
        directory,
        "server",
        "/CN=127.0.0.1",
        leaf + "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    _issue(
        directory,
        "client",
        "/CN=ipvsd-node-a/O=system:nodes",
        leaf + "extendedKeyUsage=clientAuth\n",
    )
    return Pki(
        ca=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
    )


def write_kubeconfig(path: Path, server: str, user: dict[str, Any], **cluster: Any) -> str:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server, **cluster}}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "ctx",
            }
        )
    )
    return str(path)


def accepting(token: str) -> Responder:
    """200 for `Authorization: Bearer <token>` (any case of the scheme), else 401."""

    async def respond(request: web.Request, closing: asyncio.Event) -> web.StreamResponse:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and value == token:
            return await json_body(EMPTY_LIST)(request, closing)
        return await status(401, "Unauthorized")(request, closing)

    return respond


async def list_services(credentials: auth.Credentials) -> dict[str, Any]:
    async with ApiClient(credentials=credentials) as client:
        return await client.get_json("/api/v1/services", {})


# --- kubeconfig -------------------------------------------------------------------------------


async def test_kubeconfig_token_is_sent_as_bearer(tmp_path: Path) -> None:
    async with scripted_api(accepting("s3cret")) as api:
        path = write_kubeconfig(tmp_path / "config", api.url, {"token": "s3cret"})

        assert await list_services(load_credentials(kubeconfig=path)) == EMPTY_LIST

    assert api.requests[0].headers["Authorization"] == "Bearer s3cret"


async def test_master_overrides_the_kubeconfig_server(tmp_path: Path) -> None:
    async with scripted_api(accepting("s3cret")) as api:
        path = write_kubeconfig(tmp_path / "config", "http://192.0.2.1:1", {"token": "s3cret"})

        credentials = load_credentials(kubeconfig=path, master=api.url + "/")
        assert credentials.transport.base_url == api.url
        assert await list_services(credentials) == EMPTY_LIST


async def test_master_alone_is_used_without_credentials() -> None:
    async with scripted_api(json_body(EMPTY_LIST)) as api:
        assert await list_services(load_credentials(master=api.url)) == EMPTY_LIST

    assert "Authorization" not in api.requests[0].headers


async def test_client_certificate_and_ca_bundle(tmp_path: Path, pki: Pki) -> None:
    """The CA as inline data (the loader writes it to a file), the client pair as files."""
    seen: list[Any] = []

    async def respond(request: web.Request, closing: asyncio.Event) -> web.StreamResponse:
        assert request.transport is not None
        seen.append(request.transport.get_extra_info("peercert"))
        return await json_body(EMPTY_LIST)(request, closing)

    server_context = pki.server_context(require_client_cert=True)
    async with scripted_api(respond, ssl_context=server_context) as api:
        path = write_kubeconfig(
            tmp_path / "config",
            api.url,
            {"client-certificate": str(pki.client_cert), "client-key": str(pki.client_key)},
            **{"certificate-authority-data": base64.b64encode(pki.ca.read_bytes()).decode()},
        )

        assert await list_services(load_credentials(kubeconfig=path)) == EMPTY_LIST

    subject = dict(pair[0] for pair in seen[0]["subject"])
    assert subject["commonName"] == "ipvsd-node-a"


async def test_a_server_outside_the_ca_bundle_is_refused(tmp_path: Path, pki: Pki) -> None:
    other_ca = tmp_path / "other-ca.crt"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "other-ca.key", "-out", "other-ca.crt", "-days", "1", "-subj", "/CN=other",
        cwd=tmp_path,
    )  # fmt: skip
    async with scripted_api(json_body(EMPTY_LIST), ssl_context=pki.server_context()) as api:
        path = write_kubeconfig(
            tmp_path / "config",
            api.url,
            {"token": "t"},
            **{"certificate-authority": str(other_ca)},
        )

        with pytest.raises(ApiUnreachable, match="certificate"):
            await list_services(load_credentials(kubeconfig=path))


def test_insecure_skip_tls_verify_turns_verification_off(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "config",
        "https://127.0.0.1:6443",
        {"token": "t"},
        **{"insecure-skip-tls-verify": True},
    )

    context = load_credentials(kubeconfig=path).transport.ssl

    assert context is not None
    assert context.verify_mode == ssl.CERT_NONE
    assert context.check_hostname is False


async def test_exec_plugin_token_is_fetched_again_after_a_401(tmp_path: Path) -> None:
    """The plugin hands out token-1, then token-2; the server only takes token-2."""
    plugin = tmp_path / "plugin.sh"
    counter = tmp_path / "runs"
    plugin.write_text(
        "#!/bin/sh\n"
        f'n=$(( $(cat "{counter}" 2>/dev/null || echo 0) + 1 )); echo "$n" > "{counter}"\n'
        'printf \'{"apiVersion":"client.authentication.k8s.io/v1beta1",'
        '"kind":"ExecCredential","status":{"token":"token-%s"}}\' "$n"\n'
    )
    plugin.chmod(0o755)
    exec_user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": str(plugin),
            "interactiveMode": "Never",
        }
    }
    async with scripted_api(accepting("token-2"), accepting("token-2")) as api:
        path = write_kubeconfig(tmp_path / "config", api.url, exec_user)

        assert await list_services(load_credentials(kubeconfig=path)) == EMPTY_LIST

    assert [r.headers["Authorization"] for r in api.requests] == [
        "Bearer token-1",
        "Bearer token-2",
    ]


# --- in-cluster -------------------------------------------------------------------------------


@pytest.fixture
def service_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pki: Pki) -> Path:
    """A pod's service account directory, pointed at by the loader's env and paths."""
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    (directory / "token").write_text("token-1")
    (directory / "ca.crt").write_bytes(pki.ca.read_bytes())
    monkeypatch.setattr(auth.incluster_config, "SERVICE_TOKEN_FILENAME", str(directory / "token"))
    monkeypatch.setattr(auth.incluster_config, "SERVICE_CERT_FILENAME", str(directory / "ca.crt"))
    return directory


async def test_in_cluster_uses_the_service_account_and_rereads_a_rotated_token(
    service_account: Path, monkeypatch: pytest.MonkeyPatch, pki: Pki
) -> None:
    async with scripted_api(
        accepting("token-1"),
        accepting("token-2"),  # rotated meanwhile: the old token is refused
        accepting("token-2"),
        ssl_context=pki.server_context(),
    ) as api:
        host, port = api.url.removeprefix("https://").split(":")
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
        credentials = load_credentials()
        assert credentials.source == "in-cluster service account"

        async with ApiClient(credentials=credentials) as client:
            await client.get_json("/api/v1/services", {})
            (service_account / "token").write_text("token-2")
            await client.get_json("/api/v1/services", {})

    assert [r.headers["Authorization"] for r in api.requests] == [
        "bearer token-1",
        "bearer token-1",
        "bearer token-2",
    ]


def test_in_cluster_without_the_token_file_is_a_clear_error(
    service_account: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (service_account / "token").unlink()
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")

    with pytest.raises(CredentialsError, match=r"in-cluster service account: .*token"):
        load_credentials()


def test_nothing_configured_says_what_was_tried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))

    with pytest.raises(CredentialsError, match="no API server configured"):
        load_credentials()


def test_the_default_kubeconfig_is_used_outside_a_pod(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    path = write_kubeconfig(tmp_path / "dev-config", "http://127.0.0.1:8080", {"token": "t"})
    monkeypatch.setenv("KUBECONFIG", path)

    credentials = load_credentials()

    assert credentials.transport.base_url == "http://127.0.0.1:8080"
    assert credentials.authorization() == "Bearer t"
    assert json.dumps(credentials.source) == json.dumps(path)
