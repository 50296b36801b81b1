"""TokenBucket: the arithmetic, driven with plain numbers for `now`."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshgate.resilience.token_bucket import TokenBucket, seconds_until


def test_starts_full_and_admits_a_burst_of_capacity() -> None:
    bucket = TokenBucket(capacity=3, refill_per_second=1.0)
    assert [bucket.try_take(100.0) for _ in range(4)] == [True, True, True, False]


def test_refills_at_the_configured_rate_up_to_capacity() -> None:
    bucket = TokenBucket(capacity=4, refill_per_second=2.0)
    assert bucket.try_take(0.0, n=4)
    assert bucket.available(0.0) == 0.0
    assert bucket.available(0.5) == 1.0
    assert bucket.available(1.0) == 2.0
    assert bucket.available(60.0) == 4.0


def test_wait_time_is_zero_while_tokens_remain() -> None:
    bucket = TokenBucket(capacity=2, refill_per_second=1.0)
    assert bucket.try_take(0.0)
    assert bucket.wait_time(0.0) == 0.0


def test_wait_time_counts_the_seconds_until_n_tokens() -> None:
    bucket = TokenBucket(capacity=5, refill_per_second=2.0)
    assert bucket.try_take(10.0, n=5)
    assert bucket.wait_time(10.0) == 0.5
    assert bucket.wait_time(10.0, n=3) == 1.5
    assert bucket.wait_time(10.5, n=3) == 1.0


def test_taking_at_now_plus_wait_time_succeeds_and_just_before_fails() -> None:
    bucket = TokenBucket(capacity=1, refill_per_second=3.0)
    assert bucket.try_take(0.1)
    wait = bucket.wait_time(0.1)
    assert not bucket.try_take(0.1 + wait - 1e-9)
    assert bucket.try_take(0.1 + wait)


def test_a_request_larger_than_capacity_never_succeeds() -> None:
    bucket = TokenBucket(capacity=2, refill_per_second=1.0)
    assert bucket.wait_time(0.0, n=3) == math.inf
    assert not bucket.try_take(1e9, n=3)
    with pytest.raises(ValueError, match="n=3"):
        bucket.reserve(0.0, n=3)


@pytest.mark.parametrize("n", [0, -1, math.nan])
def test_the_amount_taken_must_be_positive(n: float) -> None:
    bucket = TokenBucket(capacity=2, refill_per_second=1.0)
    with pytest.raises(ValueError, match="n="):
        bucket.try_take(0.0, n=n)
    with pytest.raises(ValueError, match="n="):
        bucket.wait_time(0.0, n=n)


def test_reservations_queue_up_in_order_and_keep_try_take_waiting() -> None:
    bucket = TokenBucket(capacity=1, refill_per_second=2.0)
    assert [bucket.reserve(0.0) for _ in range(3)] == [0.0, 0.5, 1.0]
    assert bucket.available(0.0) == 0.0
    assert not bucket.try_take(1.0)
    assert bucket.wait_time(1.0) == 0.5
    assert bucket.try_take(1.5)


def test_reconfigure_keeps_the_tokens_held_and_does_not_refill_to_a_larger_capacity() -> None:
    bucket = TokenBucket(capacity=10, refill_per_second=1.0)
    assert bucket.try_take(0.0, n=7)
    bucket.reconfigure(capacity=100, refill_per_second=10.0, now=0.0)
    assert bucket.available(0.0) == 3.0
    assert bucket.available(1.0) == 13.0
    assert bucket.capacity == 100
    assert bucket.refill_per_second == 10.0


def test_reconfigure_to_a_smaller_capacity_cuts_the_tokens_held() -> None:
    bucket = TokenBucket(capacity=10, refill_per_second=1.0)
    bucket.reconfigure(capacity=2, refill_per_second=1.0, now=5.0)
    assert [bucket.try_take(5.0) for _ in range(3)] == [True, True, False]


def test_reconfigure_keeps_the_debt_of_reservations() -> None:
    bucket = TokenBucket(capacity=1, refill_per_second=1.0)
    bucket.reserve(0.0)
    bucket.reserve(0.0)  # one token owed
    bucket.reconfigure(capacity=1, refill_per_second=2.0, now=0.0)
    # the debt is paid at the new rate, then the next token arrives
    assert bucket.wait_time(0.0) == 1.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"capacity": 0, "refill_per_second": 1.0}, "capacity=0"),
        ({"capacity": -5, "refill_per_second": 1.0}, "capacity=-5"),
        ({"capacity": math.inf, "refill_per_second": 1.0}, "capacity=inf"),
        ({"capacity": True, "refill_per_second": 1.0}, "capacity=True"),
        ({"capacity": 5, "refill_per_second": 0}, "refill_per_second=0"),
        ({"capacity": 5, "refill_per_second": "fast"}, "refill_per_second='fast'"),
    ],
)
def test_options_are_checked_at_construction(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        TokenBucket(**options)  # type: ignore[arg-type]
    assert "expected" in str(raised.value)


def test_reconfigure_checks_its_options_and_keeps_the_old_ones_on_error() -> None:
    bucket = TokenBucket(capacity=5, refill_per_second=1.0)
    with pytest.raises(ValueError, match="refill_per_second=-1"):
        bucket.reconfigure(capacity=5, refill_per_second=-1, now=0.0)
    assert (bucket.capacity, bucket.refill_per_second) == (5, 1.0)


def test_seconds_until_is_never_short_in_floating_point() -> None:
    # a clock may start anywhere; here `ready_at - now` rounds down, and a
    # caller sleeping exactly that long would wake before `ready_at`
    now, ready_at = -53.39380691650316, -0.42255873992108345
    assert now + (ready_at - now) < ready_at
    wait = seconds_until(ready_at, now)
    assert now + wait >= ready_at
    assert wait == pytest.approx(ready_at - now, abs=1e-12)
    assert seconds_until(1.0, 2.0) == 0.0


# -- properties --------------------------------------------------------------

capacities = st.integers(min_value=1, max_value=50)
rates = st.floats(min_value=0.01, max_value=1000.0)
steps = st.floats(min_value=0.0, max_value=5.0)
amounts = st.integers(min_value=1, max_value=5)


@given(
    capacity=capacities,
    rate=rates,
    events=st.lists(st.tuples(steps, amounts, st.booleans()), max_size=80),
)
def test_never_admits_more_than_capacity_plus_rate_times_elapsed(
    capacity: int, rate: float, events: list[tuple[float, int, bool]]
) -> None:
    bucket = TokenBucket(capacity=capacity, refill_per_second=rate)
    now = 0.0
    admitted: list[tuple[float, int]] = []  # (when usable, tokens)
    for step, n, reserve in events:
        now += step
        if reserve and n <= capacity:
            admitted.append((now + bucket.reserve(now, n), n))
        elif bucket.try_take(now, n):
            admitted.append((now, n))
    admitted.sort()
    for i, (first, _) in enumerate(admitted):
        taken = 0
        for last, n in admitted[i:]:
            taken += n
            # float slack only: 1e-9 of a token
            assert taken <= capacity + rate * (last - first) + 1e-9


@given(
    capacity=capacities,
    rate=rates,
    events=st.lists(st.tuples(steps, amounts), max_size=80),
)
def test_refuses_only_when_the_bucket_really_lacks_the_tokens(
    capacity: int, rate: float, events: list[tuple[float, int]]
) -> None:
    bucket = TokenBucket(capacity=capacity, refill_per_second=rate)
    tokens, last = float(capacity), 0.0
    for step, n in events:
        now = last + step
        tokens = min(float(capacity), tokens + (now - last) * rate)
        last = now
        if bucket.try_take(now, n):
            assert tokens >= n - 1e-6
            tokens -= n
        else:
            assert tokens < n + 1e-6


@given(
    capacity=capacities,
    rate=rates,
    events=st.lists(st.tuples(steps, amounts), min_size=1, max_size=40),
    n=amounts,
)
def test_wait_time_is_exact(
    capacity: int, rate: float, events: list[tuple[float, int]], n: int
) -> None:
    bucket = TokenBucket(capacity=capacity, refill_per_second=rate)
    now = 0.0
    for step, taken in events:
        now += step
        bucket.try_take(now, taken)
    wait = bucket.wait_time(now, n)
    if n > capacity:
        assert wait == math.inf
        return
    if wait > 1e-5:
        # one microsecond early is still too early
        assert not bucket.try_take(now + wait - 1e-6, n)
    assert bucket.try_take(now + wait, n)
