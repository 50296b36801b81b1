"""`SnapshotCache`: what a balancer derived from the instance list it last
saw, kept until that list changes in a way the balancer cares about.

Callers may hand a balancer a new list object on every call, so the cache
compares content, not identity, to decide whether to rebuild. A tuple is
immutable, so the same tuple handed over again skips even that comparison:
that is the O(1) path the discovery cache takes. Any other sequence costs one
O(n) pass to build its key, and a rebuild only when the key differs.

Derived structures refer to instances by position and the balancer reads the
instance from the list it was just given, so a refreshed list with the same
key (say, new heartbeat times) serves fresh objects without a rebuild.

A retry asks the same balancer to pick among the instances minus those
already tried, and the next request asks about the full set again. With
``keep > 1`` the structures of the last few keys are kept, so that this
back and forth neither restarts a weighted round-robin cycle (which would
skew picks towards the heaviest instance) nor rebuilds a hash ring twice
per retry. Only structures that nothing changes between picks may be kept:
`peek` sees the current one alone.
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from meshgate.bus.instance import ServiceInstance

Derived = TypeVar("Derived")

InstanceKey = Callable[[ServiceInstance], object]
"""What of one instance the derived structure depends on, e.g. its id."""


# The key of balancers whose structure depends on the ids alone. An
# attrgetter runs in C: a third faster than a function over a new list.
instance_id: InstanceKey = operator.attrgetter("id")


class SnapshotCache(Generic[Derived]):
    """Builds a structure from an instance list once per distinct key.

    >>> built = []
    >>> cache = SnapshotCache(instance_id, lambda instances: built.append(1) or len(instances))
    >>> a = ServiceInstance(id="a", name="svc", host="h", port=1)
    >>> cache.get((a,)), cache.get([a]), len(built)
    (1, 1, 1)
    """

    __slots__ = ("_build", "_derived", "_keep", "_key", "_key_of", "_older", "_tuple")

    def __init__(
        self,
        key_of: InstanceKey,
        build: Callable[[Sequence[ServiceInstance]], Derived],
        *,
        keep: int = 1,
    ) -> None:
        if keep < 1:
            raise ValueError(f"keep={keep!r} is not allowed: expected at least 1")
        self._key_of = key_of
        self._build = build
        self._keep = keep
        self._key: tuple[object, ...] | None = None
        self._tuple: tuple[ServiceInstance, ...] | None = None
        self._derived: Derived | None = None
        # Structures of earlier keys, least recently used first (keep > 1 only).
        self._older: OrderedDict[tuple[object, ...], Derived] = OrderedDict()

    def get(self, instances: Sequence[ServiceInstance]) -> Derived:
        """The structure for `instances`, rebuilt only when their key changed
        to one it does not keep."""
        if instances is self._tuple and self._derived is not None:
            return self._derived
        key = tuple(map(self._key_of, instances))
        if self._derived is None or key != self._key:
            self._derived = self._switch(key, instances)
        # Remembering a list would let an in-place edit go unseen; a tuple cannot change.
        self._tuple = instances if isinstance(instances, tuple) else None
        return self._derived

    def _switch(self, key: tuple[object, ...], instances: Sequence[ServiceInstance]) -> Derived:
        """Make `key` the current key; its structure, kept or built now."""
        kept = self._older.pop(key, None)
        if self._keep > 1 and self._derived is not None and self._key is not None:
            self._older[self._key] = self._derived
            while len(self._older) >= self._keep:
                self._older.popitem(last=False)
        self._key = key
        return kept if kept is not None else self._build(instances)

    def peek(self) -> Derived | None:
        """The structure built last, or None before the first `get`: for hooks
        that keep it in step with events between picks."""
        return self._derived
