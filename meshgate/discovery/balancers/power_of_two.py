"""Power of two choices (p2c): sample two instances at random and send the
request to the less loaded one.

Two random choices need no scan over the instances, yet keep the busiest
instance close to the mean load (Mitzenmacher's result); and where counts lag
behind reality, randomness spreads requests that an exact minimum would send
to one instance. Load is the number of requests in flight; a tie goes to the
lower latency, an exponentially weighted moving average (EWMA) that decays
with time.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from meshgate.bus.instance import ServiceInstance
from meshgate.discovery.balancers.protocol import LoadBalancer
from meshgate.resilience.validation import non_negative_number, positive_number

# Latencies kept beyond twice the current number of instances before the
# departed ones are dropped; spares small services a pass on every change.
_SPARE_LATENCIES = 16


class _Latency:
    __slots__ = ("at", "average")

    def __init__(self, average: float, at: float) -> None:
        self.average = average
        self.at = at


class PowerOfTwoChoicesBalancer(LoadBalancer):
    """Picks the less loaded of two random instances; ties go to the lower
    latency EWMA, then to the first drawn.

    The EWMA forgets with time, not with the number of samples: an
    observation `decay_time` seconds old weighs 1/e of a fresh one, so a burst
    of requests does not wipe out what quieter periods showed (requests that
    end at the same `now` as the one before add nothing). An instance
    with no observation yet counts as fastest, so new instances get tried. A
    failed request counts as at least `failure_penalty` seconds, so an
    instance that fails fast does not look fast. Picks are O(1).

    >>> balancer = PowerOfTwoChoicesBalancer(rng=random.Random(1))
    >>> a, b = (ServiceInstance(id=i, name="svc", host="h", port=1) for i in "ab")
    >>> balancer.on_start(a)
    >>> balancer.pick((a, b)).id
    'b'
    """

    __slots__ = ("_decay_time", "_failure_penalty", "_in_flight", "_latency", "_rng")

    def __init__(
        self,
        *,
        rng: random.Random | None = None,
        decay_time: float = 10.0,
        failure_penalty: float = 1.0,
    ) -> None:
        self._rng = rng if rng is not None else random.Random()
        self._decay_time = positive_number("decay_time", decay_time)
        self._failure_penalty = non_negative_number("failure_penalty", failure_penalty)
        self._in_flight: dict[str, int] = {}
        self._latency: dict[str, _Latency] = {}

    def in_flight(self, instance: ServiceInstance) -> int:
        """Requests to `instance` started and not yet finished."""
        return self._in_flight.get(instance.id, 0)

    def latency(self, instance: ServiceInstance) -> float | None:
        """The latency EWMA of `instance` in seconds; None before its first request ends."""
        state = self._latency.get(instance.id)
        return None if state is None else state.average

    def pick(
        self, instances: Sequence[ServiceInstance], *, client_ip: str | None = None
    ) -> ServiceInstance | None:
        count = len(instances)
        if count < 2:
            return instances[0] if count else None
        if len(self._latency) > 2 * count + _SPARE_LATENCIES:
            self._forget_departed(instances)
        first = self._rng.randrange(count)
        # Drawing from count - 1 and skipping `first` gives a distinct second
        # instance in one draw.
        second = self._rng.randrange(count - 1)
        if second >= first:
            second += 1
        a, b = instances[first], instances[second]
        load_a, load_b = self._in_flight.get(a.id, 0), self._in_flight.get(b.id, 0)
        if load_a != load_b:
            return a if load_a < load_b else b
        return b if self._average(b.id) < self._average(a.id) else a

    def _forget_departed(self, instances: Sequence[ServiceInstance]) -> None:
        # Instances come and go (a redeploy brings new ids), so latencies are
        # kept only for the current ones once the map has grown well past
        # their number: an O(n) pass that many picks pay for together.
        current = {instance.id for instance in instances}
        self._latency = {id_: state for id_, state in self._latency.items() if id_ in current}

    def _average(self, id_: str) -> float:
        state = self._latency.get(id_)
        return 0.0 if state is None else state.average

    def on_start(self, instance: ServiceInstance) -> None:
        self._in_flight[instance.id] = self._in_flight.get(instance.id, 0) + 1

    def on_finish(self, instance: ServiceInstance, latency_s: float, ok: bool, now: float) -> None:
        count = self._in_flight.get(instance.id, 0)
        if count > 1:
            self._in_flight[instance.id] = count - 1
        else:
            # Also absorbs a finish without a start: counts never go negative.
            self._in_flight.pop(instance.id, None)
        observed = latency_s if ok else max(latency_s, self._failure_penalty)
        state = self._latency.get(instance.id)
        if state is None:
            self._latency[instance.id] = _Latency(observed, now)
            return
        # A clock that steps back counts as no time passed.
        kept = math.exp(-max(now - state.at, 0.0) / self._decay_time)
        state.average = state.average * kept + observed * (1.0 - kept)
        state.at = max(state.at, now)
