"""Route path patterns: how they are written, what they match, and how
specific each one is.

A pattern is a path of segments separated by ``/``; each segment is one of

- a literal such as ``users``: exactly that text;
- ``{name}``: any one non-empty segment, captured as ``params[name]``;
- ``*``: any one non-empty segment, not captured;
- ``**``: the rest of the path, zero or more segments, captured as ``rest``;
  only as the last segment.

A capture or a wildcard is always a whole segment (``file.{ext}`` is refused,
not silently read as a literal). A trailing slash is ignored on both sides,
so ``/api/users`` and ``/api/users/`` are one pattern and match one set of
paths, and ``/`` is the pattern with no segments.

Paths are matched as the client sent them, still percent-encoded: a capture
is the raw segment text, so it can be put back into an upstream path without
being re-encoded. Empty segments (``//``) are kept: only ``**`` matches one.

Specificity. Each segment has a rank, lower is more specific: literal 0,
``{param}`` 1, ``*`` 2, ``**`` 3. A pattern's `rank` is the tuple of its
segments' ranks; of two patterns that match the same path, the one with the
smaller tuple wins. Comparing tuples segment by segment makes a literal beat
a capture, a capture beat ``*``, and ``*`` beat ``**`` at the first segment
where they differ; when one tuple is a prefix of the other, the shorter wins,
which is the right answer because the only way both can match one path is
that the longer one ends in a ``**`` that matched nothing: ``/a/b`` beats
``/a/b/**`` for ``/a/b``. So ``**`` ranks below everything, and of two
patterns ending in ``**`` the longer one (more segments before it) wins:
``/a/b/**`` beats ``/a/**`` for ``/a/b/c``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LITERAL = 0
PARAM = 1
STAR = 2
REST = 3
"""Segment kinds; each kind's value is its rank (lower is more specific)."""

_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What RFC 3986 allows in a path segment (pchar), minus the characters our
# syntax gives meaning to; percent-escapes count as their three characters.
_LITERAL = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()+,;=:@]|%[0-9A-Fa-f]{2})+")


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment of a pattern: its `kind` (LITERAL, PARAM, STAR or REST)
    and `text` (the literal, or the capture's name; empty for wildcards)."""

    kind: int
    text: str = ""

    def __str__(self) -> str:
        if self.kind == LITERAL:
            return self.text
        if self.kind == PARAM:
            return "{" + self.text + "}"
        return "*" if self.kind == STAR else "**"


@dataclass(frozen=True, slots=True)
class PatternMatch:
    """What a pattern captured from a path: `params` by name, and `rest`, the
    part of the path that ``**`` matched (without its leading slash, keeping a
    trailing one; empty when it matched nothing or there is no ``**``)."""

    params: dict[str, str]
    rest: str


def request_segments(path: str) -> tuple[list[str], int] | None:
    """The segments of a request path and how many of them count.

    The query string is ignored. The list keeps a trailing empty segment
    (from a trailing slash) so that ``rest`` can keep the slash, but the count
    leaves it out. A path that does not begin with ``/`` (``*`` or an
    absolute URI) has no segments: None.

    >>> request_segments("/api/users/42?full=1")
    (['api', 'users', '42'], 3)
    >>> request_segments("/api/users/")
    (['api', 'users', ''], 2)
    >>> request_segments("/")
    ([''], 0)
    """
    query_at = path.find("?")
    if query_at >= 0:
        path = path[:query_at]
    if not path.startswith("/"):
        return None
    parts = path[1:].split("/")
    return parts, len(parts) - (parts[-1] == "")


def _parse_segment(text: str, pattern: str) -> Segment:
    if text == "**":
        return Segment(REST)
    if text == "*":
        return Segment(STAR)
    if text.startswith("{") and text.endswith("}"):
        name = text[1:-1]
        if name == "**":
            raise ValueError(
                f"path={pattern!r} is not allowed: write the rest of the path as '**', not '{{**}}'"
            )
        if not _PARAM_NAME.fullmatch(name):
            raise ValueError(
                f"path={pattern!r} is not allowed: capture {text!r} needs a name made of "
                "letters, digits and '_', not starting with a digit"
            )
        return Segment(PARAM, name)
    if any(char in text for char in "{}*"):
        raise ValueError(
            f"path={pattern!r} is not allowed: segment {text!r} mixes text with a capture or "
            "wildcard; '{name}', '*' and '**' must each be a whole segment"
        )
    if not _LITERAL.fullmatch(text):
        raise ValueError(
            f"path={pattern!r} is not allowed: segment {text!r} has characters a URL path "
            "cannot hold unencoded; percent-encode them"
        )
    return Segment(LITERAL, text)


@dataclass(frozen=True, slots=True)
class PathPattern:
    """A parsed route pattern. Build it with `parse`.

    >>> pattern = PathPattern.parse("/api/users/{id}/**")
    >>> pattern.match("/api/users/42/orders/7")
    PatternMatch(params={'id': '42'}, rest='orders/7')
    >>> pattern.rank, pattern.param_names
    ((0, 0, 1, 3), ('id',))
    >>> PathPattern.parse("/api/users").match("/api/users/42") is None
    True
    """

    text: str
    """The pattern in its normal form: leading slash, no trailing slash."""
    segments: tuple[Segment, ...]

    @classmethod
    def parse(cls, text: str) -> PathPattern:
        """The pattern `text`, checked; `ValueError` names what is wrong."""
        if not isinstance(text, str) or not text.startswith("/"):
            raise ValueError(f"path={text!r} is not allowed: a route path must begin with '/'")
        if "?" in text or "#" in text:
            raise ValueError(
                f"path={text!r} is not allowed: a route path matches the path only, "
                "without a query string or fragment"
            )
        body = text[1:].removesuffix("/")
        raw_segments = body.split("/") if body else []
        if "" in raw_segments:
            raise ValueError(f"path={text!r} is not allowed: it has an empty segment ('//')")
        segments = tuple(_parse_segment(raw, text) for raw in raw_segments)
        for segment in segments[:-1]:
            if segment.kind == REST:
                raise ValueError(
                    f"path={text!r} is not allowed: '**' matches the rest of the path, "
                    "so it can only be the last segment"
                )
        names = [s.text for s in segments if s.kind == PARAM]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"path={text!r} is not allowed: capture {{{name}}} appears twice")
        return cls("/" + "/".join(str(s) for s in segments), segments)

    @property
    def rank(self) -> tuple[int, ...]:
        """How specific the pattern is; see the module docstring."""
        return tuple(segment.kind for segment in self.segments)

    @property
    def shape(self) -> tuple[tuple[int, str], ...]:
        """What the pattern matches, leaving out capture names: two patterns
        with one shape match exactly the same paths (``/u/{id}`` and ``/u/{uid}``)."""
        return tuple(
            (segment.kind, segment.text if segment.kind == LITERAL else "")
            for segment in self.segments
        )

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(s.text for s in self.segments if s.kind == PARAM)

    @property
    def has_rest(self) -> bool:
        return bool(self.segments) and self.segments[-1].kind == REST

    def match(self, path: str) -> PatternMatch | None:
        """What this pattern captures from `path`, or None if it does not match.

        One pattern at a time: `RouteTable` matches many at once.
        """
        split = request_segments(path)
        if split is None:
            return None
        parts, count = split
        params: dict[str, str] = {}
        for index, segment in enumerate(self.segments):
            if segment.kind == REST:
                return PatternMatch(params, "/".join(parts[index:]))
            if index >= count:
                return None
            value = parts[index]
            if segment.kind == LITERAL:
                if value != segment.text:
                    return None
            elif not value:
                return None
            elif segment.kind == PARAM:
                params[segment.text] = value
        if count != len(self.segments):
            return None
        return PatternMatch(params, "")

    def __str__(self) -> str:
        return self.text
