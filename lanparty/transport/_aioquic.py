"""The aioquic adapter: ``QuicEngine`` and ``QuicLibrary`` over aioquic's ``QuicConnection``.

Checked against aioquic 1.7.2: the private fields read here (``_close_at``,
``_close_event``, ``_datagrams_pending``, ``_remote_max_datagram_frame_size``,
``_streams``, ``_loss``, the TLS context's ``_peer_certificate``...) may
change in any release.
"""

from __future__ import annotations

from collections.abc import Sequence

from aioquic._crypto import CryptoError
from aioquic.quic import events as library_events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection, QuicConnectionError
from aioquic.quic.stream import FinalSizeError, StreamFinishedError
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lanparty.transport.backend import (
    VERIFY_NONE,
    ConnectionIdIssued,
    ConnectionIdRetired,
    ConnectionTerminated,
    DatagramsReceived,
    HandshakeCompleted,
    QuicBackend,
    QuicEvent,
    QuicLibrary,
    QuicLibraryError,
    ServerConfiguration,
    StreamDataReceived,
    TimerKind,
    configuration_options,
)
from lanparty.transport.settings import TransportSettings
from lanparty.transport.udp import Address, Datagram

# Everything aioquic's connection may raise from any call. ValueError covers
# BufferReadError and BufferWriteError.
_ERRORS = (
    QuicConnectionError,
    CryptoError,
    ValueError,
    RuntimeError,
    AssertionError,
    FinalSizeError,
    StreamFinishedError,
)

# aioquic keeps a deque of DATAGRAM frames that its pacer releases; more than
# this many waiting there means the path is full, so frames stay in our queue.
_PENDING_LIMIT = 32
_FRAME_BUDGET_BYTES = 1500


def _library_error(exc: Exception) -> QuicLibraryError:
    return QuicLibraryError(f"{type(exc).__name__}: {exc}")


class AioquicEngine:
    """One aioquic connection (see ``QuicEngine``)."""

    backend = QuicBackend.AIOQUIC
    receives_many = False

    def __init__(self, quic: QuicConnection) -> None:
        self._quic = quic
        # The close handle_timer made because the idle timeout passed.
        self._idle_close: library_events.ConnectionTerminated | None = None

    @property
    def host_connection_id(self) -> bytes:
        return bytes(self._quic.host_cid)

    def connect(self, address: Address, now: float) -> None:
        try:
            self._quic.connect(address, now=now)
        except _ERRORS as exc:
            raise _library_error(exc) from exc

    def receive_datagram(self, data: bytes, address: Address, now: float) -> None:
        try:
            self._quic.receive_datagram(data, address, now)
        except _ERRORS as exc:
            raise _library_error(exc) from exc

    def receive_many_datagrams(self, datagrams: list[bytes], address: Address, now: float) -> None:
        # aioquic takes one datagram per call; the driver does not batch for it.
        for data in datagrams:
            self.receive_datagram(data, address, now)

    def datagrams_to_send(self, now: float) -> list[Datagram]:
        try:
            return self._quic.datagrams_to_send(now)
        except _ERRORS as exc:
            raise _library_error(exc) from exc

    def events(self) -> Sequence[QuicEvent]:
        next_event = self._quic.next_event
        event = next_event()
        if event is None:
            # The usual answer to the pump's every flush: no allocation.
            return ()
        translated: list[QuicEvent] = []
        run: list[bytes] | None = None
        while event is not None:
            if isinstance(event, library_events.DatagramFrameReceived):
                if run is None:
                    run = []
                    translated.append(DatagramsReceived(run))
                run.append(event.data)
            else:
                run = None
                ours = self._translate(event)
                if ours is not None:
                    translated.append(ours)
            event = next_event()
        return translated

    def _translate(self, event: library_events.QuicEvent) -> QuicEvent | None:
        if isinstance(event, library_events.StreamDataReceived):
            return StreamDataReceived(event.stream_id, event.data, event.end_stream)
        if isinstance(event, library_events.HandshakeCompleted):
            return HandshakeCompleted(event.alpn_protocol)
        if isinstance(event, library_events.ConnectionTerminated):
            return self._terminated(event)
        if isinstance(event, library_events.ConnectionIdIssued):
            return ConnectionIdIssued(bytes(event.connection_id))
        if isinstance(event, library_events.ConnectionIdRetired):
            return ConnectionIdRetired(bytes(event.connection_id))
        # Events the driver does not act on (ProtocolNegotiated, PingAcknowledged...).
        return None

    def timer_at(self) -> float | None:
        return self._quic.get_timer()

    def timer(self) -> tuple[float, TimerKind | None] | None:
        # aioquic keeps one deadline and does not say what it is for.
        at = self._quic.get_timer()
        return None if at is None else (at, None)

    def handle_timer(self, now: float) -> None:
        quic = self._quic
        # With no close under way, _close_at is the idle deadline, and
        # handle_timer makes the close itself when it has passed.
        idle = quic._close_event is None and quic._close_at is not None and now >= quic._close_at
        try:
            quic.handle_timer(now)
        except _ERRORS as exc:
            raise _library_error(exc) from exc
        if idle:
            self._idle_close = quic._close_event

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        try:
            self._quic.send_stream_data(stream_id, data, end_stream)
        except _ERRORS as exc:
            raise _library_error(exc) from exc

    def send_datagram_frames(self, payloads: Sequence[bytes]) -> None:
        send = self._quic.send_datagram_frame
        try:
            for payload in payloads:
                send(payload)
        except _ERRORS as exc:
            raise _library_error(exc) from exc

    def send_ping(self, uid: int) -> None:
        try:
            self._quic.send_ping(uid)
        except _ERRORS as exc:
            raise _library_error(exc) from exc

    def close(self, error_code: int, reason: str) -> None:
        try:
            self._quic.close(error_code=error_code, reason_phrase=reason)
        except _ERRORS as exc:
            raise _library_error(exc) from exc

    def pending_close(self) -> ConnectionTerminated | None:
        event = self._quic._close_event
        return None if event is None else self._terminated(event)

    def _terminated(self, event: library_events.ConnectionTerminated) -> ConnectionTerminated:
        return ConnectionTerminated(
            error_code=int(event.error_code),
            reason=str(event.reason_phrase or ""),
            idle_timeout=event is self._idle_close,
        )

    def send_budget_bytes(self) -> int:
        free = _PENDING_LIMIT - len(self._quic._datagrams_pending)
        return free * _FRAME_BUDGET_BYTES

    def peer_max_datagram_frame_size(self) -> int | None:
        value = self._quic._remote_max_datagram_frame_size
        return None if value is None else int(value)

    def peer_certificate_chain(self) -> list[bytes]:
        # The TLS context exists once the connection started.
        tls = getattr(self._quic, "tls", None)
        leaf = None if tls is None else tls._peer_certificate
        if tls is None or leaf is None:
            return []
        chain = [leaf, *tls._peer_certificate_chain]
        return [c.public_bytes(serialization.Encoding.DER) for c in chain]

    def cipher_suite(self) -> int | None:
        tls = getattr(self._quic, "tls", None)
        schedule = None if tls is None else tls.key_schedule
        return None if schedule is None else int(schedule.cipher_suite)

    def stream_delivered(self, stream_id: int, now: float) -> bool:
        stream = self._quic._streams.get(stream_id)
        if stream is None:
            return True
        sender = stream.sender
        # Acknowledged data leaves the front of the sender's buffer.
        return bool(sender._buffer_start == sender._buffer_stop)

    def release(self) -> None:
        # aioquic's connection is woven of its own bound methods (loss recovery,
        # TLS and key callbacks, delivery handlers of sent packets); those
        # cycles run through the connection's attributes, but for one: a packet
        # space and its sent packets, whose delivery handlers name the space.
        for space in self._quic._loss.spaces:
            space.sent_packets.clear()
        vars(self._quic).clear()


class AioquicLibrary:
    """Makes ``AioquicEngine``s (see ``QuicLibrary``)."""

    backend = QuicBackend.AIOQUIC
    credits_padding = True

    def client_connection(
        self, settings: TransportSettings, server_name: str | None, *, connection_id_bytes: int
    ) -> AioquicEngine:
        configuration = QuicConfiguration(
            **configuration_options(
                settings, is_client=True, connection_id_bytes=connection_id_bytes
            )
        )
        configuration.verify_mode = VERIFY_NONE
        configuration.server_name = server_name
        return AioquicEngine(QuicConnection(configuration=configuration))

    def server_configuration(
        self,
        settings: TransportSettings,
        cert_pem: bytes,
        key_pem: bytes,
        *,
        connection_id_bytes: int,
    ) -> QuicConfiguration:
        configuration = QuicConfiguration(
            **configuration_options(
                settings, is_client=False, connection_id_bytes=connection_id_bytes
            )
        )
        certificates = x509.load_pem_x509_certificates(cert_pem)
        configuration.certificate = certificates[0]
        configuration.certificate_chain = certificates[1:]
        configuration.private_key = serialization.load_pem_private_key(key_pem, password=None)
        return configuration

    def server_connection(
        self,
        configuration: ServerConfiguration,
        *,
        original_destination_cid: bytes,
        retry_source_cid: bytes | None,
    ) -> AioquicEngine:
        assert isinstance(configuration, QuicConfiguration)
        quic = QuicConnection(
            configuration=configuration,
            original_destination_connection_id=original_destination_cid,
            retry_source_connection_id=retry_source_cid,
        )
        return AioquicEngine(quic)


LIBRARY: QuicLibrary = AioquicLibrary()
