"""The shipped manifests, rendered by kubectl as an operator would, start ipvsd.

Each variant (`config/kubeadm`, `config/endpoint`, and `config/`, the default) is rendered with
the venv's kubectl (`kubectl kustomize`). From the rendered DaemonSet the test builds the
files the container would see (ConfigMap volumes, the service-account token mount, hostPaths),
then follows what ipvsd reads: the `--config` file (parsed by ipvsd's own parser), the
kubeconfig that file names, and the files that kubeconfig names. Every one must be provided by
a volume, and the API server address must not be a ClusterIP or the `kubernetes` Service's
name: on a new node nothing has programmed that address yet.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from ipvsd.config.command_line import parse_args
from ipvsd.testing.kubectl import kubectl_path

CONFIG = Path(__file__).parents[2] / "config"
EXAMPLE_CONFIG = CONFIG / "kube-proxy-config.example.yaml"
SERVICE_ACCOUNT = PurePosixPath("/var/run/secrets/kubernetes.io/serviceaccount")
# kubeadm's default service CIDR; its first address is the `kubernetes` Service.
SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
IN_CLUSTER_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc")
CONTROL_PLANE = "https://control-plane.example.internal:6443"


def kubeadm_kube_proxy_configmap() -> dict[str, Any]:
    """The ConfigMap `kubeadm init` writes (cmd/kubeadm/app/phases/addons/proxy/manifests.go,
    KubeProxyConfigMap19): a kubeconfig naming the control-plane endpoint and the pod's
    service-account files, and the KubeProxyConfiguration (our example is such a file)."""
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "default",
                "cluster": {
                    "certificate-authority": str(SERVICE_ACCOUNT / "ca.crt"),
                    "server": CONTROL_PLANE,
                },
            }
        ],
        "contexts": [
            {
                "name": "default",
                "context": {"cluster": "default", "namespace": "default", "user": "default"},
            }
        ],
        "current-context": "default",
        "users": [{"name": "default", "user": {"tokenFile": str(SERVICE_ACCOUNT / "token")}}],
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
        "data": {
            "kubeconfig.conf": yaml.safe_dump(kubeconfig),
            "config.conf": EXAMPLE_CONFIG.read_text(),
        },
    }


def render(directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [kubectl_path(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


@dataclass
class Pod:
    """What one rendered variant gives the ipvsd container (files, env, args)."""

    documents: list[dict[str, Any]]
    cluster_configmaps: Mapping[str, dict[str, Any]]  # objects the cluster already has

    @property
    def daemonset(self) -> dict[str, Any]:
        (daemonset,) = [d for d in self.documents if d["kind"] == "DaemonSet"]
        return daemonset

    @property
    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.daemonset["spec"]["template"]["spec"]
        return spec

    @property
    def container(self) -> dict[str, Any]:
        (container,) = self.spec["containers"]
        return container

    def configmap(self, name: str) -> dict[str, Any]:
        for document in self.documents:
            if document["kind"] == "ConfigMap" and document["metadata"]["name"] == name:
                return document
        if name in self.cluster_configmaps:
            return self.cluster_configmaps[name]
        raise AssertionError(f"ConfigMap {name} is neither rendered nor one the cluster has")

    def files(self) -> dict[PurePosixPath, str]:
        """Every file the container sees that a test can name, with its content."""
        volumes = {volume["name"]: volume for volume in self.spec["volumes"]}
        files: dict[PurePosixPath, str] = {}
        for mount in self.container["volumeMounts"]:
            volume = volumes[mount["name"]]
            target = PurePosixPath(mount["mountPath"])
            if "configMap" in volume:
                data = self.configmap(volume["configMap"]["name"])["data"]
                files.update({target / key: value for key, value in data.items()})
            elif "hostPath" in volume:
                files[target] = f"<host {volume['hostPath']['path']}>"
        if self.spec.get("automountServiceAccountToken", True):
            for name in ("token", "ca.crt", "namespace"):
                files[SERVICE_ACCOUNT / name] = f"<service account {name}>"
        return files

    def environment(self) -> dict[str, str]:
        environ: dict[str, str] = {}
        for variable in self.container.get("env", []):
            if "value" in variable:
                environ[variable["name"]] = variable["value"]
            elif "configMapKeyRef" in variable.get("valueFrom", {}):
                ref = variable["valueFrom"]["configMapKeyRef"]
                environ[variable["name"]] = self.configmap(ref["name"])["data"][ref["key"]]
            elif "fieldRef" in variable.get("valueFrom", {}):
                environ[variable["name"]] = "node-a"  # spec.nodeName
        return environ

    def args(self) -> list[str]:
        environ = self.environment()
        args = []
        for arg in self.container["args"]:
            expanded = arg
            for name, value in environ.items():
                expanded = expanded.replace(f"$({name})", value)
            args.append(expanded)
        return args

    def config_path(self) -> PurePosixPath:
        (config,) = [a.split("=", 1)[1] for a in self.args() if a.startswith("--config=")]
        return PurePosixPath(config)


VARIANTS = {
    "kubeadm": CONFIG / "kubeadm",
    "endpoint": CONFIG / "endpoint",
    "default": CONFIG,
}


@pytest.fixture(params=sorted(VARIANTS), scope="module")
def pod(request: pytest.FixtureRequest) -> Pod:
    return Pod(render(VARIANTS[request.param]), {"kube-proxy": kubeadm_kube_proxy_configmap()})


def materialize(files: Mapping[PurePosixPath, str], root: Path) -> None:
    for path, content in files.items():
        target = root / path.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)


def api_address(pod: Pod, tmp_path: Path) -> str:
    """The URL ipvsd uses, found as ipvsd finds it, after checking each file on the way."""
    files = pod.files()
    config_path = pod.config_path()
    assert config_path in files, f"--config {config_path} is not mounted"
    materialize(files, tmp_path)
    args = [
        a.replace(str(config_path), str(tmp_path / config_path.relative_to("/")))
        for a in pod.args()
    ]
    parsed = parse_args(args, environ=pod.environment())
    assert parsed.command == "run"
    assert parsed.warnings == ()
    assert parsed.config.node_name == "node-a"
    if parsed.config.master:
        return parsed.config.master
    if not parsed.config.kubeconfig:
        environ = pod.environment()
        host, port = environ["KUBERNETES_SERVICE_HOST"], environ["KUBERNETES_SERVICE_PORT"]
        for name in ("token", "ca.crt"):
            assert SERVICE_ACCOUNT / name in files, f"in-cluster: {name} is not mounted"
        return f"https://{host}:{port}"
    kubeconfig_path = PurePosixPath(parsed.config.kubeconfig)
    assert kubeconfig_path in files, f"kubeconfig {kubeconfig_path} is not mounted"
    kubeconfig = yaml.safe_load(files[kubeconfig_path])
    ((cluster,), (user,)) = kubeconfig["clusters"], kubeconfig["users"]
    named = [cluster["cluster"].get("certificate-authority"), user["user"].get("tokenFile")]
    named += [user["user"].get(k) for k in ("client-certificate", "client-key")]
    for name in filter(None, named):
        assert PurePosixPath(name) in files, f"{kubeconfig_path} names {name}: not mounted"
    return str(cluster["cluster"]["server"])


def test_every_file_ipvsd_reads_is_mounted_and_the_api_is_not_a_cluster_ip(
    pod: Pod, tmp_path: Path
) -> None:
    url = api_address(pod, tmp_path)
    host = urlsplit(url).hostname or ""
    assert urlsplit(url).scheme == "https", url
    assert host not in IN_CLUSTER_NAMES, url
    assert not host.startswith("kubernetes.default."), url
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return  # a name, resolved by the node's resolver (dnsPolicy Default)
    assert address not in SERVICE_CIDR, f"{url} is a ClusterIP"


def test_names_resolve_without_cluster_dns(pod: Pod) -> None:
    assert pod.spec["hostNetwork"] is True
    assert pod.spec["dnsPolicy"] == "Default"


def test_kubeadm_variant_reads_kube_proxys_files_where_kube_proxy_read_them() -> None:
    """kubeadm's kube-proxy: `--config=/var/lib/kube-proxy/config.conf`, the whole
    `kube-proxy` ConfigMap mounted at /var/lib/kube-proxy."""
    pod = Pod(render(CONFIG / "kubeadm"), {"kube-proxy": kubeadm_kube_proxy_configmap()})
    assert pod.config_path() == PurePosixPath("/var/lib/kube-proxy/config.conf")
    (mount,) = [m for m in pod.container["volumeMounts"] if m["mountPath"] == "/var/lib/kube-proxy"]
    (volume,) = [v for v in pod.spec["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"] == {"name": "kube-proxy"}
    assert not [d for d in pod.documents if d["kind"] == "ConfigMap"], "kubeadm's, not ours"


def test_the_default_variant_is_the_kubeadm_one() -> None:
    assert render(CONFIG) == render(CONFIG / "kubeadm")


def test_host_paths_for_modules_and_the_xtables_lock(pod: Pod) -> None:
    volumes = {v["name"]: v for v in pod.spec["volumes"]}
    mounts = {m["mountPath"]: m for m in pod.container["volumeMounts"]}
    modules = volumes[mounts["/lib/modules"]["name"]]["hostPath"]
    assert modules["path"] == "/lib/modules"
    assert mounts["/lib/modules"]["readOnly"] is True
    lock = volumes[mounts["/run/xtables.lock"]["name"]]["hostPath"]
    assert lock == {"path": "/run/xtables.lock", "type": "FileOrCreate"}
    assert not mounts["/run/xtables.lock"].get("readOnly", False)


def test_probes_use_the_health_endpoints_ipvsd_serves(pod: Pod) -> None:
    assert pod.container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert pod.container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod.container["livenessProbe"]["httpGet"]["port"] == 10256


def _mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "K": 1e3 / 2**20, "M": 1e6 / 2**20}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity.removesuffix(suffix)) * factor
    return float(quantity) / 2**20


def test_memory_fits_the_measured_scale(pod: Pod) -> None:
    """README: 226 MB peak RSS at 10,000 Services x 10 endpoints; about 0.9 GB at 50,000."""
    resources = pod.container["resources"]
    assert 226 <= _mebibytes(resources["requests"]["memory"]) <= 512
    assert _mebibytes(resources["limits"]["memory"]) >= 1024
    assert "cpu" not in resources.get("limits", {}), "a CPU limit throttles the cold start"


def test_endpoint_variant_config_change_rolls_the_pods(tmp_path: Path) -> None:
    """The endpoint variant's ConfigMaps are generated with a content hash in their name, so
    a changed config.conf or endpoint.env changes the pod template (a rollout)."""
    shutil.copytree(CONFIG, tmp_path / "config")
    variant = tmp_path / "config" / "endpoint"
    before = Pod(render(variant), {})
    generated = {d["metadata"]["name"] for d in before.documents if d["kind"] == "ConfigMap"}
    assert {name.rsplit("-", 1)[0] for name in generated} == {"ipvsd", "ipvsd-endpoint"}

    (variant / "config.conf").write_text(
        (variant / "config.conf").read_text().replace("verbosity: 2", "verbosity: 4")
    )
    after_config = Pod(render(variant), {})
    assert after_config.spec != before.spec
    (variant / "endpoint.env").write_text(
        (variant / "endpoint.env").read_text().replace("6443", "443")
    )
    after_endpoint = Pod(render(variant), {})
    assert after_endpoint.spec != after_config.spec
    assert after_endpoint.environment()["KUBERNETES_SERVICE_PORT"] == "443"


def test_endpoint_variant_sets_the_endpoint_over_the_kubelets_values() -> None:
    """Declared in the container's `env` (not only envFrom), both variables win over the ones
    the kubelet injects for the `kubernetes` Service."""
    pod = Pod(render(CONFIG / "endpoint"), {})
    names = [variable["name"] for variable in pod.container["env"]]
    assert {"KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"} <= set(names)
