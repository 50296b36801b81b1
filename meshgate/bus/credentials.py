"""How a process proves itself to NATS: token, user/password, nkey seed or
creds file, and TLS — from flags, the environment, or code.

Every node's command module does the same three things::

    parser = argparse.ArgumentParser(prog="meshgate registry")
    add_nats_arguments(parser)
    args = parser.parse_args()
    bus = await Bus.connect(args.nats, prefix=args.prefix,
                            credentials=credentials_from_args(args))

A flag beats its environment variable. Secrets are better passed in the
environment (or a file) than as flags, which any user can read in ``ps``.

>>> creds = NatsCredentials.from_env({"MESHGATE_NATS_TOKEN": "s3cret"})
>>> creds.connect_options()
{'token': 's3cret'}
>>> creds                          # secrets stay out of logs
NatsCredentials(token='***', user=None, password=None, nkey_seed_file=None, \
creds_file=None, tls_ca_file=None, tls_cert_file=None, tls_key_file=None, tls_hostname=None)
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from meshgate.bus.connection import DEFAULT_URL
from meshgate.bus.errors import CredentialsError
from meshgate.bus.local_cluster_file import read_local_cluster
from meshgate.bus.signing import RegistrationSigner, load_registration_key

URL_ENV = "MESHGATE_NATS"
REGISTRATION_KEY_FILE_ENV = "MESHGATE_REGISTRATION_KEY_FILE"


@dataclasses.dataclass(frozen=True)
class _Option:
    flag: str
    env: str

    def __str__(self) -> str:
        return f"{self.flag} ({self.env})"


# One table, so that flags, variables and error messages cannot drift apart.
_OPTIONS: dict[str, _Option] = {
    "token": _Option("--nats-token", "MESHGATE_NATS_TOKEN"),
    "user": _Option("--nats-user", "MESHGATE_NATS_USER"),
    "password": _Option("--nats-password", "MESHGATE_NATS_PASSWORD"),
    "nkey_seed_file": _Option("--nats-nkey-seed", "MESHGATE_NATS_NKEY_SEED"),
    "creds_file": _Option("--nats-creds", "MESHGATE_NATS_CREDS"),
    "tls_ca_file": _Option("--nats-tls-ca", "MESHGATE_NATS_TLS_CA"),
    "tls_cert_file": _Option("--nats-tls-cert", "MESHGATE_NATS_TLS_CERT"),
    "tls_key_file": _Option("--nats-tls-key", "MESHGATE_NATS_TLS_KEY"),
    "tls_hostname": _Option("--nats-tls-hostname", "MESHGATE_NATS_TLS_HOSTNAME"),
}
_FILE_FIELDS = ("nkey_seed_file", "creds_file", "tls_ca_file", "tls_cert_file", "tls_key_file")
_AUTH_FIELDS = ("token", "user", "password", "nkey_seed_file", "creds_file")
_SECRET_FIELDS = ("token", "password")
_TLS_FIELDS = ("tls_ca_file", "tls_cert_file", "tls_key_file", "tls_hostname")


@dataclasses.dataclass(frozen=True, kw_only=True, repr=False)
class NatsCredentials:
    """What a connection presents to the server; all optional, at most one
    way to authenticate (token, user/password, nkey seed, or creds file),
    TLS on top of any of them.

    Construction checks that files exist and that the combination makes
    sense, so a typo fails at startup with the option named:

    >>> NatsCredentials(user="registry")
    Traceback (most recent call last):
    ...
    meshgate.bus.errors.CredentialsError: --nats-user (MESHGATE_NATS_USER) needs a password: \
--nats-password (MESHGATE_NATS_PASSWORD)
    >>> NatsCredentials(creds_file=Path("/nowhere/registry.creds"))
    Traceback (most recent call last):
    ...
    meshgate.bus.errors.CredentialsError: --nats-creds (MESHGATE_NATS_CREDS): \
/nowhere/registry.creds does not exist
    """

    token: str | None = None
    user: str | None = None
    password: str | None = None
    nkey_seed_file: Path | None = None
    creds_file: Path | None = None
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_hostname: str | None = None

    def __post_init__(self) -> None:
        for name in _FILE_FIELDS:
            path: Path | None = getattr(self, name)
            if path is None:
                continue
            if not path.exists():
                raise CredentialsError(f"{_OPTIONS[name]}: {path} does not exist")
            if not path.is_file():
                raise CredentialsError(f"{_OPTIONS[name]}: {path} is not a file")
        if (self.user is None) != (self.password is None):
            given, missing = ("user", "password") if self.password is None else ("password", "user")
            raise CredentialsError(f"{_OPTIONS[given]} needs a {missing}: {_OPTIONS[missing]}")
        methods = [
            str(_OPTIONS[name])
            for name in ("token", "user", "nkey_seed_file", "creds_file")
            if getattr(self, name) is not None
        ]
        if len(methods) > 1:
            # The server checks only the method it is configured for, so a second
            # one is a mistake that would show up later as a puzzling refusal.
            raise CredentialsError(f"choose one way to authenticate, not {' and '.join(methods)}")
        if self.tls_key_file is not None and self.tls_cert_file is None:
            raise CredentialsError(
                f"{_OPTIONS['tls_key_file']} needs a certificate: {_OPTIONS['tls_cert_file']}"
            )

    def __repr__(self) -> str:
        # Credentials end up in logs and tracebacks; their secrets must not.
        shown = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in _SECRET_FIELDS and value is not None:
                value = "***"
            shown.append(f"{field.name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NatsCredentials:
        """Credentials from ``MESHGATE_NATS_TOKEN``, ``_USER``, ``_PASSWORD``,
        ``_NKEY_SEED``, ``_CREDS``, ``_TLS_CA``, ``_TLS_CERT``, ``_TLS_KEY`` and
        ``_TLS_HOSTNAME`` (file options hold paths); empty variables count as
        unset. `environ` defaults to `os.environ`.

        >>> env = {"MESHGATE_NATS_USER": "gw", "MESHGATE_NATS_PASSWORD": "pw"}
        >>> NatsCredentials.from_env(env).user
        'gw'
        """
        env = os.environ if environ is None else environ
        return cls._from_values({name: env.get(option.env) for name, option in _OPTIONS.items()})

    @classmethod
    def _from_values(cls, values: Mapping[str, str | None]) -> NatsCredentials:
        fields: dict[str, Any] = {}
        for name, value in values.items():
            if not value:
                continue
            fields[name] = Path(value).expanduser() if name in _FILE_FIELDS else value
        return cls(**fields)

    @property
    def uses_tls(self) -> bool:
        """Whether any TLS option is set (a ``tls://`` URL turns TLS on by itself)."""
        return any(getattr(self, name) is not None for name in _TLS_FIELDS)

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for nats-py's ``Client.connect``; empty when
        nothing is set.

        >>> NatsCredentials(user="gw", password="pw").connect_options()
        {'user': 'gw', 'password': 'pw'}
        >>> sorted(NatsCredentials(tls_hostname="nats.internal").connect_options())
        ['tls', 'tls_hostname']
        """
        options: dict[str, Any] = {}
        if self.token is not None:
            options["token"] = self.token
        if self.user is not None:
            options["user"] = self.user
            options["password"] = self.password
        if self.nkey_seed_file is not None:
            _require_nkeys("nkey_seed_file")
            options["nkeys_seed"] = str(self.nkey_seed_file)
        if self.creds_file is not None:
            _require_nkeys("creds_file")
            options["user_credentials"] = str(self.creds_file)
        if self.uses_tls:
            options["tls"] = self.ssl_context()
        if self.tls_hostname is not None:
            options["tls_hostname"] = self.tls_hostname
        return options

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context that verifies the server against `tls_ca_file`
        (the system's CAs when unset) and presents `tls_cert_file` when set."""
        try:
            context = ssl.create_default_context(
                cafile=None if self.tls_ca_file is None else str(self.tls_ca_file)
            )
        except (ssl.SSLError, OSError) as exc:
            raise CredentialsError(
                f"{_OPTIONS['tls_ca_file']}: cannot load CA certificates from "
                f"{self.tls_ca_file}: {exc}"
            ) from exc
        if self.tls_cert_file is not None:
            try:
                context.load_cert_chain(
                    str(self.tls_cert_file),
                    None if self.tls_key_file is None else str(self.tls_key_file),
                )
            except (ssl.SSLError, OSError) as exc:
                raise CredentialsError(
                    f"{_OPTIONS['tls_cert_file']} / {_OPTIONS['tls_key_file']}: cannot load "
                    f"the client certificate {self.tls_cert_file} "
                    f"(key {self.tls_key_file or 'in the same file'}): {exc}"
                ) from exc
        return context


def _require_nkeys(name: str) -> None:
    # nats-py signs the server's nonce with the `nkeys` package, an optional
    # dependency of its own (nats-py[nkeys]); without it connect fails deep inside.
    if importlib.util.find_spec("nkeys") is None:
        raise CredentialsError(
            f"{_OPTIONS[name]} needs the `nkeys` package (pip install 'nats-py[nkeys]')"
        )


def default_nats_url() -> str:
    """$MESHGATE_NATS, else the NATS of a `meshgate up` running on this
    machine, else the conventional local address."""
    local = read_local_cluster()
    return os.environ.get(URL_ENV) or (local.nats_url if local is not None else DEFAULT_URL)


def add_nats_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--nats``, the credential flags, ``--prefix`` and
    ``--registration-key-file`` to `parser`, in a group of their own.

    >>> parser = argparse.ArgumentParser()
    >>> add_nats_arguments(parser)
    >>> args = parser.parse_args(["--nats", "nats://bus:4222", "--nats-user", "gw",
    ...                           "--nats-password", "pw"])
    >>> args.nats, args.prefix, credentials_from_args(args, environ={}).user
    ('nats://bus:4222', 'mesh', 'gw')
    """
    group = parser.add_argument_group(
        "NATS",
        "Flags beat their MESHGATE_* variables. Prefer the variables (or files) for "
        "secrets: flags are visible to every user in `ps`.",
    )
    group.add_argument(
        "--nats",
        metavar="URL",
        default=default_nats_url(),
        help=f"NATS server URL (env {URL_ENV}; default: the running `meshgate up` cluster's, "
        f"else {DEFAULT_URL})",
    )
    helps = {
        "token": ("TOKEN", "authenticate with a token"),
        "user": ("USER", "authenticate as USER (with --nats-password)"),
        "password": ("PASSWORD", "password for --nats-user"),
        "nkey_seed_file": ("FILE", "authenticate with the nkey seed in FILE"),
        "creds_file": ("FILE", "authenticate with a creds file (JWT + nkey seed)"),
        "tls_ca_file": ("FILE", "verify the server against the CA certificates in FILE"),
        "tls_cert_file": ("FILE", "present the client certificate in FILE (mutual TLS)"),
        "tls_key_file": ("FILE", "private key of --nats-tls-cert, when not in that file"),
        "tls_hostname": ("NAME", "expect NAME in the server's certificate"),
    }
    for name, option in _OPTIONS.items():
        metavar, text = helps[name]
        group.add_argument(
            option.flag,
            dest=f"nats_{name}",
            metavar=metavar,
            default=None,
            help=f"{text} (env {option.env})",
        )
    group.add_argument(
        "--prefix",
        default="mesh",
        help="subject prefix shared by the whole mesh (default %(default)s)",
    )
    group.add_argument(
        "--registration-key-file",
        metavar="FILE",
        type=Path,
        default=None,
        help=(
            "shared secret that signs registrations and heartbeats; the registry refuses "
            f"unsigned ones when it has one (env {REGISTRATION_KEY_FILE_ENV})"
        ),
    )


def credentials_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> NatsCredentials:
    """The credentials that `args` (parsed with `add_nats_arguments`) and the
    environment give, flags first.

    The way to authenticate is taken whole from one side: when any of the
    token, user, password, nkey or creds flags is given, the environment's
    are ignored, so ``--nats-user`` never meets a ``MESHGATE_NATS_TOKEN``
    left in the shell. TLS options merge one by one.

    >>> parser = argparse.ArgumentParser()
    >>> add_nats_arguments(parser)
    >>> args = parser.parse_args(["--nats-token", "from-flag"])
    >>> env = {"MESHGATE_NATS_USER": "u", "MESHGATE_NATS_PASSWORD": "p"}
    >>> credentials_from_args(args, environ=env).connect_options()
    {'token': 'from-flag'}
    """
    env = os.environ if environ is None else environ
    flags = {name: getattr(args, f"nats_{name}", None) for name in _OPTIONS}
    from_env = {name: env.get(option.env) for name, option in _OPTIONS.items()}
    auth_from_flags = any(flags[name] for name in _AUTH_FIELDS)
    values: dict[str, str | None] = {}
    for name in _OPTIONS:
        if name in _AUTH_FIELDS:
            values[name] = flags[name] if auth_from_flags else from_env[name]
        else:
            values[name] = flags[name] or from_env[name]
    return NatsCredentials._from_values(values)


def registration_key_file_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> Path | None:
    """``--registration-key-file``, else ``MESHGATE_REGISTRATION_KEY_FILE``, else None.
    Read it with `meshgate.bus.signing.load_registration_key`.

    >>> parser = argparse.ArgumentParser()
    >>> add_nats_arguments(parser)
    >>> registration_key_file_from_args(parser.parse_args([]),
    ...                                 environ={"MESHGATE_REGISTRATION_KEY_FILE": "/etc/mesh.key"})
    PosixPath('/etc/mesh.key')
    """
    path: Path | None = getattr(args, "registration_key_file", None)
    if path is not None:
        return path
    env = os.environ if environ is None else environ
    value = env.get(REGISTRATION_KEY_FILE_ENV)
    return Path(value).expanduser() if value else None


def registration_signer_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> RegistrationSigner | None:
    """A signer holding the key that ``--registration-key-file`` (or
    ``MESHGATE_REGISTRATION_KEY_FILE``) names; None when neither is set.

    Raises ValueError, naming the file, when it cannot be read or its key is
    too short, so a process fails at start rather than at its first request.

    >>> parser = argparse.ArgumentParser()
    >>> add_nats_arguments(parser)
    >>> registration_signer_from_args(parser.parse_args([]), environ={}) is None
    True
    >>> registration_signer_from_args(
    ...     parser.parse_args(["--registration-key-file", "/nowhere/mesh.key"]))
    Traceback (most recent call last):
    ...
    ValueError: registration key file /nowhere/mesh.key: cannot read it (FileNotFoundError)
    """
    path = registration_key_file_from_args(args, environ)
    if path is None:
        return None
    return RegistrationSigner(load_registration_key(path))
