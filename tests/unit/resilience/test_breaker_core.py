"""The breaker's state machine, driven with plain numbers for `now`."""

from __future__ import annotations

import sys
from typing import Any

import msgspec
import pytest

from meshgate.resilience.breaker_core import (
    ADMIT,
    PROBE,
    REJECT,
    BreakerConfig,
    BreakerCore,
    BreakerSnapshot,
    CircuitState,
)
from meshgate.resilience.sliding_window import CountWindow, TimeWindow, WindowSpec

CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN
FORCED_OPEN = CircuitState.FORCED_OPEN
DISABLED = CircuitState.DISABLED

Transitions = list[tuple[CircuitState, CircuitState]]


def make(**options: Any) -> tuple[BreakerCore, Transitions]:
    heard: Transitions = []
    core = BreakerCore(
        BreakerConfig(**options), lambda before, after: heard.append((before, after))
    )
    return core, heard


def succeed(core: BreakerCore, now: float, duration: float = 0.0) -> None:
    """One admitted call that started at `now` and returned after `duration`."""
    assert core.allow(now) is not REJECT
    core.on_success(duration, now + duration, core.epoch)


def fail(core: BreakerCore, now: float, duration: float = 0.0) -> None:
    """One admitted call that started at `now` and failed after `duration`."""
    assert core.allow(now) is not REJECT
    core.on_failure(duration, now + duration, core.epoch)


def trip(core: BreakerCore, now: float) -> None:
    """Fail calls at `now` until the breaker opens."""
    while core.state is CLOSED:
        fail(core, now)
    assert core.state is OPEN


# -- CLOSED --------------------------------------------------------------------


def test_closed_admits_every_call() -> None:
    core, _ = make()
    assert [core.allow(float(now)) for now in range(3)] == [ADMIT, ADMIT, ADMIT]


def test_closed_opens_at_failure_threshold_failures_in_the_window() -> None:
    core, heard = make(failure_threshold=3)
    fail(core, 1.0)
    fail(core, 2.0)
    assert core.state is CLOSED
    fail(core, 3.0)
    assert core.state is OPEN
    assert heard == [(CLOSED, OPEN)]


def test_successes_between_failures_do_not_reset_the_failure_count() -> None:
    core, _ = make(failure_threshold=3)
    for now in range(2):
        fail(core, float(now))
        succeed(core, float(now))
    fail(core, 5.0)
    assert core.state is OPEN


def test_failures_that_slide_out_of_a_count_window_no_longer_count() -> None:
    core, _ = make(failure_threshold=3, sliding_window=WindowSpec(type="count", size=4))
    fail(core, 0.0)
    succeed(core, 0.0)
    succeed(core, 0.0)
    fail(core, 0.0)
    succeed(core, 0.0)  # the first failure slides out
    fail(core, 0.0)  # a third failure, but only the second in the window
    assert core.state is CLOSED
    assert core.window.failures == 2


def test_failures_older_than_a_time_window_no_longer_count() -> None:
    core, _ = make(failure_threshold=2, sliding_window=WindowSpec(type="time", size=10))
    fail(core, 100.0)
    fail(core, 110.0)
    assert core.state is CLOSED
    fail(core, 119.0)
    assert core.state is OPEN


def test_default_window_is_a_count_window_of_twenty_calls() -> None:
    core, _ = make()
    assert isinstance(core.window, CountWindow)
    assert core.window.size == 20


def test_default_count_window_grows_to_hold_failure_threshold_calls() -> None:
    core, _ = make(failure_threshold=30)
    assert isinstance(core.window, CountWindow)
    assert core.window.size == 30


def test_time_window_option_builds_a_time_window() -> None:
    core, _ = make(sliding_window=WindowSpec(type="time", size=60.0))
    assert isinstance(core.window, TimeWindow)
    assert core.window.size == 60.0


def test_failure_rate_opens_when_reached_with_minimum_calls_in_the_window() -> None:
    core, _ = make(failure_rate_threshold=50, minimum_calls=4)
    succeed(core, 0.0)
    succeed(core, 0.0)
    fail(core, 0.0)
    assert core.state is CLOSED
    fail(core, 0.0)  # 2 of 4: 50 %
    assert core.state is OPEN


def test_failure_rate_is_not_judged_before_minimum_calls() -> None:
    core, _ = make(failure_rate_threshold=50, minimum_calls=4)
    for _ in range(3):
        fail(core, 0.0)
    assert core.state is CLOSED


def test_a_success_that_brings_the_window_to_minimum_calls_can_open_it() -> None:
    core, _ = make(failure_rate_threshold=50, minimum_calls=4)
    for _ in range(3):
        fail(core, 0.0)
    succeed(core, 0.0)  # 3 of 4 failed
    assert core.state is OPEN


def test_failure_rate_below_the_threshold_stays_closed() -> None:
    core, _ = make(failure_rate_threshold=60, minimum_calls=10)
    for _ in range(5):
        fail(core, 0.0)
        succeed(core, 0.0)
    assert core.state is CLOSED  # 5 failures, but 50 %: the count rule is off


def test_minimum_calls_defaults_to_ten() -> None:
    core, _ = make(failure_rate_threshold=100)
    for _ in range(9):
        fail(core, 0.0)
    assert core.state is CLOSED
    fail(core, 0.0)
    assert core.state is OPEN


def test_minimum_calls_defaults_to_a_smaller_count_window_size() -> None:
    core, _ = make(failure_rate_threshold=100, sliding_window=WindowSpec(type="count", size=4))
    for _ in range(4):
        fail(core, 0.0)
    assert core.state is OPEN


def test_slow_call_rate_opens_even_when_every_call_succeeds() -> None:
    core, _ = make(slow_call_threshold=50, slow_call_duration=1.0, minimum_calls=4)
    succeed(core, 0.0, duration=0.1)
    succeed(core, 1.0, duration=0.1)
    succeed(core, 2.0, duration=1.5)
    assert core.state is CLOSED
    succeed(core, 4.0, duration=2.0)
    assert core.state is OPEN


def test_a_call_lasting_exactly_slow_call_duration_is_slow() -> None:
    core, _ = make(slow_call_threshold=100, slow_call_duration=0.5, minimum_calls=1)
    succeed(core, 0.0, duration=0.5)
    assert core.state is OPEN


def test_slow_failures_count_towards_the_slow_call_rate() -> None:
    core, _ = make(
        failure_threshold=5, slow_call_threshold=100, slow_call_duration=1.0, minimum_calls=2
    )
    fail(core, 0.0, duration=3.0)
    fail(core, 5.0, duration=3.0)
    assert core.window.slow_calls == 2
    assert core.state is OPEN


def test_without_slow_call_options_no_call_is_slow() -> None:
    core, _ = make()
    succeed(core, 0.0, duration=1e6)
    assert core.window.slow_calls == 0


# -- OPEN ----------------------------------------------------------------------


def test_open_rejects_every_call_until_reset_timeout_has_passed() -> None:
    core, _ = make(failure_threshold=1, reset_timeout=10.0)
    trip(core, 100.0)
    assert core.open_until == 110.0
    assert core.allow(100.0) is REJECT
    assert core.allow(109.999) is REJECT
    assert core.rejected == 2


def test_retry_after_counts_down_to_the_probe() -> None:
    core, _ = make(failure_threshold=1, reset_timeout=10.0)
    trip(core, 100.0)
    assert core.retry_after(100.0) == 10.0
    assert core.retry_after(107.5) == 2.5
    assert core.retry_after(200.0) == 0.0


def test_first_call_at_the_reset_deadline_is_admitted_as_a_probe() -> None:
    core, heard = make(failure_threshold=1, reset_timeout=10.0)
    trip(core, 100.0)
    assert core.allow(110.0) is PROBE
    assert core.state is HALF_OPEN
    assert heard == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]


def test_tick_moves_open_to_half_open_once_the_deadline_has_come() -> None:
    core, _ = make(failure_threshold=1, reset_timeout=10.0)
    trip(core, 0.0)
    assert core.tick(9.0) is OPEN
    assert core.tick(10.0) is HALF_OPEN


def test_results_of_calls_admitted_before_opening_are_ignored() -> None:
    core, _ = make(failure_threshold=1, reset_timeout=10.0)
    assert core.allow(0.0) is ADMIT
    slow_one = core.epoch
    fail(core, 0.0)
    core.on_failure(1.0, 1.0, slow_one)
    core.on_success(1.0, 1.0, slow_one)
    assert core.state is OPEN
    assert core.open_until == 10.0
    assert core.epoch == slow_one + 1


# -- HALF_OPEN -----------------------------------------------------------------


def half_open(**options: Any) -> tuple[BreakerCore, Transitions]:
    """A breaker whose reset timeout (10 s) passed at 10.0; no probe taken yet."""
    core, heard = make(failure_threshold=1, reset_timeout=10.0, **options)
    trip(core, 0.0)
    assert core.tick(10.0) is HALF_OPEN
    heard.clear()
    return core, heard


def test_half_open_admits_at_most_permitted_probes_at_a_time() -> None:
    core, _ = half_open(permitted_calls_in_half_open=2)
    assert [core.allow(10.0) for _ in range(3)] == [PROBE, PROBE, REJECT]
    assert core.retry_after(10.0) == 0.0


def test_permitted_probes_default_to_success_threshold() -> None:
    core, _ = half_open(success_threshold=3)
    assert [core.allow(10.0) for _ in range(4)] == [PROBE, PROBE, PROBE, REJECT]


def test_a_returned_probe_frees_its_slot() -> None:
    core, _ = half_open(success_threshold=2, permitted_calls_in_half_open=1)
    succeed(core, 10.0)
    assert core.state is HALF_OPEN
    assert core.allow(10.0) is PROBE


def test_half_open_closes_after_success_threshold_successful_probes() -> None:
    core, heard = half_open(success_threshold=2)
    succeed(core, 10.0)
    assert core.state is HALF_OPEN
    succeed(core, 10.0)
    assert core.state is CLOSED
    assert heard == [(HALF_OPEN, CLOSED)]


def test_closing_starts_from_an_empty_window() -> None:
    core, _ = make(failure_threshold=2, reset_timeout=10.0)
    succeed(core, 0.0)
    trip(core, 0.0)
    succeed(core, 10.0)
    assert core.state is CLOSED
    assert (core.window.calls, core.window.failures) == (0, 0)
    fail(core, 11.0)
    assert core.state is CLOSED


def test_half_open_failure_reopens_with_the_same_reset_timeout() -> None:
    core, heard = half_open()
    fail(core, 12.0)
    assert core.state is OPEN
    assert core.open_until == 22.0
    assert heard == [(HALF_OPEN, OPEN)]


def test_one_failed_probe_reopens_even_after_successful_ones() -> None:
    core, _ = half_open(success_threshold=3)
    succeed(core, 10.0)
    succeed(core, 10.0)
    fail(core, 10.0)
    assert core.state is OPEN


def test_results_of_probes_from_an_earlier_half_open_are_ignored() -> None:
    core, _ = half_open(permitted_calls_in_half_open=2)
    assert core.allow(10.0) is PROBE
    stale = core.epoch
    fail(core, 10.0)  # the other probe reopens it
    assert core.tick(20.0) is HALF_OPEN
    core.on_success(10.0, 20.0, stale)
    core.release(stale)
    assert core.state is HALF_OPEN
    assert [core.allow(20.0) for _ in range(3)] == [PROBE, PROBE, REJECT]


def test_a_released_probe_frees_its_slot_and_counts_nothing() -> None:
    core, _ = half_open(permitted_calls_in_half_open=1)
    assert core.allow(10.0) is PROBE
    core.release(core.epoch)
    assert core.state is HALF_OPEN
    assert core.allow(10.0) is PROBE


def test_a_slow_probe_fails_when_slow_calls_can_open_the_breaker() -> None:
    core, _ = half_open(slow_call_threshold=50, slow_call_duration=1.0, minimum_calls=1)
    succeed(core, 10.0, duration=1.0)
    assert core.state is OPEN


def test_release_in_closed_changes_nothing() -> None:
    core, heard = make()
    assert core.allow(0.0) is ADMIT
    core.release(core.epoch)
    assert (core.state, core.window.calls, heard) == (CLOSED, 0, [])


def test_on_result_reports_success_or_failure() -> None:
    core, _ = make(failure_threshold=1)
    core.allow(0.0)
    core.on_result(True, 0.0, 0.0, core.epoch)
    assert core.state is CLOSED
    core.allow(0.0)
    core.on_result(False, 0.0, 0.0, core.epoch)
    assert core.state is OPEN


def test_closed_with_a_count_window_and_no_slow_call_rule_needs_no_times() -> None:
    assert make()[0].needs_time is False
    assert make(sliding_window=WindowSpec(type="time", size=10))[0].needs_time is True
    assert make(slow_call_threshold=50, slow_call_duration=1.0)[0].needs_time is True


def test_needs_time_follows_the_state() -> None:
    core, _ = make(failure_threshold=1, reset_timeout=10.0)
    seen = {}
    core.disable()
    seen[core.state] = core.needs_time
    core.force_open()
    seen[core.state] = core.needs_time
    core.reset()
    seen[core.state] = core.needs_time
    trip(core, 0.0)
    seen[core.state] = core.needs_time
    core.tick(10.0)
    seen[core.state] = core.needs_time
    assert seen == {DISABLED: False, FORCED_OPEN: True, CLOSED: False, OPEN: True,
                    HALF_OPEN: True}


def test_a_breaker_that_needs_no_times_dates_its_deadline_from_the_failure() -> None:
    core, _ = make(failure_threshold=2, reset_timeout=10.0)
    for _ in range(5):
        core.allow(0.0)
        core.on_success(0.0, 0.0, core.epoch)
    core.allow(0.0)
    core.on_failure(0.0, 50.0, core.epoch)
    core.allow(0.0)
    core.on_failure(0.0, 70.0, core.epoch)
    assert (core.state, core.open_until) == (OPEN, 80.0)


# -- open-state backoff --------------------------------------------------------


def test_each_failed_probe_multiplies_the_open_timeout() -> None:
    core, _ = make(failure_threshold=1, reset_timeout=10.0, open_backoff_multiplier=2.0)
    trip(core, 0.0)
    assert core.open_until == 10.0
    fail(core, 10.0)
    assert (core.reopens, core.open_until) == (1, 30.0)
    fail(core, 30.0)
    assert (core.reopens, core.open_until) == (2, 70.0)


def test_open_timeout_is_capped_at_max_reset_timeout() -> None:
    core, _ = make(
        failure_threshold=1, reset_timeout=10.0, open_backoff_multiplier=3.0,
        max_reset_timeout=50.0,
    )
    trip(core, 0.0)
    fail(core, 10.0)  # 30 s
    fail(core, 40.0)  # 90 s, capped
    assert core.open_until == 90.0


def test_open_timeout_returns_to_base_after_closing() -> None:
    core, _ = make(failure_threshold=1, reset_timeout=10.0, open_backoff_multiplier=2.0)
    trip(core, 0.0)
    fail(core, 10.0)
    succeed(core, 30.0)
    assert (core.state, core.reopens) == (CLOSED, 0)
    trip(core, 100.0)
    assert core.open_until == 110.0


def test_a_huge_backoff_keeps_the_open_timeout_finite() -> None:
    core, _ = make(reset_timeout=10.0, open_backoff_multiplier=2.0)
    assert core.open_timeout(10_000) == sys.float_info.max


def test_multiplier_one_keeps_the_open_timeout_constant() -> None:
    core, _ = make(reset_timeout=10.0)
    assert core.open_timeout(50) == 10.0


# -- operators -----------------------------------------------------------------


def test_force_open_rejects_every_call_until_reset() -> None:
    core, heard = make(reset_timeout=10.0)
    core.force_open()
    assert core.allow(0.0) is REJECT
    assert core.allow(1e6) is REJECT
    assert core.tick(1e6) is FORCED_OPEN
    assert core.retry_after(1e6) == 10.0
    core.reset()
    assert core.allow(1e6) is ADMIT
    assert heard == [(CLOSED, FORCED_OPEN), (FORCED_OPEN, CLOSED)]


def test_forcing_open_twice_is_one_transition() -> None:
    core, heard = make()
    core.force_open()
    core.force_open()
    assert heard == [(CLOSED, FORCED_OPEN)]
    assert core.generation == 1


def test_disable_admits_every_call_and_never_opens() -> None:
    core, heard = make(failure_threshold=1)
    trip(core, 0.0)
    core.disable()
    for _ in range(10):
        fail(core, 1.0)
    assert core.state is DISABLED
    assert core.window.failures == 1  # the trip's, from before; nothing new
    assert heard == [(CLOSED, OPEN), (OPEN, DISABLED)]


def test_an_operator_state_gives_way_only_to_another_or_to_reset() -> None:
    core, heard = make()
    core.disable()
    core.force_open()
    core.disable()
    core.reset()
    assert heard == [
        (CLOSED, DISABLED), (DISABLED, FORCED_OPEN), (FORCED_OPEN, DISABLED), (DISABLED, CLOSED)
    ]


def test_reset_closes_with_an_empty_window_and_the_base_timeout() -> None:
    core, _ = make(failure_threshold=2, reset_timeout=10.0, open_backoff_multiplier=2.0)
    trip(core, 0.0)
    fail(core, 10.0)
    core.reset()
    assert (core.state, core.reopens, core.window.failures) == (CLOSED, 0, 0)


def test_reset_while_closed_empties_the_window_without_a_transition() -> None:
    core, heard = make(failure_threshold=2)
    fail(core, 0.0)
    core.reset()
    fail(core, 0.0)
    assert core.state is CLOSED
    assert (heard, core.epoch) == ([], 0)


# -- the listener --------------------------------------------------------------


def test_the_listener_hears_every_transition_of_a_whole_cycle_in_order() -> None:
    core, heard = make(failure_threshold=1, reset_timeout=5.0)
    trip(core, 0.0)
    fail(core, 5.0)
    succeed(core, 10.0)
    assert heard == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN),
                     (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
    assert core.generation == len(heard)


def test_a_listener_may_move_the_breaker_while_it_is_told() -> None:
    heard: Transitions = []

    def force_open_when_half_open(before: CircuitState, after: CircuitState) -> None:
        heard.append((before, after))
        if after is HALF_OPEN:
            core.force_open()

    core = BreakerCore(BreakerConfig(failure_threshold=1), force_open_when_half_open)
    trip(core, 0.0)
    assert core.allow(30.0) is REJECT
    assert heard[-2:] == [(OPEN, HALF_OPEN), (HALF_OPEN, FORCED_OPEN)]


def test_without_a_listener_transitions_still_happen() -> None:
    core = BreakerCore(BreakerConfig(failure_threshold=1))
    core.allow(0.0)
    core.on_failure(0.0, 0.0, core.epoch)
    assert core.state is OPEN


# -- metrics -------------------------------------------------------------------


def test_metrics_report_the_window_totals_rates_and_rejections() -> None:
    core, _ = make(failure_threshold=2, slow_call_threshold=100, slow_call_duration=1.0,
                   failure_rate_threshold=100, minimum_calls=4)
    succeed(core, 0.0)
    succeed(core, 0.0, duration=2.0)
    fail(core, 0.0)
    metrics = core.metrics(3.0)
    assert (metrics.state, metrics.calls, metrics.failures, metrics.slow_calls) == (
        CLOSED, 3, 1, 1
    )
    assert metrics.failure_rate == pytest.approx(100 / 3)
    assert metrics.slow_call_rate == pytest.approx(100 / 3)
    core.force_open()
    core.allow(4.0)
    assert core.metrics(4.0).rejected == 1


def test_metrics_of_an_empty_window_have_zero_rates() -> None:
    core, _ = make()
    metrics = core.metrics(0.0)
    assert (metrics.calls, metrics.failure_rate, metrics.slow_call_rate) == (0, 0.0, 0.0)


def test_metrics_forget_calls_that_aged_out_of_a_time_window() -> None:
    core, _ = make(failure_threshold=5, sliding_window=WindowSpec(type="time", size=10))
    fail(core, 0.0)
    assert core.metrics(5.0).failures == 1
    assert core.metrics(10.0).failures == 0


# -- snapshots -----------------------------------------------------------------


def test_snapshot_of_an_open_breaker_carries_its_deadline_on_the_wall_clock() -> None:
    core, _ = make(name="payment", failure_threshold=1, reset_timeout=30.0)
    trip(core, 100.0)
    snapshot = core.snapshot(now=105.0, wall_now=1_700_000_000.0)
    assert snapshot == BreakerSnapshot(
        name="payment", state=OPEN, generation=1, reopens=0, reset_deadline=1_700_000_025.0
    )
    assert snapshot.v == 1


def test_snapshot_of_a_closed_breaker_has_no_deadline() -> None:
    core, _ = make(name="payment")
    assert core.snapshot(0.0, 1_700_000_000.0).reset_deadline is None


def test_an_adopted_open_rejects_until_the_same_wall_clock_deadline() -> None:
    theirs, _ = make(name="payment", failure_threshold=1, reset_timeout=30.0)
    ours, heard = make(name="payment", failure_threshold=1, reset_timeout=30.0)
    trip(theirs, 5_000.0)  # their monotonic clock reads 5000 at wall 1000
    snapshot = theirs.snapshot(now=5_000.0, wall_now=1_000.0)
    assert ours.adopt(snapshot, now=7.0, wall_now=1_002.0)  # ours reads 7 at wall 1002
    assert ours.state is OPEN
    assert ours.allow(34.999) is REJECT  # wall 1029.999
    assert ours.retry_after(20.0) == pytest.approx(15.0)
    assert ours.allow(35.0) is PROBE  # wall 1030
    assert heard == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]


def test_adopting_a_deadline_that_has_passed_lets_a_probe_through_at_once() -> None:
    ours, _ = make(name="payment")
    snapshot = BreakerSnapshot(name="payment", state=OPEN, generation=1, reset_deadline=990.0)
    assert ours.adopt(snapshot, now=50.0, wall_now=1_000.0)
    assert ours.allow(50.0) is PROBE


def test_a_snapshot_no_newer_than_ours_is_ignored() -> None:
    core, heard = make(name="payment", failure_threshold=1)
    trip(core, 0.0)
    core.tick(30.0)  # generation 2, HALF_OPEN
    older = BreakerSnapshot(name="payment", state=OPEN, generation=1, reset_deadline=5.0)
    same = BreakerSnapshot(name="payment", state=HALF_OPEN, generation=2)
    assert not core.adopt(older, 30.0, 30.0)
    assert not core.adopt(same, 30.0, 30.0)
    assert core.state is HALF_OPEN
    assert len(heard) == 2


def test_at_equal_generations_the_more_restrictive_state_wins() -> None:
    core, _ = make(name="payment", failure_threshold=1)
    trip(core, 0.0)
    core.tick(30.0)  # generation 2, HALF_OPEN
    closed = BreakerSnapshot(name="payment", state=CLOSED, generation=2)
    reopened = BreakerSnapshot(name="payment", state=OPEN, generation=2, reset_deadline=60.0)
    assert not core.adopt(closed, 30.0, 30.0)
    assert core.adopt(reopened, 30.0, 30.0)
    assert (core.state, core.open_until) == (OPEN, 60.0)


def test_replicas_exchanging_snapshots_converge_on_one_state() -> None:
    one, _ = make(name="payment", failure_threshold=1, reset_timeout=10.0)
    two, _ = make(name="payment", failure_threshold=1, reset_timeout=10.0)
    trip(one, 0.0)
    assert two.adopt(one.snapshot(0.0, 0.0), 0.0, 0.0)
    succeed(one, 10.0)  # one's probe closes it: generation 3
    fail(two, 10.0)  # two's probe reopens it: generation 3 too
    from_one, from_two = one.snapshot(10.0, 10.0), two.snapshot(10.0, 10.0)
    one.adopt(from_two, 10.0, 10.0)
    two.adopt(from_one, 10.0, 10.0)
    assert one.snapshot(10.0, 10.0) == two.snapshot(10.0, 10.0)
    assert one.state is OPEN


def test_an_adopted_snapshot_carries_reopens_so_the_backoff_continues() -> None:
    core, _ = make(name="payment", reset_timeout=10.0, open_backoff_multiplier=2.0)
    snapshot = BreakerSnapshot(name="payment", state=HALF_OPEN, generation=7, reopens=2)
    assert core.adopt(snapshot, 0.0, 0.0)
    fail(core, 0.0)
    assert (core.reopens, core.open_until) == (3, 80.0)


def test_adopting_a_transition_tells_the_listener_and_the_same_state_does_not() -> None:
    core, heard = make(name="payment")
    core.adopt(BreakerSnapshot(name="payment", state=OPEN, generation=1, reset_deadline=9.0),
               0.0, 0.0)
    core.adopt(BreakerSnapshot(name="payment", state=OPEN, generation=2, reset_deadline=20.0),
               0.0, 0.0)
    assert heard == [(CLOSED, OPEN)]
    assert (core.generation, core.open_until) == (2, 20.0)


def test_adopting_closed_drops_results_of_calls_in_flight() -> None:
    core, _ = make(name="payment", failure_threshold=1)
    assert core.allow(0.0) is ADMIT
    in_flight = core.epoch
    core.adopt(BreakerSnapshot(name="payment", state=CLOSED, generation=4), 0.0, 0.0)
    core.on_failure(0.0, 0.0, in_flight)
    assert core.state is CLOSED


def test_a_call_admitted_before_adopting_at_the_same_generation_is_no_probe() -> None:
    core, _ = make(name="payment")
    assert core.allow(0.0) is ADMIT
    in_flight = core.epoch
    assert core.adopt(BreakerSnapshot(name="payment", state=HALF_OPEN, generation=0), 0.0, 0.0)
    core.on_success(0.0, 0.0, in_flight)
    assert core.state is HALF_OPEN
    assert [core.allow(0.0), core.allow(0.0)] == [PROBE, REJECT]


def test_operator_states_are_adopted_too() -> None:
    core, _ = make(name="payment")
    assert core.adopt(BreakerSnapshot(name="payment", state=FORCED_OPEN, generation=1), 0, 0)
    assert core.allow(1e9) is REJECT


def test_a_snapshot_of_another_breaker_is_refused() -> None:
    core, _ = make(name="payment")
    snapshot = BreakerSnapshot(name="search", state=CLOSED, generation=9)
    with pytest.raises(ValueError, match=r"snapshot\.name='search' is not allowed"):
        core.adopt(snapshot, 0.0, 0.0)


def test_snapshot_round_trips_through_json() -> None:
    core, _ = make(name="payment", failure_threshold=1)
    trip(core, 0.0)
    snapshot = core.snapshot(0.0, 1_700_000_000.0)
    encoded = msgspec.json.encode(snapshot)
    assert b'"state":"open"' in encoded
    assert msgspec.json.decode(encoded, type=BreakerSnapshot) == snapshot


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"name":"p","state":"open","generation":1}', "reset_deadline=None is not allowed"),
        (b'{"name":"p","state":"closed","generation":1,"reset_deadline":5.0}',
         "reset_deadline=5.0 is not allowed"),
        (b'{"name":"p","state":"closed","generation":-1}', r"Expected `int` >= 0"),
        (b'{"name":"p","state":"ajar","generation":1}', "Invalid enum value 'ajar'"),
    ],
)
def test_a_malformed_snapshot_fails_to_decode(payload: bytes, message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.json.decode(payload, type=BreakerSnapshot)


# -- options -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"failure_threshold": 0}, r"failure_threshold=0 is not allowed: expected an integer >= 1"),
        ({"failure_threshold": 2.5}, r"failure_threshold=2\.5 is not allowed"),
        ({"failure_threshold": True}, r"failure_threshold=True is not allowed"),
        ({"success_threshold": 0}, r"success_threshold=0 is not allowed"),
        ({"reset_timeout": 0}, r"reset_timeout=0 is not allowed: expected a number > 0"),
        ({"reset_timeout": float("inf")}, r"reset_timeout=inf is not allowed"),
        ({"name": ""}, r"name='' is not allowed: expected a non-empty string"),
        ({"sliding_window": {"type": "count"}}, r"sliding_window=\{'type': 'count'\} is not"),
        ({"failure_threshold": 5, "sliding_window": WindowSpec(type="count", size=3)},
         r"sliding_window\.size=3 is not allowed: expected at least failure_threshold \(5\)"),
        ({"failure_rate_threshold": 0}, r"failure_rate_threshold=0 is not allowed: "
         r"expected a percentage above 0"),
        ({"failure_rate_threshold": 101}, r"failure_rate_threshold=101 is not allowed"),
        ({"slow_call_threshold": 50}, r"slow_call_duration=None is not allowed"),
        ({"slow_call_duration": 1.0}, r"slow_call_threshold=None is not allowed"),
        ({"slow_call_threshold": 50, "slow_call_duration": 0},
         r"slow_call_duration=0 is not allowed"),
        ({"minimum_calls": 5}, r"minimum_calls=5 is not allowed: expected None unless"),
        ({"minimum_calls": 0, "failure_rate_threshold": 50}, r"minimum_calls=0 is not allowed"),
        ({"minimum_calls": 30, "failure_rate_threshold": 50},
         r"minimum_calls=30 is not allowed: expected at most sliding_window\.size \(20\)"),
        ({"permitted_calls_in_half_open": 0}, r"permitted_calls_in_half_open=0 is not allowed"),
        ({"open_backoff_multiplier": 0.5}, r"open_backoff_multiplier=0\.5 is not allowed: "
         r"expected a number >= 1"),
        ({"open_backoff_multiplier": 0}, r"open_backoff_multiplier=0 is not allowed"),
        ({"max_reset_timeout": 10.0}, r"max_reset_timeout=10\.0 is not allowed: expected a "
         r"number >= reset_timeout \(30\.0\)"),
    ],
)
def test_every_option_is_checked_when_the_config_is_built(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        BreakerConfig(**options)


def test_a_rate_threshold_lifts_the_window_size_floor_of_failure_threshold() -> None:
    config = BreakerConfig(
        failure_threshold=50, failure_rate_threshold=50,
        sliding_window=WindowSpec(type="count", size=10),
    )
    assert config.resolved_minimum_calls() == 10


def test_a_time_window_accepts_any_minimum_calls() -> None:
    config = BreakerConfig(
        failure_rate_threshold=50, minimum_calls=500,
        sliding_window=WindowSpec(type="time", size=1),
    )
    assert config.resolved_minimum_calls() == 500


def test_decoding_a_config_checks_it_and_names_the_path() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"sliding_window\.type='ring'"):
        msgspec.convert(
            {"failure_threshold": 3, "sliding_window": {"type": "ring", "size": 3}},
            BreakerConfig,
        )
    with pytest.raises(msgspec.ValidationError, match="failure_threshold=0 is not allowed"):
        msgspec.convert({"failure_threshold": 0}, BreakerConfig)
    with pytest.raises(msgspec.ValidationError, match="unknown field `threshold`"):
        msgspec.convert({"threshold": 3}, BreakerConfig)
