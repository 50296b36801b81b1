"""The version router: explicit versions by header, path or query, weighted
choice with an injected draw, defaults, and the errors a client gets."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest

from meshgate.gateway.instance_filter import InstanceFilter
from meshgate.gateway.sticky_fraction import sticky_fraction
from meshgate.gateway.version_config import VersionRouteConfig
from meshgate.gateway.version_router import (
    UnknownVersionError,
    VersionResolution,
    VersionRouter,
)

WEIGHTS = {"v1": {"weight": 70}, "v2": {"weight": 25}, "v3": {"weight": 5}}


def router(**config: Any) -> VersionRouter:
    config.setdefault("routes", WEIGHTS)
    return VersionRouter(config)


def request(path: str = "/api/users", **headers: str) -> dict[str, Any]:
    return {"method": "GET", "path": path, "headers": headers}


class CaseInsensitiveHeaders:
    def __init__(self, **headers: str) -> None:
        self._headers = {k.lower().replace("_", "-"): v for k, v in headers.items()}

    def get(self, name: str) -> str | None:
        return self._headers.get(name.lower())


@dataclass
class Request:
    method: str
    path: str
    headers: Any = field(default_factory=dict)


# --- explicit versions ------------------------------------------------------


def test_the_reference_example_resolves_an_explicit_header() -> None:
    resolved = router(strategy="header", header="X-API-Version", default_version="v1").resolve(
        {"method": "GET", "path": "/api/users", "headers": {"x-api-version": "v2"}}
    )
    assert resolved == VersionResolution(version="v2", resolved_by="header", path="/api/users")


@pytest.mark.parametrize("name", ["X-API-Version", "x-api-version", "X-Api-VERSION"])
def test_a_header_in_a_plain_dict_is_found_in_any_case(name: str) -> None:
    assert router().resolve(request(**{name: "v3"})).version == "v3"


def test_a_request_object_with_case_insensitive_headers_works() -> None:
    headers = CaseInsensitiveHeaders(X_API_Version="v2")
    resolved = router().resolve(Request("GET", "/x", headers))
    assert (resolved.version, resolved.resolved_by) == ("v2", "header")


def test_a_header_with_several_values_counts_its_first() -> None:
    assert router().resolve(request(**{"X-API-Version": ["v2", "v3"]})).version == "v2"  # type: ignore[arg-type]


def test_the_uri_strategy_takes_the_version_segment_out_of_the_path() -> None:
    resolved = router(strategy="uri").resolve(request("/api/v2/users/42?x=1"))
    assert resolved == VersionResolution(version="v2", resolved_by="uri", path="/api/users/42?x=1")


def test_the_uri_strategy_leaves_a_path_without_a_version_alone() -> None:
    resolved = router(strategy="uri").resolve(request("/api/users/v2x"), rand=0.0)
    assert resolved == VersionResolution(version="v1", resolved_by="weight", path="/api/users/v2x")


def test_the_uri_strategy_knows_versions_by_name_even_without_a_v() -> None:
    config = {"strategy": "uri", "routes": {"beta": {"weight": 1}, "stable": {"weight": 1}}}
    resolved = VersionRouter(config).resolve(request("/beta/users"))
    assert (resolved.version, resolved.path) == ("beta", "/users")


def test_the_query_strategy_reads_the_parameter_from_the_path() -> None:
    resolved = router(strategy="query").resolve(request("/api/users?page=2&version=v3"))
    assert (resolved.version, resolved.resolved_by, resolved.path) == (
        "v3",
        "query",
        "/api/users?page=2&version=v3",
    )


def test_the_query_strategy_reads_a_parsed_query_when_the_request_has_one() -> None:
    resolved = router(strategy="query", query_param="api").resolve(
        {"method": "GET", "path": "/api/users", "headers": {}, "query": {"api": ["v2"]}}
    )
    assert resolved.version == "v2"


def test_with_the_weight_strategy_a_request_cannot_name_its_version() -> None:
    resolved = router(strategy="weight").resolve(request(**{"X-API-Version": "v3"}), rand=0.1)
    assert (resolved.version, resolved.resolved_by) == ("v1", "weight")


def test_an_unknown_explicit_version_is_an_error_listing_the_known_ones() -> None:
    with pytest.raises(UnknownVersionError) as caught:
        router().resolve(request(**{"X-API-Version": "v9"}))
    assert caught.value.version == "v9"
    assert caught.value.known == ("v1", "v2", "v3")
    assert "'v1', 'v2', 'v3'" in str(caught.value)


def test_an_unknown_version_in_the_path_is_an_error_too() -> None:
    with pytest.raises(UnknownVersionError, match="'v7'"):
        router(strategy="uri").resolve(request("/api/v7/users"))


def test_an_explicit_version_that_does_not_allow_it_falls_back_to_the_weights() -> None:
    config = {
        "routes": {"v1": {"weight": 100}, "v2": {"weight": 0, "allow_explicit": False}},
    }
    resolved = VersionRouter(config).resolve(request(**{"X-API-Version": "v2"}), rand=0.3)
    assert (resolved.version, resolved.resolved_by) == ("v1", "weight")


def test_an_empty_header_names_no_version() -> None:
    resolved = router().resolve(request(**{"X-API-Version": "  "}), rand=0.99)
    assert (resolved.version, resolved.resolved_by) == ("v3", "weight")


# --- weights and defaults ---------------------------------------------------


@pytest.mark.parametrize(
    ("rand", "version"),
    [(0.0, "v1"), (0.6999, "v1"), (0.70, "v2"), (0.9499, "v2"), (0.95, "v3"), (0.99999, "v3")],
)
def test_a_draw_lands_in_its_versions_share_of_the_cumulative_weights(
    rand: float, version: str
) -> None:
    resolved = router().resolve(request(), rand=rand)
    assert (resolved.version, resolved.resolved_by) == (version, "weight")


def test_weights_need_not_add_up_to_a_hundred() -> None:
    chooser = VersionRouter({"routes": {"a": {"weight": 1}, "b": {"weight": 3}}})
    assert [chooser.weighted_version(r) for r in (0.0, 0.2499, 0.25, 0.9)] == ["a", "a", "b", "b"]


def test_a_version_without_weight_is_never_drawn() -> None:
    chooser = VersionRouter({"routes": {"a": {"weight": 0}, "b": {"weight": 2}, "c": {}}})
    assert {chooser.weighted_version(i / 100) for i in range(100)} == {"b"}


def test_without_any_weight_the_default_version_serves() -> None:
    chooser = VersionRouter({"default_version": "v1", "routes": {"v1": {}, "v2": {}}})
    resolved = chooser.resolve(request())
    assert (resolved.version, resolved.resolved_by) == ("v1", "default")
    assert chooser.weighted_version(0.5) is None


def test_a_seeded_random_gives_the_weights_share_of_requests() -> None:
    chooser = router(default_version="v1")
    seeded = VersionRouter(chooser.config, random=random.Random(1234))
    counts = Counter(seeded.resolve(request()).version for _ in range(20_000))
    assert counts["v1"] / 20_000 == pytest.approx(0.70, abs=0.015)
    assert counts["v2"] / 20_000 == pytest.approx(0.25, abs=0.015)
    assert counts["v3"] / 20_000 == pytest.approx(0.05, abs=0.01)


@pytest.mark.parametrize("rand", [-0.1, 1.0, 1.5])
def test_a_draw_outside_zero_to_one_is_refused(rand: float) -> None:
    with pytest.raises(ValueError, match="rand="):
        router().resolve(request(), rand=rand)


def test_a_sticky_fraction_keeps_a_user_on_one_version() -> None:
    chooser = router()
    first = chooser.resolve(request(), rand=sticky_fraction("user-42")).version
    again = {chooser.resolve(request(), rand=sticky_fraction("user-42")).version for _ in range(5)}
    assert again == {first}


def test_sticky_fractions_spread_evenly_over_users() -> None:
    draws = [sticky_fraction(f"user-{n}", salt="/api") for n in range(10_000)]
    assert all(0.0 <= d < 1.0 for d in draws)
    assert sum(d < 0.1 for d in draws) / 10_000 == pytest.approx(0.1, abs=0.01)
    assert sticky_fraction("a", salt="x") != sticky_fraction("a", salt="y")


# --- configuration ----------------------------------------------------------


def test_a_version_is_served_by_instances_tagged_with_its_name_unless_filtered() -> None:
    chooser = VersionRouter({"routes": {"v1": {"weight": 1}, "v2": {"filter": {"tags": ["new"]}}}})
    assert chooser.instance_filter("v1") == InstanceFilter(tags=("v1",))
    assert chooser.instance_filter("v2") == InstanceFilter(tags=("new",))


def test_the_router_takes_a_config_struct_as_well_as_a_mapping() -> None:
    config = msgspec.convert({"routes": WEIGHTS, "default_version": "v2"}, VersionRouteConfig)
    assert VersionRouter(config).config is config


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"routes": {}}, "at least one version"),
        ({"routes": {"v1": {}}}, "default_version is missing and no version has a weight"),
        ({"default_version": "v4", "routes": WEIGHTS}, "default_version='v4'"),
        ({"routes": {"v 1": {"weight": 1}}}, "version name"),
        ({"routes": {"v1": {"weight": -1}}}, "weight=-1"),
        ({"header": "X API", "routes": WEIGHTS}, "header="),
        ({"strategy": "cookie", "routes": WEIGHTS}, "Invalid enum value 'cookie'"),
        ({"routes": WEIGHTS, "sticky": True}, "unknown field `sticky`"),
    ],
)
def test_a_wrong_version_config_is_refused_naming_the_option(
    config: dict[str, Any], message: str
) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        VersionRouter(config)
