"""Balancers that follow load through `on_start` / `on_finish`:
least-connections and power of two choices with a latency EWMA."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshgate.bus.instance import ServiceInstance
from meshgate.discovery.balancers import LeastConnectionsBalancer, PowerOfTwoChoicesBalancer


def instances(*ids: str) -> tuple[ServiceInstance, ...]:
    return tuple(ServiceInstance(id=id_, name="svc", host="10.2.0.1", port=8000) for id_ in ids)


def ids(picks: list[ServiceInstance | None]) -> str:
    return "".join(pick.id if pick is not None else "-" for pick in picks)


# --- least-connections ---------------------------------------------------------


def test_least_connections_sends_the_next_request_to_the_idlest_instance() -> None:
    balancer = LeastConnectionsBalancer()
    a, b, c = members = instances("a", "b", "c")
    balancer.on_start(a)
    balancer.on_start(a)
    balancer.on_start(b)
    assert balancer.pick(members) is c
    balancer.on_start(c)
    assert balancer.pick(members) is b  # b and c at 1, a at 2: the rotation reaches b first
    balancer.on_finish(a, 0.1, True, 1.0)
    balancer.on_finish(a, 0.1, True, 1.0)
    assert balancer.pick(members) is a


def test_least_connections_rotates_among_equally_loaded_instances() -> None:
    balancer = LeastConnectionsBalancer()
    members = instances("a", "b", "c")
    assert ids([balancer.pick(members) for _ in range(6)]) == "abcabc"


def test_least_connections_spreads_a_burst_of_concurrent_requests_evenly() -> None:
    balancer = LeastConnectionsBalancer()
    members = instances("a", "b", "c")
    for _ in range(9):
        chosen = balancer.pick(members)
        assert chosen is not None
        balancer.on_start(chosen)
    assert [balancer.in_flight(member) for member in members] == [3, 3, 3]


def test_a_finish_without_a_start_does_not_make_a_count_negative() -> None:
    balancer = LeastConnectionsBalancer()
    a, b = members = instances("a", "b")
    balancer.on_finish(a, 0.1, False, 1.0)
    balancer.pick(members)
    balancer.on_finish(a, 0.1, False, 1.0)
    assert balancer.in_flight(a) == 0
    balancer.on_start(b)
    assert balancer.pick(members) is a


def test_requests_in_flight_are_remembered_while_an_instance_is_out_of_the_list() -> None:
    balancer = LeastConnectionsBalancer()
    a, b, c = instances("a", "b", "c")
    balancer.pick((a, b))
    balancer.on_start(a)
    balancer.on_start(a)
    assert balancer.pick((b, c)) is b
    balancer.on_finish(a, 0.2, True, 3.0)  # a finishes one while it is away
    balancer.on_start(b)
    balancer.on_start(c)
    assert balancer.in_flight(a) == 1
    assert ids([balancer.pick((a, b, c)) for _ in range(3)]) == "abc"


def test_least_connections_serves_the_objects_of_the_list_it_is_given() -> None:
    balancer = LeastConnectionsBalancer()
    balancer.pick(instances("a"))
    fresh = ServiceInstance(id="a", name="svc", host="10.2.0.9", port=9000)
    assert balancer.pick([fresh]) is fresh


operation = st.one_of(
    st.tuples(st.just("pick"), st.integers(0, 5)),
    st.tuples(st.just("start"), st.integers(0, 5)),
    st.tuples(st.just("finish"), st.integers(0, 5)),
    st.tuples(st.just("resize"), st.integers(1, 6)),
)


@given(st.lists(operation, max_size=80))
def test_least_connections_always_picks_a_minimum_of_a_model_count(
    operations: list[tuple[str, int]],
) -> None:
    balancer = LeastConnectionsBalancer()
    everyone = instances(*(f"i{n}" for n in range(6)))
    members = everyone[:3]
    model = dict.fromkeys((i.id for i in everyone), 0)
    for kind, argument in operations:
        if kind == "resize":
            members = everyone[:argument]
        elif kind == "start":
            balancer.on_start(everyone[argument])
            model[everyone[argument].id] += 1
        elif kind == "finish":
            balancer.on_finish(everyone[argument], 0.01, True, 0.0)
            model[everyone[argument].id] = max(0, model[everyone[argument].id] - 1)
        else:
            chosen = balancer.pick(members)
            assert chosen is not None
            assert model[chosen.id] == min(model[m.id] for m in members)
    assert all(balancer.in_flight(i) == model[i.id] for i in everyone)


# --- power of two choices ------------------------------------------------------


def test_p2c_never_picks_the_busier_of_the_two_it_draws() -> None:
    balancer = PowerOfTwoChoicesBalancer(rng=random.Random(11))
    busy, *idle = members = instances("busy", "b", "c", "d")
    for _ in range(5):
        balancer.on_start(busy)
    picks = [balancer.pick(members) for _ in range(2000)]
    assert busy not in picks
    assert {pick.id for pick in picks if pick is not None} == {i.id for i in idle}


def test_p2c_prefers_the_less_loaded_instance_over_many_concurrent_requests() -> None:
    balancer = PowerOfTwoChoicesBalancer(rng=random.Random(5))
    members = instances(*(f"i{n}" for n in range(10)))
    for _ in range(200):
        chosen = balancer.pick(members)
        assert chosen is not None
        balancer.on_start(chosen)
    loads = [balancer.in_flight(member) for member in members]
    # Two choices keep the busiest close to the mean of 20.
    assert max(loads) <= 22, loads
    assert min(loads) >= 18, loads


def test_p2c_breaks_a_load_tie_by_the_lower_latency() -> None:
    balancer = PowerOfTwoChoicesBalancer(rng=random.Random(2))
    slow, fast = members = instances("slow", "fast")
    balancer.on_finish(slow, 0.5, True, 1.0)
    balancer.on_finish(fast, 0.01, True, 1.0)
    assert ids([balancer.pick(members) for _ in range(20)]) == "fast" * 20


def test_p2c_tries_an_instance_with_no_latency_yet() -> None:
    balancer = PowerOfTwoChoicesBalancer(rng=random.Random(2))
    measured, new = members = instances("measured", "new")
    balancer.on_finish(measured, 0.001, True, 1.0)
    assert balancer.pick(members) is new


def test_p2c_is_exactly_repeatable_with_the_same_seed() -> None:
    members = instances(*(f"i{n}" for n in range(7)))
    first = PowerOfTwoChoicesBalancer(rng=random.Random(99))
    second = PowerOfTwoChoicesBalancer(rng=random.Random(99))
    assert [first.pick(members) for _ in range(50)] == [second.pick(members) for _ in range(50)]


def test_p2c_draws_two_distinct_instances_each_time() -> None:
    balancer = PowerOfTwoChoicesBalancer(rng=random.Random(8))
    busy, idle = members = instances("busy", "idle")
    balancer.on_start(busy)
    assert all(balancer.pick(members) is idle for _ in range(50))


def test_the_latency_average_decays_with_the_time_between_observations() -> None:
    balancer = PowerOfTwoChoicesBalancer(decay_time=10.0)
    (a,) = instances("a")
    assert balancer.latency(a) is None
    balancer.on_finish(a, 0.1, True, 100.0)
    assert balancer.latency(a) == 0.1
    balancer.on_finish(a, 0.3, True, 110.0)
    kept = math.exp(-1.0)
    assert balancer.latency(a) == pytest.approx(0.1 * kept + 0.3 * (1 - kept))
    balancer.on_finish(a, 5.0, True, 110.0)  # no time passed: no weight
    assert balancer.latency(a) == pytest.approx(0.1 * kept + 0.3 * (1 - kept))
    balancer.on_finish(a, 0.3, True, 1_000.0)  # long quiet: the past is forgotten
    assert balancer.latency(a) == pytest.approx(0.3)


def test_a_clock_that_steps_back_counts_as_no_time_passing() -> None:
    balancer = PowerOfTwoChoicesBalancer(decay_time=10.0)
    (a,) = instances("a")
    balancer.on_finish(a, 0.1, True, 100.0)
    balancer.on_finish(a, 0.9, True, 50.0)
    assert balancer.latency(a) == pytest.approx(0.1)


def test_a_fast_failure_counts_as_at_least_the_failure_penalty() -> None:
    balancer = PowerOfTwoChoicesBalancer(failure_penalty=2.0)
    a, b = instances("a", "b")
    balancer.on_finish(a, 0.001, False, 1.0)
    balancer.on_finish(b, 3.0, False, 1.0)
    assert balancer.latency(a) == 2.0
    assert balancer.latency(b) == 3.0


def test_p2c_tracks_in_flight_requests_and_never_goes_negative() -> None:
    balancer = PowerOfTwoChoicesBalancer()
    (a,) = instances("a")
    balancer.on_start(a)
    balancer.on_start(a)
    balancer.on_finish(a, 0.1, True, 1.0)
    assert balancer.in_flight(a) == 1
    balancer.on_finish(a, 0.1, True, 2.0)
    balancer.on_finish(a, 0.1, True, 3.0)
    assert balancer.in_flight(a) == 0


def test_p2c_forgets_the_latencies_of_departed_instances() -> None:
    balancer = PowerOfTwoChoicesBalancer(rng=random.Random(1))
    departed = instances(*(f"old{n}" for n in range(40)))
    for instance in departed:
        balancer.on_finish(instance, 0.1, True, 1.0)
    current = instances("a", "b")
    balancer.on_finish(current[0], 0.2, True, 1.0)
    balancer.pick(current)
    assert all(balancer.latency(instance) is None for instance in departed)
    assert balancer.latency(current[0]) == 0.2
