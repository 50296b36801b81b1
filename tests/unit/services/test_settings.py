"""Where a demo service's settings come from: flag, then variable, then catalog."""

from __future__ import annotations

import socket

import pytest

from services.catalog import CATALOG, find_entry
from services.settings import OPTIONS, ServiceSettings, parse_delay, resolve_settings


def test_catalog_defaults_apply_when_nothing_is_given() -> None:
    settings = resolve_settings("order-service-canary", flags={}, environ={})
    assert (settings.service, settings.version, settings.tags, settings.port) == (
        "order-service",
        "2.0.0",
        ("canary",),
        3004,
    )
    assert (settings.error_rate, settings.latency, settings.fail_health) == (0.0, 0.0, False)
    assert settings.zone == "us-east-1"


def test_a_variable_beats_the_catalog_and_a_flag_beats_the_variable() -> None:
    environ = {
        "MESHGATE_SERVICE_ERROR_RATE": "0.5",
        "MESHGATE_SERVICE_LATENCY": "20ms",
        "MESHGATE_SERVICE_ZONE": "eu-west-1",
        "MESHGATE_SERVICE_TAGS": "api, v9",
        "MESHGATE_SERVICE_FAIL_HEALTH": "yes",
    }
    settings = resolve_settings(
        "user-service-v1", flags={"error_rate": 0.1, "fail_health": False}, environ=environ
    )
    assert settings.error_rate == 0.1
    assert settings.fail_health is False
    assert settings.latency == pytest.approx(0.02)
    assert settings.zone == "eu-west-1"
    assert settings.tags == ("api", "v9")


def test_an_empty_variable_counts_as_unset() -> None:
    settings = resolve_settings("payment-service", flags={}, environ={"MESHGATE_SERVICE_PORT": ""})
    assert settings.port == find_entry("payment-service").port


def test_a_bad_variable_is_refused_naming_the_variable() -> None:
    with pytest.raises(ValueError, match=r"^MESHGATE_SERVICE_LATENCY: '50' needs a unit"):
        resolve_settings("payment-service", flags={}, environ={"MESHGATE_SERVICE_LATENCY": "50"})


def test_an_unknown_service_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(KeyError, match="user-service-v1"):
        resolve_settings("user-service-v3", flags={}, environ={})


@pytest.mark.parametrize(
    ("text", "seconds"), [("50ms", 0.05), ("1.5s", 1.5), ("0ms", 0.0), (" 2s ", 2.0)]
)
def test_a_delay_carries_its_unit(text: str, seconds: float) -> None:
    assert parse_delay(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("50", "'50' needs a unit: '50ms' or '50s'"),
        ("-5ms", "'-5ms' is not a duration"),
        ("soon", "'soon' is not a duration"),
        ("", "'' is not a duration"),
    ],
)
def test_a_delay_without_a_unit_or_below_zero_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_delay(text)


def test_every_option_has_a_flag_and_a_service_variable() -> None:
    for name, option in OPTIONS.items():
        assert option.flag == "--" + name.replace("_", "-")
        assert option.env == "MESHGATE_SERVICE_" + name.upper()


def test_a_service_listening_everywhere_advertises_the_machine_name() -> None:
    settings = ServiceSettings(key="k", service="s", version="1", host="0.0.0.0")
    assert settings.reachable_host == socket.gethostname()
    advertised = ServiceSettings(
        key="k", service="s", version="1", host="0.0.0.0", advertise_host="user-service-v1"
    )
    assert advertised.reachable_host == "user-service-v1"


def test_the_registration_carries_version_tags_zone_and_the_chosen_port() -> None:
    settings = resolve_settings("user-service-v2", flags={"instance_id": "u2-1"}, environ={})
    assert settings.registration(40123) == {
        "name": "user-service",
        "host": "127.0.0.1",
        "port": 40123,
        "zone": "us-east-1",
        "tags": ["api", "v2"],
        "metadata": {"version": "2.0.0"},
        "health_check_path": "/health",
        "health_check_interval": 5.0,
        "instance_id": "u2-1",
    }


def test_catalog_keys_and_ports_are_unique() -> None:
    keys = [entry.key for entry in CATALOG]
    ports = [entry.port for entry in CATALOG]
    assert len(set(keys)) == len(keys) == 7
    assert len(set(ports)) == len(ports)
