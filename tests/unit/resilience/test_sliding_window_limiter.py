"""SlidingWindowLimiter: the arithmetic, driven with plain numbers for `now`."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshgate.resilience.sliding_window_limiter import SlidingWindowLimiter


def test_admits_max_then_refuses_within_the_window() -> None:
    limiter = SlidingWindowLimiter(max=3, window=10.0)
    assert [limiter.try_take(t) for t in (0.0, 1.0, 2.0, 9.0)] == [True, True, True, False]


def test_a_slot_frees_exactly_when_its_admit_leaves_the_window() -> None:
    limiter = SlidingWindowLimiter(max=2, window=10.0)
    assert limiter.try_take(0.0)
    assert limiter.try_take(4.0)
    assert not limiter.try_take(9.999)
    assert limiter.try_take(10.0)
    assert not limiter.try_take(13.0)
    assert limiter.try_take(14.0)


def test_there_is_no_burst_at_a_window_edge() -> None:
    # a fixed window would admit 2 at 9.9 and 2 more at 10.0
    limiter = SlidingWindowLimiter(max=2, window=10.0)
    assert limiter.try_take(9.9)
    assert limiter.try_take(9.9)
    assert not limiter.try_take(10.0)
    assert not limiter.try_take(19.8)
    assert limiter.try_take(19.9)


def test_wait_time_is_until_the_oldest_admit_leaves_the_window() -> None:
    limiter = SlidingWindowLimiter(max=2, window=60.0)
    assert limiter.wait_time(0.0) == 0.0
    limiter.try_take(0.0)
    limiter.try_take(30.0)
    assert limiter.wait_time(45.0) == 15.0
    assert limiter.wait_time(60.0) == 0.0


def test_available_counts_the_admits_possible_now() -> None:
    limiter = SlidingWindowLimiter(max=3, window=10.0)
    assert limiter.available(0.0) == 3
    limiter.try_take(0.0)
    limiter.try_take(5.0)
    assert limiter.available(5.0) == 1
    assert limiter.available(10.0) == 2
    assert limiter.available(15.0) == 3


def test_available_agrees_with_try_take_across_the_ring_wrap() -> None:
    limiter = SlidingWindowLimiter(max=3, window=10.0)
    for t in (0.0, 1.0, 2.0, 10.0, 11.0):
        assert limiter.try_take(t)
    # ring now holds 2.0, 10.0, 11.0 with its head in the middle
    assert limiter.available(12.0) == 1
    assert limiter.available(20.0) == 2
    assert limiter.available(21.0) == 3


def test_reservations_book_the_earliest_free_admits_in_order() -> None:
    limiter = SlidingWindowLimiter(max=2, window=10.0)
    assert [limiter.reserve(1.0) for _ in range(4)] == [0.0, 0.0, 10.0, 10.0]
    assert limiter.available(11.0) == 0
    assert not limiter.try_take(20.0)
    assert limiter.wait_time(20.0) == 1.0
    assert limiter.try_take(21.0)


def test_reconfigure_to_a_larger_max_frees_slots_at_once() -> None:
    limiter = SlidingWindowLimiter(max=1, window=10.0)
    assert limiter.try_take(0.0)
    limiter.reconfigure(max=3, window=10.0, now=1.0)
    assert [limiter.try_take(1.0) for _ in range(3)] == [True, True, False]
    assert limiter.max == 3


def test_reconfigure_to_a_smaller_max_keeps_the_newest_admits() -> None:
    limiter = SlidingWindowLimiter(max=3, window=10.0)
    for t in (0.0, 1.0, 2.0):
        limiter.try_take(t)
    limiter.reconfigure(max=2, window=10.0, now=3.0)
    # 1.0 and 2.0 are the two that count now
    assert limiter.wait_time(3.0) == 8.0
    assert limiter.try_take(11.0)
    assert not limiter.try_take(11.5)


def test_reconfigure_to_a_shorter_window_applies_to_past_admits() -> None:
    limiter = SlidingWindowLimiter(max=1, window=60.0)
    limiter.try_take(0.0)
    limiter.reconfigure(max=1, window=5.0, now=1.0)
    assert limiter.window == 5.0
    assert limiter.wait_time(1.0) == 4.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max": 0, "window": 1.0}, "max=0"),
        ({"max": 2.5, "window": 1.0}, "max=2.5"),
        ({"max": 10, "window": 0}, "window=0"),
        ({"max": 10, "window": -1.0}, "window=-1.0"),
        ({"max": 10, "window": math.nan}, "window=nan"),
    ],
)
def test_options_are_checked_at_construction(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        SlidingWindowLimiter(**options)  # type: ignore[arg-type]
    assert "expected" in str(raised.value)


def test_reconfigure_checks_its_options() -> None:
    limiter = SlidingWindowLimiter(max=2, window=1.0)
    with pytest.raises(ValueError, match="max=0"):
        limiter.reconfigure(max=0, window=1.0, now=0.0)
    assert limiter.max == 2


# -- properties --------------------------------------------------------------

maxima = st.integers(min_value=1, max_value=8)
windows = st.floats(min_value=0.01, max_value=100.0)
steps = st.floats(min_value=0.0, max_value=20.0)


def assert_at_most_max_per_window(admits: list[float], max: int, window: float) -> None:
    admits = sorted(admits)
    for earlier, later in zip(admits, admits[max:], strict=False):
        assert later - earlier >= window - 1e-9  # float slack only


@given(
    max=maxima,
    window=windows,
    events=st.lists(st.tuples(steps, st.booleans()), max_size=100),
)
def test_never_admits_more_than_max_in_any_window(
    max: int, window: float, events: list[tuple[float, bool]]
) -> None:
    limiter = SlidingWindowLimiter(max=max, window=window)
    now = 0.0
    admits: list[float] = []
    for step, reserve in events:
        now += step
        if reserve:
            admits.append(now + limiter.reserve(now))
        elif limiter.try_take(now):
            admits.append(now)
    assert_at_most_max_per_window(admits, max, window)


@given(max=maxima, window=windows, steps_=st.lists(steps, max_size=100))
def test_refuses_only_when_max_admits_lie_in_the_window(
    max: int, window: float, steps_: list[float]
) -> None:
    limiter = SlidingWindowLimiter(max=max, window=window)
    now = 0.0
    admits: list[float] = []
    for step in steps_:
        now += step
        if limiter.try_take(now):
            admits.append(now)
        else:
            assert len([t for t in admits if t + window > now]) == max


@given(
    max=maxima,
    window=windows,
    steps_=st.lists(steps, min_size=1, max_size=60),
)
def test_wait_time_is_exact(max: int, window: float, steps_: list[float]) -> None:
    limiter = SlidingWindowLimiter(max=max, window=window)
    now = 0.0
    for step in steps_:
        now += step
        limiter.try_take(now)
    wait = limiter.wait_time(now)
    if wait > 1e-5:
        assert not limiter.try_take(now + wait - 1e-6)
    assert limiter.try_take(now + wait)


@given(
    max=maxima,
    window=windows,
    steps_=st.lists(steps, max_size=60),
    later=steps,
)
def test_available_matches_how_many_try_take_admits(
    max: int, window: float, steps_: list[float], later: float
) -> None:
    limiter = SlidingWindowLimiter(max=max, window=window)
    now = 0.0
    for step in steps_:
        now += step
        limiter.try_take(now)
    now += later
    expected = limiter.available(now)
    taken = 0
    while limiter.try_take(now):
        taken += 1
    assert taken == expected
