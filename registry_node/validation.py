"""What a registry node accepts: each check returns None when the request is
fine, or a message naming the offending field, which goes back to the
caller in a ``Reply(code="invalid")``. Pure functions, no I/O.

>>> from meshgate.bus.instance import ServiceInstance
>>> bad = ServiceInstance(id="user-1", name="user-service", host="10.0.0.5", port=70000)
>>> instance_problem(bad)
'instance.port=70000: expected 1..65535'
>>> lease_problem(0.0, default_ttl=30.0, max_ttl=300.0) is None
True
"""

from __future__ import annotations

import math

from meshgate.bus.instance import ServiceInstance

MAX_NAME_LENGTH = 253
"""Longest service name or instance id (a DNS name's limit): names become
KV keys and subject tokens, which must stay reasonably short."""


def name_problem(field: str, value: str) -> str | None:
    """Why `value` cannot be a service name or instance id, if it cannot."""
    if not value.strip():
        return f"{field}={value!r}: must not be empty"
    if len(value) > MAX_NAME_LENGTH:
        return f"{field}: longer than {MAX_NAME_LENGTH} characters"
    if any(not char.isprintable() for char in value):
        return f"{field}={value!r}: must not contain control characters"
    return None


def instance_problem(instance: ServiceInstance) -> str | None:
    """Why the registry refuses `instance`, if it does."""
    for field in ("name", "id"):
        problem = name_problem(f"instance.{field}", getattr(instance, field))
        if problem is not None:
            return problem
    if not instance.host.strip() or any(char.isspace() for char in instance.host):
        return f"instance.host={instance.host!r}: expected a host name or address"
    if not 1 <= instance.port <= 65535:
        return f"instance.port={instance.port!r}: expected 1..65535"
    if not instance.health_check_path.startswith("/"):
        return f"instance.health_check_path={instance.health_check_path!r}: must start with '/'"
    interval = instance.health_check_interval
    if not (math.isfinite(interval) and interval > 0):
        return f"instance.health_check_interval={interval!r}: expected a number > 0"
    return None


def lease_problem(ttl: float, *, default_ttl: float, max_ttl: float) -> str | None:
    """Why a lease of `ttl` seconds is refused; 0 stands for `default_ttl`."""
    if not math.isfinite(ttl) or ttl < 0:
        return f"ttl={ttl!r}: expected a number of seconds > 0 (or 0 for the default)"
    if (ttl or default_ttl) > max_ttl:
        return f"ttl={ttl!r}: longer than this registry allows ({max_ttl:g} s)"
    return None
