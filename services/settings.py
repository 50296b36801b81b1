"""`ServiceSettings`: everything one demo service process is configured with,
from its catalog entry, the environment and the command line.

A flag beats its ``MESHGATE_SERVICE_*`` variable, which beats the catalog's
default. One table (`OPTIONS`) holds every flag with its variable, so the
two cannot drift apart:

>>> settings = resolve_settings(
...     "user-service-v2",
...     flags={"error_rate": 0.2},
...     environ={"MESHGATE_SERVICE_ERROR_RATE": "0.9", "MESHGATE_SERVICE_LATENCY": "50ms"},
... )
>>> settings.service, settings.version, settings.tags, settings.port
('user-service', '2.0.0', ('api', 'v2'), 3002)
>>> settings.error_rate, settings.latency
(0.2, 0.05)
"""

from __future__ import annotations

import dataclasses
import math
import socket
from collections.abc import Callable, Mapping
from typing import Any

from meshgate.durations import parse_duration
from services.catalog import find_entry
from services.knobs import check_error_rate, check_latency

_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def parse_port(text: str) -> int:
    """A TCP port, 0 for a free one.

    >>> parse_port("3001")
    3001
    """
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{text!r} is not a port: expected 0..65535")
    return port


def parse_error_rate(text: str) -> float:
    """A fraction of requests, 0..1.

    >>> parse_error_rate("0.25")
    0.25
    """
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number: expected a fraction in 0..1") from None
    return check_error_rate(value)


def parse_delay(text: str) -> float:
    """Seconds in a duration that carries its unit (``"50ms"``, ``"1.5s"``):
    a bare number is refused, since ``50`` could mean either.

    >>> parse_delay("50ms"), parse_delay("2s")
    (0.05, 2.0)
    >>> parse_delay("50")
    Traceback (most recent call last):
    ...
    ValueError: '50' needs a unit: '50ms' or '50s'
    """
    stripped = text.strip()
    try:
        float(stripped)
    except ValueError:
        pass
    else:
        raise ValueError(f"{text!r} needs a unit: '{stripped}ms' or '{stripped}s'")
    return check_latency(parse_duration(stripped, option="latency"))


def parse_positive_delay(text: str) -> float:
    """A duration with its unit, greater than 0.

    >>> parse_positive_delay("5s")
    5.0
    """
    seconds = parse_delay(text)
    if not seconds > 0:
        raise ValueError(f"{text!r} is not allowed: expected a duration greater than 0")
    return seconds


def parse_tags(text: str) -> tuple[str, ...]:
    """Comma-separated tags, blanks dropped.

    >>> parse_tags("api, v2,")
    ('api', 'v2')
    """
    return tuple(tag.strip() for tag in text.split(",") if tag.strip())


def parse_flag(text: str) -> bool:
    """A yes/no value from the environment.

    >>> parse_flag("true"), parse_flag("0")
    (True, False)
    """
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a yes/no value: expected 1/0, true/false, yes/no, on/off")


def parse_text(text: str) -> str:
    """Non-empty text, stripped."""
    if not text.strip():
        raise ValueError("an empty value is not allowed")
    return text.strip()


@dataclasses.dataclass(frozen=True)
class Option:
    """One setting: its command-line `flag`, its environment variable `env`,
    how text becomes its value (`parse`), and `help` for the command line.
    `is_switch` options are booleans (``--fail-health`` / ``--no-fail-health``)."""

    flag: str
    env: str
    parse: Callable[[str], Any]
    metavar: str
    help: str
    is_switch: bool = False


OPTIONS: dict[str, Option] = {
    "port": Option(
        "--port",
        "MESHGATE_SERVICE_PORT",
        parse_port,
        "PORT",
        "port to serve on (default: the catalog's; 0 picks a free one)",
    ),
    "host": Option(
        "--host",
        "MESHGATE_SERVICE_HOST",
        parse_text,
        "ADDRESS",
        "address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)",
    ),
    "advertise_host": Option(
        "--advertise-host",
        "MESHGATE_SERVICE_ADVERTISE_HOST",
        parse_text,
        "HOST",
        "host the registry hands out (default: --host, or this machine's name when "
        "--host is 0.0.0.0 or ::)",
    ),
    "instance_id": Option(
        "--instance-id",
        "MESHGATE_SERVICE_INSTANCE_ID",
        parse_text,
        "ID",
        "instance id to register under (default: SERVICE-HOST-PORT)",
    ),
    "zone": Option(
        "--zone",
        "MESHGATE_SERVICE_ZONE",
        parse_text,
        "ZONE",
        "availability zone (default: the catalog's)",
    ),
    "version": Option(
        "--version",
        "MESHGATE_SERVICE_VERSION",
        parse_text,
        "VERSION",
        "version to register as metadata.version (default: the catalog's)",
    ),
    "tags": Option(
        "--tags",
        "MESHGATE_SERVICE_TAGS",
        parse_tags,
        "A,B",
        "tags to register (default: the catalog's)",
    ),
    "error_rate": Option(
        "--error-rate",
        "MESHGATE_SERVICE_ERROR_RATE",
        parse_error_rate,
        "FRACTION",
        "share of requests answered 500, seeded (default 0)",
    ),
    "latency": Option(
        "--latency",
        "MESHGATE_SERVICE_LATENCY",
        parse_delay,
        "DURATION",
        "delay before each answer, e.g. 50ms (default 0ms)",
    ),
    "fail_health": Option(
        "--fail-health",
        "MESHGATE_SERVICE_FAIL_HEALTH",
        parse_flag,
        "",
        "answer /health with 503",
        is_switch=True,
    ),
    "seed": Option(
        "--seed",
        "MESHGATE_SERVICE_SEED",
        parse_text,
        "SEED",
        "seed of the error draw (default: the instance id)",
    ),
    "health_check_interval": Option(
        "--health-check-interval",
        "MESHGATE_SERVICE_HEALTH_CHECK_INTERVAL",
        parse_positive_delay,
        "DURATION",
        "how often the health checker probes it; the lease is three of these (default 5s)",
    ),
    "drain_timeout": Option(
        "--drain-timeout",
        "MESHGATE_SERVICE_DRAIN_TIMEOUT",
        parse_delay,
        "DURATION",
        "on SIGTERM, how long requests in flight may finish after deregistering (default 2s)",
    ),
    "remote_knobs": Option(
        "--remote-knobs",
        "MESHGATE_SERVICE_REMOTE_KNOBS",
        parse_flag,
        "",
        "accept POST /_knobs from any address, not only loopback",
        is_switch=True,
    ),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ServiceSettings:
    """One demo service process: who it is (`service`, `version`, `tags`,
    `zone`, `instance_id`), where it listens (`host`, `port`; port 0 picks a
    free one) and is reached (`advertise_host`), how it misbehaves
    (`error_rate`, `latency` in seconds, `fail_health`, the draw's `seed`),
    and its lease and shutdown (`health_check_interval`, `drain_timeout`)."""

    key: str
    service: str
    version: str
    tags: tuple[str, ...] = ()
    zone: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    advertise_host: str | None = None
    instance_id: str | None = None
    error_rate: float = 0.0
    latency: float = 0.0
    fail_health: bool = False
    seed: str | None = None
    health_check_interval: float = 5.0
    drain_timeout: float = 2.0
    remote_knobs: bool = False

    def __post_init__(self) -> None:
        check_error_rate(self.error_rate)
        check_latency(self.latency)
        check_latency(self.drain_timeout, option="drain_timeout")
        if not (math.isfinite(self.health_check_interval) and self.health_check_interval > 0):
            raise ValueError(
                f"health_check_interval={self.health_check_interval!r} is not allowed: "
                "expected a duration greater than 0"
            )

    @property
    def reachable_host(self) -> str:
        """The host others reach it at: `advertise_host`, else `host`, else
        (listening everywhere) this machine's name.

        >>> ServiceSettings(key="k", service="s", version="1", host="10.1.2.3").reachable_host
        '10.1.2.3'
        """
        if self.advertise_host is not None:
            return self.advertise_host
        if self.host in _WILDCARD_HOSTS:
            return socket.gethostname()
        return self.host

    def instance_id_at(self, port: int) -> str:
        """The instance id once it listens on `port`: `instance_id`, or the
        registry's default ``SERVICE-HOST-PORT``, the same on every restart.

        >>> ServiceSettings(key="k", service="user-service", version="1").instance_id_at(3001)
        'user-service-127.0.0.1-3001'
        """
        return self.instance_id or f"{self.service}-{self.reachable_host}-{port}"

    def registration(self, port: int) -> dict[str, Any]:
        """The `ServiceRegistry` config of this service listening on `port`.

        >>> ServiceSettings(key="k", service="s", version="2.0.0").registration(3001)["metadata"]
        {'version': '2.0.0'}
        """
        return {
            "name": self.service,
            "host": self.reachable_host,
            "port": port,
            "zone": self.zone,
            "tags": list(self.tags),
            "metadata": {"version": self.version},
            "health_check_path": "/health",
            "health_check_interval": self.health_check_interval,
            "instance_id": self.instance_id_at(port),
        }


def resolve_settings(
    key: str, *, flags: Mapping[str, Any], environ: Mapping[str, str]
) -> ServiceSettings:
    """The settings of catalog entry `key`: each option from `flags` (parsed
    values, None where not given), else from its variable in `environ`
    (empty counts as unset), else the catalog's or the built-in default.

    Raises `KeyError` for an unknown `key`, and `ValueError` naming the
    variable for a bad environment value.

    >>> resolve_settings("payment-service", flags={},
    ...                  environ={"MESHGATE_SERVICE_ERROR_RATE": "lots"})
    Traceback (most recent call last):
    ...
    ValueError: MESHGATE_SERVICE_ERROR_RATE: 'lots' is not a number: expected a fraction in 0..1
    """
    entry = find_entry(key)
    values: dict[str, Any] = {
        "service": entry.service,
        "version": entry.version,
        "tags": entry.tags,
        "zone": entry.zone,
        "port": entry.port,
    }
    for name, option in OPTIONS.items():
        given = flags.get(name)
        if given is not None:
            values[name] = given
            continue
        text = environ.get(option.env, "")
        if not text:
            continue
        try:
            values[name] = option.parse(text)
        except ValueError as error:
            raise ValueError(f"{option.env}: {error}") from None
    return ServiceSettings(key=key, **values)
