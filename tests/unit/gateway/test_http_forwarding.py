"""Pure pieces of the proxy: hop-by-hop filtering, forwarding headers,
message heads, request ids, the header view."""

from __future__ import annotations

import pytest

from meshgate.gateway.http.forwarded import appended_forwarded_for, forwarded_element
from meshgate.gateway.http.framing import HeaderInjectionError, encode_head, status_line
from meshgate.gateway.http.headers import Headers
from meshgate.gateway.http.hop_by_hop import (
    connection_named_headers,
    end_to_end_headers,
    removal_set,
)
from meshgate.gateway.http.request_id import accepted_request_id, new_request_id


def test_end_to_end_headers_drop_hop_by_hop_and_connection_named() -> None:
    raw = [
        (b"Host", b"h"),
        (b"Connection", b"X-A, keep-alive"),
        (b"connection", b"x-b"),
        (b"X-A", b"1"),
        (b"x-b", b"2"),
        (b"TE", b"trailers"),
        (b"Upgrade", b"h2c"),
        (b"Proxy-Authorization", b"x"),
        (b"X-C", b"3"),
    ]
    lower = [name.lower() for name, _ in raw]
    assert end_to_end_headers(raw, lower, removal_set()) == [(b"Host", b"h"), (b"X-C", b"3")]
    assert end_to_end_headers(raw, lower, removal_set(b"x-c")) == [(b"Host", b"h")]


def test_connection_tokens_are_trimmed_and_lowercased() -> None:
    assert connection_named_headers([b" Foo ,, BAR"]) == frozenset((b"foo", b"bar"))


def test_forwarded_for_appends_the_client() -> None:
    assert appended_forwarded_for([b"1.1.1.1", b"2.2.2.2"], "3.3.3.3") == (
        b"1.1.1.1, 2.2.2.2, 3.3.3.3"
    )
    assert appended_forwarded_for([], "") == b"unknown"


def test_forwarded_element_quotes_what_is_not_a_token() -> None:
    assert forwarded_element("::1", "http", None) == b'for="[::1]";proto=http'
    assert forwarded_element("10.0.0.1", "https", b'we"ird') == (
        b'for=10.0.0.1;proto=https;host="we\\"ird"'
    )


def test_head_with_crlf_in_a_value_is_refused() -> None:
    with pytest.raises(HeaderInjectionError):
        encode_head(status_line(200), [(b"X-A", b"1\r\nSet-Cookie: evil=1")], b"")
    with pytest.raises(HeaderInjectionError):
        encode_head(status_line(200), [(b"X-A\nB", b"1")], b"")


def test_status_lines() -> None:
    assert status_line(200) == b"HTTP/1.1 200 OK\r\n"
    assert status_line(799) == b"HTTP/1.1 799 \r\n"
    with pytest.raises(ValueError, match="three-digit"):
        status_line(42)


def test_request_ids() -> None:
    assert accepted_request_id(b"abc-123") == "abc-123"
    assert accepted_request_id(b"") is None
    assert accepted_request_id(b"x" * 129) is None
    assert accepted_request_id(b"caf\xc3\xa9") is None
    assert accepted_request_id(b"tab\there") is None
    first, second = new_request_id(), new_request_id()
    assert first != second
    assert len(first) == 32
    int(first, 16)


def test_headers_view_is_case_insensitive_and_multi_valued() -> None:
    headers = Headers([(b"Accept", b"a"), (b"X-Y", b"1"), (b"accept", b"b")])
    assert headers.get("ACCEPT") == "a"
    assert headers.get_all("accept") == ["a", "b"]
    assert headers.get("missing") is None
    assert headers.get("missing", "d") == "d"
    assert "x-y" in headers
    assert b"X-Y" in headers
    assert len(headers) == 3
    assert list(headers) == [("Accept", "a"), ("X-Y", "1"), ("accept", "b")]
    assert headers.raw[0] == (b"Accept", b"a")
