"""What every balancer promises, the factory, and the simple strategies:
round-robin, random, zone-aware, and the snapshot cache they share."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.discovery.balancers import (
    STRATEGIES,
    LeastConnectionsBalancer,
    LoadBalancer,
    PowerOfTwoChoicesBalancer,
    RandomBalancer,
    RoundRobinBalancer,
    SnapshotCache,
    ZoneAwareBalancer,
    create_balancer,
)
from meshgate.discovery.balancers.snapshot import instance_id


def instance(
    id_: str, *, zone: str | None = None, **metadata: str | int | float
) -> ServiceInstance:
    return ServiceInstance(
        id=id_, name="svc", host="10.0.0.1", port=8000, zone=zone, metadata=metadata
    )


def every_balancer() -> list[LoadBalancer]:
    return [
        create_balancer(name, zone="z") if name == "zone-aware" else create_balancer(name)
        for name in STRATEGIES
    ]


def ids(picks: list[ServiceInstance | None]) -> str:
    return "".join(pick.id if pick is not None else "-" for pick in picks)


# --- the contract ---------------------------------------------------------------


@pytest.mark.parametrize("balancer", every_balancer(), ids=list(STRATEGIES))
@pytest.mark.parametrize("client_ip", [None, "198.51.100.4"])
def test_every_balancer_returns_none_for_no_instances(
    balancer: LoadBalancer, client_ip: str | None
) -> None:
    assert balancer.pick([], client_ip=client_ip) is None
    assert balancer.pick((), client_ip=client_ip) is None


@pytest.mark.parametrize("balancer", every_balancer(), ids=list(STRATEGIES))
def test_every_balancer_picks_the_only_instance(balancer: LoadBalancer) -> None:
    only = instance("a")
    assert balancer.pick((only,)) is only
    assert balancer.pick([only], client_ip="198.51.100.4") is only


@pytest.mark.parametrize("name", list(STRATEGIES))
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=20),
    as_tuple=st.booleans(),
    client_ip=st.none() | st.ip_addresses().map(str),
)
def test_every_balancer_picks_one_of_the_instances_it_was_given_as_the_list_changes(
    name: str, sizes: list[int], as_tuple: bool, client_ip: str | None
) -> None:
    balancer = create_balancer(name, zone="z") if name == "zone-aware" else create_balancer(name)
    for size in sizes:
        given_ = [
            instance(f"i{n}", zone=("z" if n % 3 == 0 else "y"), weight=n % 4 + 1)
            for n in range(size)
        ]
        chosen = balancer.pick(tuple(given_) if as_tuple else given_, client_ip=client_ip)
        if size == 0:
            assert chosen is None
        else:
            assert chosen is not None
            assert any(chosen is candidate for candidate in given_)
            balancer.on_start(chosen)
            balancer.on_finish(chosen, 0.01, True, 1.0)


@pytest.mark.parametrize("balancer", every_balancer(), ids=list(STRATEGIES))
def test_every_balancer_satisfies_the_protocol(balancer: LoadBalancer) -> None:
    assert isinstance(balancer, LoadBalancer)


@pytest.mark.parametrize("balancer", every_balancer(), ids=list(STRATEGIES))
def test_balancers_ignore_status_because_the_discovery_client_filters(
    balancer: LoadBalancer,
) -> None:
    down = ServiceInstance(
        id="a", name="svc", host="h", port=1, zone="z", status=InstanceStatus.DOWN
    )
    assert balancer.pick((down,)) is down


# --- the factory ---------------------------------------------------------------


def test_factory_knows_every_strategy_name_of_the_reference_and_p2c() -> None:
    assert set(STRATEGIES) == {
        "round-robin",
        "random",
        "least-connections",
        "weighted-round-robin",
        "ip-hash",
        "zone-aware",
        "p2c",
    }


def test_factory_builds_a_fresh_balancer_of_the_named_strategy_with_its_options() -> None:
    balancer = create_balancer("zone-aware", zone="eu-west-1", inner=LeastConnectionsBalancer())
    assert isinstance(balancer, ZoneAwareBalancer)
    assert balancer.zone == "eu-west-1"
    assert isinstance(create_balancer("p2c", decay_time=5.0), PowerOfTwoChoicesBalancer)
    assert create_balancer("round-robin") is not create_balancer("round-robin")


def test_factory_rejects_an_unknown_strategy_listing_the_allowed_names() -> None:
    with pytest.raises(ValueError, match="strategy='fastest'") as raised:
        create_balancer("fastest")
    for name in STRATEGIES:
        assert repr(name) in str(raised.value)


def test_factory_rejects_an_unknown_option_naming_the_options_there_are() -> None:
    with pytest.raises(ValueError, match=r"'p2c' has no option 'decay'.*decay_time"):
        create_balancer("p2c", decay=3.0)
    with pytest.raises(ValueError, match="'round-robin' has no option 'rng': its options are none"):
        create_balancer("round-robin", rng=random.Random(1))


def test_factory_names_a_missing_required_option() -> None:
    with pytest.raises(ValueError, match="'zone-aware' needs the option 'zone'"):
        create_balancer("zone-aware")


def test_bad_option_values_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="zone=''"):
        ZoneAwareBalancer("")
    with pytest.raises(ValueError, match="virtual_nodes=0"):
        create_balancer("ip-hash", virtual_nodes=0)
    with pytest.raises(ValueError, match="decay_time=0"):
        create_balancer("p2c", decay_time=0)
    with pytest.raises(ValueError, match="failure_penalty=-1"):
        create_balancer("p2c", failure_penalty=-1)


# --- round-robin ---------------------------------------------------------------


def test_round_robin_cycles_in_list_order() -> None:
    balancer = RoundRobinBalancer()
    instances = (instance("a"), instance("b"), instance("c"))
    assert ids([balancer.pick(instances) for _ in range(7)]) == "abcabca"


def test_round_robin_carries_on_when_the_list_grows_or_shrinks() -> None:
    balancer = RoundRobinBalancer()
    a, b, c, d = (instance(i) for i in "abcd")
    assert ids([balancer.pick([a, b, c]) for _ in range(2)]) == "ab"
    assert ids([balancer.pick([a, b, c, d]) for _ in range(3)]) == "cda"
    assert ids([balancer.pick([a, b]) for _ in range(3)]) == "bab"


def test_round_robin_serves_the_objects_of_the_list_it_is_given() -> None:
    balancer = RoundRobinBalancer()
    fresh = instance("a", version="2")
    balancer.pick([instance("a")])
    assert balancer.pick([fresh]) is fresh


# --- random --------------------------------------------------------------------


def test_random_follows_the_injected_generator_exactly() -> None:
    instances = tuple(instance(i) for i in "abcde")
    balancer = RandomBalancer(rng=random.Random(42))
    expected = random.Random(42)
    assert [balancer.pick(instances) for _ in range(20)] == [
        instances[expected.randrange(5)] for _ in range(20)
    ]


def test_random_reaches_every_instance_about_evenly() -> None:
    instances = tuple(instance(i) for i in "abcd")
    balancer = RandomBalancer(rng=random.Random(3))
    counts = {i.id: 0 for i in instances}
    for _ in range(4000):
        chosen = balancer.pick(instances)
        assert chosen is not None
        counts[chosen.id] += 1
    assert all(850 < count < 1150 for count in counts.values()), counts


# --- zone-aware ----------------------------------------------------------------


def test_zone_aware_keeps_to_its_own_zone_and_round_robins_within_it() -> None:
    balancer = ZoneAwareBalancer("eu")
    instances = (
        instance("us1", zone="us"),
        instance("eu1", zone="eu"),
        instance("us2", zone="us"),
        instance("eu2", zone="eu"),
    )
    assert ids([balancer.pick(instances) for _ in range(4)]) == "eu1eu2eu1eu2"


def test_zone_aware_falls_back_to_the_other_zones_when_its_own_has_no_instance() -> None:
    balancer = ZoneAwareBalancer("eu")
    elsewhere = (instance("us1", zone="us"), instance("ap1", zone="ap"), instance("none"))
    assert ids([balancer.pick(elsewhere) for _ in range(3)]) == "us1ap1none"


def test_zone_aware_returns_to_its_zone_as_soon_as_an_instance_appears_there() -> None:
    balancer = ZoneAwareBalancer("eu")
    us1, eu1 = instance("us1", zone="us"), instance("eu1", zone="eu")
    assert balancer.pick([us1]) is us1
    assert balancer.pick([us1, eu1]) is eu1
    assert balancer.pick([us1]) is us1


def test_zone_aware_delegates_the_pick_and_the_hooks_to_its_inner_balancer() -> None:
    inner = LeastConnectionsBalancer()
    balancer = ZoneAwareBalancer("eu", inner=inner)
    eu1, eu2, us1 = (
        instance("eu1", zone="eu"),
        instance("eu2", zone="eu"),
        instance("us1", zone="us"),
    )
    instances = (eu1, us1, eu2)
    balancer.on_start(eu1)
    assert inner.in_flight(eu1) == 1
    assert [balancer.pick(instances) for _ in range(3)] == [eu2, eu2, eu2]
    balancer.on_finish(eu1, 0.02, True, 5.0)
    assert inner.in_flight(eu1) == 0


def test_zone_aware_serves_refreshed_objects_of_an_unchanged_set() -> None:
    balancer = ZoneAwareBalancer("eu")
    balancer.pick((instance("eu1", zone="eu"),))
    refreshed = ServiceInstance(
        id="eu1", name="svc", host="10.0.0.1", port=8000, zone="eu", last_heartbeat=9.0
    )
    assert balancer.pick((refreshed,)) is refreshed


# --- the snapshot cache --------------------------------------------------------


class CountingBuild:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, instances: object) -> int:
        self.calls += 1
        return self.calls


def test_snapshot_cache_builds_once_for_the_same_tuple() -> None:
    build = CountingBuild()
    cache = SnapshotCache(instance_id, build)
    instances = (instance("a"), instance("b"))
    assert [cache.get(instances) for _ in range(5)] == [1] * 5
    assert build.calls == 1


def test_snapshot_cache_reuses_the_structure_for_a_new_list_with_the_same_key() -> None:
    build = CountingBuild()
    cache = SnapshotCache(instance_id, build)
    cache.get([instance("a"), instance("b")])
    cache.get((instance("a", version="2"), instance("b")))
    cache.get([instance("a"), instance("b")])
    assert build.calls == 1


def test_snapshot_cache_rebuilds_when_the_key_changes_even_in_a_list_edited_in_place() -> None:
    build = CountingBuild()
    cache = SnapshotCache(instance_id, build)
    instances = [instance("a"), instance("b")]
    assert cache.get(instances) == 1
    instances[1] = instance("c")
    assert cache.get(instances) == 2
    assert cache.get([instance("b"), instance("a")]) == 3  # order is part of the key
    assert cache.peek() == 3


def test_snapshot_cache_keeps_the_structures_of_the_last_keys_when_asked_to() -> None:
    build = CountingBuild()
    cache = SnapshotCache(instance_id, build, keep=2)
    full, fewer, other = (instance("a"), instance("b")), (instance("a"),), (instance("c"),)
    assert [cache.get(full), cache.get(fewer), cache.get(full), cache.get(fewer)] == [1, 2, 1, 2]
    assert cache.get(other) == 3  # a third key: the least recently used one goes
    assert cache.get(fewer) == 2
    assert cache.get(full) == 4
    assert cache.peek() == 4


def test_snapshot_cache_keeps_nothing_but_the_current_structure_by_default() -> None:
    build = CountingBuild()
    cache = SnapshotCache(instance_id, build)
    full, fewer = (instance("a"), instance("b")), (instance("a"),)
    assert [cache.get(full), cache.get(fewer), cache.get(full)] == [1, 2, 3]
    with pytest.raises(ValueError, match="keep=0"):
        SnapshotCache(instance_id, build, keep=0)
