"""Registration: a service registers itself with its zone, tags and metadata,
heartbeats to keep its lease, registers again by itself when the registry
forgot it, and leaves at once when it stops. An instance whose process dies
without leaving drops out when its lease runs out. A config with a misspelt
key is refused, naming the key it meant.

The registry here is a `MemoryRegistryBackend` in this process, wrapped so
that each call the service makes is printed; over NATS the same calls go to
a registry node (``meshgate registry``) instead.

Run it: ``meshgate demo registration``.
"""

from __future__ import annotations

import anyio

from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.demos.discovery.printed_log import printed_logger
from meshgate.discovery import (
    InvalidRegistrationError,
    MemoryRegistryBackend,
    ServiceRegistry,
    load_registration,
)

SERVICE = "user-service"
# Bound to every log line of a ServiceRegistry; the account names them already.
BOUND = ("service", "instance")

# The reference's registration, in snake_case, with a short interval.
CONFIG: dict[str, object] = {
    "name": SERVICE,
    "port": 3001,
    "health_check_path": "/health",
    "health_check_interval": "200ms",
    "metadata": {"version": "2.0.0", "weight": 80},
    "zone": "us-east-1",
    "tags": ["api", "users", "v2"],
}


class NarratedRegistry(MemoryRegistryBackend):
    """A memory registry that prints every register, heartbeat and
    deregister it receives, stamped with the time since the demo began."""

    def __init__(self) -> None:
        super().__init__()
        self.started = anyio.current_time()
        self.heartbeats = 0

    def stamp(self) -> str:
        return f"t={anyio.current_time() - self.started:5.2f}s"

    async def register(self, instance: ServiceInstance, *, ttl: float) -> ServiceInstance:
        stored = await super().register(instance, ttl=ttl)
        print(f"    {self.stamp()} registry ← register {instance.id} (lease {ttl:g}s)")
        return stored

    async def heartbeat(self, service: str, instance_id: str) -> ServiceInstance | None:
        renewed = await super().heartbeat(service, instance_id)
        self.heartbeats += 1
        answer = "lease renewed" if renewed is not None else "unknown instance!"
        print(f"    {self.stamp()} registry ← heartbeat {instance_id}: {answer}")
        return renewed

    async def deregister(self, service: str, instance_id: str) -> ServiceInstance | None:
        removed = await super().deregister(service, instance_id)
        print(f"    {self.stamp()} registry ← deregister {instance_id}")
        return removed

    async def forget_everything(self) -> None:
        """What a registry restarted without persistence knows: nothing."""
        for service in await self.get_services():
            for instance in await self.get_instances(service):
                await super().deregister(service, instance.id)


def describe(instance: ServiceInstance) -> str:
    tags = ",".join(instance.tags)
    return (
        f"{instance.id} at {instance.address}, zone {instance.zone}, tags [{tags}], "
        f"version {instance.version}, weight {instance.weight:g}, {instance.status}"
    )


async def listed(registry: NarratedRegistry) -> str:
    ids = [instance.id for instance in await registry.get_instances(SERVICE)]
    return ", ".join(ids) or "(none)"


async def lifecycle(registry: NarratedRegistry) -> None:
    print("1. A service registers: health_check_interval 0.2 s gives a lease of")
    print("   3 × 0.2 = 0.6 s, renewed by a heartbeat every 0.2 s.")
    async with ServiceRegistry(CONFIG, registry, log=printed_logger(hidden=BOUND)) as service:
        stored = await service.register()
        print(f"  stored: {describe(stored)}")
        print(f"  lease {service.ttl:g}s, heartbeat every {service.heartbeat_interval:.2f}s")

        print()
        print("2. 0.7 s pass, longer than the lease: the heartbeats keep it alive.")
        await anyio.sleep(0.7)
        print(f"  after 0.7 s: {registry.heartbeats} heartbeats; listed: {await listed(registry)}")

        print()
        print("3. The registry restarts without persistence and forgets the instance.")
        print("   The next heartbeat hears 'unknown' and the service registers again:")
        await registry.forget_everything()
        print(f"  listed right after the restart: {await listed(registry)}")
        await anyio.sleep(0.25)
        print(f"  listed one heartbeat later: {await listed(registry)}")

        print()
        print("4. The service stops (the end of `async with`): it deregisters at once,")
        print("   so clients stop picking it now rather than when the lease runs out.")
    print(f"  listed after it left: {await listed(registry)}")


async def crash(registry: NarratedRegistry) -> None:
    print()
    print("5. Another instance registers with a 0.3 s lease, then its process dies:")
    print("   no heartbeat, no deregister. Its lease runs out by itself.")
    dead = ServiceInstance(
        id="user-service-10.0.0.9-3001", name=SERVICE, host="10.0.0.9", port=3001
    )
    await registry.register(dead, ttl=0.3)
    await anyio.sleep(0.2)
    print(f"  {registry.stamp()} listed: {await listed(registry)}")
    await anyio.sleep(0.15)
    print(f"  {registry.stamp()} listed: {await listed(registry)}")
    expired = [instance.id for instance in await registry.expire()]
    print(f"  the sweep removes it: expired {expired}; a registry node broadcasts")
    print("  an `expired` event for it, and every watching client drops it.")


async def restart(registry: NarratedRegistry) -> None:
    print()
    print("6. A process is killed and restarted at once. It registers under the same")
    print("   id, {name}-{host}-{port}, so it replaces its old registration instead")
    print("   of leaving a twin behind until the old lease runs out.")
    print("  the old process had registered (lease 30 s) before it was killed:")
    await registry.register(load_registration(CONFIG).to_instance(), ttl=30)
    print("  the new process starts and registers:")
    async with ServiceRegistry(CONFIG, registry, log=printed_logger(hidden=BOUND)) as restarted:
        await restarted.register()
        print(f"  listed: {await listed(registry)} (one instance, the new process's lease)")


def bad_configs() -> None:
    print()
    print("8. A config the registry would choke on is refused before anything is sent:")
    backend = MemoryRegistryBackend()
    for config in (
        {"name": SERVICE, "port": 3001, "healthCheckPath": "/hc"},
        {"name": SERVICE, "port": 70000},
    ):
        try:
            ServiceRegistry(config, backend)
        except InvalidRegistrationError as error:
            print(f"  {config}:")
            reason, _, keys = str(error).partition("; ")
            print(f"    InvalidRegistrationError: {reason}")
            if keys:
                print(f"    ({keys})")


async def status_report(registry: NarratedRegistry) -> None:
    print()
    print("7. A health checker reports an instance DOWN: it stays registered (its")
    print("   lease is the owner's business) but clients no longer pick it.")
    instance = ServiceInstance(
        id="user-service-10.0.0.7-3001", name=SERVICE, host="10.0.0.7", port=3001
    )
    await registry.register(instance, ttl=30)
    updated = await registry.set_status(SERVICE, instance.id, InstanceStatus.DOWN)
    assert updated is not None
    print(f"  {updated.id}: {updated.status}")


async def main() -> None:
    registry = NarratedRegistry()
    await lifecycle(registry)
    await crash(registry)
    await restart(registry)
    await status_report(registry)
    bad_configs()


if __name__ == "__main__":
    anyio.run(main)
