"""The circuit breaker's whole state machine: everything that moves a breaker
lives in this file, and nothing here does I/O or reads a clock.

The rules:

1. Time comes in as arguments: `now` is the caller's monotonic clock in
   seconds, `wall_now` its wall clock (epoch seconds), used only where a
   deadline leaves the process in a `BreakerSnapshot`.
2. `state` changes only in `_move`. It advances `epoch` (this breaker's own
   count of moves), sets `generation` (one more, or a peer's when adopting),
   runs the entry actions of the new state (empty probe counts; on CLOSED
   also an empty window and no reopens) and then, if the state differs, tells
   the listener. The move is complete before the listener hears of it, so an
   exception from the listener reaches the caller but leaves no half-done move.
3. CLOSED admits every call and records its outcome in the sliding window.
   After an outcome it opens when any rule below holds:
   - without `failure_rate_threshold`: the window holds `failure_threshold`
     failures or more;
   - with `failure_rate_threshold`: the window holds `minimum_calls` calls or
     more and at least that percentage of them failed;
   - with `slow_call_threshold`: the window holds `minimum_calls` calls or
     more and at least that percentage of them were slow.
   A slow call took `slow_call_duration` seconds or longer, failed or not.
4. OPEN rejects every call until `open_until`; the first `allow` at or after
   it moves to HALF_OPEN and admits that call as a probe. It stays open for
   `reset_timeout * open_backoff_multiplier ** reopens` seconds, at most
   `max_reset_timeout`, where `reopens` counts the failed probes since the
   breaker last closed.
5. HALF_OPEN admits at most `permitted_calls_in_half_open` probes at a time and
   rejects the rest. `success_threshold` successful probes close it. One failed
   probe reopens it, with `reopens + 1`; with `slow_call_threshold` set, a
   slow probe is a failed probe.
6. An outcome counts only in the epoch that admitted its call (the caller
   passes `epoch` as read right after `allow`): a call that outlives a move
   has nothing to say about the new state. Not `generation`: adopting a peer's
   state may keep the generation and still change the state.
7. A call that ends without an outcome (cancelled) hands back its probe slot
   and counts nothing (`release`).
8. The operator states last until an operator leaves them: FORCED_OPEN rejects
   every call; DISABLED admits every call and records nothing. `reset()` goes
   back to CLOSED from anywhere.
9. `adopt` takes a peer's snapshot when its `(generation, rank)` is above ours,
   rank ordering states from the most permissive to the most restrictive; so
   replicas that exchange snapshots converge on the same state, and the more
   cautious one wins a tie. An adopted OPEN rejects until the peer's deadline.
10. `defer_probe(until)` keeps an OPEN breaker rejecting past `open_until`,
    up to `until`: in a cluster where one replica probes for all, the others
    wait for its verdict (which arrives by `adopt`) instead of probing too.
    `open_until`, and so the snapshot's deadline, stays the shared one; any
    move clears the hold.
"""

from __future__ import annotations

import enum
import math
import sys
from collections.abc import Callable
from typing import Annotated

import msgspec

from meshgate.resilience.sliding_window import OutcomeWindow, WindowSpec
from meshgate.resilience.validation import percentage, positive_int, positive_number


class CircuitState(enum.StrEnum):
    """Where a breaker is. CLOSED, OPEN and HALF_OPEN are the automatic states;
    FORCED_OPEN and DISABLED are set (and left) only by an operator."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"
    FORCED_OPEN = "forced-open"
    DISABLED = "disabled"


class Decision(enum.Enum):
    """What `allow` answers: run the call, run it as a half-open probe, or refuse it."""

    ADMIT = "admit"
    PROBE = "probe"
    REJECT = "reject"


# Module-level names for members: the hot path compares by identity, and a
# global is cheaper to load than an enum member looked up on its class.
CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN
FORCED_OPEN = CircuitState.FORCED_OPEN
DISABLED = CircuitState.DISABLED
ADMIT = Decision.ADMIT
PROBE = Decision.PROBE
REJECT = Decision.REJECT

# Rule 9's tie-break: the more restrictive state wins.
_RANK = {DISABLED: 0, CLOSED: 1, HALF_OPEN: 2, OPEN: 3, FORCED_OPEN: 4}

# A default count window is never smaller than this, so that the default
# `failure_threshold` failures are a share of the calls rather than all of them.
_DEFAULT_WINDOW_CALLS = 20
_DEFAULT_MINIMUM_CALLS = 10

Listener = Callable[[CircuitState, CircuitState], object]
"""Told `(from_state, to_state)` after each transition."""


class BreakerSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """A breaker's shareable state, for peers in other processes.

    `reset_deadline` is wall-clock epoch seconds (set only when OPEN), so it
    means the same moment in every process; `generation` counts transitions,
    so a receiver can tell a stale snapshot from a newer one; `reopens` carries
    the open-state backoff.

    >>> snapshot = BreakerSnapshot(
    ...     name="payment", state=CircuitState.OPEN, generation=3, reopens=1,
    ...     reset_deadline=1_700_000_030.0)
    >>> msgspec.json.decode(msgspec.json.encode(snapshot), type=BreakerSnapshot) == snapshot
    True
    """

    v: int = 1
    name: str
    state: CircuitState
    generation: Annotated[int, msgspec.Meta(ge=0)]
    reopens: Annotated[int, msgspec.Meta(ge=0)] = 0
    reset_deadline: float | None = None

    def __post_init__(self) -> None:
        is_open = self.state is CircuitState.OPEN
        if is_open and (self.reset_deadline is None or not math.isfinite(self.reset_deadline)):
            raise ValueError(
                f"reset_deadline={self.reset_deadline!r} is not allowed: "
                "expected finite epoch seconds when state is 'open'"
            )
        if not is_open and self.reset_deadline is not None:
            raise ValueError(
                f"reset_deadline={self.reset_deadline!r} is not allowed: "
                f"expected None when state is {self.state.value!r}"
            )


class BreakerMetrics(msgspec.Struct, frozen=True, kw_only=True):
    """What a breaker can tell about itself: its state, the window's totals
    (rates in percent, 0 when the window is empty) and lifetime counters."""

    name: str
    state: CircuitState
    calls: int
    failures: int
    slow_calls: int
    failure_rate: float
    slow_call_rate: float
    rejected: int
    generation: int
    reopens: int


def _rate_threshold(option: str, value: float) -> float:
    if percentage(option, value) == 0:
        raise ValueError(
            f"{option}={value!r} is not allowed: expected a percentage above 0, up to 100"
        )
    return float(value)


class BreakerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A breaker's options, checked when built or decoded; each error names the
    option, the value and what is allowed. `None` means the documented default.

    >>> BreakerConfig(name="payment", failure_threshold=3).failure_threshold
    3
    >>> BreakerConfig(failure_threshold=0)
    Traceback (most recent call last):
    ...
    ValueError: failure_threshold=0 is not allowed: expected an integer >= 1
    """

    name: str = "unnamed"
    failure_threshold: int = 5
    success_threshold: int = 1
    reset_timeout: float = 30.0
    sliding_window: WindowSpec | None = None
    """Default: a count window of the last max(20, failure_threshold) calls."""
    minimum_calls: int | None = None
    """Calls the window must hold before a rate is judged. Default: 10, or the
    count window's size if smaller. Only with a rate threshold."""
    failure_rate_threshold: float | None = None
    """Percent; replaces the `failure_threshold` count."""
    slow_call_threshold: float | None = None
    """Percent of slow calls that opens the breaker; needs `slow_call_duration`."""
    slow_call_duration: float | None = None
    """Seconds from which a call is slow; needs `slow_call_threshold`."""
    permitted_calls_in_half_open: int | None = None
    """Probes at a time in HALF_OPEN. Default: `success_threshold`."""
    open_backoff_multiplier: float = 1.0
    max_reset_timeout: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name={self.name!r} is not allowed: expected a non-empty string")
        positive_int("failure_threshold", self.failure_threshold)
        positive_int("success_threshold", self.success_threshold)
        positive_number("reset_timeout", self.reset_timeout)
        if self.sliding_window is not None and not isinstance(self.sliding_window, WindowSpec):
            raise ValueError(
                f"sliding_window={self.sliding_window!r} is not allowed: expected a WindowSpec"
            )
        has_rate = self.failure_rate_threshold is not None or self.slow_call_threshold is not None
        if self.failure_rate_threshold is not None:
            _rate_threshold("failure_rate_threshold", self.failure_rate_threshold)
        if self.slow_call_threshold is not None:
            _rate_threshold("slow_call_threshold", self.slow_call_threshold)
            if self.slow_call_duration is None:
                raise ValueError(
                    "slow_call_duration=None is not allowed: expected the seconds from "
                    "which a call is slow, since slow_call_threshold is set"
                )
        if self.slow_call_duration is not None:
            positive_number("slow_call_duration", self.slow_call_duration)
            if self.slow_call_threshold is None:
                raise ValueError(
                    "slow_call_threshold=None is not allowed: expected a percentage "
                    "of slow calls that opens the breaker, since slow_call_duration is set"
                )
        if self.minimum_calls is not None:
            positive_int("minimum_calls", self.minimum_calls)
            if not has_rate:
                raise ValueError(
                    f"minimum_calls={self.minimum_calls!r} is not allowed: expected None "
                    "unless failure_rate_threshold or slow_call_threshold is set"
                )
        window = self.window()
        if window.type == "count":
            size = int(window.size)
            if self.failure_rate_threshold is None and size < self.failure_threshold:
                raise ValueError(
                    f"sliding_window.size={size!r} is not allowed: expected at least "
                    f"failure_threshold ({self.failure_threshold}) calls, or the "
                    "breaker could never open"
                )
            if self.minimum_calls is not None and self.minimum_calls > size:
                raise ValueError(
                    f"minimum_calls={self.minimum_calls!r} is not allowed: expected at most "
                    f"sliding_window.size ({size}), the most calls a count window holds"
                )
        if self.permitted_calls_in_half_open is not None:
            positive_int("permitted_calls_in_half_open", self.permitted_calls_in_half_open)
        if positive_number("open_backoff_multiplier", self.open_backoff_multiplier) < 1:
            raise ValueError(
                f"open_backoff_multiplier={self.open_backoff_multiplier!r} is not allowed: "
                "expected a number >= 1"
            )
        if self.max_reset_timeout is not None and (
            positive_number("max_reset_timeout", self.max_reset_timeout) < self.reset_timeout
        ):
            raise ValueError(
                f"max_reset_timeout={self.max_reset_timeout!r} is not allowed: expected a "
                f"number >= reset_timeout ({self.reset_timeout!r})"
            )

    def window(self) -> WindowSpec:
        """The window this breaker keeps, with the default filled in."""
        if self.sliding_window is not None:
            return self.sliding_window
        return WindowSpec(type="count", size=max(_DEFAULT_WINDOW_CALLS, self.failure_threshold))

    def resolved_minimum_calls(self) -> int:
        """`minimum_calls`, with the default filled in."""
        if self.minimum_calls is not None:
            return self.minimum_calls
        window = self.window()
        if window.type == "count":
            return min(_DEFAULT_MINIMUM_CALLS, int(window.size))
        return _DEFAULT_MINIMUM_CALLS


class BreakerCore:
    """A circuit breaker without I/O: ask `allow(now)` before a call, read
    `epoch`, and report the call's outcome with `on_success`/`on_failure` and
    that epoch (or `release` if it never finished).

    `needs_time` says whether, in the current state, `allow` and `on_success`
    use the times they are given. It is False in DISABLED, and in CLOSED with
    a count window and no slow-call rule: then a caller may skip reading its
    clock and pass 0.0 (`on_failure` always needs `now`, for the deadline).

    >>> core = BreakerCore(BreakerConfig(failure_threshold=2, reset_timeout=10.0))
    >>> core.allow(0.0)
    <Decision.ADMIT: 'admit'>
    >>> core.on_failure(0.5, 1.0, core.epoch)
    >>> core.on_failure(0.5, 2.0, core.epoch)
    >>> core.state, core.allow(5.0), core.retry_after(5.0)
    (<CircuitState.OPEN: 'open'>, <Decision.REJECT: 'reject'>, 7.0)
    >>> core.allow(12.0)
    <Decision.PROBE: 'probe'>
    """

    __slots__ = (
        "_closed_epoch",
        "_failure_rate",
        "_failure_threshold",
        "_is_closed_timeless",
        "_judges_rates",
        "_listener",
        "_max_reset_timeout",
        "_minimum_calls",
        "_multiplier",
        "_permitted_probes",
        "_probe_successes",
        "_probes",
        "_record",
        "_slow_after",
        "_slow_rate",
        "_success_threshold",
        "config",
        "epoch",
        "generation",
        "needs_time",
        "open_until",
        "probe_hold",
        "rejected",
        "reopens",
        "state",
        "window",
    )

    def __init__(self, config: BreakerConfig, listener: Listener | None = None) -> None:
        self.config = config
        self._listener = listener
        self.window: OutcomeWindow = config.window().build()
        self._record = self.window.record
        # Options copied into plain attributes: the hot path reads them per call.
        self._failure_threshold = config.failure_threshold
        self._success_threshold = config.success_threshold
        self._failure_rate = config.failure_rate_threshold
        self._slow_rate = config.slow_call_threshold
        self._judges_rates = self._failure_rate is not None or self._slow_rate is not None
        self._minimum_calls = config.resolved_minimum_calls()
        self._slow_after = (
            config.slow_call_duration if config.slow_call_duration is not None else math.inf
        )
        self._permitted_probes = (
            config.permitted_calls_in_half_open
            if config.permitted_calls_in_half_open is not None
            else config.success_threshold
        )
        self._multiplier = config.open_backoff_multiplier
        self._max_reset_timeout = (
            config.max_reset_timeout if config.max_reset_timeout is not None else math.inf
        )
        # In CLOSED, only a failure needs a time (for the deadline), unless the
        # window ages or a success can be slow.
        self._is_closed_timeless = (
            config.window().type == "count" and config.slow_call_duration is None
        )
        self.state = CLOSED
        self.generation = 0
        self.epoch = 0
        # The epoch while CLOSED, else -1: lets the hot path test "admitted in
        # this epoch, and that is a CLOSED one" with one comparison.
        self._closed_epoch = 0
        self.needs_time = not self._is_closed_timeless
        self.reopens = 0
        self.open_until = 0.0
        # Rule 10: no probe before this (monotonic); -inf when nothing holds.
        self.probe_hold = -math.inf
        self.rejected = 0
        self._probes = 0
        self._probe_successes = 0

    @property
    def name(self) -> str:
        """The breaker's name, as in its snapshots and errors."""
        return self.config.name

    # -- asking and reporting ------------------------------------------------

    def allow(self, now: float) -> Decision:
        """Whether a call starting at `now` may run (rules 3 to 5 and 8)."""
        state = self.state
        if state is CLOSED or state is DISABLED:
            return ADMIT
        if state is OPEN:
            if now < self.open_until or now < self.probe_hold:
                self.rejected += 1
                return REJECT
            self._move(HALF_OPEN)
        # A listener may have moved the breaker again while told of the move.
        if self.state is HALF_OPEN and self._probes < self._permitted_probes:
            self._probes += 1
            return PROBE
        if self.state is CLOSED or self.state is DISABLED:
            return ADMIT
        self.rejected += 1
        return REJECT

    def on_success(self, duration: float, now: float, epoch: int) -> None:
        """A call admitted in `epoch` returned after `duration` seconds, at `now`."""
        if epoch == self._closed_epoch:
            self._record(False, duration >= self._slow_after, now)
            # A success lowers no count, but it may bring the window up to
            # `minimum_calls`, or be slow.
            if self._judges_rates and self._should_open():
                self._trip(now, 0)
        elif epoch == self.epoch and self.state is HALF_OPEN:
            # `_slow_after` is finite only with a slow-call rule.
            if duration >= self._slow_after:
                self._trip(now, self.reopens + 1)
                return
            self._probes -= 1
            self._probe_successes += 1
            if self._probe_successes >= self._success_threshold:
                self._move(CLOSED)

    def on_failure(self, duration: float, now: float, epoch: int) -> None:
        """A call admitted in `epoch` failed after `duration` seconds, at `now`."""
        if epoch == self._closed_epoch:
            self._record(True, duration >= self._slow_after, now)
            if self._should_open():
                self._trip(now, 0)
        elif epoch == self.epoch and self.state is HALF_OPEN:
            self._trip(now, self.reopens + 1)

    def on_result(self, ok: bool, duration: float, now: float, epoch: int) -> None:
        """`on_success` or `on_failure`, as `ok` says."""
        if ok:
            self.on_success(duration, now, epoch)
        else:
            self.on_failure(duration, now, epoch)

    def release(self, epoch: int) -> None:
        """A call admitted in `epoch` ended without an outcome (rule 7)."""
        if epoch == self.epoch and self.state is HALF_OPEN:
            self._probes -= 1

    # -- reading -------------------------------------------------------------

    def tick(self, now: float) -> CircuitState:
        """The state at `now`, after the transition that time alone makes due
        (OPEN to HALF_OPEN once `open_until` has come)."""
        if self.state is OPEN and now >= self.open_until and now >= self.probe_hold:
            self._move(HALF_OPEN)
        return self.state

    def retry_after(self, now: float) -> float:
        """Seconds from `now` until a rejected call could be let through.

        OPEN: until `open_until`, or the probe hold if later (rule 10).
        HALF_OPEN: 0, since a probe slot frees as
        soon as a probe returns. FORCED_OPEN: the open timeout, as a polite
        interval to check back, since only an operator ends it.
        """
        if self.state is OPEN:
            return max(0.0, self.open_until - now, self.probe_hold - now)
        if self.state is FORCED_OPEN:
            return self.open_timeout(self.reopens)
        return 0.0

    def open_timeout(self, reopens: int) -> float:
        """How long the breaker stays open after `reopens` failed probes (rule 4)."""
        timeout = self.config.reset_timeout
        if reopens and self._multiplier != 1:
            try:
                timeout *= self._multiplier**reopens
            except OverflowError:
                # Kept finite: a deadline must survive a JSON snapshot.
                timeout = sys.float_info.max
        return min(timeout, self._max_reset_timeout)

    def metrics(self, now: float) -> BreakerMetrics:
        """The state and window totals at `now`."""
        window = self.window
        window.advance(now)
        calls = window.calls
        return BreakerMetrics(
            name=self.config.name,
            state=self.tick(now),
            calls=calls,
            failures=window.failures,
            slow_calls=window.slow_calls,
            failure_rate=100.0 * window.failures / calls if calls else 0.0,
            slow_call_rate=100.0 * window.slow_calls / calls if calls else 0.0,
            rejected=self.rejected,
            generation=self.generation,
            reopens=self.reopens,
        )

    # -- sharing -------------------------------------------------------------

    def snapshot(self, now: float, wall_now: float) -> BreakerSnapshot:
        """The shareable state, with the reset deadline on the wall clock."""
        return BreakerSnapshot(
            name=self.config.name,
            state=self.state,
            generation=self.generation,
            reopens=self.reopens,
            reset_deadline=wall_now + (self.open_until - now) if self.state is OPEN else None,
        )

    def adopt(self, remote: BreakerSnapshot, now: float, wall_now: float) -> bool:
        """Take a peer's state if it is newer (rule 9); True if taken.

        >>> ours = BreakerCore(BreakerConfig(name="payment"))
        >>> ours.adopt(BreakerSnapshot(name="payment", state=CircuitState.OPEN,
        ...     generation=1, reset_deadline=1030.0), now=5.0, wall_now=1000.0)
        True
        >>> ours.state, ours.open_until
        (<CircuitState.OPEN: 'open'>, 35.0)
        """
        if remote.name != self.config.name:
            raise ValueError(
                f"snapshot.name={remote.name!r} is not allowed: "
                f"expected this breaker's name {self.config.name!r}"
            )
        if (remote.generation, _RANK[remote.state]) <= (self.generation, _RANK[self.state]):
            return False
        self.reopens = remote.reopens
        if remote.reset_deadline is not None:
            self.open_until = now + (remote.reset_deadline - wall_now)
        self._move(remote.state, remote.generation)
        return True

    def defer_probe(self, until: float) -> None:
        """Let no probe through before `until` (monotonic), even once
        `open_until` has come, while OPEN (rule 10); a later call may only
        extend the hold. Nothing happens in another state.

        >>> core = BreakerCore(BreakerConfig(failure_threshold=1, reset_timeout=10.0))
        >>> core.on_failure(0.0, 0.0, core.epoch)
        >>> core.defer_probe(12.0)
        >>> core.allow(11.0), core.retry_after(11.0), core.allow(12.0)
        (<Decision.REJECT: 'reject'>, 1.0, <Decision.PROBE: 'probe'>)
        """
        if self.state is OPEN and until > self.probe_hold:
            self.probe_hold = until

    # -- operators -----------------------------------------------------------

    def force_open(self) -> None:
        """Reject every call until `reset()` or `disable()`."""
        if self.state is not FORCED_OPEN:
            self._move(FORCED_OPEN)

    def disable(self) -> None:
        """Admit every call and record nothing until `reset()` or `force_open()`."""
        if self.state is not DISABLED:
            self._move(DISABLED)

    def reset(self) -> None:
        """Back to CLOSED with an empty window and the base reset timeout."""
        if self.state is CLOSED:
            self.window.clear()
        else:
            self._move(CLOSED)

    # -- transitions ---------------------------------------------------------

    def _should_open(self) -> bool:
        """Rule 3, on the window as it stands."""
        window = self.window
        calls = window.calls
        if self._failure_rate is None:
            if window.failures >= self._failure_threshold:
                return True
        elif calls >= self._minimum_calls and window.failures * 100 >= self._failure_rate * calls:
            return True
        return (
            self._slow_rate is not None
            and calls >= self._minimum_calls
            and window.slow_calls * 100 >= self._slow_rate * calls
        )

    def _trip(self, now: float, reopens: int) -> None:
        self.reopens = reopens
        self.open_until = now + self.open_timeout(reopens)
        self._move(OPEN)

    def _move(self, to: CircuitState, generation: int | None = None) -> None:
        """The only place `state` changes (rule 2); `generation` is a peer's."""
        before = self.state
        self.state = to
        self.generation = self.generation + 1 if generation is None else generation
        self.epoch += 1
        self._closed_epoch = self.epoch if to is CLOSED else -1
        self.needs_time = not (to is DISABLED or (to is CLOSED and self._is_closed_timeless))
        self._probes = 0
        self._probe_successes = 0
        self.probe_hold = -math.inf
        if to is CLOSED:
            self.window.clear()
            self.reopens = 0
        if before is not to and self._listener is not None:
            self._listener(before, to)

    def __repr__(self) -> str:
        return (
            f"<BreakerCore {self.config.name!r} {self.state.value} "
            f"generation={self.generation} reopens={self.reopens}>"
        )


__all__ = [
    "ADMIT",
    "CLOSED",
    "DISABLED",
    "FORCED_OPEN",
    "HALF_OPEN",
    "OPEN",
    "PROBE",
    "REJECT",
    "BreakerConfig",
    "BreakerCore",
    "BreakerMetrics",
    "BreakerSnapshot",
    "CircuitState",
    "Decision",
    "Listener",
]
