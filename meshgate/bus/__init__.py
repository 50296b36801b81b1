"""The bus: subjects, typed messages, and two buses with one interface —
`Bus` over NATS (asyncio) and `InProcessBus` for embedding in one process.

>>> from meshgate.bus import InProcessBus, Presence
>>> async def announce() -> None:
...     async with InProcessBus() as bus:
...         await bus.publish(bus.subjects.presence,
...                           Presence(replica_id="gw-1", address="127.0.0.1:8080", started_at=0.0))
"""

from meshgate.bus.codec import Codec, decode, decode_or_drop, encode
from meshgate.bus.connection import Bus
from meshgate.bus.credentials import NatsCredentials, add_nats_arguments, credentials_from_args
from meshgate.bus.errors import (
    BusAuthError,
    BusError,
    BusUnavailableError,
    CredentialsError,
    MalformedMessageError,
    NatsServerTooOldError,
    NoRespondersError,
    RemoteError,
    RequestTimeoutError,
)
from meshgate.bus.in_process import InProcessBus
from meshgate.bus.instance import InstanceStatus, ServiceInstance
from meshgate.bus.messages import (
    CanaryEvent,
    CircuitEvent,
    CircuitStatus,
    CircuitStatusReply,
    CircuitStatusRequest,
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
    RateDemand,
    RegisterRequest,
    RegistryEvent,
    Reply,
    StatusReport,
    VersionMetrics,
)
from meshgate.bus.nats_server import (
    MIN_SERVER_VERSION,
    NatsServer,
    check_server_version,
    find_nats_server,
    local_nats_server,
)
from meshgate.bus.protocol import Handler, MessageBus, Responder, Subscription
from meshgate.bus.signing import RegistrationSigner, SignatureError, load_registration_key
from meshgate.bus.subjects import Subjects, decode_token, encode_token, subject_matches

__all__ = [
    "MIN_SERVER_VERSION",
    "Bus",
    "BusAuthError",
    "BusError",
    "BusUnavailableError",
    "CanaryEvent",
    "CircuitEvent",
    "CircuitStatus",
    "CircuitStatusReply",
    "CircuitStatusRequest",
    "Codec",
    "ConfigEvent",
    "ControlReply",
    "ControlRequest",
    "CredentialsError",
    "DeregisterRequest",
    "Event",
    "Handler",
    "HeartbeatRequest",
    "InProcessBus",
    "InstanceStatus",
    "MalformedMessageError",
    "Message",
    "MessageBus",
    "MetricsReport",
    "NatsCredentials",
    "NatsServer",
    "NatsServerTooOldError",
    "NoRespondersError",
    "Presence",
    "QueryReply",
    "QueryRequest",
    "RateDemand",
    "RegisterRequest",
    "RegistrationSigner",
    "RegistryEvent",
    "RemoteError",
    "Reply",
    "RequestTimeoutError",
    "Responder",
    "ServiceInstance",
    "SignatureError",
    "StatusReport",
    "Subjects",
    "Subscription",
    "VersionMetrics",
    "add_nats_arguments",
    "check_server_version",
    "credentials_from_args",
    "decode",
    "decode_or_drop",
    "decode_token",
    "encode",
    "encode_token",
    "find_nats_server",
    "load_registration_key",
    "local_nats_server",
    "subject_matches",
]
