"""The services of the reference's gateway examples, as demo instances:
user-service v1 (two instances) and v2, order-service stable and canary,
payment-service, product-service (two instances) and analytics-service, the
mirror target. Version routes select user instances by their `v1`/`v2`
tags, canaries order instances by their `stable`/`canary` tags, as the
reference's filters do."""

from __future__ import annotations

from meshgate.demos.backends.service_spec import ServiceSpec


def shop_services(*, canary_error_rate: float = 0.0) -> tuple[ServiceSpec, ...]:
    """Every instance of the shop; `canary_error_rate` is the share of 500s
    that order-service 2.0.0 answers (a healthy canary at 0, a bad one above)."""
    return (
        ServiceSpec(service="user-service", instance="user-v1-1", zone="zone-a", tags=("v1",)),
        ServiceSpec(service="user-service", instance="user-v1-2", zone="zone-b", tags=("v1",)),
        ServiceSpec(
            service="user-service",
            instance="user-v2-1",
            version="2.0.0",
            zone="zone-a",
            tags=("v2",),
        ),
        ServiceSpec(service="order-service", instance="order-stable-1", tags=("stable",)),
        ServiceSpec(
            service="order-service",
            instance="order-canary-1",
            version="2.0.0",
            tags=("canary",),
            error_rate=canary_error_rate,
        ),
        ServiceSpec(service="payment-service", instance="payment-1"),
        ServiceSpec(service="product-service", instance="product-1", zone="zone-a"),
        ServiceSpec(service="product-service", instance="product-2", zone="zone-b"),
        ServiceSpec(service="analytics-service", instance="analytics-1"),
    )
