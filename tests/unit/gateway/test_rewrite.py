"""The upstream path: prefixes stripped and added on segment boundaries,
templates filled from captures, the query string kept as it came."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshgate.gateway.matcher import RouteMatch, RouteTable
from meshgate.gateway.rewrite import (
    RewriteTemplate,
    added_prefix,
    split_query,
    stripped_prefix,
    upstream_path,
)


@dataclass(frozen=True)
class Route:
    strip_prefix: str | None = None
    add_prefix: str | None = None
    rewrite: str | None = None


@dataclass(frozen=True)
class Captured:
    params: dict[str, str] = field(default_factory=dict)
    rest: str = ""


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/api/users/42", "/42"),
        ("/api/users/42/orders?page=2", "/42/orders?page=2"),
        ("/api/users", "/"),
        ("/api/users/", "/"),
        ("/api/users?x=1", "/?x=1"),
        ("/api/usersX/1", "/api/usersX/1"),
        ("/other", "/other"),
    ],
)
def test_strip_prefix_removes_whole_segments_only(target: str, expected: str) -> None:
    assert upstream_path(Route(strip_prefix="/api/users"), Captured(), target) == expected


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/api/users/42", "/v1/42"),
        ("/api/users", "/v1"),
        ("/api/users/", "/v1/"),
        ("/api/users/42?full=1", "/v1/42?full=1"),
    ],
)
def test_add_prefix_goes_on_after_strip_prefix(target: str, expected: str) -> None:
    route = Route(strip_prefix="/api/users", add_prefix="/v1/")
    assert upstream_path(route, Captured(), target) == expected


def test_add_prefix_alone_puts_the_prefix_before_the_whole_path() -> None:
    assert upstream_path(Route(add_prefix="/internal"), Captured(), "/a/b?c") == "/internal/a/b?c"


def test_a_route_without_path_options_sends_the_target_unchanged() -> None:
    assert upstream_path(Route(), Captured(), "/a/%20b/?x=1&y") == "/a/%20b/?x=1&y"


def test_a_rewrite_template_is_filled_from_the_captures_and_keeps_the_query() -> None:
    route = Route(rewrite="/v2/users/{id}/{**}")
    captured = Captured({"id": "42"}, "orders/7")
    assert upstream_path(route, captured, "/api/u/42/orders/7?x=1") == "/v2/users/42/orders/7?x=1"


def test_a_rest_only_template_sends_the_rest_from_the_root() -> None:
    route = Route(rewrite="/{**}")
    assert upstream_path(route, Captured(rest="a/b"), "/static/a/b") == "/a/b"
    assert upstream_path(route, Captured(rest=""), "/static") == "/"


def test_rewrite_works_with_a_real_match() -> None:
    table = RouteTable[Route]().with_route("/api/u/{id}/**", Route(rewrite="/users/{id}/{**}"))
    found = table.match("GET", "/api/u/7/orders/1/?sort=asc")
    assert isinstance(found, RouteMatch)
    assert upstream_path(found.route, found, "/api/u/7/orders/1/?sort=asc") == (
        "/users/7/orders/1/?sort=asc"
    )


def test_a_template_without_a_leading_slash_is_refused() -> None:
    with pytest.raises(ValueError, match="must begin with '/'"):
        RewriteTemplate.parse("users/{id}")


@pytest.mark.parametrize("template", ["/users/{1d}", "/users/{}", "/users/{a-b}"])
def test_a_placeholder_that_names_no_possible_capture_is_refused(template: str) -> None:
    with pytest.raises(ValueError, match="placeholder"):
        RewriteTemplate.parse(template)


@pytest.mark.parametrize("template", ["/users/{id", "/users/id}", "/a/{{id}}"])
def test_an_unmatched_brace_is_refused(template: str) -> None:
    with pytest.raises(ValueError, match=r"brace|placeholder"):
        RewriteTemplate.parse(template)


def test_split_query_keeps_the_question_mark_with_the_query() -> None:
    assert split_query("/a?b=1?c") == ("/a", "?b=1?c")
    assert split_query("/a") == ("/a", "")


def test_a_query_split_off_by_the_caller_is_put_back_after_the_rewritten_path() -> None:
    route = Route(strip_prefix="/api")
    assert upstream_path(route, Captured(), "/api/users", "page=2") == "/users?page=2"
    assert upstream_path(route, Captured(), "/api/users", "") == "/users"
    assert upstream_path(route, Captured(), "/api/users?old=1", "new=1") == "/users?new=1"


def test_prefix_helpers_treat_trailing_slashes_on_the_prefix_alike() -> None:
    assert stripped_prefix("/a/b", "/a/") == "/b"
    assert stripped_prefix("/a/b", "/") == "/a/b"
    assert added_prefix("/b", "/a/") == "/a/b"


segments = st.lists(st.sampled_from(["a", "b", "%20", "x.y"]), max_size=4)


@given(
    prefix=segments,
    tail=segments,
    trailing_slash=st.booleans(),
    query=st.sampled_from(["", "?q=1", "?"]),
    add=st.sampled_from([None, "/v1", "/v1/"]),
)
def test_the_upstream_path_always_begins_with_a_slash_and_keeps_the_query(
    prefix: list[str], tail: list[str], trailing_slash: bool, query: str, add: str | None
) -> None:
    path = "/" + "/".join(prefix + tail) + ("/" if trailing_slash and prefix + tail else "")
    route = Route(strip_prefix="/" + "/".join(prefix), add_prefix=add)
    result = upstream_path(route, Captured(), path + query)
    assert result.startswith("/")
    assert "//" not in result
    assert result.endswith(query)
    expected_tail = "/".join(tail)
    assert result.removesuffix(query).rstrip("/").endswith(expected_tail)
