"""`RouteTable`: which route serves a request, found in a segment trie.

Rule: the most specific route wins, whatever order the routes were added in.
Of the routes whose path pattern, host pattern and methods all match the
request:

1. the most specific path pattern wins: compare segment by segment, literal >
   ``{param}`` > ``*`` > ``**``; ``**`` ranks below everything, so a pattern
   that ends where the path ends beats one whose ``**`` matched nothing, and
   of two ending in ``**`` the longer wins (see `path_pattern`);
2. then the most specific host: an exact host > a wildcard host (longer
   suffix first) > no host;
3. then the route added first.

A route is a candidate only if its methods allow the request's method, so a
request that a specific route refuses falls through to a less specific route
that takes it (as Envoy, Kong and Spring Cloud Gateway do). When the path and
host match some routes but none allows the method, the answer is
`MethodNotAllowed` with every method those routes allow (for a 405 and its
Allow header); when nothing matches the path, None (404). Methods are
exactly those listed (a route that lists GET does not take HEAD unless it
lists it too, as in Envoy and Kong), and compare as written: HTTP methods are
case-sensitive.

Cost. The trie has one level per segment and, at each node, a dict of
literal children plus at most one ``{param}`` child, one ``*`` child and the
routes that end or start a ``**`` there. A search walks it depth-first,
most specific child first, so the first route it finds is the winner; its cost
grows with the path's depth and with how many wildcard branches the path can
take, not with the number of routes.

Snapshots. A table never changes: `with_route` and `without_route` return a
new table that shares every untouched node with the old one (only the nodes
on the changed route's path are copied). The gateway swaps in the new table
with one assignment, and a request that matched against the old one keeps
its match.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Generic, NamedTuple, TypeVar

import msgspec

from meshgate.gateway.host_pattern import NO_HOST_RANK, HostPattern, request_host
from meshgate.gateway.path_pattern import LITERAL, PARAM, REST, PathPattern

T = TypeVar("T")

_METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class DuplicateRouteError(ValueError):
    """Two routes that no request could tell apart, or two routes of one name."""


class RouteMatch(msgspec.Struct, Generic[T], frozen=True):
    """The route that serves a request and what its pattern captured.

    `route` is the value stored with the route (a `RouteConfig` in the gateway),
    `params` the ``{param}`` captures, `rest` what ``**`` matched (no leading
    slash; empty if nothing or no ``**``).
    """

    route: T
    name: str
    pattern: PathPattern
    params: dict[str, str]
    rest: str


class MethodNotAllowed(msgspec.Struct, frozen=True):
    """The path matched, the method did not: `allowed` lists what would have.

    >>> MethodNotAllowed(("GET", "HEAD", "POST")).allow_header
    'GET, HEAD, POST'
    """

    allowed: tuple[str, ...]

    @property
    def allow_header(self) -> str:
        return ", ".join(self.allowed)


def normalize_methods(methods: Iterable[str], *, option: str = "methods") -> tuple[str, ...]:
    """`methods` upper-cased, checked to be HTTP method tokens, without repeats.

    >>> normalize_methods(["get", "Post", "GET"])
    ('GET', 'POST')
    """
    if isinstance(methods, str):
        raise ValueError(f"{option}={methods!r} is not allowed: expected a list of methods")
    seen: dict[str, None] = {}
    for method in methods:
        if not isinstance(method, str) or not _METHOD.fullmatch(method):
            raise ValueError(
                f"{option} has {method!r}, which is not an HTTP method: expected a name "
                "such as 'GET' or 'POST'"
            )
        seen[method.upper()] = None
    return tuple(seen)


def default_route_name(path: str, host: str | None = None) -> str:
    """The name a route gets when none is given: its path, after its host if any.

    >>> default_route_name("/api/users/**"), default_route_name("/", "api.example.com")
    ('/api/users/**', 'api.example.com/')
    """
    return path if host is None else f"{host}{path}"


class RouteSpec(NamedTuple, Generic[T]):
    """A route to add to a table: the arguments of `RouteTable.with_route`."""

    path: str
    route: T
    name: str | None = None
    methods: Iterable[str] = ()
    host: str | None = None


class RouteEntry(Generic[T]):
    """A route as the table holds it. `methods` is None when it takes every
    method; `order` counts additions, for rule 3."""

    __slots__ = (
        "_host_exact",
        "_host_suffix",
        "_param_slots",
        "_rest_index",
        "host",
        "methods",
        "name",
        "order",
        "pattern",
        "route",
    )

    def __init__(
        self,
        name: str,
        pattern: PathPattern,
        route: T,
        methods: frozenset[str] | None,
        host: HostPattern | None,
        order: int,
    ) -> None:
        self.name = name
        self.pattern = pattern
        self.route = route
        self.methods = methods
        self.host = host
        self.order = order
        # Precomputed so the hot path reads attributes instead of calling methods.
        self._host_exact = host.text if host is not None and not host.is_wildcard else None
        self._host_suffix = host.suffix if host is not None and host.is_wildcard else None
        self._param_slots = tuple(
            (index, segment.text)
            for index, segment in enumerate(pattern.segments)
            if segment.kind == PARAM
        )
        self._rest_index = len(pattern.segments) - 1 if pattern.has_rest else None

    @property
    def sort_key(self) -> tuple[tuple[int, ...], tuple[int, int], int]:
        """The specificity rule as one key (smaller wins); the trie never uses
        it, tests use it to check the trie."""
        host_rank = NO_HOST_RANK if self.host is None else self.host.rank
        return (self.pattern.rank, host_rank, self.order)

    def describe(self) -> str:
        methods = "*" if self.methods is None else ",".join(sorted(self.methods))
        host = "" if self.host is None else f" host {self.host}"
        return f"{self.name!r} ({methods} {self.pattern}{host})"

    def __repr__(self) -> str:
        return f"RouteEntry({self.describe()})"


def _group_key(entry: RouteEntry[T]) -> tuple[tuple[int, int], int]:
    return (NO_HOST_RANK if entry.host is None else entry.host.rank, entry.order)


class _Node(Generic[T]):
    """One trie level. `exact`: routes that end here; `rest`: routes whose
    ``**`` starts here. Both are sorted by host specificity, then order."""

    __slots__ = ("exact", "literals", "param", "rest", "star")

    def __init__(self) -> None:
        self.literals: dict[str, _Node[T]] = {}
        self.param: _Node[T] | None = None
        self.star: _Node[T] | None = None
        self.exact: tuple[RouteEntry[T], ...] = ()
        self.rest: tuple[RouteEntry[T], ...] = ()

    def copy(self) -> _Node[T]:
        node: _Node[T] = _Node()
        node.literals = dict(self.literals)
        node.param, node.star, node.exact, node.rest = self.param, self.star, self.exact, self.rest
        return node

    def is_empty(self) -> bool:
        return not (self.literals or self.param or self.star or self.exact or self.rest)


def _changed(
    node: _Node[T] | None,
    entry: RouteEntry[T],
    depth: int,
    add: bool,
    in_place: bool,
) -> _Node[T] | None:
    """`node` with `entry` added (or removed) at `depth`. Copies each node on
    the way unless `in_place` (a table being built, whose nodes nobody shares
    yet). Removing prunes nodes left empty."""
    if node is None:
        node = _Node()
    elif not in_place:
        node = node.copy()
    segments = entry.pattern.segments
    segment = segments[depth] if depth < len(segments) else None
    if segment is None or segment.kind == REST:
        group = node.exact if segment is None else node.rest
        if add:
            group = tuple(sorted((*group, entry), key=_group_key))
        else:
            group = tuple(e for e in group if e is not entry)
        if segment is None:
            node.exact = group
        else:
            node.rest = group
    elif segment.kind == LITERAL:
        child = _changed(node.literals.get(segment.text), entry, depth + 1, add, in_place)
        if child is None:
            node.literals.pop(segment.text, None)
        else:
            node.literals[segment.text] = child
    elif segment.kind == PARAM:
        node.param = _changed(node.param, entry, depth + 1, add, in_place)
    else:
        node.star = _changed(node.star, entry, depth + 1, add, in_place)
    return None if node.is_empty() else node


def _group_of(root: _Node[T] | None, pattern: PathPattern) -> tuple[RouteEntry[T], ...]:
    """The routes already stored where `pattern` would be: those of the same shape."""
    node = root
    for segment in pattern.segments:
        if node is None:
            return ()
        if segment.kind == REST:
            return node.rest
        if segment.kind == LITERAL:
            node = node.literals.get(segment.text)
        elif segment.kind == PARAM:
            node = node.param
        else:
            node = node.star
    return () if node is None else node.exact


def _pick(
    group: tuple[RouteEntry[T], ...], method: str, host: str | None, allowed: set[str]
) -> RouteEntry[T] | None:
    """The first route of `group` that takes `host` and `method`; the methods
    of those that take the host but not the method go into `allowed`."""
    for entry in group:
        if entry.host is not None:
            if host is None:
                continue
            exact = entry._host_exact
            if exact is not None:
                if host != exact:
                    continue
            else:
                suffix = entry._host_suffix
                if suffix is None or not host.endswith(suffix) or len(host) <= len(suffix):
                    continue
        methods = entry.methods
        if methods is None or method in methods:
            return entry
        allowed.update(methods)
    return None


def _search(
    node: _Node[T],
    parts: list[str],
    index: int,
    count: int,
    method: str,
    host: str | None,
    allowed: set[str],
) -> RouteEntry[T] | None:
    """Depth first, most specific branch first: the first route found wins."""
    if index == count:
        if node.exact:
            found = _pick(node.exact, method, host, allowed)
            if found is not None:
                return found
        return _pick(node.rest, method, host, allowed) if node.rest else None
    value = parts[index]
    child = node.literals.get(value)
    if child is not None:
        found = _search(child, parts, index + 1, count, method, host, allowed)
        if found is not None:
            return found
    if value:  # a capture or `*` takes a non-empty segment only
        if node.param is not None:
            found = _search(node.param, parts, index + 1, count, method, host, allowed)
            if found is not None:
                return found
        if node.star is not None:
            found = _search(node.star, parts, index + 1, count, method, host, allowed)
            if found is not None:
                return found
    return _pick(node.rest, method, host, allowed) if node.rest else None


class RouteTable(Generic[T]):
    """An immutable set of routes, each with a value of type `T`, matched by
    method, path and host. See the module docstring for the rules.

    >>> table = (
    ...     RouteTable[str]()
    ...     .with_route("/api/users/**", "users", methods=["GET", "POST"])
    ...     .with_route("/api/users/{id}", "one user", methods=["GET"])
    ... )
    >>> match = table.match("GET", "/api/users/42")
    >>> match.route, match.params
    ('one user', {'id': '42'})
    >>> table.match("POST", "/api/users/42/orders").rest
    '42/orders'
    >>> table.match("DELETE", "/api/users/42")
    MethodNotAllowed(allowed=('GET', 'POST'))
    >>> table.match("GET", "/api/orders") is None
    True
    """

    __slots__ = ("_entries", "_has_hosts", "_next_order", "_root")

    def __init__(self) -> None:
        self._root: _Node[T] | None = None
        self._entries: dict[str, RouteEntry[T]] = {}
        self._next_order = 0
        self._has_hosts = False

    @classmethod
    def build(cls, routes: Iterable[RouteSpec[T]]) -> RouteTable[T]:
        """A table of `routes`, in that order; faster than chaining
        `with_route` for many routes, since nothing is shared yet to copy."""
        table: RouteTable[T] = cls()
        for spec in routes:
            entry = table._entry(spec, replace=False)
            table._entries[entry.name] = entry
            table._root = _changed(table._root, entry, 0, add=True, in_place=True)
            table._next_order += 1
            table._has_hosts = table._has_hosts or entry.host is not None
        return table

    def with_route(
        self,
        path: str,
        route: T,
        *,
        name: str | None = None,
        methods: Iterable[str] = (),
        host: str | None = None,
        replace: bool = False,
    ) -> RouteTable[T]:
        """A new table that also has this route.

        `methods` empty means every method; `host` None means any host; `name`
        defaults to `default_route_name(path, host)`. With `replace`, a route
        of the same name is replaced and the new one keeps its place in the
        order; without, a second route of one name is a `DuplicateRouteError`,
        as is a route that no request could tell apart from one in the table.
        """
        entry = self._entry(RouteSpec(path, route, name, methods, host), replace=replace)
        old = self._entries.get(entry.name)
        root = self._root
        if old is not None:
            root = _changed(root, old, 0, add=False, in_place=False)
        table = self._derived(
            _changed(root, entry, 0, add=True, in_place=False),
            {**self._entries, entry.name: entry},
        )
        table._next_order = self._next_order + (old is None)
        return table

    def without_route(self, name: str) -> RouteTable[T]:
        """A new table without the route called `name` (`KeyError` if there is none)."""
        entry = self._entries.get(name)
        if entry is None:
            raise KeyError(f"there is no route named {name!r}")
        entries = dict(self._entries)
        del entries[name]
        return self._derived(_changed(self._root, entry, 0, add=False, in_place=False), entries)

    def match(
        self, method: str, path: str, host: str | None = None
    ) -> RouteMatch[T] | MethodNotAllowed | None:
        """The route for a request, `MethodNotAllowed`, or None.

        `path` is the request target's path as sent (a query string is
        ignored); `host` is the Host header (any case, with or without port),
        or None to match only routes without a host pattern.
        """
        query_at = path.find("?")
        if query_at >= 0:
            path = path[:query_at]
        root = self._root
        if root is None or not path.startswith("/"):
            return None
        parts = path[1:].split("/")
        count = len(parts) - (parts[-1] == "")
        # Without host patterns in the table the host cannot change the answer.
        host = request_host(host) if host is not None and self._has_hosts else None
        allowed: set[str] = set()
        entry = _search(root, parts, 0, count, method, host, allowed)
        if entry is None:
            return MethodNotAllowed(tuple(sorted(allowed))) if allowed else None
        params: dict[str, str] = {}
        for index, name in entry._param_slots:  # a loop: cheaper than a comprehension here
            params[name] = parts[index]
        rest_index = entry._rest_index
        rest = "/".join(parts[rest_index:]) if rest_index is not None else ""
        return RouteMatch(entry.route, entry.name, entry.pattern, params, rest)

    def get(self, name: str) -> RouteEntry[T] | None:
        """The route called `name`, or None."""
        return self._entries.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[RouteEntry[T]]:
        """The routes, in the order they were first added."""
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"RouteTable({len(self)} routes)"

    def _derived(self, root: _Node[T] | None, entries: dict[str, RouteEntry[T]]) -> RouteTable[T]:
        table: RouteTable[T] = RouteTable()
        table._root = root
        table._entries = entries
        table._next_order = self._next_order
        table._has_hosts = any(e.host is not None for e in entries.values())
        return table

    def _entry(self, spec: RouteSpec[T], *, replace: bool) -> RouteEntry[T]:
        """The checked entry for `spec`: its order, and no clash with the table."""
        pattern = PathPattern.parse(spec.path)
        host = None if spec.host is None else HostPattern.parse(spec.host)
        name = spec.name if spec.name is not None else default_route_name(pattern.text, spec.host)
        if not name:
            raise ValueError("name='' is not allowed: a route name must not be empty")
        listed = normalize_methods(spec.methods)
        methods = frozenset(listed) if listed else None
        old = self._entries.get(name)
        if old is not None and not replace:
            raise DuplicateRouteError(
                f"route {name!r} ({pattern}) cannot be added: the route {old.describe()} "
                "has that name already; route names must be unique"
            )
        order = old.order if old is not None else self._next_order
        entry = RouteEntry(name, pattern, spec.route, methods, host, order)
        for other in _group_of(self._root, pattern):
            if other is old:
                continue
            same_host = (other.host is None) == (host is None) and (
                host is None or other.host == host
            )
            if not same_host:
                continue
            if methods is None or other.methods is None:
                overlap = "every method"
            else:
                common = methods & other.methods
                if not common:
                    continue
                overlap = ", ".join(sorted(common))
            raise DuplicateRouteError(
                f"route {entry.describe()} duplicates route {other.describe()}: "
                f"same path and host, both take {overlap}; no request could tell "
                "them apart, so give them different paths, hosts or methods"
            )
        return entry
