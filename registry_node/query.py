"""Which instances a `QueryRequest` selects: pure, so that every registry
node filters alike and tests need no bus.

>>> from meshgate.bus.instance import ServiceInstance
>>> from meshgate.bus.messages import QueryRequest
>>> inst = ServiceInstance(id="u-1", name="user-service", host="10.0.0.5", port=3001,
...                        zone="eu-1a", tags=("api", "v2"), metadata={"version": "2.0.0"})
>>> matches(inst, QueryRequest(service="user-service", tags=("v2",), zone="eu-1a"))
True
>>> matches(inst, QueryRequest(service="user-service", metadata={"version": "1.0.0"}))
False
"""

from __future__ import annotations

from collections.abc import Iterable

from meshgate.bus.instance import ServiceInstance
from meshgate.bus.messages import QueryRequest


def matches(instance: ServiceInstance, request: QueryRequest) -> bool:
    """Whether `instance` passes every filter `request` sets: the same zone,
    all of its tags, equal values for all of its metadata keys, the same status."""
    if request.zone is not None and instance.zone != request.zone:
        return False
    if request.status is not None and instance.status != request.status:
        return False
    if not set(request.tags) <= set(instance.tags):
        return False
    return all(
        key in instance.metadata and _same(instance.metadata[key], wanted)
        for key, wanted in request.metadata.items()
    )


def select(instances: Iterable[ServiceInstance], request: QueryRequest) -> list[ServiceInstance]:
    """The `instances` that match `request`, in their order."""
    return [instance for instance in instances if matches(instance, request)]


def _same(actual: str | int | float | bool, wanted: str | int | float | bool) -> bool:
    # True == 1 in Python, but a query for canary=true must not match weight=1.
    if isinstance(actual, bool) or isinstance(wanted, bool):
        return type(actual) is type(wanted) and actual == wanted
    return actual == wanted
