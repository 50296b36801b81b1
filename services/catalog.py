"""The seven demo services of the local cluster and what each one is by
default: the name it registers under, its version, tags, zone and port.

The tags and versions are what `meshgate/local_cluster/cluster.toml` routes by: version
routing picks user-service instances tagged ``v1`` or ``v2``, the order
canary picks instances tagged ``stable`` or ``canary``, and every instance
carries its version in ``metadata["version"]``.

>>> find_entry("order-service-canary").version
'2.0.0'
>>> [entry.key for entry in CATALOG if entry.service == "user-service"]
['user-service-v1', 'user-service-v2']
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, kw_only=True)
class CatalogEntry:
    """One demo service: `key` is how the command line names it
    (``python -m services KEY``), `service` the name it registers under
    (two keys may share one, as user-service v1 and v2 do)."""

    key: str
    service: str
    version: str
    tags: tuple[str, ...]
    port: int
    zone: str = "us-east-1"
    summary: str = ""


CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        key="user-service-v1",
        service="user-service",
        version="1.0.0",
        tags=("api", "v1"),
        port=3001,
        summary="users, API version v1 (header routing default)",
    ),
    CatalogEntry(
        key="user-service-v2",
        service="user-service",
        version="2.0.0",
        tags=("api", "v2"),
        port=3002,
        summary="users, API version v2 (X-API-Version: v2)",
    ),
    CatalogEntry(
        key="order-service-stable",
        service="order-service",
        version="1.0.0",
        tags=("stable",),
        port=3003,
        summary="orders, the stable side of the canary",
    ),
    CatalogEntry(
        key="order-service-canary",
        service="order-service",
        version="2.0.0",
        tags=("canary",),
        port=3004,
        summary="orders, the canary being rolled out",
    ),
    CatalogEntry(
        key="product-service",
        service="product-service",
        version="1.0.0",
        tags=("api",),
        port=3005,
        summary="products, whose traffic is mirrored to analytics-service",
    ),
    CatalogEntry(
        key="payment-service",
        service="payment-service",
        version="1.0.0",
        tags=("api",),
        port=3006,
        summary="payments, behind a circuit breaker and a rate limit",
    ),
    CatalogEntry(
        key="analytics-service",
        service="analytics-service",
        version="1.0.0",
        tags=("mirror-target",),
        port=3007,
        summary="analytics, the target of product-service's mirrored traffic",
    ),
)

CATALOG_KEYS: tuple[str, ...] = tuple(entry.key for entry in CATALOG)


def find_entry(key: str) -> CatalogEntry:
    """The catalog entry named `key`; `KeyError` naming the known keys otherwise.

    >>> find_entry("user-service")
    Traceback (most recent call last):
    ...
    KeyError: "no demo service 'user-service'; the demo services are user-service-v1, \
user-service-v2, order-service-stable, order-service-canary, product-service, \
payment-service, analytics-service"
    """
    for entry in CATALOG:
        if entry.key == key:
            return entry
    raise KeyError(f"no demo service {key!r}; the demo services are {', '.join(CATALOG_KEYS)}")
