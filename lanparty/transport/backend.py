"""The two QUIC libraries behind one small surface.

qh3 and aioquic share the sans-I/O ``QuicConnection`` API (same module paths,
same methods), so the driver is written once. What differs, and is handled
only here (docs/TRANSPORT.md has the measurements behind each point):

- how the server's certificate is loaded (qh3 wants PEM bytes, aioquic takes
  ``cryptography`` objects);
- how the peer's certificate chain is read after the handshake;
- the back-pressure signal: qh3 sends DATAGRAM frames with no congestion
  control at all, aioquic queues them without bound behind its window; the
  driver asks ``send_budget_bytes`` before handing frames over;
- the peer's ``max_datagram_frame_size`` (private attribute in both);
- which exceptions each library raises (``errors``), so the transport
  catches those by name and maps them, and nothing else;
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
from collections.abc import Callable
from typing import Any

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lanparty.errors import ConfigError


class QuicBackend(enum.StrEnum):
    """Which QUIC library drives the connection."""

    QH3 = "qh3"
    AIOQUIC = "aioquic"


# aioquic keeps a deque of DATAGRAM frames that its pacer releases; more than
# this many waiting there means the path is full, so frames stay in our queue.
_AIOQUIC_PENDING_LIMIT = 32
_AIOQUIC_FRAME_BUDGET_BYTES = 1500


@attrs.frozen
class QuicLibrary:
    """One QUIC library's entry points, loaded lazily by ``load_library``."""

    backend: QuicBackend
    configuration_class: Any
    connection_class: Any
    events: Any
    _peer_chain_der: Callable[[Any], list[bytes]]
    _send_budget_bytes: Callable[[Any], int]
    _load_identity: Callable[[Any, bytes, bytes], None]
    _control_delivered: Callable[[Any, float], bool]
    # qh3's QuicConnection has receive_many_datagrams (used after the
    # handshake); aioquic takes one datagram per call.
    has_receive_many: bool
    # What the library's connection may raise from any call.
    errors: tuple[type[Exception], ...]
    # Whether bytes padding a datagram after its packets count towards the
    # server's anti-amplification budget (see the module docstring).
    credits_padding: bool
    _release: Callable[[Any], None]

    def peer_chain_der(self, connection: Any) -> list[bytes]:
        """The peer's certificate chain as DER, leaf first (empty if none)."""
        return self._peer_chain_der(connection)

    def send_budget_bytes(self, connection: Any) -> int:
        """How many bytes of DATAGRAM frames the library should take now."""
        return self._send_budget_bytes(connection)

    def load_identity(self, configuration: Any, cert_pem: bytes, key_pem: bytes) -> None:
        self._load_identity(configuration, cert_pem, key_pem)

    def release(self, connection: Any) -> None:
        """Break the library connection's reference cycles; it must not be used after."""
        self._release(connection)

    def control_delivered(self, connection: Any, now: float) -> bool:
        """True once everything sent on the control stream has been acknowledged."""
        return self._control_delivered(connection, now)

    @staticmethod
    def peer_max_datagram_frame_size(connection: Any) -> int | None:
        value = connection._remote_max_datagram_frame_size
        return None if value is None else int(value)


def _qh3_peer_chain(connection: Any) -> list[bytes]:
    leaf = connection.get_peercert()
    if leaf is None:
        return []
    return [leaf.public_bytes()] + [c.public_bytes() for c in connection.get_issuercerts()]


def _qh3_budget(connection: Any) -> int:
    # qh3 would put every frame on the wire at once; its congestion window,
    # which still counts DATAGRAM bytes, is the budget we give it.
    core = connection._core
    if core is None:
        return 0
    return int(core.congestion_window - core.bytes_in_flight)


def _qh3_load_identity(configuration: Any, cert_pem: bytes, key_pem: bytes) -> None:
    configuration.load_cert_chain(cert_pem, key_pem)


def _qh3_control_delivered(connection: Any, now: float) -> bool:
    # Queued bytes are counted by get_send_buffer_size; sent ones are in
    # flight until the peer acknowledges them.
    return connection.get_send_buffer_size(0) == 0 and not connection.should_wait_for_ack(now)


def _qh3_release(connection: Any) -> None:
    # The TLS bridge holds the connection's bound _set_version, and its TLS
    # context holds the bridge's bound callbacks: cut both cycles.
    bridge = connection._tls
    if bridge is not None:
        bridge._version_change_handler = None
        bridge.tls = None
    vars(connection).clear()


def _aioquic_peer_chain(connection: Any) -> list[bytes]:
    tls = connection.tls
    leaf = None if tls is None else tls._peer_certificate
    if leaf is None:
        return []
    chain = [leaf, *tls._peer_certificate_chain]
    return [c.public_bytes(serialization.Encoding.DER) for c in chain]


def _aioquic_budget(connection: Any) -> int:
    free = _AIOQUIC_PENDING_LIMIT - len(connection._datagrams_pending)
    return free * _AIOQUIC_FRAME_BUDGET_BYTES


def _aioquic_control_delivered(connection: Any, now: float) -> bool:
    stream = connection._streams.get(0)
    if stream is None:
        return True
    sender = stream.sender
    # Acknowledged data leaves the front of the sender's buffer.
    return bool(sender._buffer_start == sender._buffer_stop)


def _aioquic_load_identity(configuration: Any, cert_pem: bytes, key_pem: bytes) -> None:
    certificates = x509.load_pem_x509_certificates(cert_pem)
    configuration.certificate = certificates[0]
    configuration.certificate_chain = certificates[1:]
    configuration.private_key = serialization.load_pem_private_key(key_pem, password=None)


def _aioquic_release(connection: Any) -> None:
    # aioquic's connection is woven of its own bound methods (loss recovery,
    # TLS and key callbacks, delivery handlers of sent packets); those
    # cycles run through the connection's attributes, but for one: a packet
    # space and its sent packets, whose delivery handlers name the space.
    for space in connection._loss.spaces:
        space.sent_packets.clear()
    vars(connection).clear()


def load_library(backend: QuicBackend) -> QuicLibrary:
    """Import the chosen library; a missing one is a clear ``ConfigError``."""
    name = backend.value
    try:
        configuration = importlib.import_module(f"{name}.quic.configuration")
        connection = importlib.import_module(f"{name}.quic.connection")
        events = importlib.import_module(f"{name}.quic.events")
        crypto = importlib.import_module(
            "qh3._hazmat" if backend is QuicBackend.QH3 else "aioquic.quic.crypto"
        )
    except ImportError as exc:
        extra = " (pip install 'lanparty[aioquic]')" if backend is QuicBackend.AIOQUIC else ""
        raise ConfigError(f"the QUIC library {name} is not installed{extra}") from exc
    # ValueError covers both libraries' BufferReadError and BufferWriteError;
    # RuntimeError what qh3's native core raises outside its own mapping.
    errors: tuple[type[Exception], ...] = (
        connection.QuicConnectionError,
        crypto.CryptoError,
        ValueError,
        RuntimeError,
        AssertionError,
    )
    if backend is QuicBackend.QH3:
        chain, budget, identity = _qh3_peer_chain, _qh3_budget, _qh3_load_identity
        delivered, release = _qh3_control_delivered, _qh3_release
    else:
        chain, budget, identity = _aioquic_peer_chain, _aioquic_budget, _aioquic_load_identity
        delivered, release = _aioquic_control_delivered, _aioquic_release
        stream = importlib.import_module("aioquic.quic.stream")
        errors += (stream.FinalSizeError, stream.StreamFinishedError)
    return QuicLibrary(
        backend=backend,
        configuration_class=configuration.QuicConfiguration,
        connection_class=connection.QuicConnection,
        events=events,
        peer_chain_der=chain,
        send_budget_bytes=budget,
        load_identity=identity,
        control_delivered=delivered,
        has_receive_many=backend is QuicBackend.QH3,
        errors=errors,
        credits_padding=backend is not QuicBackend.QH3,
        release=release,
    )
