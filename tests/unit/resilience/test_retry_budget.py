"""RetryBudget: driven with plain numbers for `now`; property tests check it
against the bound it promises and against a brute-force model of its window."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshgate.resilience.retry_budget import RetryBudget


def test_the_floor_lets_a_service_without_traffic_retry_a_few_times() -> None:
    budget = RetryBudget(ratio=0.2, min_retries_per_second=0.5, window=10.0)
    admitted = [budget.try_retry(now=1.0) for _ in range(7)]
    assert admitted == [True] * 5 + [False] * 2


def test_retries_are_capped_at_ratio_of_requests_above_the_floor() -> None:
    budget = RetryBudget(ratio=0.2, min_retries_per_second=0, window=10.0)
    for _ in range(10):
        budget.record_request(now=0.0)
    assert [budget.try_retry(now=0.5) for _ in range(3)] == [True, True, False]


def test_can_retry_only_asks() -> None:
    budget = RetryBudget(ratio=0.0, min_retries_per_second=0.1, window=10.0)
    assert budget.can_retry(now=0.0)
    assert budget.can_retry(now=0.0)
    assert budget.try_retry(now=0.0)
    assert not budget.can_retry(now=0.0)


def test_record_retry_counts_even_past_the_budget() -> None:
    budget = RetryBudget(ratio=0.5, min_retries_per_second=0, window=10.0)
    budget.record_request(now=0.0)
    budget.record_retry(now=0.0)
    budget.record_retry(now=0.0)
    assert budget.balance(now=0.0) == -1.5
    assert not budget.can_retry(now=0.0)


def test_balance_is_ratio_of_requests_plus_reserve_minus_retries() -> None:
    budget = RetryBudget(ratio=0.25, min_retries_per_second=1.0, window=4.0)
    for _ in range(8):
        budget.record_request(now=0.0)
    budget.record_retry(now=0.0)
    assert budget.balance(now=0.0) == 0.25 * 8 + 4.0 - 1


def test_requests_stop_earning_retries_once_their_bucket_leaves_the_window() -> None:
    budget = RetryBudget(ratio=1.0, min_retries_per_second=0, window=10.0, buckets=10)
    budget.record_request(now=0.5)
    assert budget.can_retry(now=9.99)
    assert not budget.can_retry(now=10.0)


def test_spent_retries_are_given_back_as_the_window_moves_on() -> None:
    budget = RetryBudget(ratio=0.0, min_retries_per_second=0.1, window=10.0, buckets=5)
    assert budget.try_retry(now=3.0)
    assert not budget.try_retry(now=11.9)
    assert budget.try_retry(now=12.0)


def test_a_long_idle_spell_clears_every_bucket() -> None:
    budget = RetryBudget(ratio=1.0, min_retries_per_second=0, window=10.0)
    for second in range(10):
        budget.record_request(now=float(second))
    assert budget.balance(now=9.0) == 10.0
    assert budget.balance(now=1e12) == 0.0


def test_a_late_report_counts_in_the_newest_bucket() -> None:
    budget = RetryBudget(ratio=1.0, min_retries_per_second=0, window=10.0, buckets=10)
    budget.record_request(now=15.0)
    budget.record_request(now=2.0)  # older than the newest bucket
    assert budget.balance(now=24.0) == 2.0
    assert budget.balance(now=25.0) == 0.0


def test_the_reserve_is_min_retries_per_second_over_the_window() -> None:
    assert RetryBudget(min_retries_per_second=10, window=10.0).reserve == 100.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ratio": 1.5}, r"ratio=1.5 is not allowed: expected a number between 0 and 1"),
        ({"ratio": -0.1}, r"ratio=-0.1 is not allowed"),
        ({"min_retries_per_second": -1}, r"min_retries_per_second=-1 is not allowed"),
        ({"window": 0}, r"window=0 is not allowed: expected a number > 0"),
        ({"buckets": 0}, r"buckets=0 is not allowed: expected an integer >= 1"),
    ],
)
def test_options_are_checked_at_construction(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryBudget(**kwargs)  # type: ignore[arg-type]


# Events: (seconds since the previous event, is_retry). A retry is offered to
# `try_retry`; a request is recorded.
events = st.lists(st.tuples(st.floats(min_value=0.0, max_value=3.0), st.booleans()), max_size=200)
ratios = st.sampled_from([0.0, 0.1, 0.2, 0.5, 1.0])
floors = st.sampled_from([0.0, 0.1, 0.5, 2.0])


def play(budget: RetryBudget, sequence: list[tuple[float, bool]]) -> list[tuple[float, str]]:
    """Feed `sequence` to `budget`; the (time, "request"/"retry") of every counted event."""
    now = 0.0
    counted: list[tuple[float, str]] = []
    for step, is_retry in sequence:
        now += step
        if not is_retry:
            budget.record_request(now)
            counted.append((now, "request"))
        elif budget.try_retry(now):
            counted.append((now, "retry"))
    return counted


@given(events, ratios, floors)
def test_within_one_window_admitted_retries_stay_within_ratio_of_requests_plus_floor(
    sequence: list[tuple[float, bool]], ratio: float, floor: float
) -> None:
    window = 10.0
    budget = RetryBudget(ratio=ratio, min_retries_per_second=floor, window=window, buckets=10)
    # Squeeze the sequence into less than window minus one bucket, where every
    # event is still counted when the last one happens.
    total = sum(step for step, _ in sequence) or 1.0
    squeezed = [(step * 8.9 / total, is_retry) for step, is_retry in sequence]
    counted = play(budget, squeezed)
    requests = sum(1 for _, kind in counted if kind == "request")
    retries = sum(1 for _, kind in counted if kind == "retry")
    assert retries <= ratio * requests + floor * window


@given(events, ratios, floors, st.sampled_from([1, 4, 10]))
def test_over_any_short_span_retries_stay_within_ratio_of_the_requests_the_budget_saw(
    sequence: list[tuple[float, bool]], ratio: float, floor: float, buckets: int
) -> None:
    window = 10.0
    width = window / buckets
    budget = RetryBudget(ratio=ratio, min_retries_per_second=floor, window=window, buckets=buckets)
    counted = play(budget, sequence)
    retry_times = [time for time, kind in counted if kind == "retry"]
    request_times = [time for time, kind in counted if kind == "request"]
    # Any span shorter than one window minus one bucket, from one admitted
    # retry to another: its retries are bounded by the requests of the window
    # before it. (Times only grow, so both lists are sorted.)
    for first, start in enumerate(retry_times):
        for last in range(first, len(retry_times)):
            end = retry_times[last]
            if end - start >= window - width:
                break
            requests = bisect_right(request_times, end) - bisect_left(request_times, start - window)
            assert last - first + 1 <= ratio * requests + floor * window


@given(events, ratios, floors, st.sampled_from([1, 3, 10]))
def test_the_budget_decides_as_a_model_that_keeps_every_event(
    sequence: list[tuple[float, bool]], ratio: float, floor: float, buckets: int
) -> None:
    window = 10.0
    width = window / buckets
    budget = RetryBudget(ratio=ratio, min_retries_per_second=floor, window=window, buckets=buckets)
    kept: list[tuple[int, bool]] = []  # (bucket number, is_retry), never forgotten
    newest = -math.inf
    now = 0.0
    for step, is_retry in sequence:
        now += step
        newest = max(newest, now // width)
        live_requests = sum(1 for number, retry in kept if number > newest - buckets and not retry)
        live_retries = sum(1 for number, retry in kept if number > newest - buckets and retry)
        if not is_retry:
            budget.record_request(now)
            kept.append((int(newest), False))
            continue
        admit = live_retries + 1 <= ratio * live_requests + floor * window
        assert budget.try_retry(now) is admit
        if admit:
            kept.append((int(newest), True))
