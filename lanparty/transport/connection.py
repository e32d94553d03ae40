"""One QUIC connection: the library's sans-I/O object plus our own rules.

The endpoint's pump feeds it UDP datagrams, fires its timer and sends what
``transmit`` returns; user tasks send and receive frames and control
messages. The rules the libraries do not keep for us live here:

- DATAGRAM frames are sent only after the handshake, and only when they fit
  one QUIC packet and the peer's limit (either library wedges otherwise);
- frames wait in a bounded queue until the library has room; when the queue
  is full the oldest frame is dropped and counted, never silently;
- received frames wait in a bounded list for the user task;
- a PING goes out whenever the connection has sent nothing for the
  keep-alive interval, so NAT bindings stay open;
- the library's exceptions (``QuicLibraryError`` from the adapter) never
  escape: the connection closes and the reason is recorded in ``close_info``;
- the peer ending its control stream (FIN on stream 0) closes the
  connection like a peer's close, normal code;
- a server handshake not complete by ``handshake_deadline`` is abandoned
  without a word to the peer, and a peer offering another ALPN is refused.

The library is reached only through ``QuicEngine`` (``backend.py``), whose
events are our own.

A connection holds no reference cycle of its own (its event handlers are a
table of plain functions shared by all connections), so once the endpoint
forgets it, the last reference going frees it at once, without waiting for
the cyclic garbage collector.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Iterable
from typing import Any, TypeVarTuple

import attrs
import structlog
import trio

from lanparty.ctrl import ControlDecoder, Message, Received, Side, encode_message
from lanparty.errors import LanpartyError, ProtocolError, TransportError
from lanparty.obs.counters import TrafficCounters
from lanparty.proto import DropReason
from lanparty.transport.backend import (
    ConnectionIdIssued,
    ConnectionIdRetired,
    ConnectionTerminated,
    DatagramsReceived,
    HandshakeCompleted,
    QuicEngine,
    QuicEvent,
    QuicLibraryError,
    StreamDataReceived,
    TimerKind,
)
from lanparty.transport.settings import TransportSettings
from lanparty.transport.udp import Address, Datagram, runs_by_address

log = structlog.get_logger(component="transport")

CONTROL_STREAM_ID = 0
# QUIC error codes of the application (PROTOCOL.md section 2).
CLOSE_NORMAL = 0
CLOSE_REFUSED = 1
CLOSE_PROTOCOL_ERROR = 2

# Bytes of a 1-RTT packet that are not DATAGRAM payload: short header
# (1 flag byte, a destination connection ID of up to 20 bytes, up to 4 bytes
# of packet number), the 16-byte AEAD tag, then the frame's type byte and
# 2-byte length.
_PACKET_OVERHEAD_BYTES = 1 + 20 + 4 + 16
_DATAGRAM_FRAME_OVERHEAD_BYTES = 1 + 2


_Args = TypeVarTuple("_Args")

_TLS13_CIPHER_SUITES = {
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
}


@attrs.frozen
class CloseInfo:
    """Why a connection ended."""

    error_code: int
    reason: str
    by_peer: bool
    idle_timeout: bool = False

    def describe(self) -> str:
        who = "the peer" if self.by_peer else "this side"
        if self.idle_timeout:
            return "the connection timed out (nothing heard from the peer)"
        detail = f": {self.reason}" if self.reason else ""
        return f"closed by {who} with code {self.error_code}{detail}"


class ConnectionClosedError(TransportError):
    """The connection is closed; ``info`` says how."""

    def __init__(self, info: CloseInfo) -> None:
        super().__init__(info.describe())
        self.info = info


def max_payload_for(max_udp_payload_bytes: int, peer_max_frame_bytes: int | None) -> int:
    """Largest DATAGRAM payload that fits one packet and the peer's limit."""
    local = max_udp_payload_bytes - _PACKET_OVERHEAD_BYTES - _DATAGRAM_FRAME_OVERHEAD_BYTES
    if peer_max_frame_bytes is None:
        return 0
    return max(0, min(local, peer_max_frame_bytes - _DATAGRAM_FRAME_OVERHEAD_BYTES))


class Connection:
    """A QUIC connection to one peer, driven by an endpoint's pump."""

    def __init__(
        self,
        engine: QuicEngine,
        settings: TransportSettings,
        peer_address: Address,
        request_flush: Callable[[Connection], None],
        *,
        is_client: bool,
    ) -> None:
        self.peer_address = peer_address
        self.local_address: Address = ()
        self.settings = settings
        self.counters = TrafficCounters()
        self.close_info: CloseInfo | None = None
        self.max_datagram_payload = 0
        self._engine = engine
        self._request_flush = request_flush
        self._handshake_done = False
        # The endpoint opens stream 0; the relay can answer only once it has.
        self._control_stream_open = is_client
        self._send_queue: collections.deque[bytes] = collections.deque()
        self._received: list[bytes] = []
        self._received_event = trio.Event()
        # When set, the pump hands each batch of received frames here at once
        # (synchronously, no task switch) instead of keeping them for
        # receive_datagrams. It must not block; an exception closes the connection.
        self.datagram_handler: Callable[[list[bytes]], None] | None = None
        self._send_room_event: trio.Event | None = None
        self._control_messages: collections.deque[Received] = collections.deque()
        self._control_error: ProtocolError | None = None
        self._control_event = trio.Event()
        # An endpoint reads what the relay sends, and the relay what endpoints send.
        self._control_decoder = ControlDecoder(Side.ENDPOINT if is_client else Side.RELAY)
        self._established = trio.Event()
        self._closed = trio.Event()
        self._last_send_at = -math.inf
        self._ping_uid = 0
        # Set when the library is done with the connection: the endpoint forgets it.
        self.terminated = False
        # Kept by the endpoint: the IDs that route to this connection, the
        # ones issued or retired since it last looked, and the source the
        # per-source cap counts it under.
        self.connection_ids: set[bytes] = set()
        self.issued_connection_ids: list[bytes] = []
        self.retired_connection_ids: list[bytes] = []
        self.source_key: bytes | None = None
        # Server side: the client came back with a Retry token (until then a
        # pending handshake may be a spoofer's, and may be replaced).
        self.address_validated = is_client
        # Server side: when a handshake still not complete is given up, which
        # frees its place under max_pending_handshakes and the per-source cap.
        self.handshake_deadline: float | None = None
        # Set once the endpoint forgot the connection and emptied the library's object.
        self._released = False

    # ----------------------------------------------------------------- state

    @property
    def backend(self) -> str:
        return self._engine.backend.value

    @property
    def is_established(self) -> bool:
        return self._handshake_done and self.close_info is None

    @property
    def is_closed(self) -> bool:
        return self.close_info is not None

    @property
    def send_queue_length(self) -> int:
        return len(self._send_queue)

    @property
    def host_connection_id(self) -> bytes:
        return b"" if self._released else self._engine.host_connection_id

    @property
    def cipher_suite(self) -> str:
        """The negotiated TLS 1.3 cipher suite's name, e.g. TLS_AES_128_GCM_SHA256."""
        suite = None if self._released else self._engine.cipher_suite()
        if suite is None:
            return "none"
        return _TLS13_CIPHER_SUITES.get(suite, f"0x{suite:04x}")

    def peer_certificate_chain(self) -> list[bytes]:
        """The peer's certificate chain as DER, leaf first (empty once forgotten)."""
        return [] if self._released else self._engine.peer_certificate_chain()

    async def wait_established(self) -> None:
        """Wait for the handshake; raise ``ConnectionClosedError`` if it failed."""
        # Closing sets _established too, so this wakes up either way.
        await self._established.wait()
        self._raise_if_closed()

    async def wait_closed(self) -> CloseInfo:
        await self._closed.wait()
        assert self.close_info is not None
        return self.close_info

    # ----------------------------------------------------- frames (hot path)

    def queue_datagram(self, payload: bytes) -> bool:
        """Queue one frame for the next flush; False if it was refused (counted)."""
        if not self._handshake_done or self.close_info is not None:
            self.counters.count_drop(DropReason.NOT_ESTABLISHED)
            return False
        if len(payload) > self.max_datagram_payload:
            self.counters.count_drop(DropReason.OVERSIZE)
            return False
        queue = self._send_queue
        if len(queue) >= self.settings.send_queue_frames:
            # A full queue is first handed to the library: the queue bounds
            # what waits for congestion window, not a batch's size. Only when
            # the library has room: a flush per frame towards a peer that
            # never acknowledges would cost the relay for nothing.
            if self._engine.send_budget_bytes() > 0:
                self._request_flush(self)
            if len(queue) >= self.settings.send_queue_frames:
                queue.popleft()
                self.counters.count_drop(DropReason.SEND_QUEUE_FULL)
        queue.append(payload)
        return True

    def send_datagram(self, payload: bytes) -> bool:
        """Queue one frame and send at once."""
        queued = self.queue_datagram(payload)
        if queued:
            self._request_flush(self)
        return queued

    def send_datagrams(self, payloads: Iterable[bytes]) -> int:
        """Queue many frames and send them with one flush; return how many were queued."""
        queued = 0
        for payload in payloads:
            queued += self.queue_datagram(payload)
        if queued:
            self._request_flush(self)
        return queued

    def flush(self) -> None:
        """Send what ``queue_datagram`` queued."""
        self._request_flush(self)

    async def wait_send_room(self) -> None:
        """Wait until the send queue is at most half full (or the connection closed).

        For a sender that would rather wait than have its oldest frames
        dropped, e.g. one that can leave frames in a kernel queue meanwhile.
        """
        while len(self._send_queue) > self.settings.send_queue_frames // 2:
            self._raise_if_closed()
            if self._send_room_event is None:
                self._send_room_event = trio.Event()
            await self._send_room_event.wait()
        self._raise_if_closed()

    def discard_received(self) -> int:
        """Drop the frames waiting to be received; return how many there were."""
        count = len(self._received)
        self._received = []
        return count

    def deliver_datagrams(self) -> None:
        """Give received frames to ``datagram_handler`` (called by the pump only)."""
        handler = self.datagram_handler
        if handler is None or not self._received:
            return
        batch, self._received = self._received, []
        try:
            handler(batch)
        except LanpartyError as exc:
            log.info("datagram_handler_failed", peer=self.peer_address, error=str(exc))
            self.close(CLOSE_REFUSED, str(exc)[:200])

    async def receive_datagrams(self) -> list[bytes]:
        """Every frame received since the last call; waits for at least one."""
        while not self._received:
            self._raise_if_closed()
            await self._received_event.wait()
            self._received_event = trio.Event()
        batch, self._received = self._received, []
        return batch

    # -------------------------------------------------------- control stream

    def send_control(self, message: Message) -> None:
        """Send a control message on stream 0."""
        self._raise_if_closed()
        if not self._handshake_done:
            raise TransportError("control messages need a completed handshake")
        if not self._control_stream_open:
            raise TransportError("the peer has not opened the control stream yet")
        self._call(self._engine.send_stream_data, CONTROL_STREAM_ID, encode_message(message))
        self._request_flush(self)
        self._raise_if_closed()

    def send_raw_control(self, data: bytes) -> None:
        """Write raw bytes on the control stream (tests and diagnostics: no framing)."""
        self._raise_if_closed()
        self._call(self._engine.send_stream_data, CONTROL_STREAM_ID, data)
        self._request_flush(self)

    async def receive_control(self) -> Received:
        """The next control message from the peer.

        An unknown message type after the first message comes as
        ``UnknownMessage`` (to be logged and ignored). Raises the decoder's
        ``ProtocolError`` for a malformed control frame (the connection stays
        open: the caller chooses how to close it), and ``ConnectionClosedError``
        once the connection is closed, which includes the peer ending its
        control stream (after the messages sent before that end).
        """
        while not self._control_messages:
            if self._control_error is not None:
                raise self._control_error
            self._raise_if_closed()
            await self._control_event.wait()
            self._control_event = trio.Event()
        return self._control_messages.popleft()

    async def wait_control_delivered(self, timeout_s: float = 1.0) -> bool:
        """Wait until the peer acknowledged all control data sent, at most ``timeout_s``.

        For a ``reject`` or ``disconnect`` that must reach the peer before
        the connection is closed. Returns whether delivery was seen.
        """
        with trio.move_on_after(timeout_s):
            while self.close_info is None:
                if self._engine.stream_delivered(CONTROL_STREAM_ID, trio.current_time()):
                    return True
                await trio.sleep(0.005)
        return False

    # ------------------------------------------------------------- closing

    def close(self, error_code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Close the connection (the peer is told); idempotent."""
        self._close(CloseInfo(error_code=error_code, reason=reason, by_peer=False))

    def _close(self, info: CloseInfo) -> None:
        if self.close_info is not None:
            return
        self._set_closed(info)
        try:
            self._engine.close(info.error_code, info.reason)
        except QuicLibraryError:
            return
        self._request_flush(self)

    def abort(self, reason: str) -> None:
        """End the connection here without telling the peer (the endpoint drops it)."""
        if self.close_info is None:
            self._set_closed(CloseInfo(error_code=CLOSE_REFUSED, reason=reason, by_peer=False))
        self.terminated = True

    def release(self) -> None:
        """Called by the endpoint once it forgot the connection: drop what may hold cycles."""
        self.datagram_handler = None
        if not self._released:
            self._released = True
            self._engine.release()

    # ------------------------------------------------- driven by the endpoint

    def receive_udp(self, datagrams: list[Datagram], now: float) -> None:
        """Feed the library this connection's UDP datagrams from one wake-up."""
        engine = self._engine
        if not (self._handshake_done and engine.receives_many):
            for data, address in datagrams:
                self._call(engine.receive_datagram, data, address, now)
            return
        receive_many = engine.receive_many_datagrams
        # One library call per run of datagrams from one address (qh3 only):
        # its per-datagram Python facade costs more than the packet itself.
        for address, run in runs_by_address(datagrams):
            self._call(receive_many, run, address, now)

    def handle_timer(self, now: float) -> None:
        deadline = self.handshake_deadline
        if not self._handshake_done and deadline is not None and now >= deadline:
            # Silently: the peer may be a spoofed address that never answers.
            self.abort(f"no handshake within {self.settings.handshake_timeout_s:g} s")
            return
        if self._handshake_done and now - self._last_send_at >= self.settings.keepalive_interval_s:
            self._ping_uid += 1
            self._call(self._engine.send_ping, self._ping_uid)
        self._call(self._engine.handle_timer, now)

    def timer_at(self) -> float | None:
        """When ``handle_timer`` is due: the library's timer or our own deadlines."""
        deadline = self.timer()
        return None if deadline is None else deadline[0]

    def timer(self) -> tuple[float, TimerKind | None] | None:
        """``timer_at`` and, when the library's timer is the one due, its kind if known.

        The kind is None for our own deadlines (keep-alive, handshake) and
        for a library that does not say (aioquic). A lone delayed ACK of
        1-RTT packets waits ``settings.ack_wait_s`` longer than the library
        asks, for a second packet to acknowledge with it (see
        ``TransportSettings.ack_wait_s``).
        """
        library_timer = self._engine.timer()
        if self._handshake_done and self.close_info is None:
            keepalive_at = self._last_send_at + self.settings.keepalive_interval_s
            if library_timer is None:
                return keepalive_at, None
            at, kind = library_timer
            if kind is TimerKind.ACK_APPLICATION:
                at += self.settings.ack_wait_s
            return (at, kind) if at <= keepalive_at else (keepalive_at, None)
        deadline = self.handshake_deadline
        handshaking = not self._handshake_done and self.close_info is None
        if (
            deadline is not None
            and handshaking
            and (library_timer is None or deadline < library_timer[0])
        ):
            return deadline, None
        return library_timer

    def process_events(self) -> None:
        """Handle every event the library has queued."""
        handlers = _EVENT_HANDLERS
        for event in self._engine.events():
            handlers[type(event)](self, event)

    def transmit(self, now: float) -> list[Datagram]:
        """Hand queued frames to the library as it has room; return UDP datagrams."""
        queue = self._send_queue
        if queue and self.close_info is None:
            self._feed_library(queue)
            if (
                self._send_room_event is not None
                and len(queue) <= self.settings.send_queue_frames // 2
            ):
                self._send_room_event.set()
                self._send_room_event = None
        try:
            datagrams = self._engine.datagrams_to_send(now)
        except QuicLibraryError as exc:
            self._fail(exc)
            if self.terminated:
                return []
            return self.transmit(now)
        if datagrams:
            self._last_send_at = now
        return datagrams

    def _feed_library(self, queue: collections.deque[bytes]) -> None:
        budget = self._engine.send_budget_bytes()
        batch: list[bytes] = []
        batch_bytes = 0
        while queue and budget > 0:
            payload = queue.popleft()
            batch.append(payload)
            batch_bytes += len(payload)
            budget -= len(payload) + _PACKET_OVERHEAD_BYTES
        try:
            self._engine.send_datagram_frames(batch)
        except QuicLibraryError as exc:
            self._fail(exc)
            return
        counters = self.counters
        counters.tx_frames += len(batch)
        counters.tx_bytes += batch_bytes

    # ----------------------------------------------------------- event handlers

    def _on_datagrams(self, event: DatagramsReceived) -> None:
        counters = self.counters
        received = self._received
        limit = self.settings.receive_queue_frames
        for data in event.payloads:
            if len(received) >= limit:
                counters.count_drop(DropReason.RECEIVE_QUEUE_FULL)
                continue
            counters.rx_frames += 1
            counters.rx_bytes += len(data)
            received.append(data)
        if received:
            self._received_event.set()

    def _on_stream_data(self, event: StreamDataReceived) -> None:
        if event.stream_id != CONTROL_STREAM_ID or self._control_error is not None:
            return
        self._control_stream_open = True
        try:
            messages = self._control_decoder.feed(event.data)
        except ProtocolError as exc:
            self._control_error = exc
        else:
            self._control_messages.extend(messages)
        self._control_event.set()
        if event.end_stream and self._control_error is None:
            # Messages before the FIN are still received, then the close.
            self._close(
                CloseInfo(
                    error_code=CLOSE_NORMAL,
                    reason="the peer ended its control stream",
                    by_peer=True,
                )
            )

    def _on_handshake_completed(self, event: HandshakeCompleted) -> None:
        if event.alpn_protocol != self.settings.alpn:
            self.close(CLOSE_REFUSED, f"ALPN {event.alpn_protocol!r} is not {self.settings.alpn}")
            return
        peer_limit = self._engine.peer_max_datagram_frame_size()
        self.max_datagram_payload = max_payload_for(self.settings.max_udp_payload_bytes, peer_limit)
        if self.max_datagram_payload == 0:
            self.close(CLOSE_REFUSED, "the peer does not accept QUIC DATAGRAM frames")
            return
        self._handshake_done = True
        self._established.set()

    def _on_terminated(self, event: ConnectionTerminated) -> None:
        """The library's termination (or the close it has pending)."""
        if self.close_info is None:
            idle = event.idle_timeout
            self._set_closed(
                CloseInfo(
                    error_code=event.error_code,
                    reason=event.reason,
                    by_peer=not idle,
                    idle_timeout=idle,
                )
            )
        self.terminated = True

    def _on_connection_id_issued(self, event: ConnectionIdIssued) -> None:
        self.issued_connection_ids.append(event.connection_id)

    def _on_connection_id_retired(self, event: ConnectionIdRetired) -> None:
        self.retired_connection_ids.append(event.connection_id)

    # ---------------------------------------------------------------- helpers

    def _call(self, operation: Callable[[*_Args], None], *args: *_Args) -> None:
        """Call into the library; an exception closes the connection (see ``_fail``)."""
        try:
            operation(*args)
        except QuicLibraryError as exc:
            self._fail(exc)

    def _fail(self, exc: QuicLibraryError) -> None:
        """The library raised: record it and close; a second failure ends it."""
        # A peer's close may stand behind the exception ("connection is
        # closed"): then that close is the real story, not a library failure.
        self.process_events()
        pending_close = self._engine.pending_close()
        if self.close_info is None and pending_close is not None:
            self._on_terminated(pending_close)
        if self.close_info is not None:
            self.terminated = True
            return
        reason = f"QUIC library error ({exc})"
        self._set_closed(CloseInfo(error_code=CLOSE_REFUSED, reason=reason, by_peer=False))
        try:
            # The next transmit carries the close to the peer.
            self._engine.close(CLOSE_REFUSED, "internal error")
        except QuicLibraryError:
            self.terminated = True

    def _set_closed(self, info: CloseInfo) -> None:
        self.close_info = info
        self._send_queue.clear()
        if self._send_room_event is not None:
            self._send_room_event.set()
        self._closed.set()
        self._established.set()
        self._received_event.set()
        self._control_event.set()

    def _raise_if_closed(self) -> None:
        if self.close_info is not None:
            raise ConnectionClosedError(self.close_info)


# Which ``Connection`` method handles each event; shared by all connections
# (plain functions, so a connection holds no cycle through them).
_EVENT_HANDLERS: dict[type[QuicEvent], Callable[[Connection, Any], None]] = {
    DatagramsReceived: Connection._on_datagrams,
    StreamDataReceived: Connection._on_stream_data,
    HandshakeCompleted: Connection._on_handshake_completed,
    ConnectionTerminated: Connection._on_terminated,
    ConnectionIdIssued: Connection._on_connection_id_issued,
    ConnectionIdRetired: Connection._on_connection_id_retired,
}
