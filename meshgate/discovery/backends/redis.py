"""`RedisRegistryBackend`: registrations in Redis, shared by any number of
registry nodes (redis-py's asyncio client, so it runs under asyncio only).

Key layout (`P` is `key_prefix`, default ``meshgate:discovery:``; `S` is the
service name percent-encoded, so that a ``:`` in it cannot make two keys
collide — ``user-service`` stays ``user-service``):

``P services`` — SET of `S`
    Every service that has, or recently had, an instance.
``P deadlines:S`` — ZSET instance id → lease deadline (epoch milliseconds)
    The lease. An instance is live while ``deadline > now``. `expire` finds
    leases that ran out with one ZRANGEBYSCORE per service.
``P instance:S:ID`` — HASH
    ``instance`` (the registered `ServiceInstance` as JSON), ``ttl_ms`` (its
    lease length, so that `heartbeat` can renew it), ``status`` and
    ``last_heartbeat`` (kept out of the JSON so that scripts can update them
    without re-encoding it).

TTLs: the lease is the zset score, not a key expiry, because an expired key
takes the instance with it and `expire` could no longer say what expired.
So the instance hash lives ``ttl + grace`` (renewed by each heartbeat), long
enough for some registry node to call `expire` and broadcast it; the zset and
the services set live at least as long as the longest such lease. If every
registry node stays down for longer than `grace`, records of leases that
ran out meanwhile vanish unreported: `expire` drops their ids and logs
``registry.expired_record_missing``.

Every write is one Lua script, so it is atomic: a heartbeat cannot revive
an instance that another node is expiring, and when two registry nodes call
`expire` at once each expired instance is returned to exactly one of them.
Scripts compute key names from the prefix; on Redis Cluster give the prefix
a hash tag (``{meshgate}:discovery:``) so that every key lands in one slot.

Deadlines come from the injected clock of whichever node writes (wall clock
by default), in whole milliseconds: keep registry nodes' clocks in sync.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, unquote

import msgspec
import redis.asyncio as aioredis
import structlog

from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.resilience.clock import Clock
from meshgate.resilience.validation import non_negative_number, positive_number

log = structlog.get_logger(__name__)

# Makes sure a key outlives every lease written into it, without shortening
# the life that a longer lease of another instance already gave it.
_EXTEND = """
local function extend(key, px)
  if redis.call('PTTL', key) < px then redis.call('PEXPIRE', key, px) end
end
"""

# KEYS: services, deadlines, instance
# ARGV: member, id, json, ttl_ms, status, last_heartbeat, deadline_ms, px
_REGISTER = (
    _EXTEND
    + """
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[7], ARGV[2])
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], 'instance', ARGV[3], 'ttl_ms', ARGV[4],
           'status', ARGV[5], 'last_heartbeat', ARGV[6])
local px = tonumber(ARGV[8])
redis.call('PEXPIRE', KEYS[3], px)
extend(KEYS[1], px)
extend(KEYS[2], px)
return 1
"""
)

# KEYS: services, deadlines, instance
# ARGV: member, id, now_ms, last_heartbeat, grace_ms
# Lua turns numbers into strings with 14 significant digits, so deadlines are
# whole milliseconds (13 digits) and formatted with %.0f.
_HEARTBEAT = (
    _EXTEND
    + """
local deadline = redis.call('ZSCORE', KEYS[2], ARGV[2])
if not deadline or tonumber(deadline) <= tonumber(ARGV[3]) then return false end
local ttl = redis.call('HGET', KEYS[3], 'ttl_ms')
if not ttl then return false end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], string.format('%.0f', tonumber(ARGV[3]) + tonumber(ttl)), ARGV[2])
redis.call('HSET', KEYS[3], 'last_heartbeat', ARGV[4])
local px = tonumber(ttl) + tonumber(ARGV[5])
redis.call('PEXPIRE', KEYS[3], string.format('%.0f', px))
extend(KEYS[1], px)
extend(KEYS[2], px)
return redis.call('HGETALL', KEYS[3])
"""
)

# KEYS: deadlines, instance
# ARGV: id, now_ms, status
_SET_STATUS = """
local deadline = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not deadline or tonumber(deadline) <= tonumber(ARGV[2]) then return false end
if redis.call('EXISTS', KEYS[2]) == 0 then return false end
redis.call('HSET', KEYS[2], 'status', ARGV[3])
return redis.call('HGETALL', KEYS[2])
"""

# KEYS: services, deadlines, instance
# ARGV: member, id
_DEREGISTER = """
local record = redis.call('HGETALL', KEYS[3])
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[2], ARGV[2])
if redis.call('ZCARD', KEYS[2]) == 0 then redis.call('SREM', KEYS[1], ARGV[1]) end
if #record == 0 then return false end
return record
"""

# KEYS: deadlines
# ARGV: instance key prefix (P instance:S:), now_ms
_GET_INSTANCES = """
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[2], '+inf')) do
  local record = redis.call('HGETALL', ARGV[1] .. id)
  if #record > 0 then table.insert(out, record) end
end
return out
"""

# KEYS: services
# ARGV: P, now_ms
_GET_SERVICES = """
local out = {}
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('ZCOUNT', ARGV[1] .. 'deadlines:' .. member, '(' .. ARGV[2], '+inf') > 0 then
    table.insert(out, member)
  end
end
return out
"""

# KEYS: services
# ARGV: P, now_ms
# Returns {member, id, deadline_ms, record} per expired lease; record is empty
# when the hash outlived its grace.
_EXPIRE = """
local out = {}
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local deadlines = ARGV[1] .. 'deadlines:' .. member
  local expired = redis.call('ZRANGEBYSCORE', deadlines, '-inf', ARGV[2], 'WITHSCORES')
  for i = 1, #expired, 2 do
    local id = expired[i]
    local key = ARGV[1] .. 'instance:' .. member .. ':' .. id
    local record = redis.call('HGETALL', key)
    redis.call('DEL', key)
    redis.call('ZREM', deadlines, id)
    table.insert(out, {member, id, expired[i + 1], record})
  end
  if redis.call('ZCARD', deadlines) == 0 then redis.call('SREM', KEYS[1], member) end
end
return out
"""


def _text(value: bytes | str) -> str:
    # The caller's client may or may not have decode_responses=True.
    return value.decode() if isinstance(value, bytes) else value


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


class RedisRegistryBackend:
    """Registrations in Redis under `key_prefix`; see the module docstring
    for the keys and their TTLs.

    `client_or_url` is a `redis.asyncio.Redis` (the caller keeps owning it)
    or a URL such as ``redis://127.0.0.1:6379/0`` (the backend opens the
    client and `aclose` closes it). `grace` is how long, in seconds, the
    record of an instance whose lease ran out is kept for `expire` to report.

    >>> async def main() -> None:
    ...     backend = RedisRegistryBackend("redis://127.0.0.1:6379/0")
    ...     inst = ServiceInstance(id="user-1", name="user-service", host="10.0.0.5", port=3001)
    ...     await backend.register(inst, ttl=90)
    ...     print([i.address for i in await backend.get_instances("user-service")])
    ...     await backend.aclose()
    """

    def __init__(
        self,
        client_or_url: aioredis.Redis | str,
        *,
        key_prefix: str = "meshgate:discovery:",
        grace: float = 600.0,
        clock: Clock = time.time,
    ) -> None:
        if isinstance(client_or_url, str):
            self._redis = aioredis.Redis.from_url(client_or_url)
            self._owns_client = True
        else:
            self._redis = client_or_url
            self._owns_client = False
        self._prefix = key_prefix
        self._grace_ms = _ms(non_negative_number("grace", grace))
        self._clock = clock
        self._register = self._redis.register_script(_REGISTER)
        self._heartbeat = self._redis.register_script(_HEARTBEAT)
        self._set_status = self._redis.register_script(_SET_STATUS)
        self._deregister = self._redis.register_script(_DEREGISTER)
        self._get_instances = self._redis.register_script(_GET_INSTANCES)
        self._get_services = self._redis.register_script(_GET_SERVICES)
        self._expire = self._redis.register_script(_EXPIRE)

    @property
    def key_prefix(self) -> str:
        return self._prefix

    async def register(self, instance: ServiceInstance, *, ttl: float) -> ServiceInstance:
        ttl_ms = _ms(positive_number("ttl", ttl))
        if ttl_ms < 1:
            raise ValueError(
                f"ttl={ttl!r} is not allowed: expected at least 0.001 (Redis keeps milliseconds)"
            )
        now = float(self._clock())
        stored = msgspec.structs.replace(
            instance, registered_at=instance.registered_at or now, last_heartbeat=now
        )
        await self._register(
            keys=self._keys(stored.name, stored.id),
            args=[
                self._member(stored.name),
                stored.id,
                msgspec.json.encode(stored),
                ttl_ms,
                stored.status.value,
                repr(now),
                _ms(now) + ttl_ms,
                ttl_ms + self._grace_ms,
            ],
        )
        return stored

    async def deregister(self, service: str, instance_id: str) -> ServiceInstance | None:
        record = await self._deregister(
            keys=self._keys(service, instance_id), args=[self._member(service), instance_id]
        )
        return None if record is None else _decode(record)

    async def heartbeat(self, service: str, instance_id: str) -> ServiceInstance | None:
        now = float(self._clock())
        record = await self._heartbeat(
            keys=self._keys(service, instance_id),
            args=[self._member(service), instance_id, _ms(now), repr(now), self._grace_ms],
        )
        return None if record is None else _decode(record)

    async def set_status(
        self, service: str, instance_id: str, status: InstanceStatus
    ) -> ServiceInstance | None:
        _, deadlines, instance_key = self._keys(service, instance_id)
        record = await self._set_status(
            keys=[deadlines, instance_key],
            args=[instance_id, _ms(self._clock()), InstanceStatus(status).value],
        )
        return None if record is None else _decode(record)

    async def get_instances(self, service: str) -> list[ServiceInstance]:
        """Live instances of `service`, ordered by id."""
        records = await self._get_instances(
            keys=[self._deadlines_key(service)],
            args=[f"{self._prefix}instance:{self._member(service)}:", _ms(self._clock())],
        )
        return sorted((_decode(record) for record in records), key=lambda i: i.id)

    async def get_services(self) -> list[str]:
        """Services with a live instance, ordered by name."""
        members = await self._get_services(
            keys=[self._services_key()], args=[self._prefix, _ms(self._clock())]
        )
        return sorted(unquote(_text(member)) for member in members)

    async def expire(self) -> list[ServiceInstance]:
        """Remove and return instances past their deadline, oldest deadline
        first; each is returned to one caller only, however many registry
        nodes call this at once."""
        rows = await self._expire(
            keys=[self._services_key()], args=[self._prefix, _ms(self._clock())]
        )
        expired: list[tuple[float, ServiceInstance]] = []
        for member, instance_id, deadline_ms, record in rows:
            if not record:
                log.warning(
                    "registry.expired_record_missing",
                    service=unquote(_text(member)),
                    instance_id=_text(instance_id),
                    key_prefix=self._prefix,
                )
                continue
            expired.append((float(deadline_ms), _decode(record)))
        expired.sort(key=lambda row: (row[0], row[1].name, row[1].id))
        return [instance for _, instance in expired]

    async def aclose(self) -> None:
        """Close the client if the backend opened it from a URL."""
        if self._owns_client:
            await self._redis.aclose()

    def _member(self, service: str) -> str:
        return quote(service, safe="")

    def _services_key(self) -> str:
        return f"{self._prefix}services"

    def _deadlines_key(self, service: str) -> str:
        return f"{self._prefix}deadlines:{self._member(service)}"

    def _keys(self, service: str, instance_id: str) -> list[str]:
        return [
            self._services_key(),
            self._deadlines_key(service),
            f"{self._prefix}instance:{self._member(service)}:{instance_id}",
        ]


def _decode(record: Sequence[Any]) -> ServiceInstance:
    fields = {_text(record[i]): record[i + 1] for i in range(0, len(record), 2)}
    instance = msgspec.json.decode(fields["instance"], type=ServiceInstance)
    return msgspec.structs.replace(
        instance,
        status=InstanceStatus(_text(fields["status"])),
        last_heartbeat=float(_text(fields["last_heartbeat"])),
    )
