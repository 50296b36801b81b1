"""Registration signing: only the key's holders get a message past `verify`,
and each signed message counts once, within its skew window."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from meshgate.bus.codec import Codec, decode, encode
from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.bus.messages import (
    DeregisterRequest,
    HeartbeatRequest,
    Presence,
    RegisterRequest,
    StatusReport,
)
from meshgate.bus.signing import RegistrationSigner, SignatureError, load_registration_key

KEY = b"0123456789abcdef-test-key"
NOW = 1_700_000_000.0
INSTANCE = ServiceInstance(id="user-1", name="user-service", host="10.0.0.5", port=3001)
REGISTER = RegisterRequest(instance=INSTANCE, ttl=15.0)


def reason_of(signer: RegistrationSigner, message: msgspec.Struct, now: float) -> str:
    with pytest.raises(SignatureError) as caught:
        signer.verify(message, now)
    return caught.value.reason


@pytest.mark.parametrize(
    "message",
    [
        REGISTER,
        HeartbeatRequest(service="user-service", instance_id="user-1"),
        DeregisterRequest(service="user-service", instance_id="user-1"),
        StatusReport(service="user-service", instance_id="user-1", status=InstanceStatus.DOWN),
    ],
    ids=lambda m: type(m).__name__,
)
@pytest.mark.parametrize("codec", ["json", "msgpack"])
def test_a_signed_message_verifies_after_crossing_the_wire(
    message: RegisterRequest | HeartbeatRequest | DeregisterRequest | StatusReport, codec: Codec
) -> None:
    signed = RegistrationSigner(KEY).sign(message, NOW)
    received = decode(encode(signed, codec), type(message))

    RegistrationSigner(KEY).verify(received, NOW + 1.0)

    assert received == signed
    assert signed == msgspec.structs.replace(message, signed_at=NOW, signature=signed.signature)


@pytest.mark.parametrize("codec", ["json", "msgpack"])
def test_whole_numbers_in_float_fields_still_verify_after_crossing_the_wire(codec: Codec) -> None:
    # ttl=60 leaves as `60` and arrives as 60.0; the signature must not care.
    loose = RegisterRequest(
        instance=msgspec.structs.replace(INSTANCE, health_check_interval=10, registered_at=5),
        ttl=60,  # an int, as callers write it
    )
    signed = RegistrationSigner(KEY).sign(loose, NOW)

    RegistrationSigner(KEY).verify(decode(encode(signed, codec), RegisterRequest), NOW)


def test_signing_returns_a_copy_and_leaves_the_message_unsigned() -> None:
    signed = RegistrationSigner(KEY).sign(REGISTER, NOW)

    assert REGISTER.signature is None
    assert REGISTER.signed_at is None
    assert signed.signature is not None
    assert len(signed.signature) == 64


@pytest.mark.parametrize(
    "tampered",
    [
        msgspec.structs.replace(INSTANCE, host="10.6.6.6"),
        msgspec.structs.replace(INSTANCE, port=6666),
    ],
    ids=["host", "port"],
)
def test_a_rogue_address_in_a_signed_registration_is_a_bad_signature(
    tampered: ServiceInstance,
) -> None:
    signer = RegistrationSigner(KEY)
    signed = signer.sign(REGISTER, NOW)
    rogue = msgspec.structs.replace(signed, instance=tampered)

    assert reason_of(signer, rogue, NOW) == "bad signature"


def test_moving_signed_at_breaks_the_signature() -> None:
    signer = RegistrationSigner(KEY)
    signed = signer.sign(REGISTER, NOW - 120)

    assert reason_of(signer, msgspec.structs.replace(signed, signed_at=NOW), NOW) == (
        "bad signature"
    )


def test_a_signature_made_with_another_key_is_bad() -> None:
    signed = RegistrationSigner(b"another-key-of-enough-length").sign(REGISTER, NOW)

    assert reason_of(RegistrationSigner(KEY), signed, NOW) == "bad signature"


def test_a_signed_heartbeat_cannot_pass_as_a_deregistration() -> None:
    signer = RegistrationSigner(KEY)
    heartbeat = signer.sign(HeartbeatRequest(service="user-service", instance_id="user-1"), NOW)
    # Same fields, same values: only the type tells them apart.
    forged = DeregisterRequest(
        service="user-service",
        instance_id="user-1",
        signed_at=heartbeat.signed_at,
        signature=heartbeat.signature,
    )

    assert reason_of(signer, forged, NOW) == "bad signature"


def test_a_non_ascii_signature_is_refused_not_crashed_on() -> None:
    signer = RegistrationSigner(KEY)
    forged = msgspec.structs.replace(signer.sign(REGISTER, NOW), signature="é" * 64)

    assert reason_of(signer, forged, NOW) == "bad signature"


@pytest.mark.parametrize(("signed_at", "signature"), [(None, None), (NOW, None), (None, "ab" * 32)])
def test_a_message_without_signature_or_time_is_unsigned(
    signed_at: float | None, signature: str | None
) -> None:
    message = msgspec.structs.replace(REGISTER, signed_at=signed_at, signature=signature)

    assert reason_of(RegistrationSigner(KEY), message, NOW) == "unsigned"


@pytest.mark.parametrize("offset", [-30.0, 30.0], ids=["past", "future"])
def test_a_message_exactly_max_skew_away_is_still_fresh(offset: float) -> None:
    signer = RegistrationSigner(KEY, max_skew=30.0)

    signer.verify(signer.sign(REGISTER, NOW + offset), NOW)


@pytest.mark.parametrize("offset", [-30.001, 30.001], ids=["too-old", "from-the-future"])
def test_a_message_beyond_max_skew_either_way_is_stale(offset: float) -> None:
    signer = RegistrationSigner(KEY, max_skew=30.0)

    assert reason_of(signer, signer.sign(REGISTER, NOW + offset), NOW) == "stale"


def test_a_message_signed_at_nan_is_stale() -> None:
    signer = RegistrationSigner(KEY)

    assert reason_of(signer, signer.sign(REGISTER, float("nan")), NOW) == "stale"


def test_the_same_signed_message_is_refused_the_second_time() -> None:
    signer = RegistrationSigner(KEY)
    signed = signer.sign(REGISTER, NOW)
    signer.verify(signed, NOW)

    assert reason_of(signer, signed, NOW + 5.0) == "replayed"


def test_a_fresh_signature_of_the_same_content_is_accepted() -> None:
    signer = RegistrationSigner(KEY)
    signer.verify(signer.sign(REGISTER, NOW), NOW)

    signer.verify(signer.sign(REGISTER, NOW + 0.001), NOW + 0.001)


def test_a_refused_message_is_not_remembered() -> None:
    signer = RegistrationSigner(KEY, max_skew=30.0)
    early = signer.sign(REGISTER, NOW + 60.0)
    with pytest.raises(SignatureError):
        signer.verify(early, NOW)  # stale: from too far in the future

    signer.verify(early, NOW + 60.0)


def test_a_replay_is_refused_for_as_long_as_the_message_is_fresh() -> None:
    signer = RegistrationSigner(KEY, max_skew=30.0)
    signed = signer.sign(REGISTER, NOW)
    signer.verify(signed, NOW - 30.0)  # the verifier's clock runs 30 s behind

    assert reason_of(signer, signed, NOW + 30.0) == "replayed"


def test_signatures_are_forgotten_after_twice_the_skew_when_stale_anyway() -> None:
    signer = RegistrationSigner(KEY, max_skew=30.0)
    signed = signer.sign(REGISTER, NOW)
    signer.verify(signed, NOW)
    assert signer.remembered == 1

    # Verifying anything prunes; by then the old message is refused as stale.
    later = NOW + 60.001
    signer.verify(signer.sign(REGISTER, later), later)

    assert signer.remembered == 1
    assert reason_of(signer, signed, later) == "stale"


def test_the_replay_memory_is_bounded() -> None:
    signer = RegistrationSigner(KEY, max_remembered=3)
    for i in range(5):
        signer.verify(signer.sign(REGISTER, NOW + i * 0.001), NOW)

    assert signer.remembered == 3


def test_a_struct_without_signature_fields_cannot_be_signed() -> None:
    presence = Presence(replica_id="gw-1", address="127.0.0.1:8080", started_at=NOW)

    with pytest.raises(TypeError, match="Presence has no signed_at or signature field"):
        RegistrationSigner(KEY).sign(presence, NOW)


def test_a_key_shorter_than_16_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="15 bytes; need at least 16"):
        RegistrationSigner(b"x" * 15)


def test_the_key_file_is_read_stripped(tmp_path: Path) -> None:
    path = tmp_path / "mesh.key"
    path.write_bytes(b"  " + KEY + b"\n")

    assert load_registration_key(path) == KEY


def test_a_short_key_file_is_refused_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "mesh.key"
    path.write_bytes(b"too-short\n")

    with pytest.raises(ValueError, match=re.escape(f"registration key in {path} is 9 bytes")):
        load_registration_key(path)


def test_a_missing_key_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.key"

    expected = f"registration key file {path}: cannot read it"
    with pytest.raises(ValueError, match=re.escape(expected)):
        load_registration_key(path)


def test_max_skew_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_skew"):
        RegistrationSigner(KEY, max_skew=0)
