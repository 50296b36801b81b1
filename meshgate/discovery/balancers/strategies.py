"""The strategy names users write in config and `get_instance`, and the
factory that turns a name and options into a balancer."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from meshgate.discovery.balancers.ip_hash import IpHashBalancer
from meshgate.discovery.balancers.least_connections import LeastConnectionsBalancer
from meshgate.discovery.balancers.power_of_two import PowerOfTwoChoicesBalancer
from meshgate.discovery.balancers.protocol import LoadBalancer
from meshgate.discovery.balancers.random_choice import RandomBalancer
from meshgate.discovery.balancers.round_robin import RoundRobinBalancer
from meshgate.discovery.balancers.weighted_round_robin import WeightedRoundRobinBalancer
from meshgate.discovery.balancers.zone_aware import ZoneAwareBalancer
from meshgate.resilience.validation import one_of

STRATEGIES: Mapping[str, Callable[..., LoadBalancer]] = {
    "round-robin": RoundRobinBalancer,
    "random": RandomBalancer,
    "least-connections": LeastConnectionsBalancer,
    "weighted-round-robin": WeightedRoundRobinBalancer,
    "ip-hash": IpHashBalancer,
    "zone-aware": ZoneAwareBalancer,
    "p2c": PowerOfTwoChoicesBalancer,
}
"""Every strategy name, mapped to the class that implements it."""


def create_balancer(strategy: str, **options: Any) -> LoadBalancer:
    """A new balancer for `strategy`, built with `options`.

    Each call returns a fresh balancer with its own state: keep one per
    service, since counters, caches and in-flight counts belong to one set
    of instances.

    >>> create_balancer("zone-aware", zone="eu-west-1").zone
    'eu-west-1'
    >>> create_balancer("fastest")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: strategy='fastest' is not allowed: expected one of 'round-robin', 'random', ...
    """
    make = STRATEGIES[one_of("strategy", strategy, STRATEGIES)]
    # A misspelt or missing option in a config file should fail naming what
    # the strategy takes, not as a TypeError from deep inside.
    parameters = inspect.signature(make).parameters
    unknown = [option for option in options if option not in parameters]
    if unknown:
        takes = ", ".join(parameters) or "none"
        raise ValueError(f"{strategy!r} has no option {unknown[0]!r}: its options are {takes}")
    missing = [
        name
        for name, parameter in parameters.items()
        if parameter.default is inspect.Parameter.empty and name not in options
    ]
    if missing:
        raise ValueError(f"{strategy!r} needs the option {missing[0]!r}")
    return make(**options)
