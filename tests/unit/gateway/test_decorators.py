"""A gateway declared as a class: the reference's decorator example, order
independence, and errors that name the class and the attribute."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from meshgate.gateway.config_file import ConfigError, gateway_config_from_mapping
from meshgate.gateway.decorators import (
    bulkhead,
    canary,
    circuit_breaker,
    gateway,
    gateway_config_from_class,
    outlier_detection,
    rate_limit,
    retry,
    route,
    service_route,
    traffic_policy,
    version_route,
)
from meshgate.gateway.resilience_config import CircuitBreakerConfig, RateLimitConfig

VERSIONS = {
    "v1": {"weight": 70, "allow_explicit": True, "filter": {"tags": ["v1"]}},
    "v2": {"weight": 30, "allow_explicit": True, "filter": {"tags": ["v2"]}},
}


@gateway(
    discovery={"cache_enabled": True, "cache_ttl": "15s"},
    resilience={
        "default_circuit_breaker": {"failure_threshold": 5, "reset_timeout": "15s"},
        "default_retry": {"max_attempts": 2, "backoff": "exponential", "base_delay": "500ms"},
        "default_timeout": "10s",
    },
    metrics={"enabled": True},
    middleware={"cors": True, "logging": True, "request_id": True},
)
class ApiGateway:
    @route("/api/users/**", methods=["GET", "POST", "PUT", "DELETE"])
    @service_route("user-service", load_balancing_strategy="round-robin", strip_prefix="/api/users")
    @version_route(strategy="header", header="X-API-Version", default_version="v1", routes=VERSIONS)
    def user_routes(self) -> None: ...

    @route("/api/orders/**", methods=["GET", "POST"])
    @service_route("order-service", strip_prefix="/api/orders")
    @canary(
        stable={"version": "1.0.0", "weight": 90, "filter": {"tags": ["stable"]}},
        canary={"version": "2.0.0", "weight": 10, "filter": {"tags": ["canary"]}},
        promotion={
            "strategy": "error-rate",
            "error_threshold": 5,
            "evaluation_window": "30s",
            "auto_promote": True,
            "auto_rollback": True,
            "steps": [10, 25, 50, 75, 100],
            "step_interval": "15s",
        },
    )
    def order_routes(self) -> None: ...

    @route("/api/payments/**", methods=["GET", "POST"])
    @service_route("payment-service", strip_prefix="/api/payments")
    @circuit_breaker(failure_threshold=3, reset_timeout="15s")
    @rate_limit(strategy="token-bucket", max=50, window="1m")
    def payment_routes(self) -> None: ...

    @route("/api/products/**", methods=["GET"])
    @service_route("product-service")
    @traffic_policy(
        mirror={"service": "analytics-service", "percentage": 50, "wait_for_response": False},
        timeout="5s",
        retry={"max_attempts": 2, "backoff": "fixed", "base_delay": "500ms"},
    )
    def product_routes(self) -> None: ...


# The same gateway, written as a config file would hold it.
EQUIVALENT_MAPPING: dict[str, Any] = {
    "discovery": {"cache_enabled": True, "cache_ttl": "15s"},
    "resilience": {
        "default_circuit_breaker": {"failure_threshold": 5, "reset_timeout": "15s"},
        "default_retry": {"max_attempts": 2, "backoff": "exponential", "base_delay": "500ms"},
        "default_timeout": "10s",
    },
    "metrics": {"enabled": True},
    "middleware": {"cors": True, "logging": True, "request_id": True},
    "routes": [
        {
            "name": "user_routes",
            "path": "/api/users/**",
            "methods": ["GET", "POST", "PUT", "DELETE"],
            "service_name": "user-service",
            "load_balancing_strategy": "round-robin",
            "strip_prefix": "/api/users",
            "version_route": {
                "strategy": "header",
                "header": "X-API-Version",
                "default_version": "v1",
                "routes": VERSIONS,
            },
        },
        {
            "name": "order_routes",
            "path": "/api/orders/**",
            "methods": ["GET", "POST"],
            "service_name": "order-service",
            "strip_prefix": "/api/orders",
            "canary": {
                "stable": {"version": "1.0.0", "weight": 90, "filter": {"tags": ["stable"]}},
                "canary": {"version": "2.0.0", "weight": 10, "filter": {"tags": ["canary"]}},
                "promotion": {
                    "strategy": "error-rate",
                    "error_threshold": 5,
                    "evaluation_window": "30s",
                    "auto_promote": True,
                    "auto_rollback": True,
                    "steps": [10, 25, 50, 75, 100],
                    "step_interval": "15s",
                },
            },
        },
        {
            "name": "payment_routes",
            "path": "/api/payments/**",
            "methods": ["GET", "POST"],
            "service_name": "payment-service",
            "strip_prefix": "/api/payments",
            "circuit_breaker": {"failure_threshold": 3, "reset_timeout": "15s"},
            "rate_limit": {"strategy": "token-bucket", "max": 50, "window": "1m"},
        },
        {
            "name": "product_routes",
            "path": "/api/products/**",
            "methods": ["GET"],
            "service_name": "product-service",
            "traffic_policy": {
                "mirror": {
                    "service": "analytics-service",
                    "percentage": 50,
                    "wait_for_response": False,
                },
                "timeout": "5s",
                "retry": {"max_attempts": 2, "backoff": "fixed", "base_delay": "500ms"},
            },
        },
    ],
}


def test_the_reference_decorator_gateway_is_the_same_config_as_its_mapping() -> None:
    assert gateway_config_from_class(ApiGateway) == gateway_config_from_mapping(EQUIVALENT_MAPPING)


def test_a_route_is_named_after_its_stub_and_read_in_definition_order() -> None:
    config = gateway_config_from_class(ApiGateway)
    assert [r.name for r in config.routes] == [
        "user_routes",
        "order_routes",
        "payment_routes",
        "product_routes",
    ]


def test_route_can_name_the_route_itself() -> None:
    class Named:
        @route("/a", name="alpha")
        @service_route("a")
        def a(self) -> None: ...

    assert gateway_config_from_class(Named).routes[0].name == "alpha"


def test_the_order_of_the_decorators_does_not_matter() -> None:
    decorators: list[Callable[[Any], Any]] = [
        route("/api/payments/**", methods=["POST"]),
        service_route("payment-service", strip_prefix="/api/payments"),
        circuit_breaker(failure_threshold=3),
        rate_limit(max=50, window="1m"),
        retry(max_attempts=2),
        bulkhead(max_concurrent=4),
        outlier_detection(consecutive_failures=3),
    ]
    configs = set()
    for order in itertools.permutations(decorators):

        def payments(self: object) -> None: ...  # a fresh stub for each order

        for decorate in order:
            payments = decorate(payments)
        gateway_class = type("Gateway", (), {"payments": payments})
        configs.add(repr(gateway_config_from_class(gateway_class).routes))
    assert len(configs) == 1
    (only,) = configs
    assert "CircuitBreakerConfig(failure_threshold=3" in only


def test_route_options_apply_as_in_a_config_file() -> None:
    config = gateway_config_from_class(ApiGateway)
    payments = config.routes[2]
    assert payments.circuit_breaker == CircuitBreakerConfig(
        failure_threshold=3, reset_timeout="15s"
    )
    assert payments.rate_limit == RateLimitConfig(strategy="token-bucket", max=50, window="1m")
    policies = config.policies_for(config.routes[0])
    assert policies.timeout == 10.0
    assert policies.circuit_breaker == CircuitBreakerConfig(
        failure_threshold=5, reset_timeout="15s"
    )


def test_a_subclass_stub_replaces_the_base_stub_of_the_same_name() -> None:
    class Base:
        @route("/a/**")
        @service_route("a")
        def a(self) -> None: ...

        @route("/b/**")
        @service_route("b")
        def b(self) -> None: ...

    class Child(Base):
        @route("/a/**")
        @service_route("a-v2")
        def a(self) -> None: ...

        def b(self) -> None:  # no longer a route
            ...

        @route("/c/**")
        @service_route("c")
        def c(self) -> None: ...

    config = gateway_config_from_class(Child)
    assert [(r.name, r.service_name) for r in config.routes] == [("a", "a-v2"), ("c", "c")]
    assert gateway_config_from_class(Base).routes[0].service_name == "a"


def test_a_class_without_gateway_options_gets_the_defaults() -> None:
    class Plain:
        @route("/a")
        @service_route(upstreams=["127.0.0.1:9001"])
        def a(self) -> None: ...

    config = gateway_config_from_class(Plain)
    assert config.routes[0].upstreams == ("127.0.0.1:9001",)
    assert config.discovery.cache_ttl == 30.0


# --- errors -----------------------------------------------------------------


def test_a_wrong_option_fails_where_the_decorator_is_written_naming_the_stub() -> None:
    with pytest.raises(ConfigError) as caught:

        class Broken:
            @circuit_breaker(failure_threshold="3")
            def payments(self) -> None: ...

    assert str(caught.value) == (
        "test_a_wrong_option_fails_where_the_decorator_is_written_naming_the_stub"
        ".<locals>.Broken.payments: circuit_breaker.failure_threshold: "
        "Expected `int`, got `str`"
    )


def test_a_route_error_names_the_class_and_attribute() -> None:
    class Shop:
        @route("/orders/**")
        @service_route("orders", upstreams=["h:1"])
        def orders(self) -> None: ...

    with pytest.raises(ConfigError) as caught:
        gateway_config_from_class(Shop)
    assert caught.value.source.endswith("Shop.orders")
    assert "exactly one of service_name" in caught.value.detail


def test_a_nested_error_found_only_with_the_whole_route_names_the_option() -> None:
    class Shop:
        @route("/orders/**")
        @service_route(upstreams=["h:1"])
        @canary(stable={"version": "1"}, canary={"version": "2"})
        def orders(self) -> None: ...

    with pytest.raises(ConfigError, match=r"Shop\.orders: canary needs service_name"):
        gateway_config_from_class(Shop)


def test_clashing_routes_name_the_class_and_both_stubs() -> None:
    class Clash:
        @route("/u/{id}")
        @service_route("a")
        def first(self) -> None: ...

        @route("/u/{uid}")
        @service_route("b")
        def second(self) -> None: ...

    with pytest.raises(ConfigError, match=r"Clash: routes: route 'second'.*route 'first'"):
        gateway_config_from_class(Clash)


def test_a_decorator_applied_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match="@circuit_breaker is applied twice"):

        @circuit_breaker(failure_threshold=1)
        @circuit_breaker(failure_threshold=2)
        def stub(self: object) -> None: ...


def test_a_stub_without_route_says_it_needs_one() -> None:
    class Half:
        @service_route("a")
        @circuit_breaker(failure_threshold=1)
        def half(self) -> None: ...

    with pytest.raises(ConfigError, match=r"Half\.half: has @.*no @route\(path\)"):
        gateway_config_from_class(Half)


def test_a_class_without_routes_is_refused() -> None:
    @gateway()
    class Empty:
        pass

    with pytest.raises(ConfigError, match="declares no routes"):
        gateway_config_from_class(Empty)


def test_gateway_options_are_checked_where_they_are_written() -> None:
    with pytest.raises(ConfigError, match=r"discovery\.cache_ttl: Expected `float \| str`"):

        @gateway(discovery={"cache_ttl": [15]})
        class Wrong:
            pass


def test_routes_come_from_stubs_not_from_gateway() -> None:
    with pytest.raises(ConfigError, match="routes: comes from the class's @route stubs"):

        @gateway(routes=[])
        class Wrong:
            pass


def test_decorators_decorate_functions_and_classes_only() -> None:
    with pytest.raises(TypeError, match="method stub"):
        route("/a")("not a function")  # type: ignore[type-var]
    with pytest.raises(TypeError, match="decorates a class"):
        gateway()(lambda: None)  # type: ignore[type-var]


def test_the_canary_decorator_can_turn_sticky_assignment_off() -> None:
    @gateway()
    class Rollout:
        @route(path="/api/orders/**")
        @service_route(service_name="order-service")
        @canary(stable={"version": "1.0.0"}, canary={"version": "2.0.0"}, sticky=None)
        def orders(self) -> None: ...

    (orders,) = gateway_config_from_class(Rollout).routes
    assert orders.canary is not None
    assert orders.canary.sticky is None
