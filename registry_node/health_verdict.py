"""`HealthVerdict`: what consecutive probe results say about one instance.

Rules (the whole state machine; no I/O and no clock here):

- `unhealthy_threshold` failures in a row make an instance DOWN;
  `healthy_threshold` successes in a row make it UP. One result against the
  streak starts a new streak, so a flapping instance keeps its status.
- The verdict starts at the status the registry holds (UP for a freshly
  registered instance, or UNKNOWN/STARTING); from any status other than UP
  it takes `healthy_threshold` successes to become UP, and from any status
  other than DOWN `unhealthy_threshold` failures to become DOWN.
- `on_probe` returns the new status only when it changes, so the caller
  reports exactly the transitions.
- `adopt` takes a status decided elsewhere (the registry's broadcast); a
  different status starts fresh streaks, since the old ones argued against it.

>>> verdict = HealthVerdict(unhealthy_threshold=2, healthy_threshold=2)
>>> verdict.status
<InstanceStatus.UP: 'UP'>
>>> verdict.on_probe(False), verdict.on_probe(False)
(None, <InstanceStatus.DOWN: 'DOWN'>)
>>> verdict.on_probe(True), verdict.on_probe(True)
(None, <InstanceStatus.UP: 'UP'>)
"""

from __future__ import annotations

from meshgate.bus.instance import InstanceStatus


class HealthVerdict:
    """Consecutive-result counting for one instance.

    >>> starting = HealthVerdict(healthy_threshold=2, status=InstanceStatus.STARTING)
    >>> [starting.on_probe(True) for _ in range(3)]
    [None, <InstanceStatus.UP: 'UP'>, None]
    """

    def __init__(
        self,
        unhealthy_threshold: int = 3,
        healthy_threshold: int = 2,
        *,
        status: InstanceStatus = InstanceStatus.UP,
    ) -> None:
        if unhealthy_threshold < 1:
            raise ValueError(f"unhealthy_threshold={unhealthy_threshold!r}: must be at least 1")
        if healthy_threshold < 1:
            raise ValueError(f"healthy_threshold={healthy_threshold!r}: must be at least 1")
        self._unhealthy_threshold = unhealthy_threshold
        self._healthy_threshold = healthy_threshold
        self._status = status
        self._failures = 0
        self._successes = 0

    @property
    def status(self) -> InstanceStatus:
        """The status the probes have established (or the starting one)."""
        return self._status

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    @property
    def consecutive_successes(self) -> int:
        return self._successes

    def on_probe(self, ok: bool) -> InstanceStatus | None:
        """Count one probe result; the new status if it changed, else None.

        >>> verdict = HealthVerdict(unhealthy_threshold=1)
        >>> verdict.on_probe(False)
        <InstanceStatus.DOWN: 'DOWN'>
        >>> verdict.on_probe(False) is None
        True
        """
        if ok:
            self._failures = 0
            self._successes += 1
            if self._status != InstanceStatus.UP and self._successes >= self._healthy_threshold:
                self._status = InstanceStatus.UP
                return self._status
        else:
            self._successes = 0
            self._failures += 1
            if self._status != InstanceStatus.DOWN and self._failures >= self._unhealthy_threshold:
                self._status = InstanceStatus.DOWN
                return self._status
        return None

    def adopt(self, status: InstanceStatus) -> None:
        """Take `status` as decided elsewhere; a change resets both streaks.

        >>> verdict = HealthVerdict(unhealthy_threshold=2)
        >>> verdict.on_probe(False)
        >>> verdict.adopt(InstanceStatus.STARTING)
        >>> verdict.on_probe(False) is None, verdict.status
        (True, <InstanceStatus.STARTING: 'STARTING'>)
        """
        if status != self._status:
            self._status = status
            self._failures = 0
            self._successes = 0

    def __repr__(self) -> str:
        return (
            f"HealthVerdict(status={self._status.value}, failures={self._failures}, "
            f"successes={self._successes})"
        )
