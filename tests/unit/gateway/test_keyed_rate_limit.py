import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshgate.gateway.keyed_rate_limit import KeyedRateLimit


def test_each_key_has_its_own_allowance() -> None:
    limit = KeyedRateLimit("sliding-window", max=1, window=10.0)
    assert limit.check("a", 0.0).admitted
    assert not limit.check("a", 1.0).admitted
    assert limit.check("b", 1.0).admitted


def test_a_refusal_says_when_to_retry_and_that_nothing_remains() -> None:
    limit = KeyedRateLimit("sliding-window", max=2, window=10.0)
    limit.check("a", 0.0)
    limit.check("a", 4.0)
    decision = limit.check("a", 5.0)
    assert not decision.admitted
    assert decision.limit == 2
    assert decision.remaining == 0
    assert decision.retry_after == 5.0


def test_token_bucket_reports_remaining_permits_and_time_to_full() -> None:
    limit = KeyedRateLimit("token-bucket", max=10, window=10.0)
    decision = limit.check("a", 0.0)
    assert decision.admitted
    assert decision.remaining == 9
    assert decision.reset_after == pytest.approx(1.0)


def test_keys_beyond_max_keys_evict_the_least_recently_seen() -> None:
    limit = KeyedRateLimit("sliding-window", max=1, window=10.0, max_keys=2)
    limit.check("a", 0.0)
    limit.check("b", 0.0)
    limit.check("a", 0.0)  # a is now the most recent
    limit.check("c", 0.0)  # evicts b
    assert limit.key_count() == 2
    assert limit.check("b", 0.0).admitted  # b starts afresh
    assert not limit.check("c", 0.0).admitted


def test_rescale_shrinks_the_allowance_without_a_new_burst() -> None:
    limit = KeyedRateLimit("token-bucket", max=100, window=60.0)
    for _ in range(40):
        assert limit.check("route", 0.0).admitted
    limit.rescale(0.5, 0.0)
    assert limit.effective_max == 50
    admitted = sum(limit.check("route", 0.0).admitted for _ in range(100))
    assert 9 <= admitted <= 10  # 50 - 40 used, give or take float rounding


def test_unknown_strategy_is_named() -> None:
    with pytest.raises(ValueError, match="strategy='leaky'"):
        KeyedRateLimit("leaky", max=1, window=1.0)  # type: ignore[arg-type]


@given(
    st.sampled_from(["token-bucket", "sliding-window"]),
    st.integers(min_value=1, max_value=20),
    st.lists(st.floats(min_value=0, max_value=5), min_size=1, max_size=200),
)
def test_never_admits_more_than_max_plus_refill(
    strategy: str, max_: int, gaps: list[float]
) -> None:
    window = 10.0
    limit = KeyedRateLimit(strategy, max=max_, window=window)  # type: ignore[arg-type]
    now = 0.0
    admitted = 0
    for gap in gaps:
        now += gap
        admitted += limit.check("k", now).admitted
    assert admitted <= max_ + max_ * now / window + 1e-9
