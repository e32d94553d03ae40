"""The qh3 adapter: ``QuicEngine`` and ``QuicLibrary`` over qh3's ``QuicConnection``.

Checked against qh3 2.1.0: the private fields read here (``_core``,
``_tls``, ``_remote_max_datagram_frame_size``, ``_close_event``,
``_quic_logger``) and the native core's timer kinds may change in any
release.
"""

from __future__ import annotations

from collections.abc import Sequence

from qh3._hazmat import CryptoError
from qh3.quic import events as library_events
from qh3.quic.configuration import QuicConfiguration
from qh3.quic.connection import QuicConnection, QuicConnectionError

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

# Everything qh3's connection may raise from any call. ValueError covers
# BufferReadError and BufferWriteError; RuntimeError what the native core
# raises outside its own mapping.
_ERRORS = (QuicConnectionError, CryptoError, ValueError, RuntimeError, AssertionError)

_TIMER_KINDS = {kind.value: kind for kind in TimerKind}


def _library_error(exc: Exception) -> QuicLibraryError:
    return QuicLibraryError(f"{type(exc).__name__}: {exc}")


class Qh3Engine:
    """One qh3 connection (see ``QuicEngine``)."""

    backend = QuicBackend.QH3
    receives_many = True

    def __init__(self, quic: QuicConnection) -> None:
        self._quic = quic
        # Set when handle_timer ran with the idle timer due: the
        # termination that follows is the idle timeout.
        self._idle_expired = False

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
        try:
            self._quic.receive_many_datagrams(datagrams, address, now)
        except _ERRORS as exc:
            raise _library_error(exc) from exc

    def datagrams_to_send(self, now: float) -> list[Datagram]:
        quic = self._quic
        core = quic._core
        try:
            if core is None or quic._quic_logger is not None:
                return quic.datagrams_to_send(now)
            # What QuicConnection.datagrams_to_send does with no QUIC logger, less
            # its logging calls, which parse every packet's header and copy the
            # packet even when there is no logger to give them to (1-2 us a datagram).
            poll_transmit = core.poll_transmit
            datagrams: list[Datagram] = []
            while (transmit := poll_transmit(now)) is not None:
                datagrams.append((transmit[0], transmit[1]))
            return datagrams
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
        core = self._quic._core
        timer = None if core is None else core.get_timer()
        if timer is None:
            return None
        return timer[1], _TIMER_KINDS.get(timer[0])

    def handle_timer(self, now: float) -> None:
        core = self._quic._core
        timer = None if core is None else core.get_timer()
        if timer is not None and timer[0] == TimerKind.IDLE and now >= timer[1]:
            self._idle_expired = True
        try:
            self._quic.handle_timer(now)
        except _ERRORS as exc:
            raise _library_error(exc) from exc

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
            idle_timeout=self._idle_expired,
        )

    def send_budget_bytes(self) -> int:
        # qh3 would put every frame on the wire at once; its congestion window,
        # which still counts DATAGRAM bytes, is the budget we give it.
        core = self._quic._core
        if core is None:
            return 0
        return int(core.congestion_window - core.bytes_in_flight)

    def peer_max_datagram_frame_size(self) -> int | None:
        value = self._quic._remote_max_datagram_frame_size
        return None if value is None else int(value)

    def peer_certificate_chain(self) -> list[bytes]:
        leaf = self._quic.get_peercert()
        if leaf is None:
            return []
        return [leaf.public_bytes()] + [c.public_bytes() for c in self._quic.get_issuercerts()]

    def cipher_suite(self) -> int | None:
        suite = self._quic.get_cipher()
        return None if suite is None else int(suite)

    def stream_delivered(self, stream_id: int, now: float) -> bool:
        # Queued bytes are counted by get_send_buffer_size; sent ones are in
        # flight until the peer acknowledges them.
        quic = self._quic
        return quic.get_send_buffer_size(stream_id) == 0 and not quic.should_wait_for_ack(now)

    def release(self) -> None:
        # The TLS bridge holds the connection's bound _set_version, and its TLS
        # context holds the bridge's bound callbacks: cut both cycles.
        bridge = self._quic._tls
        if bridge is not None:
            bridge._version_change_handler = None
            bridge.tls = None  # type: ignore[assignment]
        vars(self._quic).clear()


class Qh3Library:
    """Makes ``Qh3Engine``s (see ``QuicLibrary``)."""

    backend = QuicBackend.QH3
    credits_padding = False

    def client_connection(
        self, settings: TransportSettings, server_name: str | None, *, connection_id_bytes: int
    ) -> Qh3Engine:
        configuration = QuicConfiguration(
            **configuration_options(
                settings, is_client=True, connection_id_bytes=connection_id_bytes
            )
        )
        configuration.verify_mode = VERIFY_NONE
        configuration.server_name = server_name
        configuration.probe_datagram_size = False
        return Qh3Engine(QuicConnection(configuration=configuration))

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
        configuration.load_cert_chain(cert_pem, key_pem)
        return configuration

    def server_connection(
        self,
        configuration: ServerConfiguration,
        *,
        original_destination_cid: bytes,
        retry_source_cid: bytes | None,
    ) -> Qh3Engine:
        assert isinstance(configuration, QuicConfiguration)
        quic = QuicConnection(
            configuration=configuration,
            original_destination_connection_id=original_destination_cid,
            retry_source_connection_id=retry_source_cid,
        )
        return Qh3Engine(quic)


LIBRARY: QuicLibrary = Qh3Library()
