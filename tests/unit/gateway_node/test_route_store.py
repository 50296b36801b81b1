"""Route bucket entries: keys from names, routes from values, junk refused."""

from __future__ import annotations

import pytest

from gateway_node.route_store import UnreadableRouteError, route_from_entry, route_key, route_name


def test_a_key_is_the_encoded_name_and_back() -> None:
    for name in ("/api/users/**", "orders v2", "api.example.com/x"):
        assert route_name(route_key(name)) == name


def test_a_value_without_a_name_takes_the_keys() -> None:
    route = route_from_entry("orders", b'{"path": "/orders/**", "upstreams": ["h:1"]}')
    assert route.name == "orders"


@pytest.mark.parametrize(
    ("key", "value", "complaint"),
    [
        ("orders", b"{not json", "orders"),
        ("orders", b"[1, 2]", "JSON object"),
        ("orders", b'{"path": "/orders/**"}', "exactly one of service_name"),
        ("orders", b'{"name": "other", "path": "/o/**", "upstreams": ["h:1"]}', "other"),
        ("=zz", b"{}", "not an encoded name"),
    ],
)
def test_entries_that_are_no_route_say_why(key: str, value: bytes, complaint: str) -> None:
    with pytest.raises(UnreadableRouteError, match=complaint):
        route_from_entry(key, value)
