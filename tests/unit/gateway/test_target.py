"""`normalize_path` and `split_target`: what routes are matched on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshgate.gateway.http.target import BadPathError, normalize_path, split_target


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/", "/"),
        ("/api/users", "/api/users"),
        ("/api/users/", "/api/users/"),
        ("/api/users/../admin", "/api/admin"),
        ("/api/users/%2e%2e/admin", "/api/admin"),
        ("/api/users/%2E%2E/admin", "/api/admin"),
        ("/api/users/.%2e/admin", "/api/admin"),
        ("/api/./users", "/api/users"),
        ("/api/%2e/users", "/api/users"),
        ("//api///users", "/api/users"),
        ("/..", "/"),
        ("/../../etc/passwd", "/etc/passwd"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/a/b/../../..", "/"),
        ("/%41%7a%30%2d%5f%7e", "/Az0-_~"),
        ("/a%20b", "/a%20b"),
        ("/a%3fb", "/a%3Fb"),
        ("/a%25b", "/a%25b"),
        ("/a%252e%252e/b", "/a%252e%252e/b"),
        ("/.well-known/acme", "/.well-known/acme"),
        ("/a/...", "/a/..."),
        ("/caf%C3%A9", "/caf%C3%A9"),
    ],
)
def test_paths_normalise(raw: str, expected: str) -> None:
    assert normalize_path(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "/a%2fb",
        "/a%2Fb",
        "/a%5cb",
        "/a%5Cb",
        "/a\\b",
        "/a%00",
        "/a%0d%0a",
        "/a%7f",
        "/a\x00b",
        "/a\x1fb",
        "/a\x7fb",
        "/a%zz",
        "/a%2",
        "/a%",
        "relative",
        "",
        "*",
    ],
)
def test_unsafe_paths_are_refused(raw: str) -> None:
    with pytest.raises(BadPathError):
        normalize_path(raw)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (b"/a?b=1", ("/a", "b=1")),
        (b"/a", ("/a", "")),
        (b"/a?", ("/a", "")),
        (b"/a?b?c", ("/a", "b?c")),
        (b"/a#frag", ("/a", "")),
        (b"http://h/a/b?q", ("/a/b", "q")),
        (b"HTTPS://h:1", ("/", "")),
        (b"http://h?q=1", ("/", "q=1")),
        (b"*", ("*", "")),
    ],
)
def test_targets_split_into_path_and_query(target: bytes, expected: tuple[str, str]) -> None:
    assert split_target(target) == expected


_path_chars = st.sampled_from([*"abcXYZ019-._~/%.2eEfF5c", "%2e", "%2E", "..", "//", "%41"])
paths = st.lists(_path_chars, max_size=30).map(lambda parts: "/" + "".join(parts))


@given(paths)
def test_normalised_paths_are_canonical(raw: str) -> None:
    try:
        result = normalize_path(raw)
    except BadPathError:
        return
    assert result.startswith("/")
    assert "//" not in result
    segments = result.split("/")
    assert "." not in segments
    assert ".." not in segments
    assert "%2e" not in result.lower().replace("%252e", "")
    assert normalize_path(result) == result


@given(st.lists(st.sampled_from(["a", "b", ".", "..", "", "%2e", "%2e%2e"]), max_size=12))
def test_dot_segments_never_climb_above_the_root(segments: list[str]) -> None:
    result = normalize_path("/guard/" + "/".join(segments))
    # whatever the dots, the result is a plain path; ".." can only remove segments
    assert result.startswith("/")
    assert ".." not in result.split("/")
