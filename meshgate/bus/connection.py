"""`Bus`: the `MessageBus` over NATS (nats-py), plus thin JetStream helpers.

nats-py runs on asyncio only, so `Bus` does too; code that must also run
under trio uses `InProcessBus`, or runs its process on anyio's asyncio
backend (every node does).

The connection reconnects forever by default and logs ``bus.disconnected``
and ``bus.reconnected``; nats-py re-subscribes on reconnect and buffers what
is published meanwhile (up to its pending size), so a node rides out a NATS
restart without code of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import ssl
from collections.abc import Iterator, Sequence
from types import TracebackType, UnionType
from typing import TYPE_CHECKING, Self, TypeVar
from urllib.parse import ParseResult, urlsplit

import anyio
import msgspec
import nats.errors
import nats.js.errors
import structlog
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as _NatsPySubscription
from nats.js import JetStreamContext
from nats.js.api import StreamInfo
from nats.js.kv import KeyValue
from structlog.typing import FilteringBoundLogger

from meshgate.bus.codec import Codec, decode, encode
from meshgate.bus.dispatch import answer, deliver
from meshgate.bus.errors import (
    BusAuthError,
    BusUnavailableError,
    MalformedMessageError,
    NoRespondersError,
    RemoteError,
    RequestTimeoutError,
)
from meshgate.bus.nats_server import MIN_SERVER_VERSION, require_version
from meshgate.bus.protocol import Handler, Responder
from meshgate.bus.subjects import Subjects, validate_subject

if TYPE_CHECKING:
    from meshgate.bus.credentials import NatsCredentials

M = TypeVar("M")
Q = TypeVar("Q")
R = TypeVar("R")

DEFAULT_URL = "nats://127.0.0.1:4222"

# The NATS services ("micro") convention, so other NATS tools read our errors.
ERROR_HEADER = "Nats-Service-Error"
ERROR_CODE_HEADER = "Nats-Service-Error-Code"
TTL_HEADER = "Nats-TTL"
KV_OPERATION_HEADER = "KV-Operation"
MARKER_HEADER = "Nats-Marker-Reason"
EXPECTED_LAST_SUBJECT_SEQUENCE_HEADER = "Nats-Expected-Last-Subject-Sequence"
_WRONG_LAST_SEQUENCE_CODES = (10071, 10164)
_KV_KEY = re.compile(r"[-/_=.A-Za-z0-9]+")
_CLOSE_TIMEOUT = 5.0


@contextlib.contextmanager
def _unavailable_when_closed() -> Iterator[None]:
    try:
        yield
    except (
        nats.errors.ConnectionClosedError,
        nats.errors.ConnectionDrainingError,
        nats.errors.OutboundBufferLimitError,
    ) as exc:
        raise BusUnavailableError(f"NATS connection unusable: {type(exc).__name__}") from exc


def _address(url: ParseResult | None) -> str | None:
    """The ``host:port`` of a connected URL, for logs: without the
    ``user:pass@`` that a URL may carry."""
    return None if url is None else url.netloc.rpartition("@")[2]


def redact_servers(servers: Sequence[str]) -> str:
    """`servers` for an error message or a log, passwords and tokens in
    URLs blanked out.

    >>> redact_servers(["nats://gw:s3cret@10.0.0.1:4222", "nats://10.0.0.2:4222"])
    'nats://gw:***@10.0.0.1:4222, nats://10.0.0.2:4222'
    """
    shown = []
    for server in servers:
        parts = urlsplit(server if "://" in server else f"nats://{server}")  # as nats-py reads it
        if parts.password is not None:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
            server = parts._replace(netloc=netloc).geturl()
        elif "@" in parts.netloc:  # a token alone: nats://TOKEN@host
            server = parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()
        shown.append(server)
    return ", ".join(shown)


# What the server says (``-ERR '...'``) when it turns credentials down.
_REFUSALS = ("authorization violation", "authentication expired", "authentication revoked")


def _refusal(exc: Exception, servers: Sequence[str]) -> BusAuthError | None:
    """A `BusAuthError` when `exc` means the server will never let us in with
    these settings (as opposed to "not up yet"), else None."""
    where = redact_servers(servers)
    if isinstance(exc, nats.errors.AuthorizationError) or (
        isinstance(exc, nats.errors.Error) and any(r in str(exc).lower() for r in _REFUSALS)
    ):
        return BusAuthError(
            f"NATS at {where} refused authorization ({exc}): check the token, user/password, "
            "nkey seed or creds file (--nats-token, --nats-user/--nats-password, "
            "--nats-nkey-seed, --nats-creds or their MESHGATE_NATS_* variables)"
        )
    if isinstance(
        exc,
        ssl.SSLError
        | nats.errors.SecureConnRequiredError
        | nats.errors.SecureConnWantedError
        | nats.errors.SecureConnFailedError,
    ):
        return BusAuthError(
            f"TLS with NATS at {where} failed ({exc!r}): check --nats-tls-ca, "
            "--nats-tls-cert/--nats-tls-key and --nats-tls-hostname"
        )
    return None


class NatsSubscription:
    """One subscription on a `Bus`."""

    def __init__(self, subscription: _NatsPySubscription, subject: str) -> None:
        self._subscription = subscription
        self._subject = subject

    @property
    def subject(self) -> str:
        return self._subject

    async def unsubscribe(self) -> None:
        # Closed connections and repeated calls have nothing left to stop.
        with contextlib.suppress(nats.errors.Error):
            await self._subscription.unsubscribe()


class Bus:
    """Typed messaging over NATS.

    >>> from meshgate.bus.messages import QueryReply, QueryRequest
    >>> async def instances_of(url: str, service: str) -> QueryReply:
    ...     async with await Bus.connect(url) as bus:
    ...         return await bus.request(bus.subjects.registry_query,
    ...                                  QueryRequest(service=service), QueryReply)
    """

    def __init__(
        self,
        client: NatsClient,
        subjects: Subjects,
        *,
        codec: Codec = "json",
        log: FilteringBoundLogger | None = None,
    ) -> None:
        """Wrap a connected nats-py client; `Bus.connect` is the usual way in."""
        self._client = client
        self._subjects = subjects
        self._codec = codec
        self._log: FilteringBoundLogger = log or structlog.get_logger("meshgate.bus")
        self._jetstream: JetStreamContext | None = None

    @classmethod
    async def connect(
        cls,
        url: str | Sequence[str] = DEFAULT_URL,
        *,
        prefix: str = "mesh",
        name: str | None = None,
        codec: Codec = "json",
        max_reconnect_attempts: int = -1,
        reconnect_wait: float = 1.0,
        connect_timeout: float = 2.0,
        wait_for_server: bool = False,
        log: FilteringBoundLogger | None = None,
        credentials: NatsCredentials | None = None,
    ) -> Bus:
        """Connect to `url` (one or several servers of a cluster), presenting
        `credentials` when given.

        Once connected, a lost connection is retried every `reconnect_wait`
        seconds, forever when `max_reconnect_attempts` is -1. The first
        connection gives up with `BusUnavailableError` after two tries per
        server, unless `wait_for_server`, which waits for one to come up.
        A server that refuses the credentials or the TLS handshake makes it
        raise `BusAuthError` at once, waiting or not.

        >>> from meshgate.bus.credentials import NatsCredentials
        >>> async def connect_with_token(url: str, token: str) -> Bus:
        ...     return await Bus.connect(url, credentials=NatsCredentials(token=token))
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError("Bus needs asyncio (nats-py); under trio use InProcessBus") from None
        subjects = Subjects(prefix)
        log = log or structlog.get_logger("meshgate.bus")
        if name is not None:
            log = log.bind(connection=name)
        client = NatsClient()

        async def on_disconnected() -> None:
            if not client.is_closed:  # nats-py also calls this when we close on purpose
                log.warning("bus.disconnected")

        async def on_reconnected() -> None:
            where = client.connected_url
            log.info("bus.reconnected", server=_address(where))

        connecting = True

        async def on_error(exc: Exception) -> None:
            # While connecting, nats-py awaits this callback inside its retry
            # loop, so raising here is the one way to stop it retrying
            # (forever, with wait_for_server) what can never succeed.
            if connecting and (refusal := _refusal(exc, servers)) is not None:
                raise refusal
            log.warning("bus.connection_error", error=repr(exc))

        async def on_closed() -> None:
            if not connecting:  # a refused first connection was never open
                log.info("bus.closed")

        servers = [url] if isinstance(url, str) else list(url)
        options = {} if credentials is None else credentials.connect_options()
        # nats-py applies the reconnect limit to the first connection too, so
        # "forever" would hang here; 1 (the smallest limit it honours) means
        # two tries per server. The real limit is set once connected.
        first_attempts = -1 if wait_for_server else 1
        try:
            await client.connect(
                servers=servers,
                name=name,
                max_reconnect_attempts=first_attempts,
                # annotated int, but nats-py only hands them to asyncio as seconds
                reconnect_time_wait=reconnect_wait,  # type: ignore[arg-type]
                connect_timeout=connect_timeout,  # type: ignore[arg-type]
                drain_timeout=int(_CLOSE_TIMEOUT),
                disconnected_cb=on_disconnected,
                reconnected_cb=on_reconnected,
                error_cb=on_error,
                closed_cb=on_closed,
                **options,
            )
        except BusAuthError:
            await client.close()  # the socket nats-py had open when it was refused
            raise
        except (nats.errors.NoServersError, OSError, TimeoutError) as exc:
            shown = redact_servers(servers)
            raise BusUnavailableError(f"cannot connect to {shown}: {exc!r}") from exc
        connecting = False
        client.options["max_reconnect_attempts"] = max_reconnect_attempts
        where = client.connected_url
        log.info(
            "bus.connected",
            server=_address(where),
            version=_version_of(client),
        )
        return cls(client, subjects, codec=codec, log=log)

    @property
    def subjects(self) -> Subjects:
        return self._subjects

    @property
    def is_connected(self) -> bool:
        return self._client.is_connected

    @property
    def server_version(self) -> str | None:
        """Version of the server we are (or were last) connected to; None if unknown."""
        return _version_of(self._client)

    @property
    def nats_client(self) -> NatsClient:
        """The nats-py client underneath, for what this class does not wrap."""
        return self._client

    async def publish(self, subject: str, message: msgspec.Struct) -> None:
        validate_subject(subject)
        with _unavailable_when_closed():
            await self._client.publish(subject, encode(message, self._codec))

    async def request(
        self,
        subject: str,
        message: msgspec.Struct,
        reply_type: type[R],
        *,
        timeout: float = 2.0,  # noqa: ASYNC109 - nats-py bounds the reply wait with it
    ) -> R:
        validate_subject(subject)
        with _unavailable_when_closed():
            try:
                reply = await self._client.request(
                    subject, encode(message, self._codec), timeout=timeout
                )
            except nats.errors.NoRespondersError:
                raise NoRespondersError(subject) from None
            except nats.errors.TimeoutError:
                raise RequestTimeoutError(subject, timeout) from None
        headers = reply.headers or {}
        if ERROR_CODE_HEADER in headers:
            raise RemoteError(subject, headers[ERROR_CODE_HEADER], headers.get(ERROR_HEADER, ""))
        try:
            return decode(reply.data, reply_type)
        except msgspec.DecodeError as exc:
            raise MalformedMessageError(f"reply on {subject!r}: {exc}") from exc

    async def subscribe(
        self,
        subject: str,
        message_type: type[M] | UnionType,
        handler: Handler[M],
        *,
        queue: str | None = None,
    ) -> NatsSubscription:
        async def on_message(msg: Msg) -> None:
            await deliver(msg.data, msg.subject, message_type, handler, self._log)

        return await self._subscribe(subject, queue, on_message)

    async def serve(
        self,
        subject: str,
        request_type: type[Q],
        handler: Responder[Q],
        *,
        queue: str | None = None,
    ) -> NatsSubscription:
        async def on_request(msg: Msg) -> None:
            reply = await answer(
                msg.data, msg.subject, request_type, handler, self._codec, self._log
            )
            if not msg.reply:
                return  # published, not requested: nobody waits for an answer
            headers = None
            if reply.error is not None:
                code, description = reply.error
                # a header value must stay on one line
                one_line = " ".join(description.splitlines())
                headers = {ERROR_CODE_HEADER: code, ERROR_HEADER: one_line}
            try:
                await self._client.publish(msg.reply, reply.data, headers=headers)
            except nats.errors.Error as exc:
                self._log.warning("bus.reply_failed", subject=msg.subject, error=repr(exc))

        return await self._subscribe(subject, queue, on_request)

    async def _subscribe(
        self, subject: str, queue: str | None, callback: Handler[Msg]
    ) -> NatsSubscription:
        validate_subject(subject, wildcards=True)
        with _unavailable_when_closed():
            subscription = await self._client.subscribe(subject, queue=queue or "", cb=callback)
        return NatsSubscription(subscription, subject)

    async def flush(self, timeout: float = 2.0) -> None:  # noqa: ASYNC109 - nats-py's own
        """Wait until the server has processed everything sent so far."""
        with _unavailable_when_closed():
            await self._client.flush(timeout=math.ceil(timeout))

    # --- JetStream -----------------------------------------------------------

    @property
    def jetstream(self) -> JetStreamContext:
        if self._jetstream is None:
            self._jetstream = self._client.jetstream()
        return self._jetstream

    async def ensure_stream(
        self,
        name: str,
        subjects: Sequence[str],
        *,
        max_age: float | None = None,
        max_msgs: int | None = None,
        max_bytes: int | None = None,
    ) -> StreamInfo:
        """The stream `name` capturing `subjects`: created with the given
        limits when missing, its subjects updated when they differ.

        >>> async def keep_events(bus: Bus) -> StreamInfo:
        ...     return await bus.ensure_stream(bus.subjects.events_stream,
        ...                                    [bus.subjects.all_events], max_age=24 * 3600)
        """
        js = self.jetstream
        try:
            info = await js.stream_info(name)
        except nats.js.errors.NotFoundError:
            return await js.add_stream(
                name=name,
                subjects=list(subjects),
                max_age=max_age,
                max_msgs=max_msgs,
                max_bytes=max_bytes,
            )
        if set(info.config.subjects or ()) == set(subjects):
            return info
        return await js.update_stream(info.config.evolve(subjects=list(subjects)))

    async def key_value(
        self,
        bucket: str,
        *,
        ttl: float | None = None,
        history: int = 1,
        limit_marker_ttl: float | None = None,
    ) -> KeyValue:
        """The KV bucket `bucket`, created when missing.

        `ttl` is the bucket's maximum age for every key; per-key TTLs go
        through `kv_put`. nats-py 2.16 creates every bucket with
        ``allow_msg_ttl`` on, so per-key TTL needs nothing more here.
        `limit_marker_ttl` (seconds, >= 1) makes the server leave a marker
        when a key expires, so watchers see expiry as a ``PURGE`` entry;
        without it a key vanishes silently. Options apply only on creation;
        an existing bucket is returned as it is.

        >>> async def leases(bus: Bus) -> KeyValue:
        ...     return await bus.key_value("mesh_instances", limit_marker_ttl=5)
        """
        js = self.jetstream
        try:
            return await js.key_value(bucket)
        except nats.js.errors.BucketNotFoundError:
            return await js.create_key_value(
                bucket=bucket, ttl=ttl, history=history, limit_marker_ttl=limit_marker_ttl
            )

    async def kv_put(
        self,
        bucket: str,
        key: str,
        value: bytes,
        *,
        ttl: float | None = None,
        last: int | None = None,
    ) -> int:
        """Put `value` under `key` and return its revision, optionally with a
        per-key `ttl` and only if the key's latest revision is `last`.

        nats-py's ``KeyValue.put`` takes no TTL (only ``create`` does), which
        a lease renewal needs, hence this. The server counts TTLs in whole
        seconds of at least 1, so `ttl` is rounded up. `last=0` means "only
        if the key has no entry at all" (a delete or expiry marker counts as
        one); a mismatch raises nats-py's ``KeyWrongLastSequenceError``.

        >>> async def renew(bus: Bus, key: str, value: bytes, revision: int) -> int:
        ...     return await bus.kv_put("mesh_instances", key, value, ttl=15, last=revision)
        """
        if not _KV_KEY.fullmatch(key) or key.startswith(".") or key.endswith("."):
            raise ValueError(f"{key!r} is not a valid KV key")
        headers: dict[str, str] = {}
        if ttl is not None and self.server_version is not None:
            # An older server would store the key and silently never expire it.
            require_version(self.server_version, MIN_SERVER_VERSION)
            headers[TTL_HEADER] = f"{max(1, math.ceil(ttl))}s"
        if last is not None:
            headers[EXPECTED_LAST_SUBJECT_SEQUENCE_HEADER] = str(last)
        with _unavailable_when_closed():
            try:
                ack = await self.jetstream.publish(
                    f"$KV.{bucket}.{key}", value, headers=headers or None
                )
            except nats.js.errors.APIError as exc:
                if exc.err_code in _WRONG_LAST_SEQUENCE_CODES:
                    raise nats.js.errors.KeyWrongLastSequenceError(
                        description=exc.description
                    ) from exc
                raise
        return ack.seq

    async def kv_get(self, bucket: str, key: str) -> KeyValue.Entry | None:
        """The current entry of `key`, or None when it has none: never written,
        deleted, purged, or expired by its TTL.

        Use it rather than ``KeyValue.get`` on buckets with per-key TTL:
        nats-py 2.16's ``get`` returns the server's expiry marker (left while
        `limit_marker_ttl` runs) as an entry with no value, as if the key
        were still there.

        >>> async def lease_of(bus: Bus, key: str) -> bytes | None:
        ...     entry = await bus.kv_get("mesh_instances", key)
        ...     return None if entry is None else entry.value
        """
        try:
            msg = await self.jetstream.get_msg(f"KV_{bucket}", subject=f"$KV.{bucket}.{key}")
        except nats.js.errors.NotFoundError:
            return None
        headers = msg.headers or {}
        if headers.get(KV_OPERATION_HEADER) in ("DEL", "PURGE") or MARKER_HEADER in headers:
            return None
        return KeyValue.Entry(
            bucket=bucket,
            key=key,
            value=msg.data,
            revision=msg.seq,
            delta=None,
            created=None,
            operation=None,
        )

    # --- lifetime ------------------------------------------------------------

    async def aclose(self) -> None:
        """Drain (let subscriptions finish what they hold) and close; bounded,
        and shielded so that a cancelled task group still closes the connection."""
        with anyio.CancelScope(shield=True):
            if self._client.is_closed:
                return
            with (
                anyio.move_on_after(_CLOSE_TIMEOUT),
                contextlib.suppress(nats.errors.Error, TimeoutError),
            ):
                await self._client.drain()
            # drain fails while reconnecting or after its timeout; close regardless
            if not self._client.is_closed:
                await self._client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _version_of(client: NatsClient) -> str | None:
    version = client.connected_server_version
    if version.major == 0:  # nats-py reports "0.0.0-unknown" before it knows
        return None
    return f"{version.major}.{version.minor}.{version.patch}"
