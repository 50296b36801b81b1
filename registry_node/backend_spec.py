"""The ``--backend`` option: a spec string naming where registrations live.

======================  ===========================================
``memory``              this node's memory (lost on restart; one node)
``nats-kv``             the JetStream KV bucket ``<prefix>_instances``
``redis://host:port/db`` Redis (``rediss://`` for TLS; needs ``meshgate[redis]``)
``consul://host:port``  a Consul agent (``consul+https://`` for TLS)
``kubernetes``          the cluster's EndpointSlices (read-only, in-cluster)
======================  ===========================================

`parse_backend_spec` checks the text before anything connects, so a typo
fails at once; `build_backend` opens the backend once the bus is up.

>>> parse_backend_spec("consul://10.0.0.2:8500")
BackendSpec(kind='consul', url='http://10.0.0.2:8500')
>>> parse_backend_spec("etcd://x")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: --backend 'etcd://x': expected memory, nats-kv, redis://HOST:PORT/DB, ...
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from meshgate.bus.connection import Bus
from meshgate.discovery.backends.consul import ConsulRegistryBackend
from meshgate.discovery.backends.kubernetes import KubernetesRegistryBackend
from meshgate.discovery.backends.memory import MemoryRegistryBackend
from meshgate.discovery.backends.nats_kv import NatsKvRegistryBackend
from meshgate.discovery.backends.protocol import RegistryBackend

BackendKind = Literal["memory", "nats-kv", "redis", "consul", "kubernetes"]

_EXPECTED = "expected memory, nats-kv, redis://HOST:PORT/DB, consul://HOST:PORT or kubernetes"
_NOT_IN_BUCKET_NAME = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """A checked backend spec: its `kind` and, for servers, their `url`."""

    kind: BackendKind
    url: str | None = None

    def describe(self) -> str:
        """The spec for logs, without a password the URL may carry."""
        if self.url is None:
            return self.kind
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{self.kind} {parts.scheme}://{host}{port}{parts.path}"


def parse_backend_spec(text: str) -> BackendSpec:
    """`text` as a `BackendSpec`; ValueError, naming the option, when it is none."""
    spec = text.strip()
    if spec == "memory":
        return BackendSpec("memory")
    if spec == "nats-kv":
        return BackendSpec("nats-kv")
    if spec == "kubernetes":
        return BackendSpec("kubernetes")
    parts = urlsplit(spec)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"--backend {text!r}: the port is not a number") from None
    if parts.scheme in ("redis", "rediss", "unix"):
        if importlib.util.find_spec("redis") is None:
            raise ValueError(
                f"--backend {text!r}: the Redis backend needs redis-py "
                "(pip install 'meshgate[redis]')"
            )
        if parts.scheme != "unix" and not parts.hostname:
            raise ValueError(f"--backend {text!r}: expected redis://HOST:PORT/DB")
        return BackendSpec("redis", spec)
    if parts.scheme in ("consul", "consul+http", "consul+https"):
        if not parts.hostname or parts.path not in ("", "/"):
            raise ValueError(f"--backend {text!r}: expected consul://HOST:PORT")
        scheme = "https" if parts.scheme == "consul+https" else "http"
        where = parts.netloc if port else f"{parts.netloc}:8500"  # Consul's own default
        return BackendSpec("consul", f"{scheme}://{where}")
    raise ValueError(f"--backend {text!r}: {_EXPECTED}")


def bucket_for(prefix: str) -> str:
    """The KV bucket of a cluster's instances: ``mesh_instances`` for the
    default prefix (bucket names allow fewer characters than subjects)."""
    return f"{_NOT_IN_BUCKET_NAME.sub('_', prefix)}_instances"


def build_backend(spec: BackendSpec, bus: Bus, *, prefix: str, node_id: str) -> RegistryBackend:
    """Open the backend `spec` names; ValueError when it cannot be configured
    here (``kubernetes`` outside a cluster)."""
    if spec.kind == "memory":
        return MemoryRegistryBackend()
    if spec.kind == "nats-kv":
        return NatsKvRegistryBackend(bus, bucket=bucket_for(prefix), node_id=node_id)
    if spec.kind == "kubernetes":
        return KubernetesRegistryBackend()
    assert spec.url is not None
    if spec.kind == "consul":
        return ConsulRegistryBackend(spec.url)
    # imported here: redis-py is an optional dependency
    from meshgate.discovery.backends.redis import RedisRegistryBackend

    return RedisRegistryBackend(spec.url)
