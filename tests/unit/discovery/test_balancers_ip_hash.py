"""IP hash: stable affinity, an even spread, and consistent hashing's promise
that a change of membership moves only the clients it must."""

from __future__ import annotations

import ipaddress
import random

import pytest

from meshgate.bus.instance import ServiceInstance
from meshgate.discovery.balancers import IpHashBalancer, stable_hash

CLIENTS = [str(ipaddress.IPv4Address(0x0A000000 + n * 7919)) for n in range(10_000)]


def instances(*ids: str) -> tuple[ServiceInstance, ...]:
    return tuple(ServiceInstance(id=id_, name="svc", host="10.1.0.1", port=8000) for id_ in ids)


def assignment(balancer: IpHashBalancer, members: tuple[ServiceInstance, ...]) -> dict[str, str]:
    chosen = {client: balancer.pick(members, client_ip=client) for client in CLIENTS}
    return {client: instance.id for client, instance in chosen.items() if instance is not None}


def test_the_hash_is_the_same_in_every_process() -> None:
    # Pinned: Python's salted hash() would differ between gateway replicas.
    assert stable_hash("10.0.0.1") == 6021020536128996326


def test_a_client_always_reaches_the_same_instance() -> None:
    members = instances("a", "b", "c", "d")
    balancer = IpHashBalancer()
    first = {client: balancer.pick(members, client_ip=client) for client in CLIENTS[:200]}
    for client, instance in first.items():
        assert balancer.pick(members, client_ip=client) is instance


def test_two_balancers_and_any_list_order_agree_on_every_client() -> None:
    members = instances("a", "b", "c", "d", "e")
    shuffled = list(members)
    random.Random(4).shuffle(shuffled)
    assert assignment(IpHashBalancer(), members) == assignment(IpHashBalancer(), tuple(shuffled))


def test_clients_spread_about_evenly_over_the_instances() -> None:
    members = instances(*(f"i{n}" for n in range(10)))
    counts: dict[str, int] = {}
    for owner in assignment(IpHashBalancer(), members).values():
        counts[owner] = counts.get(owner, 0) + 1
    assert len(counts) == 10
    assert all(700 < count < 1300 for count in counts.values()), counts


@pytest.mark.parametrize("size", [3, 10, 30])
def test_adding_one_instance_to_n_moves_about_one_in_n_plus_one_clients_all_to_it(
    size: int,
) -> None:
    before_members = instances(*(f"i{n}" for n in range(size)))
    after_members = (*before_members, *instances("new"))
    balancer = IpHashBalancer()
    before = assignment(balancer, before_members)
    after = assignment(balancer, after_members)
    moved = [client for client in CLIENTS if before[client] != after[client]]
    assert {after[client] for client in moved} == {"new"}
    expected = 1 / (size + 1)
    assert abs(len(moved) / len(CLIENTS) - expected) < 0.3 * expected


def test_removing_an_instance_moves_only_its_own_clients() -> None:
    members = instances(*(f"i{n}" for n in range(10)))
    balancer = IpHashBalancer()
    before = assignment(balancer, members)
    after = assignment(balancer, tuple(m for m in members if m.id != "i3"))
    moved = {client for client in CLIENTS if before[client] != after[client]}
    assert moved == {client for client, owner in before.items() if owner == "i3"}
    assert abs(len(moved) / len(CLIENTS) - 0.1) < 0.03


def test_a_refreshed_list_with_the_same_ids_serves_the_new_objects() -> None:
    balancer = IpHashBalancer()
    balancer.pick(instances("a", "b"), client_ip="192.0.2.1")
    refreshed = tuple(
        ServiceInstance(id=id_, name="svc", host="10.1.0.2", port=9000) for id_ in ("a", "b")
    )
    chosen = balancer.pick(list(refreshed), client_ip="192.0.2.1")
    assert any(chosen is fresh for fresh in refreshed)


def test_without_a_client_address_it_falls_back_to_round_robin() -> None:
    balancer = IpHashBalancer()
    members = instances("a", "b", "c")
    picks = [balancer.pick(members) for _ in range(4)] + [balancer.pick(members, client_ip="")]
    assert [pick.id for pick in picks if pick is not None] == ["a", "b", "c", "a", "b"]


def test_fewer_virtual_nodes_still_map_every_client_to_a_member() -> None:
    balancer = IpHashBalancer(virtual_nodes=1)
    members = instances("a", "b", "c")
    assert set(assignment(balancer, members).values()) <= {"a", "b", "c"}
