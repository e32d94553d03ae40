"""The two QUIC libraries behind one typed surface.

qh3 and aioquic share the sans-I/O ``QuicConnection`` API, but the driver
(``connection.py``) needs more than that API gives: private state for a few
answers, and exceptions it can catch by name. So the driver speaks only to
``QuicEngine`` (one library connection) and ``QuicLibrary`` (the factory);
one adapter per library implements them, in ``_qh3.py`` and ``_aioquic.py``,
and all reaching into a library's private fields lives there. What differs
between the two (docs/TRANSPORT.md has the measurements behind each point):

- how the server's certificate is loaded (qh3 wants PEM bytes, aioquic takes
  ``cryptography`` objects);
- how the peer's certificate chain is read after the handshake;
- the back-pressure signal: qh3 sends DATAGRAM frames with no congestion
  control at all, aioquic queues them without bound behind its window; the
  driver asks ``send_budget_bytes`` before handing frames over;
- the peer's ``max_datagram_frame_size`` (private attribute in both);
- which exceptions each library raises: each adapter catches those by name
  in one place and raises ``QuicLibraryError`` instead, so nothing of the
  library escapes the transport;
- how an idle timeout is known (qh3: the kind of the timer that fired;
  aioquic: the close it makes in ``handle_timer``), and whether the timer's
  kind is known at all (``TimerKind``: qh3 only);
- the reference cycles inside each library's connection object, broken
  when a connection is forgotten (``release``: the object is emptied), so
  that it is freed at once, without the cyclic garbage collector;
- how the anti-amplification budget is credited: qh3 2.1.0 hands its core
  each packet of a datagram as a slice and credits only the slices it
  accepts, so zeros padding a datagram after its last packet (aioquic
  1.7.2's client Initials: 534 bytes of packet in 1452 of datagram) leave
  the server a budget smaller than its first flight ("packet builder
  capacity exhausted"); ``credits_padding`` is False there.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from lanparty.errors import ConfigError, TransportError

if TYPE_CHECKING:
    from lanparty.transport.settings import TransportSettings
    from lanparty.transport.udp import Address, Datagram


class QuicBackend(enum.StrEnum):
    """Which QUIC library drives the connection."""

    QH3 = "qh3"
    AIOQUIC = "aioquic"


class QuicLibraryError(TransportError):
    """The QUIC library raised; the adapter's message names the library's exception."""


class TimerKind(enum.StrEnum):
    """What a library timer is for (qh3 says; aioquic does not)."""

    ACK_INITIAL = "ack_initial"
    ACK_HANDSHAKE = "ack_handshake"
    # The delayed ACK of 1-RTT packets.
    ACK_APPLICATION = "ack_application"
    LOSS_DETECTION = "loss_detection"
    PACING = "pacing"
    PMTU = "pmtu"
    # The end of the closing or draining period.
    CLOSE = "close"
    IDLE = "idle"


# ------------------------------------------------------------------ events
# The library events the driver acts on, in the library's order; the others
# (ProtocolNegotiated, PingAcknowledged, stream resets...) are dropped by the
# adapters.


@attrs.frozen
class DatagramsReceived:
    """DATAGRAM frames received one after another (one event per run, not per frame)."""

    payloads: list[bytes]


@attrs.frozen
class StreamDataReceived:
    stream_id: int
    data: bytes
    end_stream: bool


@attrs.frozen
class HandshakeCompleted:
    alpn_protocol: str | None


@attrs.frozen
class ConnectionTerminated:
    """The library is done with the connection (or, from ``pending_close``, about to be)."""

    error_code: int
    reason: str
    # The library ended it because nothing was heard for the idle timeout.
    idle_timeout: bool


@attrs.frozen
class ConnectionIdIssued:
    connection_id: bytes


@attrs.frozen
class ConnectionIdRetired:
    connection_id: bytes


QuicEvent = (
    DatagramsReceived
    | StreamDataReceived
    | HandshakeCompleted
    | ConnectionTerminated
    | ConnectionIdIssued
    | ConnectionIdRetired
)


class QuicEngine(Protocol):
    """One library connection, as the driver uses it.

    Every method that calls into the library raises ``QuicLibraryError``
    (and nothing else of the library's) when the library raises.
    """

    @property
    def backend(self) -> QuicBackend: ...

    # qh3 takes a run of datagrams from one address in one call (after the
    # handshake); aioquic one datagram per call.
    @property
    def receives_many(self) -> bool: ...

    @property
    def host_connection_id(self) -> bytes: ...

    def connect(self, address: Address, now: float) -> None: ...

    def receive_datagram(self, data: bytes, address: Address, now: float) -> None: ...

    def receive_many_datagrams(self, datagrams: list[bytes], address: Address, now: float) -> None:
        """Only where ``receives_many``."""

    def datagrams_to_send(self, now: float) -> list[Datagram]: ...

    def events(self) -> Sequence[QuicEvent]:
        """Every event the library has queued, translated, in order."""

    def timer_at(self) -> float | None:
        """When ``handle_timer`` is due (the pump asks often: no allocation)."""

    def timer(self) -> tuple[float, TimerKind | None] | None:
        """When ``handle_timer`` is due and, where the library says, what for."""

    def handle_timer(self, now: float) -> None: ...

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None: ...

    def send_datagram_frames(self, payloads: Sequence[bytes]) -> None:
        """Hand DATAGRAM frames to the library, in order (one call per batch: the hot path)."""
        ...

    def send_ping(self, uid: int) -> None: ...

    def close(self, error_code: int, reason: str) -> None: ...

    def pending_close(self) -> ConnectionTerminated | None:
        """The close the library has decided on but not reported yet (or reported)."""

    def send_budget_bytes(self) -> int:
        """How many bytes of DATAGRAM frames the library should take now."""

    def peer_max_datagram_frame_size(self) -> int | None: ...

    def peer_certificate_chain(self) -> list[bytes]:
        """The peer's certificate chain as DER, leaf first (empty if none)."""

    def cipher_suite(self) -> int | None:
        """The negotiated TLS 1.3 cipher suite's code point, None before the handshake."""

    def stream_delivered(self, stream_id: int, now: float) -> bool:
        """True once everything sent on the stream has been acknowledged."""

    def release(self) -> None:
        """Break the library connection's reference cycles; it must not be used after."""


class ServerConfiguration(Protocol):
    """A library's server configuration with the identity loaded (opaque to the driver)."""


class QuicLibrary(Protocol):
    """One QUIC library: makes ``QuicEngine``s."""

    @property
    def backend(self) -> QuicBackend: ...

    # Whether bytes padding a datagram after its packets count towards the
    # server's anti-amplification budget (see the module docstring).
    @property
    def credits_padding(self) -> bool: ...

    def client_connection(
        self, settings: TransportSettings, server_name: str | None, *, connection_id_bytes: int
    ) -> QuicEngine:
        """A client connection, not started (``connect`` starts it)."""

    def server_configuration(
        self,
        settings: TransportSettings,
        cert_pem: bytes,
        key_pem: bytes,
        *,
        connection_id_bytes: int,
    ) -> ServerConfiguration:
        """Loaded once: every server connection shares the parsed certificate and key."""

    def server_connection(
        self,
        configuration: ServerConfiguration,
        *,
        original_destination_cid: bytes,
        retry_source_cid: bytes | None,
    ) -> QuicEngine: ...


def configuration_options(
    settings: TransportSettings, *, is_client: bool, connection_id_bytes: int
) -> dict[str, Any]:
    """The ``QuicConfiguration`` arguments both libraries take alike."""
    return {
        "is_client": is_client,
        "alpn_protocols": [settings.alpn],
        "idle_timeout": settings.idle_timeout_s,
        "max_datagram_size": settings.max_udp_payload_bytes,
        "max_datagram_frame_size": 65536,
        "connection_id_length": connection_id_bytes,
    }


# Client side: trust is decided by lanparty.transport.trust after the
# handshake; the library still checks the handshake signature.
VERIFY_NONE = 0  # ssl.CERT_NONE


def load_library(backend: QuicBackend) -> QuicLibrary:
    """Import the chosen library's adapter; a missing library is a clear ``ConfigError``."""
    try:
        adapter = importlib.import_module(f"lanparty.transport._{backend.value}")
    except ImportError as exc:
        extra = " (pip install 'lanparty[aioquic]')" if backend is QuicBackend.AIOQUIC else ""
        raise ConfigError(f"the QUIC library {backend.value} is not installed{extra}") from exc
    library: QuicLibrary = adapter.LIBRARY
    return library
