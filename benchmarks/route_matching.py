"""Cost of finding the route for a request, as the number of routes grows:
the gateway's segment trie next to a linear scan of regular expressions.

Run: `.venv/bin/python benchmarks/route_matching.py [--repeats R]`

Each table of N routes mixes the shapes gateways see: a catch-all per
service (``/api/svc7/**``), a capture (``/api/svc7/items/{id}``), a deeper
wildcard (``/api/svc7/items/{id}/reviews/*``) and a literal route under a
version prefix (``/v1/svc7/status``), plus ``/api/**`` and ``/**`` at the
bottom. Requests are drawn (seeded) to hit every shape, with one in ten
matching only a catch-all.

The linear scan is how a naive gateway matches: one compiled regex per route,
sorted most specific first by the same rule, and the first that matches wins.
It is checked to give the same route as the trie for every request before
it is timed. Each row keeps the best of R runs.
"""

from __future__ import annotations

import argparse
import random
import re
import time
from collections.abc import Callable

from meshgate.gateway.matcher import RouteMatch, RouteSpec, RouteTable
from meshgate.gateway.path_pattern import LITERAL, PARAM, REST, STAR, PathPattern

SIZES = (10, 100, 1_000, 10_000)


def route_paths(count: int) -> list[str]:
    shapes = (
        "/api/svc{n}/**",
        "/api/svc{n}/items/{{id}}",
        "/api/svc{n}/items/{{id}}/reviews/*",
        "/v{v}/svc{n}/status",
    )
    paths = [shapes[i % 4].format(n=i // 4, v=i % 3 + 1) for i in range(count - 2)]
    return [*paths, "/api/**", "/**"]


def request_paths(count: int, routes: int, rng: random.Random) -> list[str]:
    services = max(1, (routes - 2) // 4)
    paths = []
    for _ in range(count):
        n = rng.randrange(services)
        paths.append(
            rng.choice(
                [
                    f"/api/svc{n}/items/{rng.randrange(10**6)}",
                    f"/api/svc{n}/items/{rng.randrange(10**6)}/reviews/{rng.randrange(99)}",
                    f"/api/svc{n}/orders/{rng.randrange(10**6)}/lines",
                    f"/v{(4 * n + 3) % 3 + 1}/svc{n}/status",
                    f"/api/svc{n}/items",
                    f"/api/svc{n}/items/{rng.randrange(10**6)}",
                    f"/api/svc{n}/items/{rng.randrange(10**6)}/reviews/{rng.randrange(99)}",
                    f"/v{(4 * n + 3) % 3 + 1}/svc{n}/status",
                    f"/api/svc{n}/items/{rng.randrange(10**6)}",
                    f"/static/app-{rng.randrange(100)}.js",
                ]
            )
        )
    return paths


def regex_of(pattern: PathPattern) -> re.Pattern[str]:
    parts: list[str] = []
    for segment in pattern.segments:
        if segment.kind == LITERAL:
            parts.append("/" + re.escape(segment.text))
        elif segment.kind == PARAM:
            parts.append(f"/(?P<{segment.text}>[^/]+)")
        elif segment.kind == STAR:
            parts.append("/[^/]+")
        elif segment.kind == REST:
            parts.append("(?:/(?P<rest>.*))?")
    tail = "" if pattern.has_rest else "/?"
    return re.compile("^" + "".join(parts) + tail + "$")


def linear_matcher(paths: list[str]) -> Callable[[str, str], str | None]:
    """A regex per route, most specific first: the first match wins."""
    patterns = sorted(
        ((PathPattern.parse(p), order) for order, p in enumerate(paths)),
        key=lambda pair: (pair[0].rank, pair[1]),
    )
    compiled = [(regex_of(pattern).match, pattern.text) for pattern, _ in patterns]

    def match(method: str, path: str) -> str | None:
        for matches, name in compiled:
            if matches(path) is not None:
                return name
        return None

    return match


def best_time_per_call(
    match: Callable[[str, str], object], paths: list[str], repeats: int
) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for path in paths:
            match("GET", path)
        best = min(best, time.perf_counter() - start)
    return best / len(paths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(20_260_101)

    print(f"{'routes':>7}  {'build ms':>9}  {'trie µs':>8}  {'linear regex µs':>16}  {'ratio':>7}")
    for size in SIZES:
        paths = route_paths(size)
        start = time.perf_counter()
        table: RouteTable[str] = RouteTable.build(RouteSpec(p, p) for p in paths)
        build_ms = (time.perf_counter() - start) * 1000
        linear = linear_matcher(paths)

        requests = request_paths(20_000, size, rng)
        # The linear scan costs ~N regex calls a request: fewer requests keep
        # a row under a second or two without changing what is measured.
        linear_requests = requests[: max(200, 2_000_000 // size // 10)]
        for path in linear_requests:
            found = table.match("GET", path)
            assert isinstance(found, RouteMatch)
            assert found.name == linear("GET", path), path

        trie_us = best_time_per_call(table.match, requests, args.repeats) * 1e6
        linear_us = best_time_per_call(linear, linear_requests, args.repeats) * 1e6
        print(
            f"{size:>7,}  {build_ms:>9.1f}  {trie_us:>8.2f}  {linear_us:>16.2f}"
            f"  {linear_us / trie_us:>6.1f}x"
        )


if __name__ == "__main__":
    main()
