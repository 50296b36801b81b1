"""The path a request takes upstream: the client's path with a prefix taken
off, a prefix put on, or rewritten from a template of the route's captures.

Order: a route either has a `rewrite` template, which builds the whole path,
or `strip_prefix` then `add_prefix`; the config refuses both at once. The
query string is kept aside and put back unchanged.

Prefixes work on whole segments: ``/api/users`` strips from ``/api/users``
and ``/api/users/42``, not from ``/api/usersX``; a path that does not start
with the prefix goes upstream as it came. The result always begins with
``/``, and a trailing slash stays where the client put it.

A template holds text and placeholders: ``{name}`` for a ``{name}`` capture,
``{**}`` for what ``**`` matched (``"/v2/users/{id}"``, ``"/{**}"``).
Captures are inserted as the client sent them, still percent-encoded.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_NAME = re.compile(r"\*\*|[A-Za-z_][A-Za-z0-9_]*")


class PathRewriting(Protocol):
    """What a route says about its upstream path (a `RouteConfig` has it)."""

    @property
    def strip_prefix(self) -> str | None: ...
    @property
    def add_prefix(self) -> str | None: ...
    @property
    def rewrite(self) -> str | None: ...


class Captures(Protocol):
    """What matching captured (a `RouteMatch` has it)."""

    @property
    def params(self) -> Mapping[str, str]: ...
    @property
    def rest(self) -> str: ...


@dataclass(frozen=True, slots=True)
class RewriteTemplate:
    """A parsed template: literal `pieces` with a placeholder name between
    each two (``**`` for the rest). Build it with `parse`.

    >>> template = RewriteTemplate.parse("/v2/users/{id}/{**}")
    >>> template.placeholders
    ('id', '**')
    >>> template.fill({"id": "42"}, "orders/7")
    '/v2/users/42/orders/7'
    """

    text: str
    pieces: tuple[str, ...]
    placeholders: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> RewriteTemplate:
        """The template `text`, checked; `ValueError` names what is wrong."""
        if not isinstance(text, str) or not text.startswith("/"):
            raise ValueError(f"rewrite={text!r} is not allowed: a rewrite must begin with '/'")
        pieces: list[str] = []
        names: list[str] = []
        position = 0
        for found in _PLACEHOLDER.finditer(text):
            name = found.group(1)
            if not _NAME.fullmatch(name):
                raise ValueError(
                    f"rewrite={text!r} is not allowed: placeholder {found.group(0)!r} must "
                    "name a capture of the route's path, or be '{**}' for its rest"
                )
            pieces.append(text[position : found.start()])
            names.append(name)
            position = found.end()
        tail = text[position:]
        if any(brace in piece for piece in (*pieces, tail) for brace in "{}"):
            raise ValueError(f"rewrite={text!r} is not allowed: it has an unmatched brace")
        pieces.append(tail)
        return cls(text, tuple(pieces), tuple(names))

    def fill(self, params: Mapping[str, str], rest: str) -> str:
        """The template with each placeholder replaced."""
        out = [self.pieces[0]]
        for name, piece in zip(self.placeholders, self.pieces[1:], strict=True):
            out.append(rest if name == "**" else params[name])
            out.append(piece)
        return "".join(out)


@functools.lru_cache(maxsize=4096)
def parsed_template(text: str) -> RewriteTemplate:
    """`RewriteTemplate.parse(text)`, parsed once per distinct template: the
    gateway calls this per request with the route's template."""
    return RewriteTemplate.parse(text)


def split_query(target: str) -> tuple[str, str]:
    """A request target's path, and its query string with the ``?`` (or "").

    >>> split_query("/a/b?x=1&y=2"), split_query("/a")
    (('/a/b', '?x=1&y=2'), ('/a', ''))
    """
    query_at = target.find("?")
    if query_at < 0:
        return target, ""
    return target[:query_at], target[query_at:]


def stripped_prefix(path: str, prefix: str) -> str:
    """`path` without `prefix` when the prefix ends at a segment boundary,
    else `path`. Gives "" when the path is exactly the prefix.

    >>> stripped_prefix("/api/users/42", "/api/users"), stripped_prefix("/api/users", "/api/users")
    ('/42', '')
    >>> stripped_prefix("/api/usersX", "/api/users"), stripped_prefix("/api/users/", "/api/users/")
    ('/api/usersX', '/')
    """
    prefix = prefix.rstrip("/")
    if not prefix:
        return path
    if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
        return path[len(prefix) :]
    return path


def added_prefix(path: str, prefix: str) -> str:
    """`prefix` in front of `path`, with one slash between them.

    >>> added_prefix("/42", "/v1/"), added_prefix("", "/v1"), added_prefix("/", "/v1")
    ('/v1/42', '/v1', '/v1/')
    """
    return prefix.rstrip("/") + path


def upstream_path(
    route: PathRewriting, match: Captures, path: str, query: str | None = None
) -> str:
    """The target to send upstream: the client's `path` rewritten, then its
    query string as it came.

    `path` may carry its query (``/a?x=1``); a caller that has split the
    query off already (as the HTTP server does) passes it as `query`, without
    the ``?``, and it replaces any query in `path`.

    >>> from types import SimpleNamespace as NS
    >>> route = NS(strip_prefix="/api/users", add_prefix="/v1", rewrite=None)
    >>> upstream_path(route, NS(params={}, rest="42"), "/api/users/42?full=1")
    '/v1/42?full=1'
    >>> route = NS(strip_prefix=None, add_prefix=None, rewrite="/v2/users/{id}")
    >>> upstream_path(route, NS(params={"id": "42"}, rest=""), "/api/u/42", "full=1")
    '/v2/users/42?full=1'
    """
    path, own_query = split_query(path)
    if query is not None:
        own_query = "?" + query if query else ""
    if route.rewrite is not None:
        path = parsed_template(route.rewrite).fill(match.params, match.rest)
    else:
        if route.strip_prefix:
            path = stripped_prefix(path, route.strip_prefix)
        if route.add_prefix:
            path = added_prefix(path, route.add_prefix)
    if not path.startswith("/"):
        path = "/" + path
    return path + own_query
