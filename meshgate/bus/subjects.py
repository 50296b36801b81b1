"""Every subject meshgate uses, under one configurable prefix, and the token
encoding that lets any route or service name sit in one subject token.

Token encoding. A subject token may not contain ``.``, ``*``, ``>`` or
whitespace, yet route names are paths such as ``/api/users/*`` and versions
carry dots. `encode_token` keeps ``A-Z a-z 0-9 - _ /`` as they are and writes
every other character as ``=XX`` per UTF-8 byte (upper-case hex), like
quoted-printable::

    /api/users/*   ->  /api/users/=2A
    /api/v1.2      ->  /api/v1=2E2
    user-service   ->  user-service

The result is also a valid JetStream KV key, so the same token can name a
route's key in a bucket. The encoding is a bijection: `decode_token` accepts
only tokens that `encode_token` can produce.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

_SAFE = frozenset(string.ascii_letters + string.digits + "-_/")
_HEX_UPPER = frozenset("0123456789ABCDEF")
_FORBIDDEN_IN_TOKEN = frozenset(" \t\r\n\f\v")
_NOT_IN_STREAM_NAME = re.compile(r"[^A-Za-z0-9_-]")


def encode_token(name: str) -> str:
    """`name` as one valid subject token (and KV key).

    >>> encode_token("/api/users/*")
    '/api/users/=2A'
    """
    if not name:
        raise ValueError("an empty name cannot become a subject token")
    parts: list[str] = []
    for char in name:
        if char in _SAFE:
            parts.append(char)
        else:
            parts.extend(f"={byte:02X}" for byte in char.encode("utf-8"))
    return "".join(parts)


def decode_token(token: str) -> str:
    """The name that `encode_token` turned into `token`.

    >>> decode_token("/api/v1=2E2")
    '/api/v1.2'
    """
    raw = bytearray()
    i = 0
    while i < len(token):
        char = token[i]
        if char == "=":
            digits = token[i + 1 : i + 3]
            if len(digits) != 2 or not set(digits) <= _HEX_UPPER:
                raise ValueError(f"{token!r} is not an encoded name: bad escape at {i}")
            raw.append(int(digits, 16))
            i += 3
        elif char in _SAFE:
            raw.append(ord(char))
            i += 1
        else:
            raise ValueError(f"{token!r} is not an encoded name: {char!r} at {i}")
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{token!r} is not an encoded name: {exc.reason}") from exc
    # Without this, "=41" and "A" would both decode to "A" and the mapping
    # would stop being reversible.
    if not name or encode_token(name) != token:
        raise ValueError(f"{token!r} is not the canonical encoding of {name!r}")
    return name


def validate_subject(subject: str, *, wildcards: bool = False) -> None:
    """Raise ValueError unless `subject` is a valid subject (a pattern when
    `wildcards`, where ``*`` is one token and a final ``>`` is one or more).

    >>> validate_subject("mesh.events.>", wildcards=True)
    """
    tokens = subject.split(".")
    for index, token in enumerate(tokens):
        if not token:
            raise ValueError(f"subject {subject!r} has an empty token")
        if _FORBIDDEN_IN_TOKEN.intersection(token):
            raise ValueError(f"subject {subject!r} contains whitespace")
        if token in ("*", ">") and wildcards:
            if token == ">" and index != len(tokens) - 1:
                raise ValueError(f"subject {subject!r}: '>' must be the last token")
            continue
        if "*" in token or ">" in token:
            where = "as whole tokens" if wildcards else "in a subject you publish to"
            raise ValueError(f"subject {subject!r}: wildcards are only allowed {where}")


def subject_matches(pattern: str, subject: str) -> bool:
    """Whether `subject` falls under `pattern`, as a NATS server decides.

    >>> subject_matches("mesh.events.>", "mesh.events.circuit.=2Fapi")
    True
    >>> subject_matches("mesh.events.*", "mesh.events.circuit.=2Fapi")
    False
    """
    wanted = pattern.split(".")
    actual = subject.split(".")
    for index, token in enumerate(wanted):
        if token == ">":
            return len(actual) > index
        if index >= len(actual) or (token != "*" and token != actual[index]):
            return False
    return len(actual) == len(wanted)


@dataclass(frozen=True, slots=True)
class Subjects:
    """The subjects of DESIGN.md's "What crosses the bus", under `prefix`.

    >>> s = Subjects()
    >>> s.circuit_events("/api/users/*")
    'mesh.events.circuit./api/users/=2A'
    >>> s.all_circuit_events, s.registry_register
    ('mesh.events.circuit.*', 'mesh.registry.register')
    >>> s.name_in("mesh.events.circuit./api/users/=2A")
    '/api/users/*'
    """

    prefix: str = "mesh"

    def __post_init__(self) -> None:
        validate_subject(self.prefix)

    # request/reply, served by registry nodes (queue group shares the load)
    @property
    def registry_register(self) -> str:
        return f"{self.prefix}.registry.register"

    @property
    def registry_deregister(self) -> str:
        return f"{self.prefix}.registry.deregister"

    @property
    def registry_heartbeat(self) -> str:
        return f"{self.prefix}.registry.heartbeat"

    @property
    def registry_query(self) -> str:
        return f"{self.prefix}.registry.query"

    @property
    def registry_status(self) -> str:
        return f"{self.prefix}.registry.status"

    @property
    def all_registry_requests(self) -> str:
        return f"{self.prefix}.registry.*"

    # broadcasts
    def registry_events(self, service: str) -> str:
        return f"{self.prefix}.events.registry.{encode_token(service)}"

    def circuit_events(self, route: str) -> str:
        return f"{self.prefix}.events.circuit.{encode_token(route)}"

    def canary_events(self, route: str) -> str:
        return f"{self.prefix}.events.canary.{encode_token(route)}"

    @property
    def config_events(self) -> str:
        return f"{self.prefix}.events.config"

    def metrics(self, route: str) -> str:
        return f"{self.prefix}.metrics.{encode_token(route)}"

    @property
    def presence(self) -> str:
        return f"{self.prefix}.gateway.presence"

    def rate_demand(self, route: str) -> str:
        """Where each replica says how much traffic a route's limit saw on it."""
        return f"{self.prefix}.ratelimit.{encode_token(route)}"

    # request/reply, answered by any one gateway replica (queue group)
    @property
    def circuit_control(self) -> str:
        """Where a starting replica asks for the circuits' current states."""
        return f"{self.prefix}.control.circuits"

    # request/reply, served by the canary leader
    def canary_control(self, route: str) -> str:
        return f"{self.prefix}.control.canary.{encode_token(route)}"

    # wildcards for subscribers
    @property
    def all_events(self) -> str:
        return f"{self.prefix}.events.>"

    @property
    def all_registry_events(self) -> str:
        return f"{self.prefix}.events.registry.*"

    @property
    def all_circuit_events(self) -> str:
        return f"{self.prefix}.events.circuit.*"

    @property
    def all_canary_events(self) -> str:
        return f"{self.prefix}.events.canary.*"

    @property
    def all_metrics(self) -> str:
        return f"{self.prefix}.metrics.*"

    @property
    def all_rate_demand(self) -> str:
        return f"{self.prefix}.ratelimit.*"

    @property
    def all_canary_control(self) -> str:
        return f"{self.prefix}.control.canary.*"

    @property
    def events_stream(self) -> str:
        """JetStream stream that keeps `all_events` for replay: ``MESH_EVENTS``
        for the default prefix."""
        # stream names allow fewer characters than subjects do
        return f"{_NOT_IN_STREAM_NAME.sub('_', self.prefix).upper()}_EVENTS"

    @property
    def canary_bucket(self) -> str:
        """JetStream KV bucket of the canary controllers: their leader lease
        and each rollout's state. ``MESH_CANARY`` for the default prefix."""
        return f"{_NOT_IN_STREAM_NAME.sub('_', self.prefix).upper()}_CANARY"

    @property
    def routes_bucket(self) -> str:
        """JetStream KV bucket of the routes added, changed or removed at
        runtime: ``MESH_ROUTES`` for the default prefix."""
        return f"{_NOT_IN_STREAM_NAME.sub('_', self.prefix).upper()}_ROUTES"

    def name_in(self, subject: str) -> str:
        """The service or route name carried by the last token of `subject`."""
        return decode_token(subject.rsplit(".", 1)[-1])
