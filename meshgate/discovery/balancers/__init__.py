"""Load balancers: given the instances of a service, choose one per request.

Strategies, by the names `create_balancer` and `get_instance` take:
`round-robin`, `random`, `least-connections`, `weighted-round-robin` (by
`metadata["weight"]`), `ip-hash` (consistent hashing of the client address),
`zone-aware` (own zone first) and `p2c` (power of two choices).

Balancers pick among what they are given and ignore `status`: filtering to
`UP` instances is the discovery client's job. Hand them the same tuple while
the set is unchanged and a pick is O(1) (O(log n) for `ip-hash`).

>>> from meshgate.bus.instance import ServiceInstance
>>> balancer = create_balancer("least-connections")
>>> instances = (ServiceInstance(id="a", name="svc", host="10.0.0.1", port=80),)
>>> instance = balancer.pick(instances)
>>> balancer.on_start(instance)
>>> balancer.on_finish(instance, 0.015, True, 42.0)
"""

from meshgate.discovery.balancers.ip_hash import HashRing, IpHashBalancer, stable_hash
from meshgate.discovery.balancers.least_connections import LeastConnectionsBalancer
from meshgate.discovery.balancers.power_of_two import PowerOfTwoChoicesBalancer
from meshgate.discovery.balancers.protocol import LoadBalancer
from meshgate.discovery.balancers.random_choice import RandomBalancer
from meshgate.discovery.balancers.round_robin import RoundRobinBalancer
from meshgate.discovery.balancers.snapshot import SnapshotCache
from meshgate.discovery.balancers.strategies import STRATEGIES, create_balancer
from meshgate.discovery.balancers.weighted_round_robin import WeightedRoundRobinBalancer
from meshgate.discovery.balancers.zone_aware import ZoneAwareBalancer

__all__ = [
    "STRATEGIES",
    "HashRing",
    "IpHashBalancer",
    "LeastConnectionsBalancer",
    "LoadBalancer",
    "PowerOfTwoChoicesBalancer",
    "RandomBalancer",
    "RoundRobinBalancer",
    "SnapshotCache",
    "WeightedRoundRobinBalancer",
    "ZoneAwareBalancer",
    "create_balancer",
    "stable_hash",
]
