"""Events on Services: where operators look first (`kubectl describe svc`).

An invalid annotation never breaks a Service (the default is used), but it must not pass
silently either: the warning is logged and recorded as an Event on the Service, once per
distinct message for as long as the Service (by uid) keeps it, so periodic syncs don't flood
the API. Posting is best effort: a failure is logged and the proxy goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from ipvsd.kube.client import ApiError, ApiUnreachable
from ipvsd.model.service import Service

log = logging.getLogger(__name__)


class Poster(Protocol):
    async def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]: ...


class EventRecorder:
    def __init__(
        self,
        *,
        client: Poster,
        node_name: str,
        component: str = "ipvsd",
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._node = node_name
        self._component = component
        self._now = now
        # (Service uid, type, reason) -> the messages recorded
        self._recorded: dict[tuple[str, str, str], frozenset[str]] = {}

    async def warn(self, service: Service, reason: str, messages: Iterable[str]) -> int:
        """Record each new warning of `service`; returns how many Events were posted."""
        return await self._record(service, "Warning", reason, messages)

    async def notice(self, service: Service, reason: str, messages: Iterable[str]) -> int:
        """Record each new Normal Event (something ipvsd decided that users should know)."""
        return await self._record(service, "Normal", reason, messages)

    async def _record(
        self, service: Service, kind: str, reason: str, messages: Iterable[str]
    ) -> int:
        wanted = frozenset(messages)
        recorded = (service.uid, kind, reason)
        fresh = wanted - self._recorded.get(recorded, frozenset())
        self._recorded[recorded] = wanted
        posted = 0
        for message in sorted(fresh):
            try:
                await self._client.post_json(
                    f"/api/v1/namespaces/{service.ref.namespace}/events",
                    self._event(service, kind, reason, message),
                )
                posted += 1
            except (ApiError, ApiUnreachable) as error:
                log.warning("cannot record Event on Service %s: %s", service.ref, error)
        return posted

    def _event(self, service: Service, kind: str, reason: str, message: str) -> dict[str, Any]:
        stamp = self._now().strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{service.ref.name}.",
                "namespace": service.ref.namespace,
            },
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Service",
                "namespace": service.ref.namespace,
                "name": service.ref.name,
                "uid": service.uid,
            },
            "type": kind,
            "reason": reason,
            "message": message,
            "source": {"component": self._component, "host": self._node},
            "reportingComponent": self._component,
            "reportingInstance": self._node,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
