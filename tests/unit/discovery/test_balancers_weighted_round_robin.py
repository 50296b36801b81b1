"""Smooth weighted round-robin: nginx's sequences, exact proportions per
cycle, and a cycle that survives refreshes but restarts on real changes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from meshgate.bus.instance import ServiceInstance
from meshgate.discovery.balancers import WeightedRoundRobinBalancer


def weighted(
    id_: str, weight: float | str | None = None, *, last_heartbeat: float = 0.0
) -> ServiceInstance:
    metadata: dict[str, str | int | float | bool] = {} if weight is None else {"weight": weight}
    return ServiceInstance(
        id=id_,
        name="svc",
        host="10.0.0.1",
        port=8000,
        metadata=metadata,
        last_heartbeat=last_heartbeat,
    )


def sequence(
    balancer: WeightedRoundRobinBalancer, instances: tuple[ServiceInstance, ...], n: int
) -> str:
    picks = [balancer.pick(instances) for _ in range(n)]
    return "".join(pick.id for pick in picks if pick is not None)


def nginx(weights: list[int], picks: int) -> list[int]:
    """ngx_http_upstream_get_peer, transcribed: the reference to match."""
    current = [0] * len(weights)
    total = sum(weights)
    chosen_positions = []
    for _ in range(picks):
        best = None
        for position, weight in enumerate(weights):
            current[position] += weight
            if best is None or current[position] > current[best]:
                best = position
        assert best is not None
        current[best] -= total
        chosen_positions.append(best)
    return chosen_positions


def test_weights_5_1_1_give_nginx_smooth_sequence() -> None:
    balancer = WeightedRoundRobinBalancer()
    instances = (weighted("a", 5), weighted("b", 1), weighted("c", 1))
    assert sequence(balancer, instances, 14) == "aabacaa" * 2


def test_weights_80_20_spread_the_heavy_instance_like_4_to_1() -> None:
    balancer = WeightedRoundRobinBalancer()
    instances = (weighted("a", 80), weighted("b", 20))
    assert sequence(balancer, instances, 10) == "aabaa" * 2


def test_equal_weights_are_plain_round_robin_in_list_order() -> None:
    balancer = WeightedRoundRobinBalancer()
    instances = (weighted("a", 3), weighted("b", 3), weighted("c", 3))
    assert sequence(balancer, instances, 6) == "abcabc"


def test_fractional_weights_keep_their_proportions_exactly() -> None:
    fractional = WeightedRoundRobinBalancer()
    whole = WeightedRoundRobinBalancer()
    as_fractions = (weighted("a", 0.5), weighted("b", 1.5), weighted("c", 0.25))
    as_integers = (weighted("a", 2), weighted("b", 6), weighted("c", 1))
    assert sequence(fractional, as_fractions, 27) == sequence(whole, as_integers, 27)


def test_missing_or_unusable_weights_count_as_one() -> None:
    balancer = WeightedRoundRobinBalancer()
    instances = (
        weighted("a", 2),
        weighted("b"),
        weighted("c", "heavy"),
        weighted("d", -4),
        weighted("e", "inf"),
    )
    assert sequence(balancer, instances, 6) == "abcdea"


def test_a_refresh_with_the_same_ids_and_weights_continues_the_cycle_with_new_objects() -> None:
    balancer = WeightedRoundRobinBalancer()
    assert sequence(balancer, (weighted("a", 5), weighted("b", 1), weighted("c", 1)), 3) == "aab"
    refreshed = (
        weighted("a", 5, last_heartbeat=2.0),
        weighted("b", 1, last_heartbeat=2.0),
        weighted("c", 1, last_heartbeat=2.0),
    )
    picks = [balancer.pick(list(refreshed)) for _ in range(4)]
    assert "".join(pick.id for pick in picks if pick is not None) == "acaa"
    assert all(any(pick is fresh for fresh in refreshed) for pick in picks)


def test_a_changed_weight_starts_a_new_cycle() -> None:
    balancer = WeightedRoundRobinBalancer()
    assert sequence(balancer, (weighted("a", 5), weighted("b", 1), weighted("c", 1)), 3) == "aab"
    assert (
        sequence(balancer, (weighted("a", 1), weighted("b", 1), weighted("c", 5)), 7) == "ccacbcc"
    )


def test_a_new_instance_starts_a_new_cycle_that_includes_it() -> None:
    balancer = WeightedRoundRobinBalancer()
    assert sequence(balancer, (weighted("a", 2), weighted("b", 1)), 2) == "ab"
    assert sequence(balancer, (weighted("a", 2), weighted("b", 1), weighted("c", 1)), 4) == "abca"


weight_lists = st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=9)


@given(weights=weight_lists, cycles=st.integers(min_value=1, max_value=3))
def test_every_cycle_of_k_times_total_picks_gives_each_exactly_k_times_its_weight(
    weights: list[int], cycles: int
) -> None:
    balancer = WeightedRoundRobinBalancer()
    instances = tuple(weighted(f"i{n}", weight) for n, weight in enumerate(weights))
    counts = dict.fromkeys((i.id for i in instances), 0)
    for _ in range(cycles * sum(weights)):
        chosen = balancer.pick(instances)
        assert chosen is not None
        counts[chosen.id] += 1
    assert counts == {i.id: cycles * int(i.weight) for i in instances}


@given(weights=weight_lists, scale=st.sampled_from([1, 3, 0.5, 0.125]))
def test_the_sequence_is_exactly_nginx_for_any_weights_and_any_common_scale(
    weights: list[int], scale: float
) -> None:
    balancer = WeightedRoundRobinBalancer()
    instances = tuple(weighted(f"i{n}", weight * scale) for n, weight in enumerate(weights))
    picks = [balancer.pick(instances) for _ in range(2 * sum(weights) + 3)]
    expected = nginx(weights, len(picks))
    assert [instances.index(pick) for pick in picks if pick is not None] == expected


def test_retries_that_leave_out_a_tried_instance_do_not_restart_the_full_sets_cycle() -> None:
    # A retry picks among the instances not yet tried; the next request asks
    # about the full set again. Restarting its cycle each time sent the heavy
    # instance far more than its weight (weights 3 2 1: b got 1/4, not 1/3).
    balancer = WeightedRoundRobinBalancer()
    full = (weighted("a", 3), weighted("b", 2), weighted("c", 1))
    without_c = full[:2]
    first_picks = ""
    retries = ""
    for _ in range(600):
        pick = balancer.pick(full)
        assert pick is not None
        first_picks += pick.id
        if pick.id == "c":  # c fails: the retry leaves it out
            retry = balancer.pick(without_c)
            assert retry is not None
            retries += retry.id
    expected = "".join("abc"[position] for position in nginx([3, 2, 1], 600))
    assert first_picks == expected
    assert (retries.count("a"), retries.count("b")) == (60, 40)
