"""`ConsulRegistryBackend`: registrations in Consul, through the documented
agent HTTP API (https://developer.hashicorp.com/consul/api-docs/agent).

How the protocol maps onto Consul:

- `register` → ``PUT /v1/agent/service/register?replace-existing-checks=true``
  with one TTL check, ``CheckID`` ``service:<id>``, whose TTL is the lease,
  then ``PUT /v1/agent/check/<verb>/service:<id>`` to record the status.
  Consul marks the check critical when the TTL runs out and removes the
  service itself ``deregister_critical_after`` later, which is why `expire`
  has nothing to do and returns ``[]``: Consul does not report what it reaped.
- `heartbeat` / `set_status` → ``PUT /v1/agent/check/pass|warn|fail/service:<id>``.
  Consul's TTL check carries liveness and health at once and every one of
  these calls resets the TTL, so a heartbeat re-sends the recorded status
  (it must not turn a DOWN instance UP) and a status report renews the lease.
  The ``note`` of each call (the check's ``Output``) records the exact status
  and the heartbeat time as ``meshgate status=STARTING last_heartbeat=…``,
  because Consul has only three states for meshgate's five.
- `deregister` → ``PUT /v1/agent/service/deregister/<id>``.
- `get_instances` → ``GET /v1/health/service/<name>``; `get_services` →
  ``GET /v1/catalog/services``.

Consul's status → `InstanceStatus`, worst check first: maintenance mode →
OUT_OF_SERVICE; any critical check (including a lapsed TTL and the node's
``serfHealth``) → DOWN; our check's recorded status (STARTING,
OUT_OF_SERVICE, UNKNOWN are sent as warning); any other warning → UNKNOWN;
all passing → UP. A TTL that lapsed and then sees a heartbeat comes back UP:
Consul overwrote the recorded status with ``TTL expired``.

`Meta` values are strings in Consul. `zone`, the health check settings and
`registered_at` travel as reserved keys (``zone``, ``meshgate_*``);
``meshgate_typed`` lists the metadata keys whose values were numbers or
booleans, so that `metadata` comes back with the types it went in with.

Registrations live on the agent that received them: point every registry
node at the same agent, or a heartbeat sent to another one finds nothing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
import msgspec

from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.durations import parse_duration
from meshgate.resilience.clock import Clock
from meshgate.resilience.validation import positive_number

_VERB = {
    InstanceStatus.UP: "pass",
    InstanceStatus.STARTING: "warn",
    InstanceStatus.OUT_OF_SERVICE: "warn",
    InstanceStatus.UNKNOWN: "warn",
    InstanceStatus.DOWN: "fail",
}
_CHECK_STATUS = {"pass": "passing", "warn": "warning", "fail": "critical"}
_FOREIGN = {"passing": InstanceStatus.UP, "warning": InstanceStatus.UNKNOWN}
# The worst check decides; an operator's maintenance mode outranks everything.
_SEVERITY = {
    InstanceStatus.UP: 0,
    InstanceStatus.UNKNOWN: 1,
    InstanceStatus.STARTING: 2,
    InstanceStatus.DOWN: 3,
    InstanceStatus.OUT_OF_SERVICE: 4,
}
_NOTE = re.compile(r"^meshgate status=(?P<status>[A-Z_]+) last_heartbeat=(?P<at>\S+)$")
# Consul's rule for Meta keys (agent/structs: metaKeyFormat).
_META_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_ZONE = "zone"
_TYPED = "meshgate_typed"
_HEALTH_PATH = "meshgate_health_check_path"
_HEALTH_INTERVAL = "meshgate_health_check_interval"
_REGISTERED_AT = "meshgate_registered_at"
_RESERVED = {_ZONE, _TYPED, _HEALTH_PATH, _HEALTH_INTERVAL, _REGISTERED_AT}
_CONSUL_MIN_DEREGISTER = 60.0


def _go_duration(seconds: float) -> str:
    """`seconds` as a Go duration string, the form Consul reads.

    >>> _go_duration(30), _go_duration(120), _go_duration(0.25)
    ('30s', '2m', '250ms')
    """
    ms = round(seconds * 1000)
    if ms % 60_000 == 0 and ms:
        return f"{ms // 60_000}m"
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms"


class ConsulRegistryBackend:
    """Registrations in Consul through the agent at `base_url`.

    `token` is sent as ``X-Consul-Token``. `http` is an `httpx.AsyncClient`
    the caller owns (for its TLS, proxies, timeouts); without one the backend
    opens its own and `aclose` closes it. `deregister_critical_after` (seconds
    or ``"90s"``, ``"2m"``; Consul's minimum is one minute) is how long Consul
    keeps an instance whose TTL lapsed before removing it. The lease itself
    is the `ttl` of each `register` call; `clock` stamps `last_heartbeat`.

    >>> backend = ConsulRegistryBackend("http://127.0.0.1:8500", token="s3cr3t")
    >>> async def main() -> None:
    ...     inst = ServiceInstance(id="user-1", name="user-service", host="10.0.0.5", port=3001)
    ...     await backend.register(inst, ttl=30)
    ...     await backend.heartbeat("user-service", "user-1")
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8500",
        *,
        token: str | None = None,
        http: httpx.AsyncClient | None = None,
        deregister_critical_after: float | str = "1m",
        clock: Clock = time.time,
    ) -> None:
        after = parse_duration(deregister_critical_after, option="deregister_critical_after")
        if after < _CONSUL_MIN_DEREGISTER:
            raise ValueError(
                f"deregister_critical_after={deregister_critical_after!r} is not allowed: "
                "expected at least 60 seconds (Consul's minimum)"
            )
        self._base_url = base_url.rstrip("/")
        self._headers = {} if token is None else {"X-Consul-Token": token}
        self._owns_http = http is None
        self._http = httpx.AsyncClient(timeout=10.0) if http is None else http
        self._deregister_after = _go_duration(after)
        self._clock = clock

    async def register(self, instance: ServiceInstance, *, ttl: float) -> ServiceInstance:
        ttl = positive_number("ttl", ttl)
        now = float(self._clock())
        stored = msgspec.structs.replace(
            instance, registered_at=instance.registered_at or now, last_heartbeat=now
        )
        body = {
            "ID": stored.id,
            "Name": stored.name,
            "Address": stored.host,
            "Port": stored.port,
            "Tags": list(stored.tags),
            "Meta": _encode_meta(stored),
            "Check": {
                "CheckID": _check_id(stored.id),
                "Name": f"meshgate lease of {stored.id}",
                "TTL": _go_duration(ttl),
                "Status": _CHECK_STATUS[_VERB[stored.status]],
                "DeregisterCriticalServiceAfter": self._deregister_after,
            },
        }
        response = await self._request(
            "PUT",
            "/v1/agent/service/register",
            params={"replace-existing-checks": "true"},
            json=body,
        )
        response.raise_for_status()
        # A new check has no output yet, and "warning" alone cannot say
        # STARTING from OUT_OF_SERVICE: record the exact status right away.
        response = await self._record(stored.id, stored.status, now)
        response.raise_for_status()
        return stored

    async def deregister(self, service: str, instance_id: str) -> ServiceInstance | None:
        local = await self._local(service, instance_id)
        if local is None:
            return None
        response = await self._request("PUT", f"/v1/agent/service/deregister/{_seg(instance_id)}")
        if response.status_code == httpx.codes.NOT_FOUND:
            return None
        response.raise_for_status()
        return _instance(local["Service"], local.get("Checks") or [], node_address="")

    async def heartbeat(self, service: str, instance_id: str) -> ServiceInstance | None:
        local = await self._local(service, instance_id)
        if local is None:
            return None
        checks = local.get("Checks") or []
        status = _own_status(checks, instance_id)
        return await self._update(local, status, float(self._clock()))

    async def set_status(
        self, service: str, instance_id: str, status: InstanceStatus
    ) -> ServiceInstance | None:
        local = await self._local(service, instance_id)
        if local is None:
            return None
        checks = local.get("Checks") or []
        last_heartbeat = _own_heartbeat(checks, instance_id, local["Service"])
        return await self._update(local, InstanceStatus(status), last_heartbeat)

    async def get_instances(self, service: str) -> list[ServiceInstance]:
        """Every instance Consul still lists for `service` (a lapsed TTL shows
        as DOWN until Consul removes it), ordered by id."""
        response = await self._request("GET", f"/v1/health/service/{_seg(service)}")
        response.raise_for_status()
        instances = [
            _instance(
                entry["Service"],
                entry.get("Checks") or [],
                node_address=(entry.get("Node") or {}).get("Address", ""),
            )
            for entry in response.json()
        ]
        return sorted(instances, key=lambda i: i.id)

    async def get_services(self) -> list[str]:
        """Every service name in Consul's catalog, ordered by name."""
        response = await self._request("GET", "/v1/catalog/services")
        response.raise_for_status()
        return sorted(response.json())

    async def expire(self) -> list[ServiceInstance]:
        """Always ``[]``: Consul deregisters lapsed instances itself
        (``DeregisterCriticalServiceAfter``) and does not say which."""
        return []

    async def aclose(self) -> None:
        """Close the HTTP client if the backend opened it."""
        if self._owns_http:
            await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        return await self._http.request(
            method, self._base_url + path, params=params, json=json, headers=self._headers
        )

    async def _local(self, service: str, instance_id: str) -> dict[str, Any] | None:
        """The agent's view of one instance (service definition and checks),
        or None when the agent does not hold it under `service`."""
        response = await self._request("GET", f"/v1/agent/health/service/id/{_seg(instance_id)}")
        if response.status_code == httpx.codes.NOT_FOUND:
            return None
        # 429 (warning) and 503 (critical) carry the same body as 200.
        if response.status_code not in (200, 429, 503):
            response.raise_for_status()
        local: dict[str, Any] = response.json()
        if (local.get("Service") or {}).get("Service") != service:
            return None
        return local

    async def _update(
        self, local: dict[str, Any], status: InstanceStatus, last_heartbeat: float
    ) -> ServiceInstance | None:
        service = local["Service"]
        response = await self._record(service["ID"], status, last_heartbeat)
        if response.status_code == httpx.codes.NOT_FOUND:
            return None
        response.raise_for_status()
        recorded = {"Status": _CHECK_STATUS[_VERB[status]], "Output": _note(status, last_heartbeat)}
        checks = [
            {**check, **recorded} if check.get("CheckID") == _check_id(service["ID"]) else check
            for check in local.get("Checks") or []
        ]
        return _instance(service, checks, node_address="")

    async def _record(
        self, instance_id: str, status: InstanceStatus, last_heartbeat: float
    ) -> httpx.Response:
        """Set the lease check to `status`, which also restarts its TTL."""
        return await self._request(
            "PUT",
            f"/v1/agent/check/{_VERB[status]}/{_seg(_check_id(instance_id))}",
            params={"note": _note(status, last_heartbeat)},
        )


def _note(status: InstanceStatus, last_heartbeat: float) -> str:
    return f"meshgate status={status.value} last_heartbeat={last_heartbeat!r}"


def _check_id(instance_id: str) -> str:
    return f"service:{instance_id}"


def _seg(value: str) -> str:
    # ':' is legal in a path segment and Consul's own IDs use it
    return quote(value, safe=":")


def _encode_meta(instance: ServiceInstance) -> dict[str, str]:
    meta: dict[str, str] = {}
    typed: list[str] = []
    for key, value in instance.metadata.items():
        if key in _RESERVED or not _META_KEY.match(key) or key.startswith("consul-"):
            raise ValueError(
                f"metadata key {key!r} is not allowed with Consul: expected letters, digits, "
                "'-' or '_', at most 128, not starting with 'consul-' and not one of "
                f"{sorted(_RESERVED)}"
            )
        if isinstance(value, str):
            meta[key] = value
        else:
            meta[key] = msgspec.json.encode(value).decode()
            typed.append(key)
    if typed:
        meta[_TYPED] = ",".join(typed)
    if instance.zone is not None:
        meta[_ZONE] = instance.zone
    meta[_HEALTH_PATH] = instance.health_check_path
    meta[_HEALTH_INTERVAL] = repr(instance.health_check_interval)
    meta[_REGISTERED_AT] = repr(instance.registered_at)
    return meta


def _decode_metadata(meta: Mapping[str, str]) -> dict[str, str | int | float | bool]:
    typed = set(filter(None, meta.get(_TYPED, "").split(",")))
    metadata: dict[str, str | int | float | bool] = {}
    for key, value in meta.items():
        if key in _RESERVED:
            continue
        if key in typed:
            try:
                metadata[key] = msgspec.json.decode(value, type=int | float | bool)
                continue
            except msgspec.DecodeError:
                pass
        metadata[key] = value
    return metadata


def _parse_note(check: Mapping[str, Any]) -> tuple[InstanceStatus, float] | None:
    """The status and heartbeat time meshgate recorded in the check's output,
    if the check is still in the state that recording put it in."""
    match = _NOTE.match(check.get("Output") or "")
    if match is None or match["status"] not in InstanceStatus.__members__:
        return None
    status = InstanceStatus(match["status"])
    if _CHECK_STATUS[_VERB[status]] != check.get("Status"):
        return None
    try:
        return status, float(match["at"])
    except ValueError:
        return None


def _check_status(check: Mapping[str, Any], instance_id: str) -> InstanceStatus:
    check_id = str(check.get("CheckID", ""))
    if check_id.startswith(("_service_maintenance", "_node_maintenance")):
        return InstanceStatus.OUT_OF_SERVICE
    if check_id == _check_id(instance_id):
        noted = _parse_note(check)
        if noted is not None:
            return noted[0]
    return _FOREIGN.get(str(check.get("Status")), InstanceStatus.DOWN)


def _own_status(checks: list[dict[str, Any]], instance_id: str) -> InstanceStatus:
    """The status a heartbeat re-sends: what meshgate last recorded, or what
    the lease check shows; a lapsed TTL is revived as UP."""
    for check in checks:
        if check.get("CheckID") == _check_id(instance_id):
            noted = _parse_note(check)
            if noted is not None:
                return noted[0]
            return _FOREIGN.get(str(check.get("Status")), InstanceStatus.UP)
    return InstanceStatus.UP


def _own_heartbeat(
    checks: list[dict[str, Any]], instance_id: str, service: Mapping[str, Any]
) -> float:
    for check in checks:
        if check.get("CheckID") == _check_id(instance_id):
            noted = _parse_note(check)
            if noted is not None:
                return noted[1]
    return _float((service.get("Meta") or {}).get(_REGISTERED_AT), 0.0)


def _float(raw: str | None, default: float) -> float:
    try:
        return default if raw is None else float(raw)
    except ValueError:
        return default


def _instance(
    service: Mapping[str, Any], checks: list[dict[str, Any]], *, node_address: str
) -> ServiceInstance:
    instance_id = str(service["ID"])
    meta: Mapping[str, str] = service.get("Meta") or {}
    status = max(
        (_check_status(check, instance_id) for check in checks),
        key=_SEVERITY.__getitem__,
        default=InstanceStatus.UP,
    )
    return ServiceInstance(
        id=instance_id,
        name=str(service["Service"]),
        # Consul's rule: an empty service address means the node's address
        host=service.get("Address") or node_address,
        port=int(service.get("Port") or 0),
        zone=meta.get(_ZONE),
        tags=tuple(service.get("Tags") or ()),
        metadata=_decode_metadata(meta),
        status=status,
        health_check_path=meta.get(_HEALTH_PATH, "/health"),
        health_check_interval=_float(meta.get(_HEALTH_INTERVAL), 30.0),
        registered_at=_float(meta.get(_REGISTERED_AT), 0.0),
        last_heartbeat=_own_heartbeat(checks, instance_id, service),
    )
