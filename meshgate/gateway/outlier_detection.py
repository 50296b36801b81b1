"""Outlier ejection: an instance that fails repeatedly leaves the rotation for
a while, as Envoy's outlier detection does.

The rules (pure: callers pass `now`, monotonic seconds):

1. Each instance counts its consecutive failures; a success resets the count.
2. At `consecutive_failures` failures in a row the instance is ejected for
   `ejection_time * times_ejected` seconds (capped at `max_ejection_time`),
   so an instance that keeps failing stays out longer each time.
3. Never more than `max_ejection_percent` of the instances that the caller
   says exist are out at once (and never all of them): past that, a failing
   instance stays in rotation, because some service beats no service.
4. An ejected instance returns by itself when its time is up, with a clean
   failure count; `times_ejected` decays by one for every
   `ejection_time * 2` seconds it stays healthy in rotation.
"""

from __future__ import annotations

from collections.abc import Sequence

from meshgate.bus.instance import ServiceInstance
from meshgate.resilience.validation import percentage, positive_int, positive_number


class _Record:
    __slots__ = ("ejected_until", "failures", "returned_at", "times_ejected")

    def __init__(self) -> None:
        self.failures = 0
        self.times_ejected = 0
        self.ejected_until = 0.0
        self.returned_at = 0.0


class OutlierDetector:
    """Which instances are out of rotation, from the outcomes of calls to them.

    >>> detector = OutlierDetector(consecutive_failures=2, ejection_time=10.0)
    >>> detector.on_result("a", False, now=0.0, population=3)
    >>> detector.on_result("a", False, now=1.0, population=3)
    True
    >>> detector.is_ejected("a", 5.0), detector.is_ejected("a", 11.0)
    (True, False)
    """

    __slots__ = (
        "_records",
        "consecutive_failures",
        "ejection_time",
        "max_ejection_percent",
        "max_ejection_time",
    )

    def __init__(
        self,
        consecutive_failures: int = 5,
        ejection_time: float = 30.0,
        max_ejection_percent: float = 50.0,
        max_ejection_time: float = 300.0,
    ) -> None:
        self.consecutive_failures = positive_int("consecutive_failures", consecutive_failures)
        self.ejection_time = positive_number("ejection_time", ejection_time)
        self.max_ejection_percent = percentage("max_ejection_percent", max_ejection_percent)
        self.max_ejection_time = positive_number("max_ejection_time", max_ejection_time)
        self._records: dict[str, _Record] = {}

    def on_result(self, instance_id: str, ok: bool, now: float, population: int) -> bool | None:
        """Report one call to `instance_id`; `population` is how many instances
        the service has now. Returns True when this failure ejected it."""
        record = self._records.get(instance_id)
        if ok:
            if record is not None and record.failures:
                record.failures = 0
            return None
        if record is None:
            record = self._records[instance_id] = _Record()
        if record.ejected_until > now:
            return None  # a call that was in flight when it was ejected
        self._decay(record, now)
        record.failures += 1
        if record.failures < self.consecutive_failures:
            return None
        if not self._may_eject(now, population):
            return False
        record.times_ejected += 1
        record.failures = 0
        duration = min(self.ejection_time * record.times_ejected, self.max_ejection_time)
        record.ejected_until = now + duration
        record.returned_at = record.ejected_until
        return True

    def is_ejected(self, instance_id: str, now: float) -> bool:
        record = self._records.get(instance_id)
        return record is not None and record.ejected_until > now

    def ejected(self, now: float) -> dict[str, float]:
        """Ejected instance ids and the seconds until each returns."""
        return {
            instance_id: record.ejected_until - now
            for instance_id, record in self._records.items()
            if record.ejected_until > now
        }

    def admitted(
        self, instances: Sequence[ServiceInstance], now: float
    ) -> Sequence[ServiceInstance]:
        """`instances` without the ejected ones; the same object when none is out,
        so that the balancers' caches keep hitting."""
        records = self._records
        if not records:
            return instances
        out = False
        for instance in instances:
            record = records.get(instance.id)
            if record is not None and record.ejected_until > now:
                out = True
                break
        if not out:
            return instances
        return tuple(i for i in instances if not self.is_ejected(i.id, now))

    def forget(self, instance_id: str) -> None:
        """Drop what is known of an instance that left the registry."""
        self._records.pop(instance_id, None)

    def _may_eject(self, now: float, population: int) -> bool:
        if population <= 1:
            return False
        out = sum(1 for record in self._records.values() if record.ejected_until > now)
        return (out + 1) * 100.0 <= self.max_ejection_percent * population and out + 1 < population

    def _decay(self, record: _Record, now: float) -> None:
        if record.times_ejected and record.returned_at:
            healthy_for = now - record.returned_at
            periods = int(healthy_for // (self.ejection_time * 2))
            if periods > 0:
                record.times_ejected = max(0, record.times_ejected - periods)
                record.returned_at = now
