"""Request targets: split into path and query, and normalise the path that
routes are matched on. Pure functions, no I/O.

Normalising closes the classic gateway bypasses: a route that guards
`/api/admin` must also see `/api/users/../admin`, `/api/users/%2e%2e/admin`
and `//api//admin`. Encoded slashes (`%2f`, `%5c`) are refused outright
rather than decoded, because the gateway and the upstream would then disagree
on where segments end.
"""

from __future__ import annotations

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
# %2F is "/" and %5C is "\\": decoding them would create segment boundaries
# that the upstream may or may not honour
_ENCODED_SEPARATORS = frozenset((0x2F, 0x5C))


class BadPathError(ValueError):
    """The request path cannot be routed safely; the server answers 400."""


def split_target(raw_target: bytes) -> tuple[str, str]:
    """Split a request target into (path, query), both still percent-encoded.

    Accepts origin-form (`/a?b`) and absolute-form (`http://host/a?b`, which
    RFC 9112 requires servers to accept); the fragment, if a client sent one,
    is dropped. Any other form yields a path that `normalize_path` refuses.

    >>> split_target(b"/users/1?full=true")
    ('/users/1', 'full=true')
    >>> split_target(b"http://example.com:8080/a/b?x=1")
    ('/a/b', 'x=1')
    >>> split_target(b"http://example.com")
    ('/', '')
    """
    target = raw_target.decode("latin-1")
    hash_at = target.find("#")
    if hash_at >= 0:
        target = target[:hash_at]
    if target[:1] != "/":
        scheme_end = target.find("://")
        if scheme_end > 0 and target[:scheme_end].lower() in ("http", "https"):
            path_at = target.find("/", scheme_end + 3)
            query_at = target.find("?", scheme_end + 3)
            if path_at < 0 or (0 <= query_at < path_at):
                target = "/" + (target[query_at:] if query_at >= 0 else "")
            else:
                target = target[path_at:]
    query_at = target.find("?")
    if query_at < 0:
        return target, ""
    return target[:query_at], target[query_at + 1 :]


def normalize_path(raw_path: str) -> str:
    """The canonical form of a request path, for route matching.

    Percent-decodes unreserved characters (so `%2e` is a dot and `%41` is
    `A`), upper-cases the hex of the escapes it keeps, collapses repeated
    slashes and resolves `.` and `..` segments, never climbing above the
    root. Raises `BadPathError` for a path that does not start with `/`, an
    encoded slash or backslash, a raw backslash, a control character (raw or
    encoded, NUL included) or a broken escape.

    >>> normalize_path("/api/users/../admin")
    '/api/admin'
    >>> normalize_path("/api/users/%2e%2e/admin")
    '/api/admin'
    >>> normalize_path("//a/./b//c/")
    '/a/b/c/'
    >>> normalize_path("/../../etc/passwd")
    '/etc/passwd'
    >>> normalize_path("/files/a%2fb")
    Traceback (most recent call last):
    ...
    meshgate.gateway.http.target.BadPathError: encoded '/' or '\\' in path
    """
    if raw_path[:1] != "/":
        raise BadPathError("path must start with '/'")
    # fast path: most paths need no work, and these substring checks run in C
    if (
        "%" not in raw_path
        and "/." not in raw_path
        and "//" not in raw_path
        and "\\" not in raw_path
        and raw_path.isascii()
        and raw_path.isprintable()
    ):
        return raw_path
    decoded = _decode_unreserved(raw_path)
    return _remove_dot_segments(decoded)


def _decode_unreserved(path: str) -> str:
    pieces = path.split("%")
    _check_raw(pieces[0])
    out = [pieces[0]]
    for piece in pieces[1:]:
        escape = piece[:2]
        if len(escape) != 2 or escape[0] not in _HEX_DIGITS or escape[1] not in _HEX_DIGITS:
            raise BadPathError(f"broken percent-escape %{escape}")
        value = int(escape, 16)
        if value in _ENCODED_SEPARATORS:
            raise BadPathError("encoded '/' or '\\' in path")
        if value < 0x20 or value == 0x7F:
            raise BadPathError("encoded control character in path")
        char = chr(value)
        out.append(char if char in _UNRESERVED else "%" + escape.upper())
        rest = piece[2:]
        _check_raw(rest)
        out.append(rest)
    return "".join(out)


def _check_raw(text: str) -> None:
    if "\\" in text:
        raise BadPathError("backslash in path")
    if not text.isprintable():
        for char in text:
            code = ord(char)
            if code < 0x20 or code == 0x7F:
                raise BadPathError("control character in path")


def _remove_dot_segments(path: str) -> str:
    segments = path.split("/")
    kept: list[str] = []
    last = len(segments) - 1
    trailing_slash = False
    # segments[0] is the empty string before the leading "/"
    for index in range(1, last + 1):
        segment = segments[index]
        if segment == "" or segment == ".":
            trailing_slash = index == last
        elif segment == "..":
            if kept:
                kept.pop()
            trailing_slash = index == last
        else:
            kept.append(segment)
            trailing_slash = False
    if not kept:
        return "/"
    return "/" + "/".join(kept) + ("/" if trailing_slash else "")
