"""Reading a gateway config from a TOML, YAML or JSON file or from a mapping,
with errors a user can act on.

Every error is a `ConfigError` that says where the config came from, which
option, and what is wrong, in that order::

    gateway.toml: routes[2].circuit_breaker.failure_threshold: Expected `int`, got `str`

The middle part is msgspec's path (``$.routes[2].circuit_breaker...``)
without its ``$.``; the last is msgspec's message, or the `ValueError` of the
`__post_init__` that refused the value.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from meshgate.gateway.config import GatewayConfig
from meshgate.gateway.route_config import RouteConfig

C = TypeVar("C", bound=msgspec.Struct)

_AT_PATH = re.compile(r"^(?P<message>.*) - at `\$(?P<path>[^`]*)`$", re.DOTALL)
_SUFFIXES = (".toml", ".yaml", ".yml", ".json")


class ConfigError(ValueError):
    """A config that cannot be used: `source` (a file name, a class attribute,
    ``"config"``), `option` (the path to the value, "" for the whole config)
    and `detail` (what is wrong)."""

    def __init__(self, source: str, option: str, detail: str) -> None:
        self.source = source
        self.option = option
        self.detail = detail
        where = f"{source}: {option}" if option else source
        super().__init__(f"{where}: {detail}")


def config_error(exc: msgspec.ValidationError | ValueError, source: str) -> ConfigError:
    """`exc` as a `ConfigError` from `source`, msgspec's path made readable.

    >>> try:
    ...     msgspec.convert({"routes": [{"path": 5}]}, GatewayConfig)
    ... except msgspec.ValidationError as exc:
    ...     print(config_error(exc, "gateway.toml"))
    gateway.toml: routes[0].path: Expected `str`, got `int`
    """
    text = str(exc)
    found = _AT_PATH.match(text)
    if found is None:
        return ConfigError(source, "", text)
    return ConfigError(source, found["path"].removeprefix("."), found["message"])


def struct_from_mapping(mapping: object, kind: type[C], *, source: str) -> C:
    """`mapping` decoded as `kind`, or a `ConfigError` from `source`."""
    try:
        return msgspec.convert(mapping, kind)
    except msgspec.ValidationError as exc:
        raise config_error(exc, source) from None


def gateway_config_from_mapping(
    mapping: Mapping[str, Any], *, source: str = "config"
) -> GatewayConfig:
    """The gateway config in `mapping` (the shape of a config file).

    >>> config = gateway_config_from_mapping({"routes": [
    ...     {"path": "/api/users/**", "service_name": "user-service"}]})
    >>> [route.name for route in config.routes]
    ['/api/users/**']
    >>> try:
    ...     gateway_config_from_mapping({"routes": [{"path": "/a", "service_name": "s",
    ...         "circuit_breaker": {"failure_threshold": "3"}}]}, source="gateway.toml")
    ... except ConfigError as exc:
    ...     print(exc.option, "|", exc.detail)
    routes[0].circuit_breaker.failure_threshold | Expected `int`, got `str`
    """
    return struct_from_mapping(mapping, GatewayConfig, source=source)


def route_config_from_mapping(mapping: Mapping[str, Any], *, source: str = "route") -> RouteConfig:
    """One route in `mapping` (as `GatewayServer.add_route` takes it)."""
    return struct_from_mapping(mapping, RouteConfig, source=source)


def load_gateway_config(path: str | Path) -> GatewayConfig:
    """The gateway config in the file at `path`: ``.toml``, ``.yaml``/``.yml``
    (needs PyYAML, the ``meshgate[yaml]`` extra) or ``.json``."""
    path = Path(path)
    source = str(path)
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise ConfigError(
            source,
            "",
            f"unknown config format {suffix or '(none)'!r}: expected .toml, .yaml or .json",
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(source, "", f"cannot be read: {exc.strerror or exc}") from None
    document = _parsed(raw, suffix, source)
    if document is None:  # an empty YAML file
        document = {}
    return struct_from_mapping(document, GatewayConfig, source=source)


def _parsed(raw: bytes, suffix: str, source: str) -> object:
    if suffix == ".toml":
        try:
            return tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(source, "", f"is not valid TOML: {exc}") from None
    if suffix == ".json":
        try:
            return msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            raise ConfigError(source, "", f"is not valid JSON: {exc}") from None
    try:
        import yaml
    except ImportError:
        raise ConfigError(
            source, "", "YAML config needs PyYAML: pip install 'meshgate[yaml]', or use TOML"
        ) from None
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(source, "", f"is not valid YAML: {exc}") from None
