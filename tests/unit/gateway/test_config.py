"""The gateway config: files in three formats, the checks types cannot
express, errors that name the file and the option, and options that map one
to one onto the constructors they configure."""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from meshgate.discovery.discovery_client import DiscoveryClient
from meshgate.gateway.config import CorsConfig, DiscoveryConfig, GatewayConfig, MiddlewareConfig
from meshgate.gateway.config_file import (
    ConfigError,
    gateway_config_from_mapping,
    load_gateway_config,
    route_config_from_mapping,
)
from meshgate.gateway.cors import CorsPolicy
from meshgate.gateway.http.limits import ServerLimits
from meshgate.gateway.keyed_rate_limit import KeyedRateLimit
from meshgate.gateway.matcher import RouteMatch, RouteTable
from meshgate.gateway.mirror import TrafficMirror
from meshgate.gateway.outlier_detection import OutlierDetector
from meshgate.gateway.resilience_config import (
    BulkheadConfig,
    CircuitBreakerConfig,
    OutlierDetectionConfig,
    RateLimitConfig,
    RetryConfig,
)
from meshgate.gateway.server_limits_config import ServerLimitsConfig
from meshgate.gateway.traffic_policy_config import MirrorConfig
from meshgate.resilience.bulkhead import Bulkhead
from meshgate.resilience.circuit_breaker import CircuitBreaker
from meshgate.resilience.rate_limiter import RateLimiter
from meshgate.resilience.retry import RetryPolicy

# The reference's config-driven example, in snake_case, plus a few routes that
# use the rest of the shape.
REFERENCE: dict[str, Any] = {
    "discovery": {"cache_enabled": True, "cache_ttl": "15s"},
    "resilience": {
        "default_circuit_breaker": {"failure_threshold": 5, "reset_timeout": "10s"},
        "default_timeout": "10s",
    },
    "routes": [
        {
            "path": "/api/users/**",
            "service_name": "user-service",
            "version_route": {
                "strategy": "header",
                "header": "X-API-Version",
                "default_version": "v1",
                "routes": {
                    "v1": {"weight": 80, "filter": {"tags": ["v1"]}},
                    "v2": {"weight": 20, "filter": {"tags": ["v2"]}},
                },
            },
        },
        {
            "path": "/api/payments/**",
            "service_name": "payment-service",
            "circuit_breaker": {"failure_threshold": 3, "reset_timeout": "15s"},
            "rate_limit": {"strategy": "token-bucket", "max": 100, "window": "1m"},
        },
        {
            "path": "/api/orders/**",
            "methods": ["get", "post"],
            "service_name": "order-service",
            "strip_prefix": "/api/orders",
            "canary": {
                "stable": {"version": "1.0.0", "weight": 90},
                "canary": {"version": "2.0.0", "weight": 10},
                "promotion": {"error_threshold": 5, "step_interval": "15s"},
            },
        },
        {
            "path": "/api/products/**",
            "methods": ["GET"],
            "service_name": "product-service",
            "traffic_policy": {
                "mirror": {"service": "analytics-service", "percentage": 50},
                "timeout": "5s",
                "retry": {"max_attempts": 2, "backoff": "fixed", "base_delay": "500ms"},
            },
        },
        {"path": "/static/**", "upstreams": ["127.0.0.1:9001", "[::1]:9002"]},
    ],
}

TOML = """
[discovery]
cache_enabled = true
cache_ttl = "15s"

[resilience]
default_timeout = "10s"
default_circuit_breaker = { failure_threshold = 5, reset_timeout = "10s" }

[[routes]]
path = "/api/users/**"
service_name = "user-service"
[routes.version_route]
strategy = "header"
header = "X-API-Version"
default_version = "v1"
routes.v1 = { weight = 80, filter = { tags = ["v1"] } }
routes.v2 = { weight = 20, filter = { tags = ["v2"] } }

[[routes]]
path = "/api/payments/**"
service_name = "payment-service"
circuit_breaker = { failure_threshold = 3, reset_timeout = "15s" }
rate_limit = { strategy = "token-bucket", max = 100, window = "1m" }

[[routes]]
path = "/api/orders/**"
methods = ["get", "post"]
service_name = "order-service"
strip_prefix = "/api/orders"
[routes.canary]
stable = { version = "1.0.0", weight = 90 }
canary = { version = "2.0.0", weight = 10 }
promotion = { error_threshold = 5, step_interval = "15s" }

[[routes]]
path = "/api/products/**"
methods = ["GET"]
service_name = "product-service"
[routes.traffic_policy]
timeout = "5s"
mirror = { service = "analytics-service", percentage = 50 }
retry = { max_attempts = 2, backoff = "fixed", base_delay = "500ms" }

[[routes]]
path = "/static/**"
upstreams = ["127.0.0.1:9001", "[::1]:9002"]
"""

YAML = """
discovery: {cache_enabled: true, cache_ttl: 15s}
resilience:
  default_circuit_breaker: {failure_threshold: 5, reset_timeout: 10s}
  default_timeout: 10s
routes:
  - path: /api/users/**
    service_name: user-service
    version_route:
      strategy: header
      header: X-API-Version
      default_version: v1
      routes:
        v1: {weight: 80, filter: {tags: [v1]}}
        v2: {weight: 20, filter: {tags: [v2]}}
  - path: /api/payments/**
    service_name: payment-service
    circuit_breaker: {failure_threshold: 3, reset_timeout: 15s}
    rate_limit: {strategy: token-bucket, max: 100, window: 1m}
  - path: /api/orders/**
    methods: [get, post]
    service_name: order-service
    strip_prefix: /api/orders
    canary:
      stable: {version: 1.0.0, weight: 90}
      canary: {version: 2.0.0, weight: 10}
      promotion: {error_threshold: 5, step_interval: 15s}
  - path: /api/products/**
    methods: [GET]
    service_name: product-service
    traffic_policy:
      mirror: {service: analytics-service, percentage: 50}
      timeout: 5s
      retry: {max_attempts: 2, backoff: fixed, base_delay: 500ms}
  - path: /static/**
    upstreams: ["127.0.0.1:9001", "[::1]:9002"]
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def config_with_route(**route: Any) -> dict[str, Any]:
    return {"routes": [{"path": "/a/**", "service_name": "svc", **route}]}


def error_of(mapping: dict[str, Any], source: str = "gateway.toml") -> str:
    with pytest.raises(ConfigError) as caught:
        gateway_config_from_mapping(mapping, source=source)
    return str(caught.value)


# --- files ------------------------------------------------------------------


def test_toml_yaml_and_json_files_of_the_same_config_load_to_the_same_config(
    tmp_path: Path,
) -> None:
    expected = gateway_config_from_mapping(REFERENCE)
    assert load_gateway_config(write(tmp_path, "g.toml", TOML)) == expected
    assert load_gateway_config(write(tmp_path, "g.yaml", YAML)) == expected
    assert load_gateway_config(str(write(tmp_path, "g.yml", YAML))) == expected
    assert load_gateway_config(write(tmp_path, "g.json", json.dumps(REFERENCE))) == expected


def test_the_reference_config_reads_as_the_reference_means_it() -> None:
    config = gateway_config_from_mapping(REFERENCE)
    users, payments, orders, products, static = config.routes
    assert config.discovery.options()["cache_ttl"] == 15.0
    assert users.version_route is not None
    assert users.version_route.routes["v2"].weight == 20
    assert payments.circuit_breaker == CircuitBreakerConfig(
        failure_threshold=3, reset_timeout="15s"
    )
    assert orders.methods == ("GET", "POST")
    assert orders.canary is not None
    assert orders.canary.promotion.step_interval_seconds == 15.0
    assert products.traffic_policy is not None
    assert products.traffic_policy.mirror == MirrorConfig(
        service="analytics-service", percentage=50
    )
    assert static.upstreams == ("127.0.0.1:9001", "[::1]:9002")
    assert config.listen == "127.0.0.1:8080"
    assert config.admin_listen == "127.0.0.1:9090"
    assert config.bus_prefix == "mesh"


def test_an_error_in_a_file_names_the_file_and_the_option_path(tmp_path: Path) -> None:
    bad = json.loads(json.dumps(REFERENCE))
    bad["routes"][2]["circuit_breaker"] = {"failure_threshold": "3"}
    path = write(tmp_path, "gateway.json", json.dumps(bad))
    with pytest.raises(ConfigError) as caught:
        load_gateway_config(path)
    assert str(caught.value) == (
        f"{path}: routes[2].circuit_breaker.failure_threshold: Expected `int`, got `str`"
    )
    assert caught.value.option == "routes[2].circuit_breaker.failure_threshold"


def test_a_toml_type_error_names_the_route_by_its_index(tmp_path: Path) -> None:
    path = write(
        tmp_path, "g.toml", TOML.replace("failure_threshold = 3", 'failure_threshold = "3"')
    )
    with pytest.raises(ConfigError, match=r"routes\[1\]\.circuit_breaker\.failure_threshold: "):
        load_gateway_config(path)


def test_a_value_refused_by_a_check_names_the_struct_and_the_option() -> None:
    message = error_of(config_with_route(circuit_breaker={"failure_threshold": 0}))
    assert message == (
        "gateway.toml: routes[0].circuit_breaker: "
        "failure_threshold=0 is not allowed: expected an integer >= 1"
    )


def test_an_unknown_key_is_refused_where_it_is() -> None:
    assert error_of(config_with_route(circuit_breaker={"threshold": 3})) == (
        "gateway.toml: routes[0].circuit_breaker: Object contains unknown field `threshold`"
    )
    assert "unknown field `rotues`" in error_of({"rotues": []})


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("g.toml", "routes = [", "is not valid TOML"),
        ("g.json", "{", "is not valid JSON"),
        ("g.yaml", "routes: [", "is not valid YAML"),
        ("g.ini", "", "unknown config format '.ini'"),
    ],
)
def test_a_file_that_does_not_parse_says_which_and_why(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_gateway_config(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_gateway_config(tmp_path / "nope.toml")


def test_an_empty_yaml_file_is_the_default_config(tmp_path: Path) -> None:
    assert load_gateway_config(write(tmp_path, "g.yaml", "")) == GatewayConfig()


def test_yaml_without_pyyaml_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(ConfigError, match=r"pip install 'meshgate\[yaml\]'"):
        load_gateway_config(write(tmp_path, "g.yaml", "routes: []"))


def test_a_config_is_a_mapping_at_the_top() -> None:
    assert error_of([], source="x") == "x: Expected `object`, got `array`"  # type: ignore[arg-type]


# --- routes -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ({"service_name": None}, "exactly one of service_name"),
        ({"upstreams": ["h:1"]}, "exactly one of service_name"),
        ({"service_name": None, "upstreams": ["h"]}, "expected 'host:port'"),
        ({"service_name": None, "upstreams": ["h:70000"]}, "port must be 1..65535"),
        ({"service_name": None, "upstreams": ["h:1", "h:1"]}, "lists 'h:1' twice"),
        ({"path": "/a/**/b"}, "only be the last segment"),
        ({"methods": ["GET", "NOT A METHOD"]}, "not an HTTP method"),
        ({"host": "api.example.com:80"}, "leave the port out"),
        ({"load_balancing_strategy": "fastest"}, "load_balancing_strategy='fastest'"),
        ({"strip_prefix": "api"}, "strip_prefix='api'"),
        ({"rewrite": "/x/{id}"}, "captures no {id}"),
        ({"path": "/a/{id}", "rewrite": "/x/{**}"}, "needs a path ending in '\\*\\*'"),
        ({"rewrite": "/{**}", "strip_prefix": "/a"}, "cannot be set with it"),
        ({"timeout": 0}, r"timeout=0(\.0)? is not allowed"),
        ({"timeout": "soon"}, "timeout='soon' is not a duration"),
        ({"max_body_bytes": 0}, "max_body_bytes=0"),
        ({"name": " padded "}, "name=' padded '"),
        (
            {"timeout": "1s", "traffic_policy": {"timeout": "2s"}},
            "timeout is set twice",
        ),
        (
            {"retry": {"max_attempts": 2}, "traffic_policy": {"retry": {"max_attempts": 3}}},
            "retry is set twice",
        ),
    ],
)
def test_a_route_is_refused_for_what_types_cannot_say(route: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        gateway_config_from_mapping(config_with_route(**route))
    assert caught.value.option.startswith("routes[0]")


def test_a_route_splits_traffic_by_version_route_or_canary_not_both() -> None:
    message = error_of(
        config_with_route(
            version_route={"default_version": "v1", "routes": {"v1": {}}},
            canary={"stable": {"version": "1"}, "canary": {"version": "2"}},
        )
    )
    assert message == (
        "gateway.toml: routes[0]: version_route and canary are both set: "
        "a route splits its traffic by one of them"
    )


def test_a_canary_needs_a_discovered_service() -> None:
    message = error_of(
        {
            "routes": [
                {
                    "path": "/a",
                    "upstreams": ["h:1"],
                    "canary": {"stable": {"version": "1"}, "canary": {"version": "2"}},
                }
            ]
        }
    )
    assert "canary needs service_name" in message


def test_a_route_is_named_after_its_path_and_host_unless_named() -> None:
    config = gateway_config_from_mapping(
        {
            "routes": [
                {"path": "/a/**", "service_name": "s"},
                {"path": "/a/**", "host": "API.example.com", "service_name": "s"},
                {"path": "/b", "name": "bee", "service_name": "s"},
            ]
        }
    )
    assert [route.name for route in config.routes] == ["/a/**", "api.example.com/a/**", "bee"]
    assert config.routes[1].host == "api.example.com"


def test_methods_are_upper_cased_and_kept_once() -> None:
    route = route_config_from_mapping(
        {"path": "/a", "methods": ["get", "GET", "Post"], "service_name": "s"}
    )
    assert route.methods == ("GET", "POST")


def test_two_routes_that_clash_are_refused_naming_both() -> None:
    message = error_of(
        {
            "routes": [
                {"path": "/u/{id}", "name": "users", "service_name": "a"},
                {"path": "/u/{uid}", "name": "people", "service_name": "b"},
            ]
        }
    )
    assert message.startswith("gateway.toml: routes: route 'people'")
    assert "duplicates route 'users'" in message


def test_two_routes_of_one_name_are_refused() -> None:
    message = error_of(
        {
            "routes": [
                {"path": "/u", "methods": ["GET"], "service_name": "a"},
                {"path": "/u", "methods": ["POST"], "service_name": "b"},
            ]
        }
    )
    assert "has that name already" in message


def test_a_config_builds_the_route_table_it_describes() -> None:
    config = gateway_config_from_mapping(REFERENCE)
    found = config.route_table().match("GET", "/api/orders/7")
    assert isinstance(found, RouteMatch)
    assert found.route is config.routes[2]
    assert found.rest == "7"
    assert config.route_table().match("DELETE", "/api/orders/7") is not None


def test_a_route_can_be_added_to_a_running_table() -> None:
    route = route_config_from_mapping({"path": "/new/**", "upstreams": ["h:1"]})
    table = route.added_to(RouteTable())
    found = table.match("GET", "/new/x")
    assert isinstance(found, RouteMatch)
    assert found.route is route


def test_a_route_error_from_a_mapping_names_its_source() -> None:
    with pytest.raises(ConfigError, match=r"^route: path: Expected `str`, got `int`$"):
        route_config_from_mapping({"path": 1, "service_name": "s"})


# --- gateway-wide options ---------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"listen": "8080"}, "listen has '8080'"),
        ({"listen": "0.0.0.0:9090", "admin_listen": "0.0.0.0:9090"}, "must differ"),
        ({"bus_prefix": "my prefix"}, "bus_prefix='my prefix'"),
        ({"bus_prefix": "a..b"}, "empty token"),
        ({"drain_timeout": "-1s"}, "drain_timeout='-1s' is not a duration"),
        ({"admin_token": ""}, "admin_token=''"),
        ({"limits": {"max_header_bytes": 0}}, "max_header_bytes=0"),
        ({"limits": {"header_timeout": 0}}, "header_timeout=0"),
        ({"limits": {"max_headers": 10}}, "unknown field `max_headers`"),
        ({"middleware": {"log_format": "xml"}}, "Invalid enum value 'xml'"),
        ({"discovery": {"cache_ttl": "0s"}}, "cache_ttl='0s'"),
        ({"resilience": {"default_timeout": 0}}, "default_timeout=0"),
    ],
)
def test_a_wrong_gateway_option_is_refused_naming_it(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        gateway_config_from_mapping(options)


def test_listening_on_port_zero_lets_the_system_choose() -> None:
    config = gateway_config_from_mapping({"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0"})
    assert config.listen == "127.0.0.1:0"


def test_server_limits_and_drain_take_durations() -> None:
    config = gateway_config_from_mapping(
        {"limits": {"header_timeout": "5s", "idle_timeout": "2m"}, "drain_timeout": "500ms"}
    )
    limits = config.limits.server_limits()
    assert (limits.header_timeout, limits.idle_timeout) == (5.0, 120.0)
    assert limits.max_url_bytes == ServerLimits().max_url_bytes  # not written: the server's
    assert config.drain_timeout_seconds == 0.5


def test_every_server_limit_in_the_config_is_a_server_limit() -> None:
    written = {
        "max_header_bytes": 32768,
        "max_header_count": 50,
        "max_url_bytes": 4096,
        "max_body_bytes": None,
        "header_timeout": "5s",
        "body_timeout": "20s",
        "idle_timeout": "1m",
        "send_timeout": "30s",
        "linger_timeout": "1s",
        "keep_alive_requests": 100,
    }
    config = msgspec.convert(written, ServerLimitsConfig)
    assert set(ServerLimitsConfig.__struct_fields__) == set(ServerLimits.__struct_fields__)
    limits = config.server_limits()
    assert limits.max_body_bytes is None
    assert (limits.idle_timeout, limits.keep_alive_requests) == (60.0, 100)


def test_cors_is_off_by_default_on_with_true_and_configurable() -> None:
    assert MiddlewareConfig().cors_config is None
    assert MiddlewareConfig(cors=True).cors_config == CorsConfig()
    middleware = msgspec.convert(
        {"cors": {"allow_origins": ["https://app.example.com"], "max_age": "1h"}}, MiddlewareConfig
    )
    assert middleware.cors_config is not None
    assert middleware.cors_config.options() == {
        "allow_origins": ("https://app.example.com",),
        "max_age": 3600,
    }


def test_a_config_survives_a_round_trip_through_json_for_the_bus() -> None:
    config = gateway_config_from_mapping(REFERENCE)
    encoded = msgspec.json.encode(config)
    assert msgspec.json.decode(encoded, type=GatewayConfig) == config
    assert b"UNSET" not in encoded
    assert b'"success_threshold"' not in encoded  # what was not written stays out


# --- resilience options -----------------------------------------------------


def test_a_routes_options_are_laid_over_the_defaults_field_by_field() -> None:
    config = gateway_config_from_mapping(
        {
            "resilience": {
                "default_circuit_breaker": {"failure_threshold": 5, "reset_timeout": "15s"},
                "default_retry": {"max_attempts": 3, "backoff": "exponential"},
            },
            "routes": [
                {"path": "/a", "service_name": "s", "circuit_breaker": {"failure_threshold": 2}},
                {"path": "/b", "service_name": "s"},
            ],
        }
    )
    overlaid, inherited = (config.policies_for(route) for route in config.routes)
    assert overlaid.circuit_breaker is not None
    assert overlaid.circuit_breaker.options() == {"failure_threshold": 2, "reset_timeout": 15.0}
    assert inherited.circuit_breaker is not None
    assert inherited.circuit_breaker.options() == {"failure_threshold": 5, "reset_timeout": 15.0}
    assert inherited.retry == RetryConfig(max_attempts=3, backoff="exponential")
    assert inherited.rate_limit is None


def test_a_route_can_lift_a_default_option_with_null() -> None:
    config = gateway_config_from_mapping(
        {
            "resilience": {"default_circuit_breaker": {"timeout": "2s"}},
            "routes": [{"path": "/a", "service_name": "s", "circuit_breaker": {"timeout": None}}],
        }
    )
    policies = config.policies_for(config.routes[0])
    assert policies.circuit_breaker is not None
    assert policies.circuit_breaker.options() == {"timeout": None}


def test_route_options_that_do_not_fit_the_defaults_are_refused_at_load() -> None:
    message = error_of(
        {
            "resilience": {"default_retry": {"base_delay": "1s", "max_delay": "2s"}},
            "routes": [{"path": "/a", "service_name": "s", "retry": {"base_delay": "5s"}}],
        }
    )
    assert message.startswith("gateway.toml: routes[0] ('/a'): retry over resilience.default_retry")
    assert "max_delay=2.0 is not allowed" in message


def test_the_timeout_is_the_routes_then_its_traffic_policys_then_the_default() -> None:
    config = gateway_config_from_mapping(
        {
            "resilience": {"default_timeout": "10s"},
            "limits": {"max_body_bytes": 1000},
            "routes": [
                {"path": "/a", "service_name": "s", "timeout": "1s", "max_body_bytes": 10},
                {"path": "/b", "service_name": "s", "traffic_policy": {"timeout": "2s"}},
                {"path": "/c", "service_name": "s", "traffic_policy": {"per_try_timeout": "1s"}},
            ],
        }
    )
    policies = [config.policies_for(route) for route in config.routes]
    assert [p.timeout for p in policies] == [1.0, 2.0, 10.0]
    assert [p.per_try_timeout for p in policies] == [None, None, 1.0]
    assert [p.max_body_bytes for p in policies] == [10, 1000, 1000]


def test_a_per_try_timeout_longer_than_the_whole_is_refused() -> None:
    message = error_of(config_with_route(traffic_policy={"timeout": "1s", "per_try_timeout": "2s"}))
    assert "per_try_timeout='2s' is not allowed: expected at most timeout ('1s')" in message


@pytest.mark.parametrize(
    ("key", "kind", "header"),
    [
        (msgspec.UNSET, "ip", None),
        ("route", "route", None),
        ("header:X-Api-Key", "header", "X-Api-Key"),
    ],
)
def test_a_rate_limit_key_says_whose_requests_share_an_allowance(
    key: Any, kind: str, header: str | None
) -> None:
    limit = RateLimitConfig(key=key)
    assert (limit.key_kind, limit.key_header) == (kind, header)


@pytest.mark.parametrize("key", ["cookie", "header:", "ip:x"])
def test_a_rate_limit_key_must_be_ip_route_or_a_header(key: str) -> None:
    with pytest.raises(msgspec.ValidationError, match="key="):
        msgspec.convert({"key": key}, RateLimitConfig)


FULL_OPTIONS: list[tuple[type[msgspec.Struct], Callable[..., Any], dict[str, Any]]] = [
    (
        CircuitBreakerConfig,
        CircuitBreaker,
        {
            "failure_threshold": 3,
            "success_threshold": 2,
            "reset_timeout": "15s",
            "timeout": "30s",
            "sliding_window": {"type": "time", "size": 60},
            "minimum_calls": 5,
            "failure_rate_threshold": 50,
            "slow_call_threshold": 80,
            "slow_call_duration": "2s",
            "permitted_calls_in_half_open": 2,
            "open_backoff_multiplier": 2.0,
            "max_reset_timeout": "5m",
        },
    ),
    (
        RetryConfig,
        RetryPolicy,
        {
            "max_attempts": 3,
            "backoff": "exponential",
            "base_delay": "1s",
            "max_delay": "30s",
            "jitter": "full",
        },
    ),
    (RateLimitConfig, RateLimiter, {"strategy": "sliding-window", "max": 50, "window": "1m"}),
    (BulkheadConfig, Bulkhead, {"max_concurrent": 10, "max_queue": 20, "queue_timeout": "5s"}),
    (
        OutlierDetectionConfig,
        OutlierDetector,
        {
            "consecutive_failures": 3,
            "ejection_time": "30s",
            "max_ejection_percent": 50,
            "max_ejection_time": "5m",
        },
    ),
]


@pytest.mark.parametrize(("kind", "constructor", "written"), FULL_OPTIONS)
def test_every_option_is_a_constructor_argument_of_the_same_name(
    kind: type[msgspec.Struct], constructor: Callable[..., Any], written: dict[str, Any]
) -> None:
    config = msgspec.convert(written, kind)
    options = config.options()  # type: ignore[attr-defined]
    parameters = inspect.signature(constructor).parameters
    gateway_only = {"key", "max_keys", *getattr(kind, "GATEWAY_ONLY", ())}
    assert set(kind.__struct_fields__) - gateway_only <= set(parameters)
    assert set(options) == set(written)
    constructor(**options)


def test_durations_reach_the_constructors_in_seconds() -> None:
    options = msgspec.convert(
        {"reset_timeout": "500ms", "timeout": 2, "max_reset_timeout": "2m"}, CircuitBreakerConfig
    ).options()
    assert options == {"reset_timeout": 0.5, "timeout": 2.0, "max_reset_timeout": 120.0}


def test_the_gateways_own_guards_take_the_options_too() -> None:
    limit = msgspec.convert({"max": 5, "window": "10s", "max_keys": 100}, RateLimitConfig)
    keyed = KeyedRateLimit(**limit.keyed_options())
    assert (keyed.strategy, keyed.max, keyed.window, keyed.max_keys) == (
        "token-bucket",
        5,
        10.0,
        100,
    )
    mirror = MirrorConfig(
        service="analytics",
        percentage=25,
        wait_for_response=True,
        max_concurrent=4,
        max_body_bytes=1024,
        timeout="1s",
    )
    assert set(mirror.options()) <= set(inspect.signature(TrafficMirror).parameters)
    cors = msgspec.convert(
        {
            "allow_origins": ["https://a.example"],
            "allow_methods": ["GET"],
            "allow_headers": ["X-Api-Key"],
            "expose_headers": ["X-Request-Id"],
            "allow_credentials": True,
            "max_age": "10m",
        },
        CorsConfig,
    )
    assert CorsPolicy(**cors.options()).allow_credentials
    assert set(DiscoveryConfig().options()) <= set(inspect.signature(DiscoveryClient).parameters)


@pytest.mark.parametrize(
    ("mirror", "message"),
    [
        ({}, "exactly one of service"),
        ({"service": "a", "upstreams": ["h:1"]}, "exactly one of service"),
        ({"service": "a", "percentage": 101}, "percentage=101"),
        ({"service": "a", "timeout": 0}, "timeout=0"),
    ],
)
def test_a_wrong_mirror_is_refused(mirror: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        gateway_config_from_mapping(config_with_route(traffic_policy={"mirror": mirror}))


def test_retry_options_of_the_gateway_are_kept_apart_from_the_policys() -> None:
    config = msgspec.convert(
        {"max_attempts": 2, "retry_on": [503], "retry_non_idempotent": True, "budget_percent": 5},
        RetryConfig,
    )
    assert config.options() == {"max_attempts": 2}
    assert config.gateway_options() == {
        "retry_on": (503,),
        "retry_non_idempotent": True,
        "budget_percent": 5.0,
    }


@pytest.mark.parametrize(
    ("written", "named"),
    [({"retry_on": [404]}, "retry_on"), ({"budget_percent": 150}, "budget_percent")],
)
def test_bad_gateway_retry_options_are_named(written: dict[str, Any], named: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=named):
        msgspec.convert(written, RetryConfig)
