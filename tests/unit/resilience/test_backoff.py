"""Backoff: delay arithmetic, jitter replayed from seeded random sources, and
property tests for the bounds every delay must keep."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshgate.resilience.backoff import Backoff, normalize_jitter


def test_fixed_backoff_waits_the_base_delay_every_time() -> None:
    assert Backoff("fixed", 2.0, 30.0).delays(4) == [2.0, 2.0, 2.0, 2.0]


def test_linear_backoff_grows_by_the_base_delay_per_attempt() -> None:
    assert Backoff("linear", 1.5, 30.0).delays(4) == [1.5, 3.0, 4.5, 6.0]


def test_exponential_backoff_doubles_per_attempt() -> None:
    assert Backoff("exponential", 0.25, 30.0).delays(5) == [0.25, 0.5, 1.0, 2.0, 4.0]


def test_every_strategy_stops_growing_at_max_delay() -> None:
    assert Backoff("linear", 2.0, 5.0).delays(4) == [2.0, 4.0, 5.0, 5.0]
    assert Backoff("exponential", 1.0, 5.0).delays(5) == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_an_attempt_number_far_past_the_cap_gives_max_delay_instead_of_overflowing() -> None:
    assert Backoff("exponential", 1.0, 30.0).ceiling(100_000) == 30.0
    assert Backoff("linear", 1.0, 30.0).ceiling(10**400) == 30.0


def test_a_zero_base_delay_retries_at_once() -> None:
    assert Backoff("exponential", 0.0, 0.0).delays(3) == [0.0, 0.0, 0.0]
    assert Backoff("exponential", 0.0, 0.0, "decorrelated").delays(3) == [0.0, 0.0, 0.0]


def test_full_jitter_draws_uniformly_up_to_the_delay() -> None:
    backoff = Backoff("exponential", 1.0, 30.0, "full", random=random.Random(42))
    replay = random.Random(42)
    assert backoff.delays(4) == [replay.uniform(0.0, ceiling) for ceiling in (1.0, 2.0, 4.0, 8.0)]


def test_jitter_true_means_full_jitter() -> None:
    assert Backoff(jitter=True).jitter == "full"
    assert normalize_jitter(True) == "full"


def test_equal_jitter_keeps_half_the_delay_and_draws_the_other_half() -> None:
    backoff = Backoff("linear", 2.0, 30.0, "equal", random=random.Random(7))
    replay = random.Random(7)
    expected = [half + replay.uniform(0.0, half) for half in (1.0, 2.0, 3.0)]
    assert backoff.delays(3) == expected


def test_decorrelated_jitter_draws_from_base_delay_to_three_times_the_previous_delay() -> None:
    backoff = Backoff("exponential", 1.0, 10.0, "decorrelated", random=random.Random(3))
    replay = random.Random(3)
    expected: list[float] = []
    previous = 1.0
    for _ in range(6):
        previous = min(10.0, replay.uniform(1.0, previous * 3))
        expected.append(previous)
    assert backoff.delays(6) == expected


def test_decorrelated_jitter_starts_from_base_delay_without_a_previous_delay() -> None:
    backoff = Backoff("exponential", 2.0, 100.0, "decorrelated", random=random.Random(5))
    assert backoff.delay(4) == random.Random(5).uniform(2.0, 6.0)


@pytest.mark.parametrize("jitter", [None, False])
def test_no_jitter_leaves_the_delay_as_computed(jitter: bool | None) -> None:
    backoff = Backoff("exponential", 1.0, 30.0, jitter)
    assert backoff.jitter is None
    assert backoff.delays(3) == [1.0, 2.0, 4.0]


def test_an_unknown_strategy_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"strategy='quadratic'.*'fixed', 'linear', 'exponential'"):
        Backoff("quadratic")  # type: ignore[arg-type]


@pytest.mark.parametrize("jitter", [1, 0, "partial", 0.5])
def test_an_unknown_jitter_is_refused_even_when_it_equals_a_bool(jitter: object) -> None:
    with pytest.raises(ValueError, match=rf"jitter={jitter!r} is not allowed"):
        Backoff(jitter=jitter)  # type: ignore[arg-type]


def test_max_delay_below_base_delay_is_refused() -> None:
    with pytest.raises(ValueError, match=r"max_delay=1.0 is not allowed.*>= base_delay \(2.0\)"):
        Backoff("fixed", 2.0, 1.0)


@pytest.mark.parametrize(
    ("option", "kwargs"),
    [
        ("base_delay", {"base_delay": -1.0}),
        ("base_delay", {"base_delay": float("nan")}),
        ("max_delay", {"max_delay": float("inf")}),
    ],
)
def test_delays_must_be_finite_and_not_negative(option: str, kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=rf"{option}=.* is not allowed: expected a number >= 0"):
        Backoff(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("strategy", ["fixed", "linear"])
def test_decorrelated_jitter_pairs_only_with_exponential_growth(strategy: str) -> None:
    expected = rf"jitter='decorrelated' is not allowed with strategy='{strategy}'"
    with pytest.raises(ValueError, match=expected):
        Backoff(strategy, jitter="decorrelated")  # type: ignore[arg-type]


@pytest.mark.parametrize("jitter", [None, "full", "decorrelated"])
def test_attempts_are_numbered_from_one(jitter: str | None) -> None:
    with pytest.raises(ValueError, match=r"attempt=0 is not allowed"):
        Backoff(jitter=jitter).delay(0)  # type: ignore[arg-type]


def test_a_negative_schedule_length_is_refused() -> None:
    with pytest.raises(ValueError, match=r"count=-1 is not allowed"):
        Backoff().delays(-1)


strategies = st.sampled_from(["fixed", "linear", "exponential"])
delays = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def delay_bounds(draw: st.DrawFn) -> tuple[float, float]:
    base = draw(delays)
    return base, draw(st.floats(min_value=base, max_value=1e7))


@given(strategies, delay_bounds(), st.integers(min_value=1, max_value=5000))
def test_ceiling_lies_between_base_delay_and_max_delay(
    strategy: str, bounds: tuple[float, float], attempt: int
) -> None:
    base, cap = bounds
    ceiling = Backoff(strategy, base, cap).ceiling(attempt)  # type: ignore[arg-type]
    assert base <= ceiling <= cap


@given(strategies, delay_bounds(), st.integers(min_value=1, max_value=5000))
def test_ceiling_never_shrinks_from_one_attempt_to_the_next(
    strategy: str, bounds: tuple[float, float], attempt: int
) -> None:
    backoff = Backoff(strategy, *bounds)  # type: ignore[arg-type]
    assert backoff.ceiling(attempt) <= backoff.ceiling(attempt + 1)


@given(
    strategies,
    delay_bounds(),
    st.sampled_from(["full", "equal"]),
    st.integers(min_value=0, max_value=2**32),
    st.integers(min_value=1, max_value=30),
)
def test_full_and_equal_jitter_stay_within_their_share_of_the_ceiling(
    strategy: str, bounds: tuple[float, float], jitter: str, seed: int, count: int
) -> None:
    backoff = Backoff(strategy, *bounds, jitter, random=random.Random(seed))  # type: ignore[arg-type]
    for attempt, delay in enumerate(backoff.delays(count), start=1):
        ceiling = backoff.ceiling(attempt)
        floor = 0.0 if jitter == "full" else ceiling / 2
        assert floor <= delay <= ceiling


@given(delay_bounds(), st.integers(min_value=0, max_value=2**32), st.integers(1, 30))
def test_decorrelated_jitter_stays_between_base_delay_and_max_delay_and_at_most_triples(
    bounds: tuple[float, float], seed: int, count: int
) -> None:
    base, cap = bounds
    backoff = Backoff("exponential", base, cap, "decorrelated", random=random.Random(seed))
    previous = base
    for delay in backoff.delays(count):
        assert base <= delay <= cap
        assert delay <= max(base, previous * 3)
        previous = delay
