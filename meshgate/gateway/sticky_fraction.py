"""A number in [0, 1) that stays the same for the same key: pass it where a
weighted choice takes `rand`, and one user (or session, or client address)
keeps getting the same version or canary side while the weights hold."""

from __future__ import annotations

import hashlib

_SCALE = float(1 << 64)


def sticky_fraction(key: str, *, salt: str = "") -> float:
    """The fraction of `key`: uniform over keys, fixed for each key.

    `salt` (a route's name, say) gives each route its own draw, so that the
    users who land on the canary of one route are not all the same users who
    land on the canary of every other.

    >>> sticky_fraction("user-42") == sticky_fraction("user-42")
    True
    >>> 0.0 <= sticky_fraction("user-42", salt="/api/orders/**") < 1.0
    True
    """
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE
