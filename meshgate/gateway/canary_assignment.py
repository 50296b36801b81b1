"""Which side of a rollout a request goes to, given the canary's weight.

Two ways, both pure:

- `pick_by_chance(rand, weight)`: each request on its own, with injected
  randomness ``rand`` in [0, 1): canary when ``rand * 100 < weight``.
- `pick_sticky(key, weight, salt)`: a client key (user id, session cookie,
  client address) hashed with BLAKE2b to a fixed point in [0, 100); canary
  when the point is below the weight. The same key lands on the same side on
  every replica and after restarts while the weight stays, and because the
  test is "point < weight", raising the weight only moves clients from stable
  to canary, never back. `salt` (the route and canary version) draws a new
  set of points for every rollout, so the same clients are not always the
  first to meet a canary.

The comparison is done in integers (the point has 53 bits), so a weight of 0
sends nobody to the canary and a weight of 100 sends everybody.

>>> pick_by_chance(0.05, 10.0), pick_by_chance(0.5, 10.0)
('canary', 'stable')
>>> side = pick_sticky("user-42", 25.0, salt="/api/orders 2.0.0")
>>> side == pick_sticky("user-42", 25.0, salt="/api/orders 2.0.0")
True
"""

from __future__ import annotations

import hashlib

from meshgate.gateway.canary_window import Target

_POINT_BITS = 53
_POINTS = 1 << _POINT_BITS


def sticky_point(key: str, salt: str = "") -> float:
    """Where `key` falls in [0, 100) for rollouts salted with `salt`.

    >>> 0 <= sticky_point("user-42") < 100
    True
    """
    return _point(key, salt) * 100 / _POINTS


def pick_sticky(key: str, weight: float, salt: str = "") -> Target:
    """The side of client `key`: "canary" when its point lies below `weight` percent.

    >>> pick_sticky("anyone", 0.0), pick_sticky("anyone", 100.0)
    ('stable', 'canary')
    """
    # point / 2**53 * 100 < weight, without rounding: weight * 2**53 is exact.
    return "canary" if _point(key, salt) * 100 < weight * _POINTS else "stable"


def pick_by_chance(rand: float, weight: float) -> Target:
    """The side of one request: "canary" with probability `weight` percent, given
    `rand` uniform in [0, 1).

    >>> pick_by_chance(0.0, 0.0), pick_by_chance(0.999, 100.0)
    ('stable', 'canary')
    """
    if not 0 <= rand < 1:
        raise ValueError(f"rand={rand!r} is not allowed: expected 0 <= rand < 1")
    return "canary" if rand * 100 < weight else "stable"


def _point(key: str, salt: str) -> int:
    # A NUL between salt and key: ("a", "bc") and ("ab", "c") hash apart.
    digest = hashlib.blake2b(f"{salt}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> (64 - _POINT_BITS)


__all__ = ["pick_by_chance", "pick_sticky", "sticky_point"]
