"""AimdLimit and GradientLimit: limits from samples, driven with plain numbers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshgate.resilience.adaptive_limit import AimdLimit, ConcurrencyLimit, GradientLimit

# -- AIMD ----------------------------------------------------------------------


def test_aimd_grows_by_increase_by_on_success_with_the_limit_half_used() -> None:
    aimd = AimdLimit(initial=10, min_limit=1, max_limit=100, increase_by=2)
    assert aimd.on_sample(now=0.0, rtt=0.01, inflight=5, dropped=False) == 12
    assert aimd.limit == 12


def test_aimd_holds_when_most_of_the_limit_is_unused() -> None:
    aimd = AimdLimit(initial=10, min_limit=1, max_limit=100)
    assert aimd.on_sample(now=0.0, rtt=0.01, inflight=4, dropped=False) == 10


def test_aimd_backs_off_multiplicatively_on_a_drop() -> None:
    aimd = AimdLimit(initial=100, min_limit=1, max_limit=200, backoff_ratio=0.5)
    assert aimd.on_sample(now=0.0, rtt=0.01, inflight=1, dropped=True) == 50
    assert aimd.on_sample(now=0.0, rtt=0.01, inflight=1, dropped=True) == 25


def test_aimd_treats_a_call_slower_than_timeout_as_a_drop() -> None:
    aimd = AimdLimit(initial=10, min_limit=1, max_limit=100, timeout=2.0)
    assert aimd.on_sample(now=0.0, rtt=2.0, inflight=10, dropped=False) == 11
    assert aimd.on_sample(now=0.0, rtt=2.5, inflight=10, dropped=False) == 9


def test_aimd_backs_off_by_at_least_one_even_when_the_ratio_rounds_to_no_change() -> None:
    aimd = AimdLimit(initial=3, min_limit=1, max_limit=10, backoff_ratio=0.9)
    assert [aimd.on_sample(0.0, 0.01, 1, True) for _ in range(3)] == [2, 1, 1]


def test_aimd_stays_within_min_and_max() -> None:
    aimd = AimdLimit(initial=5, min_limit=4, max_limit=6)
    assert [aimd.on_sample(0.0, 0.01, 6, False) for _ in range(3)] == [6, 6, 6]
    assert [aimd.on_sample(0.0, 0.01, 6, True) for _ in range(3)] == [5, 4, 4]


def test_aimd_defaults() -> None:
    aimd = AimdLimit()
    assert aimd.limit == 20
    assert isinstance(aimd, ConcurrencyLimit)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"min_limit": 0}, "min_limit=0"),
        ({"min_limit": 10, "max_limit": 5, "initial": 5}, "max_limit=5.*>= min_limit=10"),
        ({"initial": 500}, "initial=500.*between min_limit=1 and max_limit=200"),
        ({"backoff_ratio": 0.3}, r"backoff_ratio=0.3.*\[0.5, 1\)"),
        ({"backoff_ratio": 1.0}, "backoff_ratio=1.0"),
        ({"backoff_ratio": 2}, "backoff_ratio=2"),
        ({"increase_by": 0}, "increase_by=0"),
        ({"timeout": 0}, "timeout=0"),
    ],
)
def test_aimd_options_are_checked_at_construction(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AimdLimit(**options)  # type: ignore[arg-type]


# -- Gradient --------------------------------------------------------------------


def steady(gradient: GradientLimit, rtt: float, samples: int) -> list[int]:
    return [gradient.on_sample(0.0, rtt, 10_000, False) for _ in range(samples)]


def test_gradient_grows_by_the_smoothed_queue_allowance_while_latency_is_steady() -> None:
    gradient = GradientLimit(initial=10, min_limit=1, max_limit=100, smoothing=0.5, queue_size=4)
    # each step moves half-way to limit + 4
    assert steady(gradient, 0.01, 3) == [12, 14, 16]


def test_gradient_shrinks_when_short_term_latency_rises_above_the_long_term() -> None:
    gradient = GradientLimit(initial=50, min_limit=1, max_limit=100, queue_size=0)
    steady(gradient, 0.01, 10)
    assert gradient.limit == 50
    limits = steady(gradient, 0.05, 5)
    assert limits == sorted(limits, reverse=True)
    assert limits[-1] < 50


def test_gradient_tolerates_latency_within_rtt_tolerance() -> None:
    gradient = GradientLimit(
        initial=50, min_limit=1, max_limit=100, rtt_tolerance=2.0, queue_size=0
    )
    steady(gradient, 0.01, 10)
    assert steady(gradient, 0.019, 3) == [50, 50, 50]


def test_gradient_cuts_at_most_by_half_per_target_then_smoothed() -> None:
    gradient = GradientLimit(initial=100, min_limit=1, max_limit=100, smoothing=1.0, queue_size=0)
    steady(gradient, 0.001, 10)
    # a latency spike a thousand times the baseline still only halves the limit
    assert gradient.on_sample(0.0, 1.0, 10_000, False) == 50


def test_gradient_halves_its_target_on_a_drop() -> None:
    gradient = GradientLimit(initial=40, min_limit=1, max_limit=100, smoothing=0.5)
    # target 20, half-way from 40
    assert gradient.on_sample(0.0, 0.01, 40, True) == 30


def test_gradient_ignores_the_rtt_of_dropped_calls() -> None:
    gradient = GradientLimit(initial=40, min_limit=1, max_limit=100)
    steady(gradient, 0.02, 5)
    gradient.on_sample(0.0, 0.0001, 40, True)
    assert gradient.long_rtt == pytest.approx(0.02)


def test_gradient_holds_when_most_of_the_limit_is_unused() -> None:
    gradient = GradientLimit(initial=40, min_limit=1, max_limit=100)
    assert gradient.on_sample(0.0, 0.01, 19, False) == 40
    assert gradient.on_sample(0.0, 0.50, 19, False) == 40


def test_gradient_long_rtt_recovers_quickly_after_overload() -> None:
    gradient = GradientLimit(initial=40, min_limit=1, max_limit=100, long_window=1000)
    steady(gradient, 1.0, 10)
    steady(gradient, 0.1, 20)
    # an average over ~1000 samples alone would still be near 1.0
    assert gradient.long_rtt < 0.5


def test_gradient_stays_within_min_and_max() -> None:
    gradient = GradientLimit(initial=10, min_limit=8, max_limit=12, smoothing=1.0)
    assert steady(gradient, 0.01, 3)[-1] == 12
    assert [gradient.on_sample(0.0, 0.01, 12, True) for _ in range(2)] == [8, 8]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"initial": 0}, "initial=0"),
        ({"smoothing": 0}, "smoothing=0"),
        ({"smoothing": 1.5}, "smoothing=1.5"),
        ({"rtt_tolerance": 0.5}, "rtt_tolerance=0.5.*>= 1"),
        ({"long_window": 0}, "long_window=0"),
        ({"queue_size": -1}, "queue_size=-1"),
    ],
)
def test_gradient_options_are_checked_at_construction(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        GradientLimit(**options)  # type: ignore[arg-type]


# -- both ------------------------------------------------------------------------

samples = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=30.0),  # rtt
        st.integers(min_value=0, max_value=500),  # inflight
        st.booleans(),  # dropped
    ),
    max_size=200,
)


@given(
    min_limit=st.integers(min_value=1, max_value=50),
    span=st.integers(min_value=0, max_value=100),
    events=samples,
)
def test_every_limit_stays_within_its_bounds(
    min_limit: int, span: int, events: list[tuple[float, int, bool]]
) -> None:
    max_limit = min_limit + span
    algorithms: list[ConcurrencyLimit] = [
        AimdLimit(initial=min_limit, min_limit=min_limit, max_limit=max_limit),
        GradientLimit(initial=max_limit, min_limit=min_limit, max_limit=max_limit),
    ]
    for algorithm in algorithms:
        for rtt, inflight, dropped in events:
            limit = algorithm.on_sample(0.0, rtt, inflight, dropped)
            assert min_limit <= limit <= max_limit
            assert limit == algorithm.limit
