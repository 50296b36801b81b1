"""One readable line per event, for `meshgate events`: when (UTC), what
kind, which route or service, and what changed.

>>> from meshgate.bus.messages import ConfigEvent
>>> event_line(ConfigEvent(kind="removed", route="/api/users/**", at=1700000000.25))
'2023-11-14T22:13:20.250Z  config    /api/users/**  removed'
"""

from __future__ import annotations

from datetime import UTC, datetime

from meshgate.bus.messages import CanaryEvent, CircuitEvent, ConfigEvent, Event, RegistryEvent


def timestamp(at: float) -> str:
    """Epoch seconds as ISO 8601 in UTC, to the millisecond.

    >>> timestamp(1700000000.0)
    '2023-11-14T22:13:20.000Z'
    """
    moment = datetime.fromtimestamp(at, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def event_line(event: Event) -> str:
    """`event` as one line: time, kind, subject name, change."""
    if isinstance(event, CircuitEvent):
        kind, name, change = "circuit", event.route, _circuit_change(event)
    elif isinstance(event, RegistryEvent):
        kind, name, change = "registry", event.instance.name, _registry_change(event)
    elif isinstance(event, CanaryEvent):
        kind, name, change = "canary", event.route, _canary_change(event)
    else:
        kind, name, change = "config", event.route, _config_change(event)
    return f"{timestamp(event.at)}  {kind:<8}  {name}  {change}"


def _circuit_change(event: CircuitEvent) -> str:
    """
    >>> _circuit_change(CircuitEvent(route="payment", from_state="closed", to_state="open",
    ...     replica="gw-1", reset_deadline=1700000030.0, generation=4, at=1700000000.0))
    'closed -> open on gw-1, probe from 2023-11-14T22:13:50.000Z (generation 4)'
    """
    where = f" instance {event.instance}" if event.instance is not None else ""
    text = f"{event.from_state} -> {event.to_state}{where} on {event.replica}"
    if event.reset_deadline is not None:
        text += f", probe from {timestamp(event.reset_deadline)}"
    if event.reopens:
        text += f", reopened {event.reopens}x"
    return f"{text} (generation {event.generation})"


def _registry_change(event: RegistryEvent) -> str:
    instance = event.instance
    text = f"{event.kind} {instance.id} at {instance.host}:{instance.port}"
    if event.kind == "status":
        text += f" now {instance.status.value}"
    return text


def _canary_change(event: CanaryEvent) -> str:
    text = (
        f"{event.kind} ({event.state}): stable {event.stable_version} {event.stable_weight:g}%"
        f" / canary {event.canary_version} {event.canary_weight:g}%"
    )
    if event.reason:
        text += f": {event.reason}"
    return text


def _config_change(event: ConfigEvent) -> str:
    if event.config is None:
        return event.kind
    target = event.config.get("service_name") or ", ".join(event.config.get("upstreams") or ())
    path = event.config.get("path")
    return f"{event.kind}: {path} -> {target}" if path and target else event.kind
