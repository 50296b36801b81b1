"""The canary's statistical verdict, checked against exact binomial sums."""

from __future__ import annotations

import math
from fractions import Fraction
from math import comb

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshgate.gateway.canary_stats import (
    CONFIDENCE,
    Proportion,
    binomial_tail,
    judge,
    two_proportion_z,
    z_for,
)

ALPHA = 1 - CONFIDENCE
THRESHOLD = 0.05


def exact_tail(events: int, trials: int, rate: float) -> float:
    """P(X >= events) for X ~ Binomial(trials, rate), each term computed on its
    own and summed with `math.fsum`: slow, but independent of the recurrence
    under test."""
    if events > trials:
        return 0.0
    if rate in (0.0, 1.0):
        return float(
            sum(
                comb(trials, k) * Fraction(rate) ** k * (1 - Fraction(rate)) ** (trials - k)
                for k in range(max(events, 0), trials + 1)
            )
        )
    log_rate, log_rest = math.log(rate), math.log1p(-rate)
    return math.fsum(
        math.exp(
            math.lgamma(trials + 1)
            - math.lgamma(k + 1)
            - math.lgamma(trials - k + 1)
            + k * log_rate
            + (trials - k) * log_rest
        )
        for k in range(max(events, 0), trials + 1)
    )


def fewest_errors_for_rollback(trials: int, limit: float = THRESHOLD) -> int | None:
    """The smallest error count that `judge` rolls back at `trials` requests,
    against a stable with no errors."""
    stable = Proportion(events=0, trials=10_000)
    for events in range(trials + 1):
        verdict = judge(Proportion(events, trials), stable, limit=limit, min_requests=10)
        if verdict.decision == "rollback":
            return events
    return None


def rollback_chance(true_rate: float, trials: int) -> float:
    """The exact chance that one evaluation of `trials` canary requests with
    `true_rate` errors rolls the canary back (against a clean stable)."""
    needed = fewest_errors_for_rollback(trials)
    return 0.0 if needed is None else exact_tail(needed, trials, true_rate)


# -- the binomial tail ---------------------------------------------------------


@given(
    trials=st.integers(min_value=0, max_value=300),
    data=st.data(),
    rate=st.one_of(
        st.sampled_from([0.0, 1.0, 0.01, 0.05, 0.5, 0.99]),
        st.floats(min_value=0.0, max_value=1.0),
    ),
)
def test_binomial_tail_matches_the_exact_sum(trials: int, data: st.DataObject, rate: float) -> None:
    events = data.draw(st.integers(min_value=-1, max_value=trials + 1))
    exact = exact_tail(events, trials, rate)
    assert binomial_tail(events, trials, rate) == pytest.approx(exact, rel=1e-9, abs=1e-290)


def test_binomial_tail_stays_accurate_and_fast_for_large_windows() -> None:
    tail = binomial_tail(600, 10_000, 0.05)
    assert tail == pytest.approx(exact_tail(600, 10_000, 0.05), rel=1e-9)
    assert binomial_tail(400, 10_000, 0.05) == pytest.approx(
        exact_tail(400, 10_000, 0.05), rel=1e-9
    )


def test_binomial_tail_edges() -> None:
    assert binomial_tail(0, 0, 0.5) == 1.0
    assert binomial_tail(1, 0, 0.5) == 0.0
    assert binomial_tail(1, 10, 0.0) == 0.0
    assert binomial_tail(10, 10, 1.0) == 1.0


# -- the z statistic -----------------------------------------------------------


def test_two_proportion_z_is_the_pooled_statistic() -> None:
    # P = 30/1100; Z = (0.2 - 0.01) / sqrt(P(1-P)(1/100 + 1/1000))
    pooled = 30 / 1100
    expected = (0.2 - 0.01) / (pooled * (1 - pooled) * (1 / 100 + 1 / 1000)) ** 0.5
    z = two_proportion_z(Proportion(20, 100), Proportion(10, 1000))
    assert z == pytest.approx(expected)


def test_two_proportion_z_is_zero_without_data_or_variance() -> None:
    assert two_proportion_z(Proportion(0, 0), Proportion(1, 10)) == 0.0
    assert two_proportion_z(Proportion(0, 10), Proportion(0, 10)) == 0.0
    assert two_proportion_z(Proportion(10, 10), Proportion(5, 5)) == 0.0


def test_z_for_99_percent_is_2_326() -> None:
    assert z_for(0.99) == pytest.approx(2.3263, abs=1e-4)
    with pytest.raises(ValueError, match="confidence"):
        z_for(1.0)


def test_a_proportion_refuses_more_events_than_trials() -> None:
    with pytest.raises(ValueError, match="events=3, trials=2"):
        Proportion(3, 2)


# -- the verdict -----------------------------------------------------------------


def test_too_few_canary_requests_hold_whatever_they_show() -> None:
    verdict = judge(Proportion(9, 9), Proportion(0, 1000), limit=THRESHOLD, min_requests=10)
    assert verdict.decision == "hold"
    assert verdict.reason == "canary has 9 requests in the window, needs 10"


def test_a_canary_within_the_threshold_is_promoted() -> None:
    verdict = judge(Proportion(5, 100), Proportion(1, 1000), limit=THRESHOLD, min_requests=10)
    assert verdict.decision == "promote"


def test_a_canary_clearly_above_the_threshold_and_the_stable_is_rolled_back() -> None:
    verdict = judge(Proportion(20, 100), Proportion(10, 1000), limit=THRESHOLD, min_requests=10)
    assert verdict.decision == "rollback"
    assert verdict.p_value < ALPHA
    assert verdict.z > z_for(CONFIDENCE)
    assert "above 5%" in verdict.reason


def test_a_canary_above_the_threshold_but_not_significantly_holds() -> None:
    # 2 of 20 = 10% > 5%, but a canary at 5% shows that often.
    verdict = judge(Proportion(2, 20), Proportion(0, 1000), limit=THRESHOLD, min_requests=10)
    assert verdict.decision == "hold"
    assert "not yet significantly" in verdict.reason


def test_a_canary_is_not_rolled_back_for_errors_the_stable_shows_too() -> None:
    verdict = judge(Proportion(40, 200), Proportion(210, 1000), limit=THRESHOLD, min_requests=10)
    assert verdict.p_value < ALPHA  # bad on its own...
    assert verdict.decision == "hold"  # ...but no worse than the stable
    assert "not worse than stable 21%" in verdict.reason


def test_without_enough_stable_requests_the_threshold_test_decides_alone() -> None:
    verdict = judge(Proportion(40, 200), Proportion(1, 5), limit=THRESHOLD, min_requests=10)
    assert verdict.decision == "rollback"
    assert verdict.z == 0.0
    assert "stable has 5 requests, not compared" in verdict.reason


def test_min_requests_zero_promotes_an_idle_canary() -> None:
    assert judge(Proportion(0, 0), Proportion(0, 0), limit=THRESHOLD, min_requests=0).decision == (
        "promote"
    )


def test_a_zero_threshold_rolls_back_on_one_error_worse_than_the_stable() -> None:
    verdict = judge(Proportion(1, 10), Proportion(0, 0), limit=0.0, min_requests=10)
    assert verdict.decision == "rollback"


def test_limit_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match="limit=5"):
        judge(Proportion(0, 10), Proportion(0, 10), limit=5, min_requests=1)


# -- the figures the module docstring promises -----------------------------------


def test_the_test_keeps_its_size_at_the_threshold_for_every_window_size() -> None:
    # A canary exactly at the threshold is rolled back at most 1% of the time.
    worst = max(rollback_chance(THRESHOLD, n) for n in range(10, 1001))
    assert worst <= ALPHA


def test_a_healthy_canary_is_almost_never_rolled_back_by_one_evaluation() -> None:
    chances = {n: rollback_chance(0.01, n) for n in range(10, 1001)}
    worst_n = max(chances, key=chances.__getitem__)
    assert chances[worst_n] < 2.2e-5
    assert worst_n == 17
    assert fewest_errors_for_rollback(17) == 4


@pytest.mark.parametrize(
    ("true_rate", "power", "needed"),
    [
        (0.2, 0.95, 69),
        (0.2, 0.99, 96),
        (0.5, 0.95, 13),
        (0.5, 0.99, 17),
        (0.1, 0.95, 425),
        (0.1, 0.99, 589),
    ],
)
def test_requests_needed_to_catch_a_bad_canary(true_rate: float, power: float, needed: int) -> None:
    first = next(n for n in range(10, 1000) if rollback_chance(true_rate, n) >= power)
    assert first == needed


def test_latency_reads_as_a_share_slower_than_the_threshold() -> None:
    verdict = judge(
        Proportion(30, 200),
        Proportion(1, 2000),
        limit=0.01,
        min_requests=10,
        what="share slower than 250 ms",
    )
    assert verdict.decision == "rollback"
    assert verdict.reason.startswith("canary share slower than 250 ms 15% of 200")
