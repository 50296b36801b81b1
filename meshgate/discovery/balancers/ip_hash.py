"""IP hash: the same client address reaches the same instance, for session
affinity, by consistent hashing.

Each instance owns many points (virtual nodes) on a 64-bit ring, placed by a
stable hash of its id; a client goes to the owner of the first point at or
after the hash of its address. Adding one instance to n moves only the
clients that land on its new points, about 1/(n+1) of them, and they all move
to it. The hash is BLAKE2b: Python's `hash()` is salted per process, and
every gateway replica must send a client to the same place.
"""

from __future__ import annotations

import bisect
import hashlib
import struct
from collections.abc import Sequence

from meshgate.bus.instance import ServiceInstance
from meshgate.discovery.balancers.protocol import LoadBalancer
from meshgate.discovery.balancers.round_robin import RoundRobinBalancer
from meshgate.discovery.balancers.snapshot import SnapshotCache, instance_id
from meshgate.resilience.validation import positive_int

# One 64-byte digest holds eight 64-bit points, so placing an instance takes
# an eighth of the hash calls that a point per digest would.
_EIGHT_POINTS = struct.Struct(">8Q")
# Room below each point for the rank of its owner: up to 2**32 instances.
_RANK_BITS = 32
_RANK_MASK = (1 << _RANK_BITS) - 1


def stable_hash(text: str) -> int:
    """A 64-bit hash of `text` that is the same in every process and release.

    >>> stable_hash("10.0.0.7") == stable_hash("10.0.0.7")
    True
    """
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _ring_points(id_: str, count: int) -> list[int]:
    points: list[int] = []
    digest_number = 0
    while len(points) < count:
        digest = hashlib.blake2b(f"{id_}#{digest_number}".encode(), digest_size=64).digest()
        points.extend(_EIGHT_POINTS.unpack(digest))
        digest_number += 1
    return points[:count]


class HashRing:
    """Points on a 64-bit ring, each owned by a position in an id list.

    >>> ring = HashRing(["a", "b"], virtual_nodes=16)
    >>> ring.owner(stable_hash("10.0.0.7")) in (0, 1)
    True
    """

    __slots__ = ("_entries", "_position_by_rank")

    def __init__(self, ids: Sequence[str], *, virtual_nodes: int) -> None:
        # Each entry packs a point above the rank of its owner's id: sorting
        # and searching plain ints is several times faster than tuples at 160
        # points per instance, and equal points fall to the lower id whatever
        # order the instances were listed in.
        self._position_by_rank = sorted(range(len(ids)), key=ids.__getitem__)
        self._entries = sorted(
            point << _RANK_BITS | rank
            for rank, position in enumerate(self._position_by_rank)
            for point in _ring_points(ids[position], virtual_nodes)
        )

    def owner(self, point: int) -> int:
        """The list position owning `point`: O(log(n * virtual_nodes))."""
        index = bisect.bisect_left(self._entries, point << _RANK_BITS)
        entry = self._entries[index if index < len(self._entries) else 0]
        return self._position_by_rank[entry & _RANK_MASK]


class IpHashBalancer(LoadBalancer):
    """Sends each client address to the same instance while the set of ids
    holds; without `client_ip` it falls back to round-robin.

    `virtual_nodes` points per instance (default 160, as in ketama) keep the
    load within a few percent of even; a changed set of ids rebuilds the
    ring in O(n * virtual_nodes), and a pick costs one hash and a bisect.

    >>> balancer = IpHashBalancer()
    >>> instances = tuple(ServiceInstance(id=i, name="svc", host="h", port=1) for i in "abc")
    >>> first = balancer.pick(instances, client_ip="203.0.113.9")
    >>> all(balancer.pick(instances, client_ip="203.0.113.9") is first for _ in range(5))
    True
    """

    __slots__ = ("_cache", "_fallback", "_virtual_nodes")

    def __init__(self, *, virtual_nodes: int = 160) -> None:
        self._virtual_nodes = positive_int("virtual_nodes", virtual_nodes)
        # Two rings: the full set's, and the one a retry builds without the
        # instance it tried, so a retry does not rebuild the full ring after it.
        self._cache = SnapshotCache(instance_id, self._build_ring, keep=2)
        self._fallback = RoundRobinBalancer()

    def _build_ring(self, instances: Sequence[ServiceInstance]) -> HashRing:
        return HashRing([instance.id for instance in instances], virtual_nodes=self._virtual_nodes)

    def pick(
        self, instances: Sequence[ServiceInstance], *, client_ip: str | None = None
    ) -> ServiceInstance | None:
        if not client_ip:
            return self._fallback.pick(instances)
        if not instances:
            return None
        return instances[self._cache.get(instances).owner(stable_hash(client_ip))]
