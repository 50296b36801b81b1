"""`meshgate registry` and `meshgate health` take the shared NATS options
(`meshgate.bus.credentials`) and fail at start, with exit code 2 and one
line, on a registration key file they cannot use, before touching NATS."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from meshgate.bus.credentials import credentials_from_args, registration_signer_from_args
from registry_node import command as registry_command
from registry_node import health_command

COMMANDS = [
    pytest.param(registry_command, "meshgate registry", id="registry"),
    pytest.param(health_command, "meshgate health", id="health"),
]


@pytest.fixture(autouse=True)
def no_meshgate_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller's shell may set MESHGATE_*; these tests speak of flags."""
    for name in list(os.environ):
        if name.startswith("MESHGATE_"):
            monkeypatch.delenv(name)


def parser_of(module: ModuleType) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    configure: Callable[[argparse.ArgumentParser], None] = module.configure
    configure(parser)
    return parser


@pytest.mark.parametrize(("module", "name"), COMMANDS)
def test_the_command_takes_the_credential_flags(module: ModuleType, name: str) -> None:
    args = parser_of(module).parse_args(
        ["--nats", "nats://bus:4222", "--nats-user", "registry", "--nats-password", "pw"]
    )

    credentials = credentials_from_args(args, environ={})

    assert (args.nats, args.prefix) == ("nats://bus:4222", "mesh")
    assert (credentials.user, credentials.password) == ("registry", "pw")


@pytest.mark.parametrize(("module", "name"), COMMANDS)
def test_the_nats_url_still_defaults_to_meshgate_nats(
    module: ModuleType, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESHGATE_NATS", "nats://from-env:4222")

    assert parser_of(module).parse_args([]).nats == "nats://from-env:4222"


@pytest.mark.parametrize(("module", "name"), COMMANDS)
def test_a_registration_key_file_becomes_a_signer(
    module: ModuleType, name: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "registration.key"
    key_file.write_text("0123456789abcdef-key\n")

    args = parser_of(module).parse_args(["--registration-key-file", str(key_file)])

    assert registration_signer_from_args(args, environ={}) is not None


@pytest.mark.parametrize(("module", "name"), COMMANDS)
def test_a_too_short_registration_key_exits_2_before_connecting(
    module: ModuleType, name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "registration.key"
    key_file.write_text("short\n")
    # Port 9 (discard) on loopback: nothing to connect to, were it tried.
    args = parser_of(module).parse_args(
        ["--nats", "nats://127.0.0.1:9", "--registration-key-file", str(key_file)]
    )

    assert module.run(args) == 2

    assert capsys.readouterr().err.splitlines() == [
        f"{name}: registration key in {key_file} is 5 bytes; need at least 16 "
        "(e.g. `openssl rand -hex 32 > FILE`)"
    ]


@pytest.mark.parametrize(("module", "name"), COMMANDS)
def test_half_a_user_password_pair_exits_2_naming_the_missing_option(
    module: ModuleType, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parser_of(module).parse_args(["--nats", "nats://127.0.0.1:9", "--nats-user", "gw"])

    assert module.run(args) == 2

    assert capsys.readouterr().err.splitlines() == [
        f"{name}: --nats-user (MESHGATE_NATS_USER) needs a password: "
        "--nats-password (MESHGATE_NATS_PASSWORD)"
    ]
