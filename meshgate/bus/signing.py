"""Signed registrations: only holders of the registration key can register,
renew, deregister or report on an instance.

Anyone on the bus can publish to ``mesh.registry.register``; without this, a
rogue process could register its own address under a real service and take
its traffic. With a registration key configured, senders sign each request
and the registry verifies it before acting.

The signature is HMAC-SHA256 over the message's canonical bytes: its
msgspec JSON (fields in declaration order, which msgspec keeps) with
``signature`` set to None and ``signed_at`` to the signing time, prefixed
by the message type's name so that a signed heartbeat cannot be replayed
as a deregistration with the same fields. `signed_at` (wall-clock epoch
seconds) bounds how long a captured message stays usable; within that
window the verifier remembers signatures it accepted and refuses them
again.

Pure: the caller passes `now` (``time.time()`` in production).

>>> from meshgate.bus.messages import HeartbeatRequest
>>> signer = RegistrationSigner(b"0123456789abcdef-shared-secret")
>>> signed = signer.sign(HeartbeatRequest(service="user-service", instance_id="u-1"), now=1000.0)
>>> signed.signed_at, len(signed.signature or "")
(1000.0, 64)
>>> signer.verify(signed, now=1002.0)
>>> signer.verify(signed, now=1003.0)
Traceback (most recent call last):
...
meshgate.bus.signing.SignatureError: replayed: this signature was already accepted

Limits: the replay memory is per verifier, so several registry nodes
behind one queue group each accept a replay once within the window; and
the canonical form is re-encoded from the decoded message, so sender and
verifier must agree on the message's fields (same schema version).
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Literal, TypeVar

import msgspec

MIN_KEY_BYTES = 16
"""Shorter keys are refused: HMAC is only as strong as its key."""

SignatureFailure = Literal["unsigned", "bad signature", "stale", "replayed"]

S = TypeVar("S", bound=msgspec.Struct)

_encoder = msgspec.json.Encoder()
_MISSING = object()


class SignatureError(Exception):
    """A message the registry must refuse; `reason` says which check failed,
    for the ``forbidden`` reply and the log.

    >>> SignatureError("stale", "signed 45s away from now").reason
    'stale'
    """

    def __init__(self, reason: SignatureFailure, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: SignatureFailure = reason
        self.detail = detail


class RegistrationSigner:
    """Signs messages and verifies them with one shared key.

    `max_skew` is how far (seconds, either way) `signed_at` may be from the
    verifier's `now`: it absorbs clock differences between hosts and the
    time in flight. Accepted signatures are remembered for ``2 * max_skew``
    after they were seen (by then the message is stale anyway), at most
    `max_remembered` of them; past that the oldest are forgotten first.

    >>> RegistrationSigner(b"short")
    Traceback (most recent call last):
    ...
    ValueError: registration key is 5 bytes; need at least 16
    """

    def __init__(
        self, key: bytes, *, max_skew: float = 30.0, max_remembered: int = 100_000
    ) -> None:
        _check_key_length(key, "registration key")
        if not max_skew > 0:
            raise ValueError(f"max_skew={max_skew!r}: must be > 0 seconds")
        if max_remembered < 1:
            raise ValueError(f"max_remembered={max_remembered!r}: must be >= 1")
        self._key = key
        self._max_skew = max_skew
        self._max_remembered = max_remembered
        # signature -> when to forget it; insertion order is (nearly) expiry
        # order, so pruning pops from the front.
        self._seen: dict[str, float] = {}

    @property
    def max_skew(self) -> float:
        return self._max_skew

    @property
    def remembered(self) -> int:
        """How many accepted signatures are held against replay right now."""
        return len(self._seen)

    def sign(self, message: S, now: float) -> S:
        """A copy of `message` with ``signed_at=now`` and its signature.

        `message` must have ``signed_at`` and ``signature`` fields
        (`RegisterRequest`, `HeartbeatRequest`, `DeregisterRequest`,
        `StatusReport`).
        """
        _require_signature_fields(message)
        unsigned = msgspec.structs.replace(message, signed_at=now, signature=None)
        return msgspec.structs.replace(unsigned, signature=self._digest(unsigned))

    def verify(self, message: msgspec.Struct, now: float) -> None:
        """Return if `message` is signed with our key, fresh and not seen
        before; raise `SignatureError` otherwise. An accepted signature is
        remembered, so the same message is refused the second time.

        >>> from meshgate.bus.messages import HeartbeatRequest
        >>> signer = RegistrationSigner(b"0123456789abcdef")
        >>> signer.verify(HeartbeatRequest(service="s", instance_id="i"), now=0.0)
        Traceback (most recent call last):
        ...
        meshgate.bus.signing.SignatureError: unsigned: no signature or signed_at
        """
        _require_signature_fields(message)
        signature = getattr(message, "signature")  # noqa: B009 - checked above, unknown type
        signed_at = getattr(message, "signed_at")  # noqa: B009
        if signature is None or signed_at is None:
            raise SignatureError("unsigned", "no signature or signed_at")
        expected = self._digest(msgspec.structs.replace(message, signature=None))
        # Compare as bytes: compare_digest refuses non-ASCII str, which a
        # forger could send to turn a refusal into a crash.
        if not hmac.compare_digest(expected.encode(), str(signature).encode()):
            raise SignatureError("bad signature", "does not match the registration key")
        # Written so that NaN counts as stale rather than slipping through.
        if not abs(now - signed_at) <= self._max_skew:
            raise SignatureError(
                "stale",
                f"signed {now - signed_at:+.1f}s from now; at most ±{self._max_skew:g}s allowed",
            )
        self._forget_expired(now)
        if signature in self._seen:
            raise SignatureError("replayed", "this signature was already accepted")
        if len(self._seen) >= self._max_remembered:
            del self._seen[next(iter(self._seen))]
        self._seen[signature] = now + 2 * self._max_skew

    def _digest(self, unsigned: msgspec.Struct) -> str:
        # Digest the message as the receiver will decode it: a sender's
        # `ttl=60` (an int in a float field) encodes as `60` but arrives as
        # 60.0, which re-encodes as `60.0`, and the signature would not match.
        typed = msgspec.json.decode(_encoder.encode(unsigned), type=type(unsigned))
        payload = type(unsigned).__name__.encode() + b"\n" + _encoder.encode(typed)
        return hmac.new(self._key, payload, hashlib.sha256).hexdigest()

    def _forget_expired(self, now: float) -> None:
        while self._seen:
            oldest, forget_at = next(iter(self._seen.items()))
            # Kept through forget_at itself: freshness allows |skew| == max_skew.
            if forget_at >= now:
                return
            del self._seen[oldest]


def load_registration_key(path: str | Path) -> bytes:
    """The key in `path`, surrounding whitespace stripped (so ``echo`` and
    editors' trailing newlines do not matter).

    >>> load_registration_key("/nowhere/mesh.key")
    Traceback (most recent call last):
    ...
    ValueError: registration key file /nowhere/mesh.key: cannot read it (FileNotFoundError)
    """
    path = Path(path)
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ValueError(
            f"registration key file {path}: cannot read it ({type(exc).__name__})"
        ) from exc
    _check_key_length(key, f"registration key in {path}")
    return key


def _check_key_length(key: bytes, what: str) -> None:
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(
            f"{what} is {len(key)} bytes; need at least {MIN_KEY_BYTES}"
            + (" (e.g. `openssl rand -hex 32 > FILE`)" if "in " in what else "")
        )


def _require_signature_fields(message: msgspec.Struct) -> None:
    missing = [
        name for name in ("signed_at", "signature") if getattr(message, name, _MISSING) is _MISSING
    ]
    if missing:
        raise TypeError(f"{type(message).__name__} has no {' or '.join(missing)} field to sign")
