"""`LoadBalancer`: what every strategy offers, and what callers promise it.

Rules shared by every balancer in this package:

- A balancer picks among exactly the instances it is given. It does not look
  at `status`: the discovery client filters to `UP` before it asks, so that
  one place decides which instances are eligible.
- `pick` returns None for an empty list and never raises for one.
- The list may be a new object on every call. Each balancer caches what it
  derives from a list and rebuilds only when the instances it cares about
  change; handing over the same tuple again costs O(1) (see `SnapshotCache`).
- Callers report each request around the call: `on_start` before, `on_finish`
  after, with the latency and the `now` their clock read. Balancers that
  ignore load keep the default no-op hooks.
- No I/O, no clock reads, and no locks: a balancer belongs to one event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from meshgate.bus.instance import ServiceInstance


@runtime_checkable
class LoadBalancer(Protocol):
    """Chooses the instance for the next request.

    >>> from meshgate.discovery.balancers import RoundRobinBalancer
    >>> balancer: LoadBalancer = RoundRobinBalancer()
    >>> instances = (ServiceInstance(id="a", name="svc", host="10.0.0.1", port=80),)
    >>> chosen = balancer.pick(instances)
    >>> balancer.on_start(chosen)
    >>> balancer.on_finish(chosen, 0.012, True, 100.0)
    """

    # Lets the balancers declare slots: the hot path reads their attributes.
    __slots__ = ()

    def pick(
        self, instances: Sequence[ServiceInstance], *, client_ip: str | None = None
    ) -> ServiceInstance | None:
        """One of `instances`, or None when there are none. `client_ip` matters
        only to strategies with client affinity."""
        ...

    def on_start(self, instance: ServiceInstance) -> None:
        """A request to `instance` has been sent."""
        return None

    def on_finish(self, instance: ServiceInstance, latency_s: float, ok: bool, now: float) -> None:
        """The request to `instance` that `on_start` announced has ended after
        `latency_s` seconds; `ok` is False when it failed; `now` is the
        caller's clock at the end."""
        return None
