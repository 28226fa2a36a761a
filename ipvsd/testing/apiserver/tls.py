"""The emulator's TLS: a throwaway CA and a serving certificate, made with the openssl CLI.

A real API server serves HTTPS only, and clients behave differently without it (kubectl sends
no credentials to a plain-http server at all), so the emulator serves HTTPS too. The
certificate names what clients dial: the listening and advertised addresses, loopback, the
`kubernetes` Service's ClusterIP and its DNS names, as kubeadm's apiserver certificate does.

The `cryptography` package is not installed (nothing ipvsd needs depends on it), so the
openssl command line makes the keys: P-256, three runs, about 20 ms on the host. A process
keeps what it made per set of names, so the hundreds of emulators a test run starts cost one
CA; every server still gets its own files.
"""

from __future__ import annotations

import ssl
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
DAYS = 3650


@dataclass(frozen=True, slots=True)
class Pem:
    """A CA certificate, and a serving certificate it signed with its key."""

    ca: bytes
    certificate: bytes
    key: bytes


_made: dict[tuple[str, ...], Pem] = {}
_lock = threading.Lock()


def subject_alt_names(addresses: list[str]) -> tuple[str, ...]:
    """`IP:...` for each distinct address (plus loopback) and `DNS:...` for the names."""
    ips = dict.fromkeys(str(ip_address(a)) for a in [*addresses, "127.0.0.1", "::1"])
    return (*(f"IP:{ip}" for ip in ips), *(f"DNS:{name}" for name in DNS_NAMES))


def certificates(addresses: list[str]) -> Pem:
    """A CA and a serving certificate for `addresses` (made once per process per name set)."""
    names = subject_alt_names(addresses)
    with _lock:
        if names not in _made:
            _made[names] = _make(names)
        return _made[names]


def _openssl(*args: str, cwd: str) -> None:
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def _make(names: tuple[str, ...]) -> Pem:
    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    with tempfile.TemporaryDirectory(prefix="ipvsd-emulator-tls-") as directory:
        _openssl(
            "req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", str(DAYS),
            "-subj", "/CN=ipvsd-emulator-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=directory,
        )  # fmt: skip
        _openssl(
            "req", "-new", *key, "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=kube-apiserver",
            cwd=directory,
        )  # fmt: skip
        Path(directory, "server.ext").write_text(
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            "authorityKeyIdentifier=keyid,issuer\n"
            "subjectKeyIdentifier=hash\n"
            f"subjectAltName={','.join(names)}\n"
        )
        _openssl(
            "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", str(DAYS), "-out", "server.crt",
            "-extfile", "server.ext",
            cwd=directory,
        )  # fmt: skip
        ca, certificate, key_pem = (
            Path(directory, name).read_bytes() for name in ("ca.crt", "server.crt", "server.key")
        )
        return Pem(ca=ca, certificate=certificate, key=key_pem)


def server_context(pem: Pem) -> ssl.SSLContext:
    """What the listener serves with (the files exist only while the context loads them)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory(prefix="ipvsd-emulator-tls-") as directory:
        certificate, key = Path(directory, "server.crt"), Path(directory, "server.key")
        certificate.write_bytes(pem.certificate)
        key.touch(mode=0o600)
        key.write_bytes(pem.key)
        context.load_cert_chain(certificate, key)
    return context


def client_context(ca: Path) -> ssl.SSLContext:
    """What a client of this server verifies with (only this CA)."""
    return ssl.create_default_context(cafile=str(ca))
