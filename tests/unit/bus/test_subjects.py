"""Subjects: DESIGN.md's table, the reversible token encoding, and NATS matching."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshgate.bus.subjects import (
    Subjects,
    decode_token,
    encode_token,
    subject_matches,
    validate_subject,
)

# What a JetStream KV key may contain; our tokens must also be valid keys.
KV_KEY = re.compile(r"[-/_=A-Za-z0-9]+")


def test_every_subject_of_the_design_table_under_the_default_prefix() -> None:
    s = Subjects()
    assert s.registry_register == "mesh.registry.register"
    assert s.registry_deregister == "mesh.registry.deregister"
    assert s.registry_heartbeat == "mesh.registry.heartbeat"
    assert s.registry_query == "mesh.registry.query"
    assert s.registry_status == "mesh.registry.status"
    assert s.registry_events("user-service") == "mesh.events.registry.user-service"
    assert s.circuit_events("/api/users") == "mesh.events.circuit./api/users"
    assert s.canary_events("/api/orders") == "mesh.events.canary./api/orders"
    assert s.config_events == "mesh.events.config"
    assert s.metrics("/api/orders") == "mesh.metrics./api/orders"
    assert s.presence == "mesh.gateway.presence"
    assert s.canary_control("/api/orders") == "mesh.control.canary./api/orders"


def test_wildcards_for_subscribers() -> None:
    s = Subjects()
    assert s.all_events == "mesh.events.>"
    assert s.all_registry_events == "mesh.events.registry.*"
    assert s.all_circuit_events == "mesh.events.circuit.*"
    assert s.all_canary_events == "mesh.events.canary.*"
    assert s.all_metrics == "mesh.metrics.*"
    assert s.all_canary_control == "mesh.control.canary.*"
    assert s.all_registry_requests == "mesh.registry.*"


def test_each_wildcard_matches_exactly_its_own_family() -> None:
    s = Subjects()
    route = "/api/users/*"
    assert subject_matches(s.all_circuit_events, s.circuit_events(route))
    assert not subject_matches(s.all_circuit_events, s.canary_events(route))
    assert subject_matches(s.all_canary_events, s.canary_events(route))
    assert subject_matches(s.all_registry_events, s.registry_events("user-service"))
    assert subject_matches(s.all_metrics, s.metrics(route))
    assert subject_matches(s.all_canary_control, s.canary_control(route))
    assert subject_matches(s.all_registry_requests, s.registry_query)
    for event_subject in (
        s.registry_events("user-service"),
        s.circuit_events(route),
        s.canary_events(route),
        s.config_events,
    ):
        assert subject_matches(s.all_events, event_subject)
    assert not subject_matches(s.all_events, s.metrics(route))


def test_a_custom_prefix_moves_every_subject_and_the_stream_name() -> None:
    s = Subjects("prod.mesh")
    assert s.registry_query == "prod.mesh.registry.query"
    assert s.circuit_events("/a") == "prod.mesh.events.circuit./a"
    assert s.all_events == "prod.mesh.events.>"
    assert s.events_stream == "PROD_MESH_EVENTS"
    assert Subjects().events_stream == "MESH_EVENTS"


@pytest.mark.parametrize("prefix", ["", "mesh.", "me sh", "mesh.*", "mesh.>"])
def test_an_invalid_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="subject"):
        Subjects(prefix)


@pytest.mark.parametrize(
    ("name", "token"),
    [
        ("user-service", "user-service"),
        ("/api/users/*", "/api/users/=2A"),
        ("/api/v1.2", "/api/v1=2E2"),
        ("/a>b", "/a=3Eb"),
        ("a b", "a=20b"),
        ("x=y", "x=3Dy"),
        ("/café", "/caf=C3=A9"),
    ],
)
def test_names_become_readable_tokens_and_come_back(name: str, token: str) -> None:
    assert encode_token(name) == token
    assert decode_token(token) == name


def test_the_route_is_recovered_from_a_subject() -> None:
    s = Subjects()
    assert s.name_in(s.circuit_events("/api/users/*")) == "/api/users/*"
    assert s.name_in(s.registry_events("user.service")) == "user.service"


@given(st.text(min_size=1))
def test_any_name_round_trips_through_one_valid_token_and_kv_key(name: str) -> None:
    token = encode_token(name)
    assert decode_token(token) == name
    validate_subject(f"mesh.events.circuit.{token}")
    assert "." not in token
    assert KV_KEY.fullmatch(token)


def test_an_empty_name_has_no_token() -> None:
    with pytest.raises(ValueError, match="empty"):
        encode_token("")


@pytest.mark.parametrize("token", ["", "=41", "=2a", "=2", "a=", "a.b", "a*b", "=FF", "a b"])
def test_only_canonical_tokens_decode(token: str) -> None:
    with pytest.raises(ValueError, match="not"):
        decode_token(token)


@pytest.mark.parametrize(
    ("pattern", "subject", "matches"),
    [
        ("mesh.events.>", "mesh.events.config", True),
        ("mesh.events.>", "mesh.events.circuit.x", True),
        ("mesh.events.>", "mesh.events", False),
        ("mesh.events.*", "mesh.events.config", True),
        ("mesh.events.*", "mesh.events.circuit.x", False),
        ("mesh.*.config", "mesh.events.config", True),
        ("mesh.events.config", "mesh.events.config", True),
        ("mesh.events.config", "mesh.events.configs", False),
        ("mesh.events.config", "mesh.events", False),
        ("mesh.events", "mesh.events.config", False),
        (">", "anything.at.all", True),
        ("*", "one", True),
        ("*", "one.two", False),
    ],
)
def test_wildcards_match_as_nats_does(pattern: str, subject: str, matches: bool) -> None:
    assert subject_matches(pattern, subject) is matches


@pytest.mark.parametrize("subject", ["mesh.*", "mesh.>", "a..b", ".a", "a.", "a b", "a.b*"])
def test_published_subjects_have_no_wildcards_or_empty_tokens(subject: str) -> None:
    with pytest.raises(ValueError, match="subject"):
        validate_subject(subject)


@pytest.mark.parametrize("pattern", ["mesh.>.x", "mesh.a*", "mesh.>x", "a..>"])
def test_patterns_use_wildcards_as_whole_tokens_and_gt_last(pattern: str) -> None:
    with pytest.raises(ValueError, match="subject"):
        validate_subject(pattern, wildcards=True)


def test_valid_patterns_pass() -> None:
    validate_subject("mesh.*.circuit.>", wildcards=True)
    validate_subject("mesh.events.circuit./api/users/=2A")
