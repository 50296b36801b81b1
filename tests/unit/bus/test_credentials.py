"""NATS credentials: read from the environment and flags (flags first),
turned into nats-py's connect options, and refused with the option named
when incomplete, contradictory or pointing at a missing file."""

from __future__ import annotations

import argparse
import importlib.util
import re
import ssl
from pathlib import Path

import pytest

from meshgate.bus.credentials import (
    NatsCredentials,
    add_nats_arguments,
    credentials_from_args,
    registration_key_file_from_args,
)
from meshgate.bus.errors import CredentialsError

HAS_NKEYS = importlib.util.find_spec("nkeys") is not None


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_nats_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture
def creds_file(tmp_path: Path) -> Path:
    path = tmp_path / "registry.creds"
    path.write_text("-----BEGIN NATS USER JWT-----\n...\n")
    return path


def test_nothing_set_means_no_connect_options() -> None:
    assert NatsCredentials.from_env({}).connect_options() == {}


def test_from_env_reads_user_and_password() -> None:
    creds = NatsCredentials.from_env(
        {"MESHGATE_NATS_USER": "registry", "MESHGATE_NATS_PASSWORD": "pw"}
    )

    assert creds.connect_options() == {"user": "registry", "password": "pw"}


def test_from_env_reads_file_options_as_paths(creds_file: Path) -> None:
    creds = NatsCredentials.from_env({"MESHGATE_NATS_CREDS": str(creds_file)})

    assert creds.creds_file == creds_file


def test_from_env_treats_empty_variables_as_unset() -> None:
    creds = NatsCredentials.from_env({"MESHGATE_NATS_TOKEN": "", "MESHGATE_NATS_USER": ""})

    assert creds == NatsCredentials()


def test_from_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHGATE_NATS_TOKEN", "from-env")

    assert NatsCredentials.from_env().token == "from-env"


def test_repr_hides_token_and_password() -> None:
    text = repr(NatsCredentials(user="gw", password="hunter2"))

    assert "hunter2" not in text
    assert "password='***'" in text
    assert "user='gw'" in text


def test_user_without_password_names_both_options() -> None:
    with pytest.raises(CredentialsError) as caught:
        NatsCredentials.from_env({"MESHGATE_NATS_USER": "gw"})

    assert str(caught.value) == (
        "--nats-user (MESHGATE_NATS_USER) needs a password: "
        "--nats-password (MESHGATE_NATS_PASSWORD)"
    )


def test_password_without_user_is_refused() -> None:
    with pytest.raises(CredentialsError, match=r"--nats-password .* needs a user: --nats-user"):
        NatsCredentials(password="pw")


def test_a_missing_file_names_the_option_and_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.nk"

    with pytest.raises(CredentialsError) as caught:
        NatsCredentials(nkey_seed_file=missing)

    assert str(caught.value) == (
        f"--nats-nkey-seed (MESHGATE_NATS_NKEY_SEED): {missing} does not exist"
    )


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    where = re.escape(str(tmp_path))
    with pytest.raises(CredentialsError, match=rf"--nats-tls-ca .*: {where} is not a file"):
        NatsCredentials(tls_ca_file=tmp_path)


def test_two_ways_to_authenticate_are_refused(creds_file: Path) -> None:
    with pytest.raises(CredentialsError, match="choose one way to authenticate, not --nats-token"):
        NatsCredentials(token="t", creds_file=creds_file)


def test_a_tls_key_needs_a_certificate(creds_file: Path) -> None:
    with pytest.raises(CredentialsError, match=r"--nats-tls-key .* needs a certificate"):
        NatsCredentials(tls_key_file=creds_file)


def test_an_unreadable_ca_file_names_the_option(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")

    where = re.escape(str(ca))
    with pytest.raises(CredentialsError, match=rf"--nats-tls-ca .*cannot load CA .*{where}"):
        NatsCredentials(tls_ca_file=ca).connect_options()


def test_a_tls_hostname_alone_turns_on_verified_tls() -> None:
    options = NatsCredentials(tls_hostname="nats.internal").connect_options()

    assert options["tls_hostname"] == "nats.internal"
    assert isinstance(options["tls"], ssl.SSLContext)
    assert options["tls"].verify_mode == ssl.CERT_REQUIRED


@pytest.mark.skipif(HAS_NKEYS, reason="nkeys is installed: connect options are built")
def test_a_creds_file_without_the_nkeys_package_says_what_to_install(creds_file: Path) -> None:
    with pytest.raises(CredentialsError, match=r"--nats-creds .* needs the `nkeys` package"):
        NatsCredentials(creds_file=creds_file).connect_options()


@pytest.mark.skipif(not HAS_NKEYS, reason="nats-py needs nkeys for creds files")
def test_a_creds_file_becomes_user_credentials(creds_file: Path) -> None:
    options = NatsCredentials(creds_file=creds_file).connect_options()

    assert options == {"user_credentials": str(creds_file)}


def test_the_flags_default_to_the_local_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MESHGATE_NATS", raising=False)

    args = parse()

    assert (args.nats, args.prefix, args.registration_key_file) == (
        "nats://127.0.0.1:4222",
        "mesh",
        None,
    )


def test_the_url_defaults_to_meshgate_nats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHGATE_NATS", "nats://bus.internal:4222")

    assert parse().nats == "nats://bus.internal:4222"
    assert parse("--nats", "nats://other:4222").nats == "nats://other:4222"


def test_flags_give_credentials() -> None:
    args = parse("--nats-user", "gw", "--nats-password", "pw", "--nats-tls-hostname", "nats")

    creds = credentials_from_args(args, environ={})

    assert (creds.user, creds.password, creds.tls_hostname) == ("gw", "pw", "nats")


def test_a_flag_beats_its_variable() -> None:
    creds = credentials_from_args(
        parse("--nats-token", "from-flag"), environ={"MESHGATE_NATS_TOKEN": "from-env"}
    )

    assert creds.token == "from-flag"


def test_the_environment_fills_in_when_no_flag_is_given() -> None:
    creds = credentials_from_args(parse(), environ={"MESHGATE_NATS_TOKEN": "from-env"})

    assert creds.token == "from-env"


def test_an_auth_flag_replaces_the_environments_way_to_authenticate() -> None:
    env = {"MESHGATE_NATS_TOKEN": "left-in-the-shell", "MESHGATE_NATS_PASSWORD": "stale"}

    creds = credentials_from_args(parse("--nats-user", "gw", "--nats-password", "pw"), env)

    assert creds.connect_options() == {"user": "gw", "password": "pw"}


def test_tls_options_merge_with_auth_from_flags(tmp_path: Path) -> None:
    env = {"MESHGATE_NATS_TLS_HOSTNAME": "nats.internal", "MESHGATE_NATS_TOKEN": "ignored"}

    creds = credentials_from_args(parse("--nats-token", "t"), env)

    assert (creds.token, creds.tls_hostname) == ("t", "nats.internal")


def test_a_bad_flag_value_is_reported_with_the_flag(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match=r"^--nats-creds \(MESHGATE_NATS_CREDS\): "):
        credentials_from_args(parse("--nats-creds", str(tmp_path / "x.creds")), environ={})


def test_the_registration_key_file_comes_from_the_flag_then_the_environment() -> None:
    env = {"MESHGATE_REGISTRATION_KEY_FILE": "/etc/meshgate/env.key"}

    assert registration_key_file_from_args(parse(), env) == Path("/etc/meshgate/env.key")
    assert registration_key_file_from_args(
        parse("--registration-key-file", "/run/flag.key"), env
    ) == Path("/run/flag.key")
    assert registration_key_file_from_args(parse(), {}) is None
