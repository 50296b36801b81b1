"""Bus payloads: every message round-trips in both codecs, carries its schema
version, and a malformed one is dropped with a log event instead of raising."""

from __future__ import annotations

import typing

import msgspec
import pytest
import structlog
from structlog.testing import capture_logs

from meshgate.bus.codec import Codec, decode, decode_or_drop, encode
from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.bus.messages import (
    CanaryEvent,
    CircuitEvent,
    CircuitStateName,
    ConfigEvent,
    ControlReply,
    ControlRequest,
    DeregisterRequest,
    Event,
    HeartbeatRequest,
    Message,
    MetricsReport,
    Presence,
    QueryReply,
    QueryRequest,
    RegisterRequest,
    RegistryEvent,
    Reply,
    StatusReport,
    VersionMetrics,
)

AT = 1_700_000_000.0
INSTANCE = ServiceInstance(
    id="user-1",
    name="user-service",
    host="127.0.0.1",
    port=3001,
    zone="eu-1",
    tags=("primary",),
    metadata={"version": "2.0.0", "weight": 80},
    registered_at=AT,
    last_heartbeat=AT,
)

EVERY_MESSAGE: list[Message] = [
    RegisterRequest(instance=INSTANCE, ttl=15.0),
    DeregisterRequest(service="user-service", instance_id="user-1"),
    HeartbeatRequest(service="user-service", instance_id="user-1"),
    StatusReport(
        service="user-service", instance_id="user-1", status=InstanceStatus.DOWN, reason="503"
    ),
    Reply(ok=True, instance=INSTANCE, lease_ttl=15.0, lease_expires_at=AT + 15),
    Reply(ok=False, error="unknown instance user-1", code="not_found"),
    QueryRequest(
        service="user-service",
        zone="eu-1",
        tags=("primary",),
        metadata={"version": "2.0.0"},
        status=InstanceStatus.UP,
    ),
    QueryReply(instances=(INSTANCE,)),
    RegistryEvent(kind="registered", instance=INSTANCE, at=AT),
    CircuitEvent(
        route="/api/users/*",
        instance="user-1",
        from_state="closed",
        to_state="open",
        replica="gw-1",
        reset_deadline=AT + 30,
        generation=3,
        reopens=1,
        at=AT,
    ),
    CanaryEvent(
        route="/api/orders",
        kind="rollback",
        state="rolled-back",
        stable_version="1.0.0",
        canary_version="1.1.0",
        stable_weight=100.0,
        canary_weight=0.0,
        step=2,
        stats={"canary": {"requests": 120.0, "error_rate": 0.2}},
        reason="error rate 0.2 > 0.05",
        at=AT,
    ),
    ConfigEvent(
        kind="added",
        route="/api/users/*",
        config={"path": "/api/users/*", "service_name": "user-service", "retries": 2},
        at=AT,
    ),
    MetricsReport(
        route="/api/orders",
        replica="gw-1",
        interval_start=AT,
        interval_end=AT + 5,
        versions={
            "1.0.0": VersionMetrics(
                requests=90, errors=1, latency_sum_ms=900.5, latency_buckets={10.0: 80, 25.0: 10}
            ),
            "1.1.0": VersionMetrics(requests=10, latency_buckets={0.5: 10}),
        },
    ),
    Presence(
        replica_id="gw-1",
        address="127.0.0.1:8080",
        admin_address="127.0.0.1:9090",
        started_at=AT,
        load=12.0,
        leaving=True,
    ),
    ControlRequest(route="/api/orders", action="pause"),
    ControlReply(ok=True, state="paused", stable_weight=75.0, canary_weight=25.0, step=1),
]


EVENTS = [
    m
    for m in EVERY_MESSAGE
    if isinstance(m, RegistryEvent | CircuitEvent | CanaryEvent | ConfigEvent)
]


def _ids(message: Message) -> str:
    return type(message).__name__


@pytest.mark.parametrize("codec", ["json", "msgpack"])
@pytest.mark.parametrize("message", EVERY_MESSAGE, ids=_ids)
def test_every_message_round_trips(message: Message, codec: Codec) -> None:
    assert decode(encode(message, codec), type(message)) == message


@pytest.mark.parametrize("message", EVERY_MESSAGE, ids=_ids)
def test_every_message_carries_schema_version_1_on_the_wire(message: Message) -> None:
    assert message.v == 1
    assert msgspec.json.decode(encode(message))["v"] == 1


@pytest.mark.parametrize("codec", ["json", "msgpack"])
@pytest.mark.parametrize("event", EVENTS, ids=_ids)
def test_any_event_decodes_as_event_by_its_type_tag(event: Event, codec: Codec) -> None:
    decoded: Event = decode(encode(event, codec), Event)
    assert type(decoded) is type(event)
    assert decoded == event


def test_the_event_tags_name_the_family() -> None:
    tags = {type(m).__name__: msgspec.json.decode(encode(m))["type"] for m in EVENTS}
    assert tags == {
        "RegistryEvent": "registry",
        "CircuitEvent": "circuit",
        "CanaryEvent": "canary",
        "ConfigEvent": "config",
    }


def test_a_newer_sender_with_extra_fields_and_version_still_decodes() -> None:
    data = (
        b'{"v":2,"service":"user-service","instance_id":"user-1","checksum":"abc",'
        b'"priority":{"level":3}}'
    )
    request = decode(data, HeartbeatRequest)
    assert request == HeartbeatRequest(v=2, service="user-service", instance_id="user-1")


def test_hand_written_json_with_leading_whitespace_decodes() -> None:
    data = b'\n  {"service":"s","instance_id":"i"}'
    assert decode(data, DeregisterRequest) == DeregisterRequest(service="s", instance_id="i")


def test_messages_are_frozen() -> None:
    message = HeartbeatRequest(service="s", instance_id="i")
    with pytest.raises(AttributeError):
        message.service = "other"  # type: ignore[misc]


def test_messages_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        HeartbeatRequest("s", "i")  # type: ignore[call-arg, arg-type]


def test_an_unknown_codec_is_refused() -> None:
    with pytest.raises(ValueError, match="codec"):
        encode(Presence(replica_id="gw", address="a:1", started_at=AT), "xml")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "type_", "reason_mentions"),
    [
        (b'{"v":1,"service":"user-service"}', HeartbeatRequest, "instance_id"),
        (b'{"kind":"exploded","instance":{},"at":1}', RegistryEvent, "kind"),
        (b"not json at all", HeartbeatRequest, ""),
        (b"", HeartbeatRequest, ""),
        (b"\xff\xfe\x00", HeartbeatRequest, ""),
        (b'{"v":1,"service":"s","instance_id":"i"', HeartbeatRequest, ""),
    ],
)
def test_malformed_data_is_dropped_and_logged_never_raised(
    data: bytes, type_: type[Message], reason_mentions: str
) -> None:
    with capture_logs() as logs:
        result = decode_or_drop(data, type_, "mesh.registry.heartbeat", structlog.get_logger())
    assert result is None
    assert len(logs) == 1
    assert logs[0]["event"] == "bus.message_dropped"
    assert logs[0]["log_level"] == "warning"
    assert logs[0]["subject"] == "mesh.registry.heartbeat"
    assert logs[0]["size"] == len(data)
    assert reason_mentions in logs[0]["reason"]


def test_a_message_of_another_type_is_dropped_naming_what_is_missing() -> None:
    presence = encode(Presence(replica_id="gw-1", address="a:1", started_at=AT))
    with capture_logs() as logs:
        assert (
            decode_or_drop(presence, CircuitEvent, "mesh.events.circuit.x", structlog.get_logger())
            is None
        )
    assert "Object missing required field" in logs[0]["reason"]
    assert logs[0]["expected"] == "CircuitEvent"


def test_a_valid_message_passes_decode_or_drop_without_logging() -> None:
    message = HeartbeatRequest(service="s", instance_id="i")
    with capture_logs() as logs:
        result = decode_or_drop(
            encode(message, "msgpack"), HeartbeatRequest, "x", structlog.get_logger()
        )
    assert result == message
    assert logs == []


def test_circuit_state_names_are_exactly_the_breakers_states() -> None:
    # meshgate.bus may not import the toolkit, so the names are repeated
    # there; this keeps the two from drifting apart.
    from meshgate.resilience.breaker_core import CircuitState

    assert set(typing.get_args(CircuitStateName)) == {state.value for state in CircuitState}
