"""Changing the demo's Service through the API the way the seed document does: `kubectl`.

`Editor.apply` and `Editor.patch` run the real kubectl (the venv's, `ipvsd.testing.kubectl`)
and, when it is missing or not wanted, send the same object or merge patch over HTTP with the
kubeconfig's bearer token.
Either way each returns the command a user would type and what it printed, for the transcript.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shlex
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from ipvsd.testing.kubectl import kubectl_path

_PLURAL = {"svc": "services", "service": "services"}


@dataclass(frozen=True)
class Editor:
    """Writes through kubectl (`kubectl` set) or direct HTTPS, against `kubeconfig`'s server."""

    kubeconfig: Path
    kubectl: str | None

    @classmethod
    def for_kubeconfig(cls, kubeconfig: Path, *, use_kubectl: bool | None = None) -> Editor:
        """The venv's kubectl when `use_kubectl` is True (required) or None (if installed);
        else HTTP."""
        if use_kubectl is False:
            return cls(kubeconfig, None)
        try:
            return cls(kubeconfig, kubectl_path())
        except FileNotFoundError:
            if use_kubectl:
                raise
            return cls(kubeconfig, None)

    @property
    def via(self) -> str:
        return "kubectl" if self.kubectl else "HTTP (no kubectl installed)"

    async def apply(self, document: dict[str, Any]) -> str:
        """`kubectl apply -f -` of `document`; the transcript."""
        if self.kubectl:
            shown = "$ kubectl apply -f echo-service.yaml"
            return await self._kubectl(shown, ["apply", "-f", "-"], yaml.safe_dump(document))
        kind = str(document["kind"]).lower()
        path = f"/api/v1/namespaces/default/{_PLURAL[kind]}"
        await self._http("POST", path, json.dumps(document), "application/json")
        name = document["metadata"]["name"]
        return f"POST {path} ({name})\n{kind}/{name} created"

    async def patch(self, kind: str, name: str, patch: dict[str, Any]) -> str:
        """`kubectl patch <kind> <name> --type merge -p <patch>`; the transcript."""
        text = json.dumps(patch, separators=(",", ":"))
        args = ["patch", kind, name, "--type", "merge", "-p", text]
        shown = "$ kubectl " + " ".join(shlex.quote(a) for a in args)
        if self.kubectl:
            return await self._kubectl(shown, args, None)
        path = f"/api/v1/namespaces/default/{_PLURAL[kind]}/{name}"
        await self._http("PATCH", path, text, "application/merge-patch+json")
        return (
            f"{shown}   (sent as PATCH {path}, application/merge-patch+json)\n{kind}/{name} patched"
        )

    async def _kubectl(self, shown: str, args: list[str], stdin: str | None) -> str:
        assert self.kubectl is not None
        process = await asyncio.create_subprocess_exec(
            self.kubectl, f"--kubeconfig={self.kubeconfig}", *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await process.communicate(stdin.encode() if stdin else None)
        text = output.decode(errors="replace").strip()
        if process.returncode:
            raise RuntimeError(f"{shown} failed ({process.returncode}): {text}")
        return f"{shown}\n{text}"

    async def _http(self, method: str, path: str, body: str, content_type: str) -> None:
        config = yaml.safe_load(self.kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        server = cluster["server"]
        token = config["users"][0]["user"].get("token", "")
        headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
        ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
        connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cadata=ca))
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.request(method, server + path, data=body, headers=headers) as answer,
        ):
            if answer.status >= 300:
                raise RuntimeError(f"{method} {path}: {answer.status} {await answer.text()}")
