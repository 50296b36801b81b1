"""Version routing: which API version serves a request, four ways side by
side, one route per strategy:

- ``header``: ``X-API-Version: v2`` (the reference's user routes);
- ``uri``: ``/api/v2/accounts/7``, the version segment taken out of the
  path before it goes upstream;
- ``query``: ``/api/search?version=v2``;
- ``weight``: no way to ask; the weights alone decide.

A version the route does not have is refused with 400 and the known ones
listed, rather than guessed. A version with ``allow_explicit: False`` (a
closed beta) cannot be asked for: such a request is routed by the weights,
as if it named none. Versions select their instances by tag (``v1``,
``v2``, ``v3``), as the reference's filters do.

Real services run on loopback ports and register in a memory registry; the
gateway serves on a free port and httpx sends it real requests. The
weighted draws come from each route's seeded generator, so the counts are
the same on every run.

Run it: ``meshgate demo version-routing``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import anyio
import httpx

from meshgate.demos.backends import ServiceFleet, ServiceSpec
from meshgate.demos.gateway_kit.caller import served_by
from meshgate.demos.gateway_kit.metrics_table import print_metrics
from meshgate.demos.gateway_kit.quiet_logs import warnings_only
from meshgate.demos.gateway_kit.seeded_routes import seed_routes
from meshgate.discovery import MemoryRegistryBackend
from meshgate.gateway import GatewayServer, VersionRouter

SEED = 16
WEIGHTED_REQUESTS = 200


def _instances(service: str, versions: Mapping[str, int]) -> list[ServiceSpec]:
    """`count` instances of each version of `service`, tagged with the version."""
    return [
        ServiceSpec(
            service=service,
            instance=f"{service.removesuffix('-service')}-{tag}-{number}",
            version=f"{tag[1:]}.0.0",
            tags=(tag,),
        )
        for tag, count in versions.items()
        for number in range(1, count + 1)
    ]


SERVICES = (
    *_instances("user-service", {"v1": 2, "v2": 1}),
    *_instances("account-service", {"v1": 1, "v2": 1}),
    *_instances("search-service", {"v1": 1, "v2": 1, "v3": 1}),
    *_instances("feed-service", {"v1": 1, "v2": 1, "v3": 1}),
)

CONFIG: dict[str, Any] = {
    "middleware": {"logging": False},
    "routes": [
        {
            "name": "users",
            "path": "/api/users/**",
            "service_name": "user-service",
            "strip_prefix": "/api/users",
            "version_route": {
                "strategy": "header",
                "header": "X-API-Version",
                "default_version": "v1",
                "routes": {"v1": {"weight": 70}, "v2": {"weight": 30}},
            },
        },
        {
            "name": "accounts",
            # The version is a path segment of its own; the route matches
            # whatever is there, and the router takes it out.
            "path": "/api/{version}/accounts/**",
            "service_name": "account-service",
            "strip_prefix": "/api/accounts",
            "version_route": {
                "strategy": "uri",
                "default_version": "v1",
                "routes": {"v1": {"weight": 100}, "v2": {}},
            },
        },
        {
            "name": "search",
            "path": "/api/search/**",
            "service_name": "search-service",
            "strip_prefix": "/api/search",
            "version_route": {
                "strategy": "query",
                "query_param": "version",
                "default_version": "v1",
                "routes": {
                    "v1": {"weight": 90},
                    # Opt-in only: no weight, so only requests that ask get it.
                    "v2": {"weight": 0},
                    # A closed beta: a tenth of the traffic, but nobody may ask for it.
                    "v3": {"weight": 10, "allow_explicit": False},
                },
            },
        },
        {
            "name": "feed",
            "path": "/api/feed/**",
            "service_name": "feed-service",
            "strip_prefix": "/api/feed",
            "version_route": {
                "strategy": "weight",
                "routes": {"v1": {"weight": 70}, "v2": {"weight": 25}, "v3": {"weight": 5}},
            },
        },
    ],
}


async def show(
    http: httpx.AsyncClient, label: str, path: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    """Send one GET and print it: who served it and the path it saw, or the
    gateway's refusal in full."""
    reply = await http.get(path, headers=headers)
    asked = path + "".join(f" [{name}: {value}]" for name, value in (headers or {}).items())
    backend = served_by(reply)
    if backend is not None:
        answer = f"{backend['instance']} ({backend['version']}), upstream path {backend['path']}"
    else:
        body = reply.json()
        answer = f"{body['error']}: {body['message']}"
    print(f"  {label:<7} GET {asked:<37} {reply.status_code}  {answer}")
    return reply


async def tally(http: httpx.AsyncClient, path: str, count: int) -> Counter[str]:
    """How many of `count` GETs of `path` each version served."""
    served: Counter[str] = Counter()
    for _ in range(count):
        backend = served_by(await http.get(path))
        served[f"v{backend['version'][0]}" if backend else "-"] += 1
    return served


def shares(served: Counter[str]) -> str:
    total = sum(served.values())
    return ", ".join(
        f"{name} ×{count} ({count / total:.1%})" for name, count in sorted(served.items())
    )


def the_router_alone() -> None:
    print("1. VersionRouter on its own, the reference's example: v1 70, v2 25, v3 5 by weight,")
    print("   or as the X-API-Version header says (the draw is given, to show each share).")
    router = VersionRouter(
        {
            "strategy": "header",
            "header": "X-API-Version",
            "default_version": "v1",
            "routes": {
                "v1": {"weight": 70, "allow_explicit": True},
                "v2": {"weight": 25, "allow_explicit": True},
                "v3": {"weight": 5, "allow_explicit": True},
            },
        }
    )
    asks: list[tuple[str, dict[str, str], float | None]] = [
        ("header X-API-Version: v2", {"x-api-version": "v2"}, None),
        ("no header, draw 0.50", {}, 0.5),
        ("no header, draw 0.80", {}, 0.8),
        ("no header, draw 0.97", {}, 0.97),
    ]
    for what, headers, draw in asks:
        request = {"method": "GET", "path": "/api/users", "headers": headers}
        resolved = router.resolve(request, rand=draw)
        print(f"  {what:<26} → version={resolved.version!r}, resolved_by={resolved.resolved_by!r}")


async def side_by_side(http: httpx.AsyncClient) -> None:
    print()
    print("2. Four routes, one strategy each, each asked for v2:")
    await show(http, "header", "/api/users/7", {"X-API-Version": "v2"})
    await show(http, "uri", "/api/v2/accounts/7")
    await show(http, "query", "/api/search?q=ada&version=v2")
    await show(http, "weight", "/api/feed/latest", {"X-API-Version": "v2"})
    print("  (the weighted route has no way to ask: the header is passed on, not read)")
    print("  naming no version, a request goes by the weights:")
    await show(http, "header", "/api/users/7")
    await show(http, "query", "/api/search?q=ada")


async def unknown_versions(http: httpx.AsyncClient) -> None:
    print()
    print("3. A version the route does not have: 400, listing the ones it has.")
    await show(http, "header", "/api/users/7", {"X-API-Version": "v9"})
    await show(http, "uri", "/api/v7/accounts/7")
    await show(http, "query", "/api/search?q=ada&version=v4")


async def closed_beta(http: httpx.AsyncClient, gateway: GatewayServer) -> None:
    print()
    print("4. allow_explicit=False: search v3 is a closed beta, 10% of the traffic by weight;")
    print("   v2 is opt-in (no weight). Asking for v3 routes by the weights instead:")
    served = await tally(http, "/api/search?q=ada&version=v3", 20)
    print(f"  20 × ?version=v3: {shares(served)}")
    served = await tally(http, "/api/search?q=ada&version=v2", 5)
    print(f"   5 × ?version=v2: {shares(served)}")
    runtime = gateway.route_runtime("search")
    assert runtime is not None
    assert runtime.versions is not None
    request = {"method": "GET", "path": "/api/search", "query": "version=v3", "headers": {}}
    resolved = runtime.versions.resolve(request, rand=0.5)
    print(f"  the route's router on ?version=v3: resolved_by={resolved.resolved_by!r}")


async def weighted(http: httpx.AsyncClient) -> None:
    print()
    print(f"5. The weighted route over {WEIGHTED_REQUESTS} requests (v1 70, v2 25, v3 5):")
    served = await tally(http, "/api/feed/latest", WEIGHTED_REQUESTS)
    print(f"  {shares(served)}")
    print("  and the header route without the header (v1 70, v2 30), 50 requests:")
    print(f"  {shares(await tally(http, '/api/users/7', 50))}")


async def main() -> None:
    registry = MemoryRegistryBackend()
    with warnings_only():
        async with ServiceFleet(SERVICES, registry) as fleet:
            the_router_alone()
            print()
            print("The gateway: " + ", ".join(s.name for s in fleet))
            gateway = GatewayServer.from_config(CONFIG, registry)
            seed_routes(gateway, SEED)
            async with gateway.running(listen="127.0.0.1:0") as [(host, port)]:
                base = f"http://{host}:{port}"
                async with httpx.AsyncClient(base_url=base, timeout=5.0) as http:
                    await side_by_side(http)
                    await unknown_versions(http)
                    await closed_beta(http, gateway)
                    await weighted(http)
            print()
            print("6. gateway.get_metrics().get_snapshot(), per route and version")
            print_metrics(gateway.get_metrics().get_snapshot())


if __name__ == "__main__":
    anyio.run(main)
