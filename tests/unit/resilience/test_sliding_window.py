"""The outcome windows: exact counts with plain numbers for `now`, and
property tests against a list that remembers every call."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshgate.resilience.sliding_window import CountWindow, TimeWindow, WindowSpec, window_spec

# -- CountWindow ---------------------------------------------------------------


def test_count_window_starts_empty() -> None:
    window = CountWindow(5)
    assert (window.calls, window.failures, window.slow_calls) == (0, 0, 0)


def test_count_window_counts_calls_until_it_is_full() -> None:
    window = CountWindow(3)
    window.record(False, False, 0.0)
    window.record(True, False, 0.0)
    assert (window.calls, window.failures) == (2, 1)


def test_count_window_remembers_only_the_last_size_calls() -> None:
    window = CountWindow(3)
    for failed in (True, True, False, False, False):
        window.record(failed, False, 0.0)
    assert (window.calls, window.failures) == (3, 0)


def test_a_new_failure_pushes_out_the_oldest_outcome() -> None:
    window = CountWindow(2)
    window.record(False, False, 0.0)
    window.record(True, True, 0.0)
    window.record(True, False, 0.0)
    assert (window.calls, window.failures, window.slow_calls) == (2, 2, 1)


def test_a_failure_after_a_run_of_successes_slides_out_size_calls_later() -> None:
    window = CountWindow(3)
    for _ in range(5):
        window.record(False, False, 0.0)
    window.record(True, False, 0.0)
    window.record(False, False, 0.0)
    window.record(False, False, 0.0)
    assert window.failures == 1
    window.record(False, False, 0.0)
    assert (window.calls, window.failures) == (3, 0)


def test_count_window_counts_slow_calls_whether_they_failed_or_not() -> None:
    window = CountWindow(4)
    window.record(False, True, 0.0)
    window.record(True, True, 0.0)
    window.record(True, False, 0.0)
    assert (window.calls, window.failures, window.slow_calls) == (3, 2, 2)


def test_count_window_does_not_age_with_time() -> None:
    window = CountWindow(2)
    window.record(True, True, 0.0)
    window.advance(1e9)
    assert (window.calls, window.failures, window.slow_calls) == (1, 1, 1)


def test_count_window_clear_forgets_every_call() -> None:
    window = CountWindow(2)
    window.record(True, True, 0.0)
    window.record(True, True, 0.0)
    window.clear()
    window.record(False, False, 0.0)
    assert (window.calls, window.failures, window.slow_calls) == (1, 0, 0)


def test_count_window_size_must_be_a_positive_integer() -> None:
    with pytest.raises(ValueError, match=r"size=0 is not allowed: expected an integer >= 1"):
        CountWindow(0)


# Half the calls fast successes, so long quiet runs come up often.
outcomes = st.lists(
    st.one_of(st.just((False, False)), st.tuples(st.booleans(), st.booleans())), max_size=200
)


@given(size=st.integers(min_value=1, max_value=30), calls=outcomes)
def test_count_window_equals_the_last_size_outcomes(
    size: int, calls: list[tuple[bool, bool]]
) -> None:
    window = CountWindow(size)
    for failed, slow in calls:
        window.record(failed, slow, 0.0)
    last = calls[-size:]
    assert window.calls == len(last)
    assert window.failures == sum(failed for failed, _ in last)
    assert window.slow_calls == sum(slow for _, slow in last)


# -- TimeWindow ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "buckets"),
    [(60.0, 60), (59.5, 60), (1.0, 10), (0.25, 10), (3600.0, 600)],
)
def test_time_window_keeps_about_one_bucket_per_second_within_bounds(
    size: float, buckets: int
) -> None:
    window = TimeWindow(size)
    assert window.buckets == buckets
    assert window.width == pytest.approx(size / buckets)


def test_time_window_counts_calls_of_the_last_size_seconds() -> None:
    window = TimeWindow(10.0)
    window.record(True, False, 100.5)
    window.record(False, True, 104.0)
    window.advance(109.9)
    assert (window.calls, window.failures, window.slow_calls) == (2, 1, 1)


def test_time_window_forgets_a_call_once_its_bucket_ages_out() -> None:
    window = TimeWindow(10.0)  # ten buckets of one second
    window.record(True, False, 100.5)
    window.advance(109.99)
    assert window.failures == 1
    window.advance(110.0)
    assert (window.calls, window.failures) == (0, 0)


def test_time_window_forgets_old_calls_when_recording_new_ones() -> None:
    window = TimeWindow(10.0)
    window.record(True, True, 100.0)
    window.record(False, False, 111.0)
    assert (window.calls, window.failures, window.slow_calls) == (1, 0, 0)


def test_time_window_empties_every_bucket_after_a_long_gap() -> None:
    window = TimeWindow(5.0, buckets=5)
    for second in range(5):
        window.record(True, True, float(second))
    window.advance(1_000.0)
    assert (window.calls, window.failures, window.slow_calls) == (0, 0, 0)


def test_time_window_records_a_call_from_a_clock_that_stepped_back_in_the_head_bucket() -> None:
    window = TimeWindow(10.0)
    window.record(False, False, 105.0)
    window.record(True, False, 50.0)
    window.advance(114.9)
    assert (window.calls, window.failures) == (2, 1)
    window.advance(115.0)
    assert (window.calls, window.failures) == (0, 0)


def test_time_window_clear_forgets_every_call() -> None:
    window = TimeWindow(10.0)
    window.record(True, True, 1.0)
    window.clear()
    window.record(False, False, 2.0)
    assert (window.calls, window.failures, window.slow_calls) == (1, 0, 0)


def test_time_window_size_and_buckets_are_checked() -> None:
    with pytest.raises(ValueError, match=r"size=0 is not allowed"):
        TimeWindow(0)
    with pytest.raises(ValueError, match=r"buckets=0 is not allowed"):
        TimeWindow(10.0, buckets=0)


timed_calls = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=30.0, allow_nan=False),
        st.booleans(),
        st.booleans(),
    ),
    max_size=100,
)


def _ends(start: float, calls: list[tuple[float, bool, bool]]) -> list[tuple[float, bool, bool]]:
    """The calls with their gaps turned into end times, in order."""
    now, ended = start, []
    for gap, failed, slow in calls:
        now += gap
        ended.append((now, failed, slow))
    return ended


@given(
    size=st.floats(min_value=0.5, max_value=120.0),
    start=st.floats(min_value=0.0, max_value=1e6),
    calls=timed_calls,
    wait=st.floats(min_value=0.0, max_value=200.0),
)
def test_time_window_counts_every_call_whose_bucket_is_among_the_last_ones(
    size: float, start: float, calls: list[tuple[float, bool, bool]], wait: float
) -> None:
    window = TimeWindow(size)
    ended = _ends(start, calls)
    for now, failed, slow in ended:
        window.record(failed, slow, now)
    now = (ended[-1][0] if ended else start) + wait
    window.advance(now)
    # `//` as the window does: exact for floats (1.0 // 0.1 is 9, as 0.1 is a hair
    # above a tenth), where floor(1.0 / 0.1) rounds to 10 first
    head = now // window.width
    counted = [c for c in ended if c[0] // window.width > head - window.buckets]
    assert window.calls == len(counted)
    assert window.failures == sum(failed for _, failed, _ in counted)
    assert window.slow_calls == sum(slow for _, _, slow in counted)


@given(
    size=st.floats(min_value=0.5, max_value=120.0),
    calls=timed_calls,
    wait=st.floats(min_value=0.0, max_value=200.0),
)
def test_time_window_keeps_a_call_for_at_least_size_minus_width_and_less_than_size(
    size: float, calls: list[tuple[float, bool, bool]], wait: float
) -> None:
    window = TimeWindow(size)
    ended = _ends(1_000.0, calls)
    for now, failed, slow in ended:
        window.record(failed, slow, now)
    now = (ended[-1][0] if ended else 1_000.0) + wait
    window.advance(now)
    # a margin keeps float rounding at a bucket edge out of the question
    margin = 1e-6
    surely_in = sum(1 for end, _, _ in ended if now - end < size - window.width - margin)
    surely_out = sum(1 for end, _, _ in ended if now - end >= size + margin)
    assert surely_in <= window.calls <= len(ended) - surely_out
    assert 0 <= window.failures <= window.calls
    assert 0 <= window.slow_calls <= window.calls


# -- WindowSpec ----------------------------------------------------------------


def test_window_spec_builds_the_window_it_names() -> None:
    count = window_spec({"type": "count", "size": 7}).build()
    timed = window_spec({"type": "time", "size": 30}).build()
    assert isinstance(count, CountWindow)
    assert count.size == 7
    assert isinstance(timed, TimeWindow)
    assert timed.size == 30.0


def test_window_spec_type_defaults_to_count() -> None:
    assert window_spec({"size": 5}) == WindowSpec(type="count", size=5)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"type": "sliding", "size": 5}, r"sliding_window\.type='sliding' is not allowed: "
         r"expected one of 'count', 'time'"),
        ({"type": "count", "size": 0}, r"sliding_window\.size=0 is not allowed: "
         r"expected an integer >= 1"),
        ({"type": "count", "size": 2.5}, r"sliding_window\.size=2\.5 is not allowed: "
         r"expected an integer >= 1"),
        ({"type": "time", "size": -1}, r"sliding_window\.size=-1 is not allowed: "
         r"expected a number > 0"),
        ({"type": "time"}, r"sliding_window\.size is missing"),
        ({"type": "count", "size": 5, "buckets": 3}, r"sliding_window\.buckets=3 is not allowed"),
        ("count", r"sliding_window='count' is not allowed: expected a mapping"),
    ],
)
def test_window_spec_names_the_option_the_value_and_what_is_allowed(
    value: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        window_spec(value)  # type: ignore[arg-type]


def test_decoding_a_window_spec_checks_it_too() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"sliding_window\.type='sliding'"):
        msgspec.json.decode(b'{"type": "sliding", "size": 5}', type=WindowSpec)
