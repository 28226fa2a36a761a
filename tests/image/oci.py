"""An OCI runtime configuration (runc's config.json) for one container of a pod spec.

What a kubelet with a runc-based runtime does with the fields the DaemonSet uses, so that the
image test runs the container the manifests describe rather than a command line of its own:

- command and args: Kubernetes' rules over the image's ENTRYPOINT and CMD, `$(VAR)` expanded
  from the container's environment (`$$` escapes), as the kubelet does;
- env: `value` (expanded likewise) and `valueFrom.fieldRef` (the caller gives the field values);
  the image's own ENV first;
- hostNetwork: no network namespace and, as in Kubernetes, the node's UTS namespace too;
  hostPID and hostIPC likewise;
- securityContext.privileged: every capability, no seccomp filter, no masked or read-only
  paths, /sys read-write and the node's /dev; otherwise the runtimes' default capabilities plus
  `capabilities.add`;
- volumeMounts: bind mounts of what the caller made of each volume (`subPath`, `readOnly`);
- resources: the memory limit and the CPU request (as cgroup CPU shares).

Not modelled (the DaemonSet does not use them or they need a kubelet): probes (the test polls
them itself), service-account token mounts, /etc/hosts and /etc/resolv.conf management,
the kubelet's service environment variables (KUBERNETES_SERVICE_HOST, ...), user namespaces.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

# Linux capabilities up to CAP_CHECKPOINT_RESTORE (40), the last one in 6.1 kernels.
ALL_CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
]  # fmt: skip

# containerd's default set for unprivileged containers.
DEFAULT_CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]  # fmt: skip

_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: known names replaced, unknown ones left as written."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        return env.get(name, match.group(0))

    return _REFERENCE.sub(replace, text)


def container_env(
    image_env: list[str], container: dict[str, Any], fields: dict[str, str]
) -> dict[str, str]:
    """The process environment: the image's, then the container's in order (each entry may
    refer to those before it)."""
    env = dict(item.split("=", 1) for item in image_env)
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = expand(item["value"], env)
        elif "fieldRef" in item.get("valueFrom", {}):
            path = item["valueFrom"]["fieldRef"]["fieldPath"]
            if path not in fields:
                raise ValueError(f"env {item['name']}: no value given for field {path}")
            env[item["name"]] = fields[path]
        else:
            raise ValueError(f"env {item['name']}: unsupported source {item}")
    return env


def process_args(image_config: dict[str, Any], container: dict[str, Any]) -> list[str]:
    """Kubernetes' rules: `command` replaces ENTRYPOINT (and drops CMD), `args` replaces CMD."""
    command = container.get("command") or image_config.get("Entrypoint") or []
    if "args" in container:
        args = container["args"]
    elif "command" in container:
        args = []
    else:
        args = image_config.get("Cmd") or []
    return [*command, *args]


def quantity_bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(quantity[: -len(suffix)]) * factor
    return int(quantity)


def cpu_shares(quantity: str) -> int:
    millis = int(quantity[:-1]) if quantity.endswith("m") else int(float(quantity) * 1000)
    return max(2, millis * 1024 // 1000)  # the kubelet's MilliCPUToShares


def oci_config(
    *,
    rootfs: Path,
    image_config: dict[str, Any],
    pod_spec: dict[str, Any],
    container: dict[str, Any],
    fields: dict[str, str],
    volume_paths: dict[str, Path],
    cgroups_path: str,
) -> dict[str, Any]:
    """config.json for `container` of `pod_spec`; `volume_paths` maps each volume to the node
    path the caller made of it (a hostPath's path, a folder holding a ConfigMap's files)."""
    env = container_env(image_config.get("Env") or [], container, fields)
    args = [expand(arg, env) for arg in process_args(image_config, container)]
    security = container.get("securityContext", {})
    privileged = bool(security.get("privileged"))
    if privileged:
        capabilities = ALL_CAPABILITIES
    else:
        added = [f"CAP_{name}" for name in security.get("capabilities", {}).get("add", [])]
        capabilities = sorted(set(DEFAULT_CAPABILITIES) | set(added))

    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "rw" if privileged else "ro"]},
    ]  # fmt: skip
    if privileged:
        mounts.append({"destination": "/dev", "type": "bind", "source": "/dev",
                       "options": ["rbind", "rw"]})  # fmt: skip
    else:
        mounts += [
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        ]  # fmt: skip
    for mount in container.get("volumeMounts", []):
        source = volume_paths[mount["name"]]
        if mount.get("subPath"):
            source = source / mount["subPath"]
        mounts.append({
            "destination": mount["mountPath"], "type": "bind", "source": str(source),
            "options": ["rbind", "ro" if mount.get("readOnly") else "rw"],
        })  # fmt: skip

    namespaces = [{"type": "mount"}]
    if not pod_spec.get("hostNetwork"):
        namespaces += [{"type": "network"}, {"type": "uts"}]
    if not pod_spec.get("hostPID"):
        namespaces.append({"type": "pid"})
    if not pod_spec.get("hostIPC"):
        namespaces.append({"type": "ipc"})

    resources: dict[str, Any] = {}
    limits = container.get("resources", {}).get("limits", {})
    requests = container.get("resources", {}).get("requests", {})
    if "memory" in limits:
        resources["memory"] = {"limit": quantity_bytes(limits["memory"])}
    if "cpu" in requests:
        resources["cpu"] = {"shares": cpu_shares(requests["cpu"])}

    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "cgroupsPath": cgroups_path,
        "resources": resources,
    }
    if not privileged:
        linux["maskedPaths"] = ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"]
        linux["readonlyPaths"] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys"]
    # No "seccomp" key: no filter at all (privileged; and the test has no profile to apply).
    return {
        "ociVersion": "1.0.2",
        "root": {"path": str(rootfs), "readonly": bool(security.get("readOnlyRootFilesystem"))},
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": [f"{name}={value}" for name, value in env.items()],
            "cwd": container.get("workingDir") or image_config.get("WorkingDir") or "/",
            "capabilities": dict.fromkeys(("bounding", "effective", "permitted"), capabilities),
            # Kubernetes allows privilege escalation unless the container says otherwise.
            "noNewPrivileges": security.get("allowPrivilegeEscalation") is False,
        },
        "mounts": mounts,
        "linux": linux,
    }
