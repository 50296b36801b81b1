"""Who may change a gateway through its admin API: the pure rules, for peer
addresses a loopback test server cannot produce."""

from __future__ import annotations

import pytest

from meshgate.gateway.admin_auth import bearer_token, check_write_access, is_loopback

TOKEN = "s3cret"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.255.0.9", "::1", "[::1]", "::ffff:127.0.0.1"])
def test_loopback_addresses_are_recognised(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", ["10.0.0.7", "192.168.1.20", "::ffff:10.0.0.7", "2001:db8::1", "fe80::1%eth0", "", "x"]
)
def test_other_addresses_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize("host", ["10.0.0.7", "2001:db8::1", ""])
def test_without_a_token_remote_writes_are_refused_with_403_naming_admin_token(host: str) -> None:
    refusal = check_write_access(None, host, token=None, loopback_only_writes=True)
    assert refusal is not None
    assert refusal.status == 403
    assert "set admin_token" in refusal.message


def test_without_a_token_loopback_writes_are_allowed() -> None:
    assert check_write_access(None, "127.0.0.1", token=None) is None
    assert check_write_access(None, "::1", token=None) is None


def test_without_a_token_and_without_the_loopback_rule_anyone_may_write() -> None:
    assert check_write_access(None, "10.0.0.7", token=None, loopback_only_writes=False) is None


def test_with_a_token_remote_writes_need_it_and_get_in_with_it() -> None:
    assert check_write_access(f"Bearer {TOKEN}", "10.0.0.7", token=TOKEN) is None
    refusal = check_write_access(None, "10.0.0.7", token=TOKEN)
    assert refusal is not None
    assert refusal.status == 401
    assert refusal.headers == ((b"WWW-Authenticate", b'Bearer realm="meshgate-admin"'),)


def test_with_a_token_loopback_is_no_excuse() -> None:
    refusal = check_write_access(None, "127.0.0.1", token=TOKEN, loopback_only_writes=True)
    assert refusal is not None
    assert refusal.status == 401


@pytest.mark.parametrize("header", ["Bearer s3cre", "Bearer s3cret2", "Bearer S3CRET", "s3cret"])
def test_a_wrong_token_is_401_invalid_token_or_missing(header: str) -> None:
    refusal = check_write_access(header, "127.0.0.1", token=TOKEN)
    assert refusal is not None
    assert refusal.status == 401
    challenge = dict(refusal.headers)[b"WWW-Authenticate"]
    assert challenge.startswith(b"Bearer")


def test_the_bearer_scheme_is_case_insensitive_and_the_token_is_not() -> None:
    assert bearer_token("BEARER abc") == "abc"
    assert bearer_token("Bearer") is None
    assert bearer_token("Bearer   ") is None
    assert check_write_access(f"bearer {TOKEN}", "10.0.0.7", token=TOKEN) is None
