"""`ServiceInstance`: one running copy of a service, as it crosses the bus and
sits in every backend. Re-exported as `meshgate.discovery.ServiceInstance`."""

from __future__ import annotations

import enum
import math

import msgspec


class InstanceStatus(enum.StrEnum):
    UP = "UP"
    DOWN = "DOWN"
    STARTING = "STARTING"
    OUT_OF_SERVICE = "OUT_OF_SERVICE"
    UNKNOWN = "UNKNOWN"


class ServiceInstance(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One instance of a service.

    >>> inst = ServiceInstance(id="user-1", name="user-service", host="127.0.0.1", port=3001,
    ...                        metadata={"version": "2.0.0", "weight": 80})
    >>> inst.address
    '127.0.0.1:3001'
    """

    id: str
    name: str
    host: str
    port: int
    zone: str | None = None
    tags: tuple[str, ...] = ()
    # version (str) and weight (number) live here, as in the reference
    metadata: dict[str, str | int | float | bool] = {}
    status: InstanceStatus = InstanceStatus.UP
    health_check_path: str = "/health"
    health_check_interval: float = 30.0
    # wall-clock seconds (time.time()), so that they mean the same on every node
    registered_at: float = 0.0
    last_heartbeat: float = 0.0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def version(self) -> str | None:
        version = self.metadata.get("version")
        return None if version is None else str(version)

    @property
    def weight(self) -> float:
        """`metadata["weight"]` as a number; 1 when absent or not a finite positive number."""
        raw = self.metadata.get("weight", 1)
        try:
            weight = float(raw)
        except (TypeError, ValueError):
            return 1.0
        return weight if weight > 0 and math.isfinite(weight) else 1.0
