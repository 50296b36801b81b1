"""`InstanceFilter`: which instances of a service belong to a version or a
canary target, by tags and metadata. Shared by version routes and canaries."""

from __future__ import annotations

import msgspec

from meshgate.bus.instance import ServiceInstance


class InstanceFilter(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Instances that carry every tag in `tags` and every pair in `metadata`.

    An empty filter admits every instance.

    >>> from meshgate.bus.instance import ServiceInstance
    >>> f = InstanceFilter(tags=("v2",), metadata={"region": "eu"})
    >>> inst = ServiceInstance(id="u1", name="user", host="h", port=1, tags=("v2",),
    ...                        metadata={"region": "eu"})
    >>> f.admits(inst)
    True
    """

    tags: tuple[str, ...] = ()
    metadata: dict[str, str | int | float | bool] = {}

    @property
    def is_empty(self) -> bool:
        return not self.tags and not self.metadata

    def admits(self, instance: ServiceInstance) -> bool:
        if self.tags and not all(tag in instance.tags for tag in self.tags):
            return False
        return all(instance.metadata.get(key) == wanted for key, wanted in self.metadata.items())
