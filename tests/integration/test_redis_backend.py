"""`RedisRegistryBackend` against a real Redis (`redis_url` fixture): the
shared backend contract, the documented key layout, and expiry claimed
once when several registry nodes share one Redis.

Each test works under its own random key prefix and deletes its keys
afterwards. redis-py's asyncio client runs on asyncio only, so these tests
do not run under trio.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import anyio
import anyio.lowlevel
import msgspec
import pytest
from redis.asyncio import Redis

from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.discovery.backends import RedisRegistryBackend
from meshgate.resilience.clock import ManualClock
from tests.unit.discovery.backend_contract import START, BackendContract, instance

GRACE = 600.0


@pytest.fixture
def anyio_backend() -> str:
    """redis.asyncio needs an asyncio event loop."""
    return "asyncio"


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def key_prefix(redis_client: Redis) -> AsyncIterator[str]:
    prefix = f"meshgate-test:{uuid.uuid4().hex}:"
    yield prefix
    keys = [key async for key in redis_client.scan_iter(match=prefix + "*")]
    if keys:
        await redis_client.delete(*keys)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def backend(redis_client: Redis, key_prefix: str, clock: ManualClock) -> RedisRegistryBackend:
    return RedisRegistryBackend(redis_client, key_prefix=key_prefix, grace=GRACE, clock=clock)


class TestRedisBackendContract(BackendContract):
    @pytest.fixture
    def backend(
        self, redis_client: Redis, key_prefix: str, clock: ManualClock
    ) -> RedisRegistryBackend:
        return RedisRegistryBackend(redis_client, key_prefix=key_prefix, clock=clock)


async def keys_under(client: Redis, prefix: str) -> list[str]:
    return sorted([key.decode() async for key in client.scan_iter(match=prefix + "*")])


@pytest.mark.anyio
async def test_register_writes_the_documented_keys(
    backend: RedisRegistryBackend, redis_client: Redis, key_prefix: str
) -> None:
    stored = await backend.register(instance(metadata={"weight": 80}), ttl=90)

    assert await keys_under(redis_client, key_prefix) == [
        f"{key_prefix}deadlines:user-service",
        f"{key_prefix}instance:user-service:user-1",
        f"{key_prefix}services",
    ]
    assert await redis_client.smembers(f"{key_prefix}services") == {b"user-service"}
    assert await redis_client.zrange(
        f"{key_prefix}deadlines:user-service", 0, -1, withscores=True
    ) == [(b"user-1", (START + 90) * 1000)]
    record = await redis_client.hgetall(f"{key_prefix}instance:user-service:user-1")
    assert record == {
        b"instance": msgspec.json.encode(stored),
        b"ttl_ms": b"90000",
        b"status": b"UP",
        b"last_heartbeat": repr(START).encode(),
    }


@pytest.mark.anyio
async def test_keys_live_for_the_lease_plus_the_grace(
    backend: RedisRegistryBackend, redis_client: Redis, key_prefix: str
) -> None:
    await backend.register(instance("long"), ttl=90)
    await backend.register(instance("short"), ttl=5)

    lease_and_grace = (90 + GRACE) * 1000
    # a shorter lease written later must not shorten the shared keys
    for key in ("services", "deadlines:user-service", "instance:user-service:long"):
        pttl = await redis_client.pttl(key_prefix + key)
        assert lease_and_grace - 5_000 < pttl <= lease_and_grace
    pttl = await redis_client.pttl(f"{key_prefix}instance:user-service:short")
    assert (5 + GRACE) * 1000 - 5_000 < pttl <= (5 + GRACE) * 1000


@pytest.mark.anyio
async def test_a_colon_in_a_service_name_cannot_collide_with_an_instance_id(
    backend: RedisRegistryBackend, redis_client: Redis, key_prefix: str
) -> None:
    await backend.register(instance("b:c", name="a"), ttl=10)
    await backend.register(instance("c", name="a:b"), ttl=10)

    assert [i.id for i in await backend.get_instances("a")] == ["b:c"]
    assert [i.id for i in await backend.get_instances("a:b")] == ["c"]
    assert await backend.get_services() == ["a", "a:b"]
    assert f"{key_prefix}instance:a%3Ab:c" in await keys_under(redis_client, key_prefix)


@pytest.mark.anyio
async def test_expire_and_deregister_leave_no_keys_behind(
    backend: RedisRegistryBackend, redis_client: Redis, key_prefix: str, clock: ManualClock
) -> None:
    await backend.register(instance("user-1"), ttl=10)
    await backend.register(instance("user-2"), ttl=10)
    await backend.register(instance("order-1", name="order-service"), ttl=10)

    await backend.deregister("order-service", "order-1")
    clock.advance(10)
    assert len(await backend.expire()) == 2

    assert await keys_under(redis_client, key_prefix) == []


@pytest.mark.anyio
async def test_expire_drops_a_lease_whose_record_outlived_its_grace(
    backend: RedisRegistryBackend, redis_client: Redis, key_prefix: str, clock: ManualClock
) -> None:
    await backend.register(instance("lost"), ttl=10)
    kept = await backend.register(instance("kept"), ttl=10)
    # what Redis does by itself once `ttl + grace` has passed
    await redis_client.delete(f"{key_prefix}instance:user-service:lost")
    clock.advance(10)

    assert await backend.expire() == [kept]
    assert await keys_under(redis_client, key_prefix) == []


@pytest.mark.anyio
async def test_registry_nodes_sharing_redis_see_the_same_registrations(
    redis_url: str, key_prefix: str, clock: ManualClock
) -> None:
    node_a = RedisRegistryBackend(redis_url, key_prefix=key_prefix, clock=clock)
    node_b = RedisRegistryBackend(redis_url, key_prefix=key_prefix, clock=clock)
    try:
        stored = await node_a.register(instance(), ttl=10)
        clock.advance(5)
        beat = await node_b.heartbeat("user-service", "user-1")
        assert beat is not None
        down = await node_a.set_status("user-service", "user-1", InstanceStatus.DOWN)

        assert await node_b.get_instances("user-service") == [down]
        assert down is not None
        assert down.registered_at == stored.registered_at
        assert down.last_heartbeat == START + 5
    finally:
        await node_a.aclose()
        await node_b.aclose()


@pytest.mark.anyio
async def test_concurrent_expire_on_two_nodes_reports_each_instance_once(
    redis_url: str, key_prefix: str, clock: ManualClock
) -> None:
    nodes = [RedisRegistryBackend(redis_url, key_prefix=key_prefix, clock=clock) for _ in range(2)]
    try:
        registered: set[tuple[str, str]] = set()
        for n in range(200):
            stored = await nodes[n % 2].register(
                instance(f"i-{n}", name=f"svc-{n % 7}"), ttl=1 + n % 5
            )
            registered.add((stored.name, stored.id))
        reported: list[list[ServiceInstance]] = [[], []]

        async def sweep(node: int) -> None:
            for _ in range(6):
                reported[node].extend(await nodes[node].expire())
                await anyio.lowlevel.checkpoint()

        for _ in range(5):
            clock.advance(1)
            async with anyio.create_task_group() as tg:
                tg.start_soon(sweep, 0)
                tg.start_soon(sweep, 1)

        seen = [(i.name, i.id) for node in reported for i in node]
        assert len(seen) == len(set(seen)) == 200
        assert set(seen) == registered
    finally:
        for node in nodes:
            await node.aclose()


@pytest.mark.anyio
async def test_a_client_that_decodes_responses_works_as_well(
    redis_url: str, key_prefix: str, clock: ManualClock
) -> None:
    client = Redis.from_url(redis_url, decode_responses=True)
    backend = RedisRegistryBackend(client, key_prefix=key_prefix, clock=clock)
    try:
        stored = await backend.register(instance(name="user:service"), ttl=10)
        assert await backend.get_instances("user:service") == [stored]
        assert await backend.get_services() == ["user:service"]
        clock.advance(10)
        assert await backend.expire() == [stored]
    finally:
        await client.aclose()


@pytest.mark.anyio
async def test_aclose_closes_a_client_it_opened_but_not_one_it_was_given(
    redis_url: str, redis_client: Redis, key_prefix: str
) -> None:
    given = RedisRegistryBackend(redis_client, key_prefix=key_prefix)
    await given.aclose()
    assert await redis_client.ping()

    name = f"meshgate-test-{uuid.uuid4().hex}"
    opened = RedisRegistryBackend(f"{redis_url}?client_name={name}", key_prefix=key_prefix)
    await opened.get_services()
    assert await connections_named(redis_client, name) == 1
    await opened.aclose()
    with anyio.fail_after(5):
        # Redis notices the closed socket on its own schedule; there is no
        # event to wait for but asking it again.
        while await connections_named(redis_client, name):  # noqa: ASYNC110
            await anyio.sleep(0.01)


async def connections_named(client: Redis, name: str) -> int:
    return sum(1 for entry in await client.client_list() if entry.get("name") == name)


@pytest.mark.anyio
async def test_grace_must_not_be_negative(redis_client: Redis) -> None:
    with pytest.raises(ValueError, match="grace=-1"):
        RedisRegistryBackend(redis_client, grace=-1)


@pytest.mark.anyio
async def test_a_lease_shorter_than_a_millisecond_is_refused(
    backend: RedisRegistryBackend,
) -> None:
    with pytest.raises(ValueError, match=r"ttl=0.0004 is not allowed"):
        await backend.register(instance(), ttl=0.0004)
