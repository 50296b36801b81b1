"""What every scenario of the tour is given: the cluster's gateway and admin
URLs, an HTTP client, the bus, and the demo services' knobs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from meshgate.bus.connection import Bus
from meshgate.bus.instance import ServiceInstance
from meshgate.discovery.backends.bus_client import RegistryClient

HEALTHY_KNOBS: dict[str, Any] = {"error_rate": 0.0, "latency_ms": 0, "fail_health": False}
"""The knobs every demo service starts with; a scenario puts them back."""


class TourError(Exception):
    """The cluster did not behave as a scenario expects (or is not there)."""


@dataclass
class Tour:
    """The running cluster as the scenarios see it. `gateways` are the
    replicas' proxy URLs (at least one); `admin` one replica's admin URL."""

    gateways: list[str]
    admin: str
    bus: Bus
    http: httpx.AsyncClient

    def say(self, line: str = "") -> None:
        """One line of the scenario's account (flushed: a subprocess reader
        sees progress while a long scenario runs)."""
        print(line, flush=True)

    async def instances(self, service: str) -> list[ServiceInstance]:
        """`service`'s registered instances: `meshgate up` picks free ports,
        so only the registry knows where each listens."""
        found = await RegistryClient(self.bus, timeout=2.0).get_instances(service)
        if not found:
            raise TourError(f"no instance of {service} is registered; is `meshgate up` running?")
        return sorted(found, key=lambda instance: instance.id)

    async def set_knobs(self, instance: ServiceInstance, **knobs: Any) -> None:
        """Change a demo service's runtime knobs (allowed from loopback)."""
        reply = await self.http.post(f"http://{instance.address}/_knobs", json=knobs)
        if reply.status_code != 200:
            raise TourError(
                f"{instance.id} refused knobs {knobs}: {reply.status_code} {reply.text}"
            )

    async def stats(self, instance: ServiceInstance) -> dict[str, int]:
        """A demo service's request counters, ``{"requests", "failures"}``."""
        reply = await self.http.get(f"http://{instance.address}/_stats")
        return dict(reply.json())

    async def admin_get(self, path: str) -> Any:
        """GET `path` on the admin API, decoded."""
        reply = await self.http.get(f"{self.admin}{path}")
        reply.raise_for_status()
        return reply.json()

    async def canary(self, route: str) -> dict[str, Any]:
        """The rollout of `route` as the admin API reports it."""
        statuses = (await self.admin_get(f"/admin/canaries?route={route}"))["canaries"]
        if not statuses:
            raise TourError(f"route {route} has no canary")
        return dict(statuses[0])


def served_by(reply: httpx.Response) -> str:
    """Which version answered: the demo services echo it in their body."""
    try:
        return str(reply.json().get("version", reply.status_code))
    except ValueError:
        return str(reply.status_code)


def tally(labels: Iterable[str]) -> str:
    """``2.0.0 ×7, 1.0.0 ×3``: a distribution on one line, largest first."""
    return ", ".join(f"{label} ×{count}" for label, count in Counter(labels).most_common())
