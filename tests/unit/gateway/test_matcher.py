"""Route patterns and the route table: what matches, which route wins, and
that the trie answers exactly as a linear scan with the same rule would."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshgate.gateway.host_pattern import HostPattern, request_host
from meshgate.gateway.matcher import (
    DuplicateRouteError,
    MethodNotAllowed,
    RouteEntry,
    RouteMatch,
    RouteSpec,
    RouteTable,
)
from meshgate.gateway.path_pattern import PathPattern, PatternMatch, request_segments


def table_of(*specs: tuple[str, str] | tuple[str, str, list[str]]) -> RouteTable[str]:
    """A table whose routes carry their names as values."""
    table: RouteTable[str] = RouteTable()
    for spec in specs:
        path, name = spec[0], spec[1]
        methods = spec[2] if len(spec) == 3 else []
        table = table.with_route(path, name, name=name, methods=methods)
    return table


def winner(table: RouteTable[str], path: str, method: str = "GET", host: str | None = None) -> str:
    found = table.match(method, path, host)
    assert isinstance(found, RouteMatch), found
    return found.route


# --- patterns ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("api/users", "must begin with '/'"),
        ("/api/**/users", "can only be the last segment"),
        ("/files/{name}.json", "must each be a whole segment"),
        ("/files/a*", "must each be a whole segment"),
        ("/users/{1st}", "needs a name"),
        ("/users/{id}/{id}", "appears twice"),
        ("/api//users", "empty segment"),
        ("/api/users?x=1", "without a query string"),
        ("/api/{**}", r"write the rest of the path as '\*\*'"),
        ("/api/us ers", "percent-encode"),
    ],
)
def test_a_malformed_pattern_is_refused_saying_why(pattern: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        PathPattern.parse(pattern)


def test_a_trailing_slash_is_ignored_in_patterns_and_paths() -> None:
    assert PathPattern.parse("/api/users/").text == "/api/users"
    pattern = PathPattern.parse("/api/users")
    assert pattern.match("/api/users/") == PatternMatch({}, "")
    assert pattern.match("/api/users") == PatternMatch({}, "")


def test_the_root_pattern_matches_only_the_root() -> None:
    root = PathPattern.parse("/")
    assert root.segments == ()
    assert root.match("/") is not None
    assert root.match("/a") is None


def test_double_star_matches_zero_or_more_segments_and_captures_them_as_rest() -> None:
    pattern = PathPattern.parse("/api/users/**")
    assert pattern.match("/api/users") == PatternMatch({}, "")
    assert pattern.match("/api/users/42") == PatternMatch({}, "42")
    assert pattern.match("/api/users/42/orders/") == PatternMatch({}, "42/orders/")
    assert pattern.match("/api/usersX") is None


def test_a_capture_or_star_takes_exactly_one_non_empty_segment() -> None:
    assert PathPattern.parse("/u/{id}").match("/u/42") == PatternMatch({"id": "42"}, "")
    assert PathPattern.parse("/u/{id}").match("/u/42/x") is None
    assert PathPattern.parse("/u/{id}").match("/u//") is None
    assert PathPattern.parse("/u/*/x").match("/u//x") is None
    assert PathPattern.parse("/u/*/x").match("/u/7/x") == PatternMatch({}, "")


def test_request_segments_ignore_the_query_and_refuse_non_paths() -> None:
    assert request_segments("/a/b?c=/d") == (["a", "b"], 2)
    assert request_segments("*") is None
    assert request_segments("http://example.com/a") is None


# --- which route wins -------------------------------------------------------


def test_a_literal_beats_a_capture_beats_a_star_beats_a_double_star() -> None:
    routes = [("/a/b", "literal"), ("/a/{x}", "param"), ("/a/*", "star"), ("/a/**", "rest")]
    for order in itertools.permutations(routes):
        table = table_of(*order)
        assert winner(table, "/a/b") == "literal"
        assert winner(table, "/a/c") == "param"
        assert winner(table, "/a/c/d") == "rest"


def test_specificity_is_decided_at_the_first_segment_that_differs() -> None:
    table = table_of(("/{x}/b/c", "late literals"), ("/a/{y}/{z}", "early literal"))
    assert winner(table, "/a/b/c") == "early literal"


def test_an_exact_end_beats_a_double_star_that_matches_nothing() -> None:
    table = table_of(("/a/b/**", "rest"), ("/a/b", "exact"))
    assert winner(table, "/a/b") == "exact"
    assert winner(table, "/a/b/") == "exact"
    assert winner(table, "/a/b/c") == "rest"


def test_of_two_double_star_patterns_the_longer_wins() -> None:
    table = table_of(("/**", "everything"), ("/a/**", "a"), ("/a/b/**", "a/b"))
    assert winner(table, "/a/b/c") == "a/b"
    assert winner(table, "/a/c") == "a"
    assert winner(table, "/z") == "everything"
    assert winner(table, "/") == "everything"


def test_a_host_specific_route_beats_a_host_less_one_of_the_same_path() -> None:
    table: RouteTable[str] = (
        RouteTable[str]()
        .with_route("/api/**", "any host", name="any")
        .with_route("/api/**", "wildcard", name="wild", host="*.example.com")
        .with_route("/api/**", "longer wildcard", name="wild2", host="*.eu.example.com")
        .with_route("/api/**", "exact", name="exact", host="api.example.com")
    )
    assert winner(table, "/api/x", host="api.example.com") == "exact"
    assert winner(table, "/api/x", host="API.Example.com:8443") == "exact"
    assert winner(table, "/api/x", host="shop.eu.example.com") == "longer wildcard"
    assert winner(table, "/api/x", host="shop.example.com") == "wildcard"
    assert winner(table, "/api/x", host="example.com") == "any host"
    assert winner(table, "/api/x", host=None) == "any host"


def test_path_specificity_comes_before_host_specificity() -> None:
    table: RouteTable[str] = (
        RouteTable[str]()
        .with_route("/**", "admin host", name="admin", host="admin.example.com")
        .with_route("/api/users/**", "users", name="users")
    )
    assert winner(table, "/api/users/1", host="admin.example.com") == "users"
    assert winner(table, "/other", host="admin.example.com") == "admin host"


def test_a_route_whose_host_does_not_match_is_not_a_candidate() -> None:
    table = RouteTable[str]().with_route("/a", "only api", host="api.example.com")
    assert table.match("GET", "/a", "www.example.com") is None
    assert table.match("GET", "/a", None) is None


def test_a_request_refused_by_a_specific_route_falls_through_to_a_general_one() -> None:
    table = table_of(("/api/users/{id}", "one", ["GET"]), ("/api/**", "all"))
    assert winner(table, "/api/users/1", "GET") == "one"
    assert winner(table, "/api/users/1", "DELETE") == "all"


def test_method_not_allowed_lists_every_method_the_matching_routes_take() -> None:
    table = table_of(
        ("/api/users/{id}", "one", ["GET", "PUT"]),
        ("/api/**", "all", ["POST"]),
        ("/other", "other", ["DELETE"]),
    )
    found = table.match("DELETE", "/api/users/1")
    assert found == MethodNotAllowed(("GET", "POST", "PUT"))
    assert isinstance(found, MethodNotAllowed)
    assert found.allow_header == "GET, POST, PUT"


def test_methods_are_exactly_those_listed_and_compare_case_sensitively() -> None:
    table = table_of(("/a", "a", ["get"]))
    assert winner(table, "/a", "GET") == "a"
    assert table.match("HEAD", "/a") == MethodNotAllowed(("GET",))
    assert table.match("get", "/a") == MethodNotAllowed(("GET",))


def test_nothing_matching_the_path_is_none() -> None:
    table = table_of(("/api/**", "api"))
    assert table.match("GET", "/web") is None
    assert table.match("GET", "*") is None
    assert RouteTable[str]().match("GET", "/") is None


def test_ties_go_to_the_route_added_first() -> None:
    table: RouteTable[str] = (
        RouteTable[str]()
        .with_route("/a/**", "first", name="first", methods=["GET"], host="*.x.com")
        .with_route("/a/**", "second", name="second", methods=["GET"], host="*.y.com")
    )
    assert winner(table, "/a/b", host="a.x.com") == "first"
    assert winner(table, "/a/b", host="a.y.com") == "second"


def test_a_match_carries_the_captures_as_sent_still_percent_encoded() -> None:
    table = RouteTable[str]().with_route("/files/{dir}/**", "files")
    found = table.match("GET", "/files/my%20docs/a/b%2Fc/?download=1")
    assert isinstance(found, RouteMatch)
    assert found.params == {"dir": "my%20docs"}
    assert found.rest == "a/b%2Fc/"
    assert found.name == "/files/{dir}/**"
    assert found.pattern == PathPattern.parse("/files/{dir}/**")


def test_an_empty_segment_is_matched_only_by_a_double_star() -> None:
    table = table_of(("/a/{x}/c", "param"), ("/a/**", "rest"))
    assert winner(table, "/a//c") == "rest"


# --- building and changing tables -------------------------------------------


def test_two_routes_no_request_could_tell_apart_are_refused_naming_both() -> None:
    table = RouteTable[str]().with_route("/u/{id}", "a", name="users", methods=["GET", "POST"])
    with pytest.raises(DuplicateRouteError, match=r"'people'.*duplicates route 'users'.*POST"):
        table.with_route("/u/{uid}", "b", name="people", methods=["POST", "PUT"])


def test_routes_of_one_path_with_different_hosts_or_methods_coexist() -> None:
    table = (
        RouteTable[str]()
        .with_route("/u", "get", name="get", methods=["GET"])
        .with_route("/u", "post", name="post", methods=["POST"])
        .with_route("/u", "host", name="host", host="a.com")
    )
    assert len(table) == 3


def test_a_route_taking_every_method_clashes_with_any_route_of_the_same_path() -> None:
    table = RouteTable[str]().with_route("/u", "x", name="x", methods=["GET"])
    with pytest.raises(DuplicateRouteError, match="every method"):
        table.with_route("/u", "y", name="y")


def test_route_names_are_unique() -> None:
    table = RouteTable[str]().with_route("/a", "a", name="same")
    with pytest.raises(DuplicateRouteError, match="has that name already"):
        table.with_route("/b", "b", name="same")


def test_a_route_is_named_after_its_path_and_host_by_default() -> None:
    table = RouteTable[str]().with_route("/a/", "a").with_route("/a", "h", host="x.com")
    assert [entry.name for entry in table] == ["/a", "x.com/a"]


def test_changing_a_table_leaves_the_old_one_and_its_matches_as_they_were() -> None:
    before = table_of(("/api/**", "api"))
    in_flight = before.match("GET", "/api/users/1")
    after = before.with_route("/api/users/**", "users", name="users").without_route("api")
    assert winner(before, "/api/users/1") == "api"
    assert winner(after, "/api/users/1") == "users"
    assert after.match("GET", "/api/orders") is None
    assert isinstance(in_flight, RouteMatch)
    assert in_flight.route == "api"
    assert len(before) == 1
    assert len(after) == 1


def test_replacing_a_route_keeps_its_place_in_the_order() -> None:
    table: RouteTable[str] = (
        RouteTable[str]()
        .with_route("/a", "one", name="one", host="*.x.com")
        .with_route("/a", "two", name="two", host="*.y.com")
    )
    replaced = table.with_route("/a", "one v2", name="one", host="*.x.com", replace=True)
    assert winner(replaced, "/a", host="q.x.com") == "one v2"
    assert [entry.name for entry in replaced] == ["one", "two"]
    assert replaced.get("one") is not None
    assert replaced.get("one").order == 0  # type: ignore[union-attr]


def test_removing_an_unknown_route_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="no route named 'ghost'"):
        RouteTable[str]().without_route("ghost")


def test_removing_every_route_leaves_an_empty_table() -> None:
    table = table_of(("/a/{x}/**", "a"), ("/a/b", "b"))
    empty = table.without_route("a").without_route("b")
    assert len(empty) == 0
    assert empty.match("GET", "/a/b") is None


# --- the trie against a linear scan -----------------------------------------


def linear_match(
    entries: list[RouteEntry[str]], method: str, path: str, host: str | None
) -> RouteMatch[str] | MethodNotAllowed | None:
    """The specificity rule applied by brute force: every route, one by one."""
    normal = request_host(host) if host is not None else None
    candidates: list[tuple[RouteEntry[str], PatternMatch]] = []
    for entry in entries:
        captured = entry.pattern.match(path)
        if captured is None:
            continue
        if entry.host is not None and (normal is None or not entry.host.matches(normal)):
            continue
        candidates.append((entry, captured))
    allowing = [(e, c) for e, c in candidates if e.methods is None or method in e.methods]
    if not allowing:
        allowed = sorted({m for e, _ in candidates for m in (e.methods or ())})
        return MethodNotAllowed(tuple(allowed)) if allowed else None
    best, captured = min(allowing, key=lambda pair: pair[0].sort_key)
    return RouteMatch(best.route, best.name, best.pattern, captured.params, captured.rest)


SEGMENTS = ["a", "b", "*", "{p}"]
HOST_PATTERNS = [None, "x.com", "a.x.com", "*.x.com", "*.a.x.com"]


@st.composite
def route_specs(draw: st.DrawFn) -> RouteSpec[str]:
    raw = draw(st.lists(st.sampled_from(SEGMENTS), max_size=3))
    segments = [f"{{p{i}}}" if s == "{p}" else s for i, s in enumerate(raw)]
    if draw(st.booleans()):
        segments.append("**")
    methods = draw(st.sets(st.sampled_from(["GET", "POST"])))
    host = draw(st.sampled_from(HOST_PATTERNS))
    return RouteSpec("/" + "/".join(segments), "", None, sorted(methods), host)


request_paths = st.builds(
    lambda parts, slash, query: "/" + "/".join(parts) + ("/" if slash and parts else "") + query,
    st.lists(st.sampled_from(["a", "b", "c", ""]), max_size=4),
    st.booleans(),
    st.sampled_from(["", "?q=/a"]),
)
request_hosts = st.sampled_from(
    [None, "x.com", "a.x.com", "b.a.x.com", "X.COM:8080", "y.com", "x.com."]
)


@settings(max_examples=400, deadline=None)
@given(
    specs=st.lists(route_specs(), max_size=12),
    requests=st.lists(
        st.tuples(st.sampled_from(["GET", "POST", "PUT"]), request_paths, request_hosts),
        min_size=1,
        max_size=10,
    ),
)
def test_the_trie_answers_exactly_as_a_linear_scan_with_the_same_rule(
    specs: list[RouteSpec[str]],
    requests: list[tuple[str, str, str | None]],
) -> None:
    table: RouteTable[str] = RouteTable()
    for index, spec in enumerate(specs):
        try:
            table = table.with_route(
                spec.path, f"r{index}", name=f"r{index}", methods=spec.methods, host=spec.host
            )
        except DuplicateRouteError:
            continue
    entries = list(table)
    for method, path, host in requests:
        assert table.match(method, path, host) == linear_match(entries, method, path, host)


@settings(max_examples=100, deadline=None)
@given(
    specs=st.lists(route_specs(), max_size=12),
    removals=st.lists(st.integers(min_value=0, max_value=11), max_size=6),
    paths=st.lists(request_paths, min_size=1, max_size=8),
)
def test_a_table_built_at_once_or_changed_route_by_route_answers_the_same(
    specs: list[RouteSpec[str]], removals: list[int], paths: list[str]
) -> None:
    unique: list[RouteSpec[str]] = []
    chained: RouteTable[str] = RouteTable()
    for index, spec in enumerate(specs):
        named = RouteSpec(spec.path, f"r{index}", f"r{index}", spec.methods, spec.host)
        try:
            chained = chained.with_route(
                named.path, named.route, name=named.name, methods=named.methods, host=named.host
            )
        except DuplicateRouteError:
            continue
        unique.append(named)
    for index in removals:
        if f"r{index}" in chained:
            chained = chained.without_route(f"r{index}")
            unique = [spec for spec in unique if spec.name != f"r{index}"]
    built = RouteTable.build(unique)
    for path in paths:
        for host in (None, "a.x.com"):
            assert chained.match("GET", path, host) == built.match("GET", path, host)
            assert chained.match("GET", path, host) == linear_match(
                list(chained), "GET", path, host
            )


# --- hosts ------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern", ["api.example.com:8080", "*", "a.*.com", "exa mple.com", "*.", "-a.com"]
)
def test_a_malformed_host_pattern_is_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="host="):
        HostPattern.parse(pattern)


def test_a_wildcard_host_matches_names_at_any_depth_below_it_but_not_itself() -> None:
    pattern = HostPattern.parse("*.example.com")
    assert pattern.matches("a.example.com")
    assert pattern.matches("a.b.example.com")
    assert not pattern.matches("example.com")
    assert not pattern.matches("badexample.com")


def test_request_hosts_lose_case_port_and_trailing_dot() -> None:
    assert request_host("API.Example.COM.:443") == "api.example.com"
    assert request_host("[::1]:8080") == "[::1]"
    assert request_host("localhost") == "localhost"
