"""What `meshgate up` starts, as data: the processes of the local cluster, in
start order, each with its command line and how to tell that it is ready.

Pure: no processes are started here, so the plan is tested exactly and
printed by `meshgate up --dry-run`. Every process is a `meshgate` command run
by this Python (`python -m meshgate.cli ...`), so the cluster runs from any
install, editable or not, without relying on PATH.
"""

from __future__ import annotations

import sys
from typing import Literal

import msgspec

ReadyCheck = Literal["registry", "service", "http", "alive"]


class ProcessSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One process: `name` in the launcher's output, `argv`, and `ready`:

    - ``registry``: a registry node answers a query on the bus;
    - ``service``: the instance `instance_id` of `service` is registered;
    - ``http``: `url` answers 200;
    - ``alive``: the process is still running after a moment.
    """

    name: str
    argv: tuple[str, ...]
    ready: ReadyCheck
    url: str | None = None
    service: str | None = None
    instance_id: str | None = None


class DemoService(msgspec.Struct, frozen=True):
    """A demo service of the cluster: its catalog name and the service it registers as."""

    name: str
    service: str


DEMO_SERVICES: tuple[DemoService, ...] = (
    DemoService("user-service-v1", "user-service"),
    DemoService("user-service-v2", "user-service"),
    DemoService("order-service-stable", "order-service"),
    DemoService("order-service-canary", "order-service"),
    DemoService("product-service", "product-service"),
    DemoService("payment-service", "payment-service"),
    DemoService("analytics-service", "analytics-service"),
)


class ClusterOptions(msgspec.Struct, frozen=True, kw_only=True):
    """The knobs of `meshgate up`."""

    nats_url: str
    prefix: str = "mesh"
    config_file: str
    replicas: int = 2
    gateway_port: int = 8080
    admin_port: int = 9090
    host: str = "127.0.0.1"
    services: bool = True
    health_checker: bool = True
    canary_controller: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.replicas <= 16:
            raise ValueError(f"replicas={self.replicas!r} is not allowed: expected 1..16")
        for option in ("gateway_port", "admin_port"):
            port = getattr(self, option)
            if not 1 <= port <= 65535 - self.replicas:
                raise ValueError(f"{option}={port!r} is not allowed: expected a free port number")
        gateways = range(self.gateway_port, self.gateway_port + self.replicas)
        admins = range(self.admin_port, self.admin_port + self.replicas)
        if set(gateways) & set(admins):
            raise ValueError(
                f"gateway ports {gateways.start}..{gateways.stop - 1} and admin ports "
                f"{admins.start}..{admins.stop - 1} overlap: choose apart"
            )

    def gateway_address(self, index: int) -> str:
        return f"{self.host}:{self.gateway_port + index}"

    def admin_address(self, index: int) -> str:
        return f"{self.host}:{self.admin_port + index}"


def _meshgate(*args: str) -> tuple[str, ...]:
    return (sys.executable, "-m", "meshgate.cli", *args)


def cluster_plan(options: ClusterOptions) -> list[ProcessSpec]:
    """The processes of the local cluster, in start order.

    >>> plan = cluster_plan(ClusterOptions(nats_url="nats://127.0.0.1:4222",
    ...                                    config_file="cluster.toml"))
    >>> [p.name for p in plan][:3], [p.name for p in plan][-2:]
    (['registry', 'health', 'canary'], ['gateway-1', 'gateway-2'])
    """
    bus = ("--nats", options.nats_url, "--prefix", options.prefix)
    plan = [
        ProcessSpec(
            name="registry",
            argv=_meshgate("registry", "--backend", "nats-kv", *bus),
            ready="registry",
        )
    ]
    if options.health_checker:
        plan.append(ProcessSpec(name="health", argv=_meshgate("health", *bus), ready="alive"))
    if options.canary_controller:
        plan.append(
            ProcessSpec(
                name="canary",
                argv=_meshgate("canary", "--config", options.config_file, *bus),
                ready="alive",
            )
        )
    if options.services:
        for demo in DEMO_SERVICES:
            instance_id = f"{demo.name}-1"
            plan.append(
                ProcessSpec(
                    name=demo.name,
                    # --port 0: a free port, so that nothing else on the
                    # machine can keep a demo service from starting
                    argv=_meshgate(
                        "service", demo.name, "--instance-id", instance_id, "--port", "0", *bus
                    ),
                    ready="service",
                    service=demo.service,
                    instance_id=instance_id,
                )
            )
    for index in range(options.replicas):
        replica = f"gateway-{index + 1}"
        plan.append(
            ProcessSpec(
                name=replica,
                argv=_meshgate(
                    "gateway",
                    "--config",
                    options.config_file,
                    "--listen",
                    options.gateway_address(index),
                    "--admin-listen",
                    options.admin_address(index),
                    "--replica-id",
                    replica,
                    *bus,
                ),
                ready="http",
                url=f"http://{options.admin_address(index)}/readyz",
            )
        )
    return plan
