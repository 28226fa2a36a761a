"""Each shipped variant's config reaches an HTTPS API server as it would in a pod.

`ipvsd --dry-run` runs as a process with what the rendered manifest gives the container, against
the API emulator over HTTPS (its own CA, bearer token required): the endpoint variant through
the in-cluster loader (KUBERNETES_SERVICE_HOST/PORT and a service-account directory written by
the emulator, found through IPVSD_SERVICE_ACCOUNT_DIR since this is not a pod), the kubeadm
variant through kubeadm's kubeconfig.conf, whose CA and token files are the service account's.
A table holding the emulator's own `kubernetes` Service proves the lists were read.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from ipvsd.testing.apiserver import ApiServer
from tests.component.apiserver_support import node
from tests.unit.test_deploy_manifests import (
    CONFIG,
    SERVICE_ACCOUNT,
    Pod,
    kubeadm_kube_proxy_configmap,
    render,
)

KUBERNETES_ENTRY = "-A -t 10.96.0.1:443 -s rr"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ApiServer]:
    async with ApiServer(service_account_dir=tmp_path / "serviceaccount") as running:
        running.store.create(node("node-a", zone="zone-a"))
        yield running


async def ipvsd(*argv: str, environ: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ipvsd", *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={"PATH": os.environ.get("PATH", ""), "HOME": "/nonexistent", **environ},
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def write_config(pod: Pod, tmp_path: Path, replace: dict[str, str]) -> Path:
    """The container's --config file, with its in-pod paths moved to where the test has them."""
    text = pod.files()[pod.config_path()]
    for old, new in replace.items():
        text = text.replace(old, new)
    path = tmp_path / "config.conf"
    path.write_text(text)
    return path


async def test_endpoint_variant_uses_the_in_cluster_loader(
    server: ApiServer, tmp_path: Path
) -> None:
    pod = Pod(render(CONFIG / "endpoint"), {})
    environ = pod.environment()
    # What the operator writes into endpoint.env: the API server's own address.
    environ["KUBERNETES_SERVICE_HOST"], environ["KUBERNETES_SERVICE_PORT"] = (
        server.host,
        str(server.port),
    )
    environ["IPVSD_SERVICE_ACCOUNT_DIR"] = str(tmp_path / "serviceaccount")
    config = write_config(pod, tmp_path, {})
    assert yaml.safe_load(config.read_text())["clientConnection"]["kubeconfig"] == ""

    code, out, err = await ipvsd(
        f"--config={config}", "--hostname-override=node-a", "--dry-run", environ=environ
    )
    assert code == 0, err
    assert KUBERNETES_ENTRY in out


async def test_kubeadm_variant_uses_kube_proxys_kubeconfig(
    server: ApiServer, tmp_path: Path
) -> None:
    configmap = kubeadm_kube_proxy_configmap()
    kubeconfig = yaml.safe_load(configmap["data"]["kubeconfig.conf"])
    kubeconfig["clusters"][0]["cluster"]["server"] = server.url  # the control-plane endpoint
    configmap["data"]["kubeconfig.conf"] = yaml.safe_dump(kubeconfig).replace(
        str(SERVICE_ACCOUNT), str(tmp_path / "serviceaccount")
    )
    pod = Pod(render(CONFIG / "kubeadm"), {"kube-proxy": configmap})
    (tmp_path / "kubeconfig.conf").write_text(configmap["data"]["kubeconfig.conf"])
    config = write_config(
        pod, tmp_path, {"/var/lib/kube-proxy/kubeconfig.conf": str(tmp_path / "kubeconfig.conf")}
    )

    code, out, err = await ipvsd(
        f"--config={config}", "--hostname-override=node-a", "--dry-run", environ={}
    )
    assert code == 0, err
    assert KUBERNETES_ENTRY in out


async def test_a_server_outside_the_service_accounts_ca_is_refused(
    server: ApiServer, tmp_path: Path
) -> None:
    """The CA is checked: with another server's CA in ca.crt the in-cluster path fails."""
    async with ApiServer(host="127.0.0.2", kubeconfig_path=tmp_path / "other") as other:
        (tmp_path / "serviceaccount" / "ca.crt").write_bytes(other.ca_path.read_bytes())
    environ = {
        "KUBERNETES_SERVICE_HOST": server.host,
        "KUBERNETES_SERVICE_PORT": str(server.port),
        "IPVSD_SERVICE_ACCOUNT_DIR": str(tmp_path / "serviceaccount"),
    }
    code, _, err = await ipvsd("--hostname-override=node-a", "--dry-run", environ=environ)
    assert code != 0
    assert "certificate" in err.lower(), err
