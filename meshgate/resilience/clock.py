"""The clock the toolkit reads. Pure cores never read it; the async wrappers
take one (default `time.monotonic`), so a test can pass a fake."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]
"""Seconds from an arbitrary origin; must never go backwards."""

monotonic: Clock = time.monotonic


class ManualClock:
    """A clock that moves only when told to: for tests and simulations.

    >>> clock = ManualClock()
    >>> clock.advance(1.5)
    >>> clock()
    1.5
    """

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"seconds={seconds!r} is not allowed: a clock cannot go back")
        self.now += seconds
