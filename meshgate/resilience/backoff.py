"""How long to wait before the next attempt: pure arithmetic, no clock, no sleeping.

A delay grows with the number of the attempt that just failed (1-based):

- ``"fixed"``: ``base_delay`` every time;
- ``"linear"``: ``base_delay * attempt``;
- ``"exponential"``: ``base_delay * 2 ** (attempt - 1)``;

and never exceeds ``max_delay``. Jitter then spreads the delays of many
clients that failed together, so they do not retry in lockstep (the
"thundering herd"); the modes follow the AWS Architecture Blog's
"Exponential Backoff And Jitter":

- ``None``/``False``: the delay as computed;
- ``True``/``"full"``: uniform in ``[0, delay]``;
- ``"equal"``: ``delay / 2`` plus uniform in ``[0, delay / 2]``;
- ``"decorrelated"``: ``min(max_delay, uniform(base_delay, previous * 3))``,
  where ``previous`` is the delay drawn last time (``base_delay`` at first).
  It grows by itself, so it pairs only with ``"exponential"``.
"""

from __future__ import annotations

import math
import random as _random
from typing import Literal, TypeAlias

from meshgate.resilience.validation import non_negative_int, non_negative_number, one_of

Strategy: TypeAlias = Literal["fixed", "linear", "exponential"]
Jitter: TypeAlias = Literal["full", "equal", "decorrelated"]
JitterOption: TypeAlias = bool | Jitter | None

STRATEGIES: tuple[Strategy, ...] = ("fixed", "linear", "exponential")
JITTERS: tuple[Jitter, ...] = ("full", "equal", "decorrelated")


def normalize_jitter(jitter: JitterOption) -> Jitter | None:
    """The jitter mode `jitter` stands for: ``True`` is ``"full"``, ``False`` is none.

    >>> normalize_jitter(True), normalize_jitter(False), normalize_jitter("equal")
    ('full', None, 'equal')
    """
    # Checked by hand rather than with `one_of`: 0 == False and 1 == True, so a
    # membership test would let integers through.
    if jitter is None or jitter is False:
        return None
    if jitter is True:
        return "full"
    if isinstance(jitter, str) and jitter in JITTERS:
        return jitter
    raise ValueError(
        f"jitter={jitter!r} is not allowed: expected one of "
        "False, None, True, 'full', 'equal', 'decorrelated'"
    )


class Backoff:
    """The delays between attempts, capped by `max_delay` and optionally jittered.

    `random` is the source of jitter; pass a seeded `random.Random` for
    repeatable delays.

    >>> backoff = Backoff("exponential", base_delay=1.0, max_delay=5.0)
    >>> [backoff.delay(attempt) for attempt in (1, 2, 3, 4)]
    [1.0, 2.0, 4.0, 5.0]
    >>> Backoff("linear", 0.5, 10.0).delays(3)
    [0.5, 1.0, 1.5]
    """

    __slots__ = ("_random", "base_delay", "jitter", "max_delay", "strategy")

    def __init__(
        self,
        strategy: Strategy = "exponential",
        base_delay: float = 1.0,
        max_delay: float = 30.0,
        jitter: JitterOption = None,
        *,
        random: _random.Random | None = None,
    ) -> None:
        self.strategy: Strategy = one_of("strategy", strategy, STRATEGIES)
        self.base_delay = non_negative_number("base_delay", base_delay)
        self.max_delay = non_negative_number("max_delay", max_delay)
        if self.max_delay < self.base_delay:
            raise ValueError(
                f"max_delay={max_delay!r} is not allowed: expected a number >= "
                f"base_delay ({base_delay!r})"
            )
        self.jitter = normalize_jitter(jitter)
        if self.jitter == "decorrelated" and self.strategy != "exponential":
            raise ValueError(
                f"jitter='decorrelated' is not allowed with strategy={strategy!r}: "
                "decorrelated jitter grows the delay itself, so it pairs only with "
                "'exponential'"
            )
        self._random = random if random is not None else _random.Random()

    def ceiling(self, attempt: int) -> float:
        """The delay after failed attempt number `attempt`, before jitter.

        >>> Backoff("exponential", 1.0, 30.0).ceiling(5)
        16.0
        """
        if attempt < 1:
            raise ValueError(f"attempt={attempt!r} is not allowed: expected an integer >= 1")
        if self.strategy == "fixed":
            return self.base_delay
        try:
            if self.strategy == "linear":
                raw = self.base_delay * attempt
            else:
                raw = math.ldexp(self.base_delay, attempt - 1)
        except OverflowError:
            # Far past the cap, the growth no longer fits in a float.
            return self.max_delay
        return min(raw, self.max_delay)

    def delay(self, attempt: int, previous: float | None = None) -> float:
        """The (jittered) delay after failed attempt number `attempt`.

        `previous` is the delay returned for the attempt before; only
        decorrelated jitter reads it, and starts from `base_delay` without it.

        >>> import random
        >>> backoff = Backoff("exponential", 1.0, 30.0, jitter="full", random=random.Random(7))
        >>> 0.0 <= backoff.delay(3) <= 4.0
        True
        """
        if self.jitter == "decorrelated":
            if attempt < 1:
                raise ValueError(f"attempt={attempt!r} is not allowed: expected an integer >= 1")
            last = self.base_delay if previous is None else previous
            return min(self.max_delay, self._random.uniform(self.base_delay, last * 3))
        ceiling = self.ceiling(attempt)
        if self.jitter == "full":
            return self._random.uniform(0.0, ceiling)
        if self.jitter == "equal":
            half = ceiling / 2
            # The min() matters only for subnormal delays, where halving rounds up.
            return min(ceiling, half + self._random.uniform(0.0, half))
        return ceiling

    def delays(self, count: int) -> list[float]:
        """The delays after the first `count` failed attempts, in order.

        With jitter each call draws new values from the random source.

        >>> Backoff("fixed", 2.0, 2.0).delays(3)
        [2.0, 2.0, 2.0]
        """
        non_negative_int("count", count)
        schedule: list[float] = []
        previous: float | None = None
        for attempt in range(1, count + 1):
            previous = self.delay(attempt, previous)
            schedule.append(previous)
        return schedule

    def __repr__(self) -> str:
        return (
            f"Backoff({self.strategy!r}, base_delay={self.base_delay!r}, "
            f"max_delay={self.max_delay!r}, jitter={self.jitter!r})"
        )
