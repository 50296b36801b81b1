"""Shares of a cluster-wide rate limit, computed exactly."""

from __future__ import annotations

import pytest

from meshgate.gateway.quota_share import DemandTable, allocate, equal_share


def test_shares_always_add_up_to_the_limit() -> None:
    for demands in (
        {"a": 900.0, "b": 100.0},
        {"a": 50.0, "b": 3.0, "c": 0.0},
        {"a": 0.0},
        {"a": 1e9, "b": 1e9, "c": 1.0, "d": 0.0},
    ):
        assert sum(allocate(100, demands).values()) == pytest.approx(100)


def test_a_lone_replica_gets_the_whole_limit() -> None:
    assert allocate(100, {"a": 5000.0}) == {"a": 100.0}


def test_saturated_replicas_share_in_proportion_to_their_unmet_demand() -> None:
    # floor 5 each; needs 175 and 15 exceed the rest of 90
    shares = allocate(100, {"a": 180.0, "b": 20.0})
    assert shares["a"] == pytest.approx(5 + 90 * 175 / 190)
    assert shares["b"] == pytest.approx(5 + 90 * 15 / 190)


def test_a_replica_below_its_floor_keeps_the_floor_and_the_rest_goes_where_needed() -> None:
    assert allocate(100, {"a": 180.0, "b": 3.0}) == {"a": 95.0, "b": 5.0}


def test_needs_that_fit_are_met_and_the_leftover_is_split_equally() -> None:
    # floor 5 each; needs 25 and 5 fit in 90; 60 left, 30 each
    assert allocate(100, {"a": 30.0, "b": 10.0}) == {"a": 60.0, "b": 40.0}


def test_idle_replicas_split_the_limit_equally() -> None:
    assert allocate(90, {"a": 0.0, "b": 0.0, "c": 0.0}) == {"a": 30.0, "b": 30.0, "c": 30.0}


def test_a_zero_floor_gives_an_idle_replica_nothing_while_others_are_saturated() -> None:
    assert allocate(100, {"a": 500.0, "b": 0.0}, floor_fraction=0.0) == {"a": 100.0, "b": 0.0}


def test_no_replicas_no_shares_and_bad_arguments_are_refused() -> None:
    assert allocate(100, {}) == {}
    with pytest.raises(ValueError, match="floor_fraction"):
        allocate(100, {"a": 1.0}, floor_fraction=1.5)
    with pytest.raises(ValueError, match="limit"):
        allocate(0, {"a": 1.0})
    with pytest.raises(ValueError, match="replicas"):
        equal_share(10, 0)


def test_per_key_limits_are_split_equally() -> None:
    assert equal_share(60, 3) == 20.0


def test_a_report_counts_until_its_ttl_and_unheard_replicas_count_as_idle() -> None:
    table = DemandTable(ttl=1.5)
    table.heard("orders", "gw-2", 40.0, now=10.0)
    table.heard("orders", "gw-3", -5.0, now=10.0)  # nonsense reads as idle
    assert table.demands("orders", ["gw-1", "gw-2", "gw-3"], now=11.4) == {
        "gw-1": 0.0,
        "gw-2": 40.0,
        "gw-3": 0.0,
    }
    assert table.demands("orders", ["gw-2"], now=11.5) == {"gw-2": 0.0}
    assert table.demands("other", ["gw-2"], now=10.0) == {"gw-2": 0.0}


def test_forgetting_drops_replicas_that_are_gone() -> None:
    table = DemandTable(ttl=5.0)
    table.heard("orders", "gw-2", 40.0, now=0.0)
    table.heard("orders", "gw-3", 10.0, now=0.0)
    table.forget(["gw-3"])
    assert table.reporters(now=1.0) == {"gw-3"}
