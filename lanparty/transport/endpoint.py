"""One UDP socket and the connections on it: the pump, the demux, the timers.

The pump follows the shape the measurements favour: one wake-up drains every
datagram the socket holds, feeds them all to their connections, fires due
timers, then each touched connection builds and sends its output once.
Sends from user tasks (``Connection.send_datagram``) flush synchronously, so
a frame never waits for the pump.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections.abc import Callable
from typing import Any

import structlog
import trio

from lanparty.obs import events
from lanparty.transport.backend import QuicLibrary, load_library
from lanparty.transport.certs import ServerIdentity
from lanparty.transport.connection import Connection
from lanparty.transport.settings import TransportSettings
from lanparty.transport.udp import Address, Datagram, UdpSocket

log = structlog.get_logger(component="transport")


class _RoutinePeerCloseFilter(logging.Filter):
    """qh3 logs every peer close as a warning; our connection_closed event says it better."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Native peer close")


logging.getLogger("quic").addFilter(_RoutinePeerCloseFilter())

CONNECTION_ID_BYTES = 8
# RFC 9000 14.1: a server drops a client Initial in a datagram under 1200 bytes.
MIN_INITIAL_DATAGRAM_BYTES = 1200
_LONG_HEADER_BIT = 0x80


class Endpoint:
    """A UDP socket carrying one client connection or many server connections."""

    def __init__(
        self,
        udp: UdpSocket,
        settings: TransportSettings,
        *,
        identity: ServerIdentity | None = None,
        on_new_connection: Callable[[Connection], None] | None = None,
    ) -> None:
        self.udp = udp
        self.settings = settings
        self.library: QuicLibrary = load_library(settings.backend)
        self._identity = identity
        self._on_new_connection = on_new_connection
        self._by_connection_id: dict[bytes, Connection] = {}
        self._connections: set[Connection] = set()
        # Server connections still in their handshake, oldest first.
        self._handshaking: dict[Connection, None] = {}
        self._timers: list[tuple[float, int, Connection]] = []
        self._scheduled: dict[Connection, float] = {}
        self._sequence = itertools.count()
        self._wake_at = math.inf
        self._wait_scope: trio.CancelScope | None = None
        self.ignored_datagrams = 0
        self.dropped_udp_datagrams = 0

    @property
    def connections(self) -> frozenset[Connection]:
        return frozenset(self._connections)

    # ------------------------------------------------------------ connections

    def _configuration(self, *, is_client: bool, server_name: str | None = None) -> Any:
        settings = self.settings
        configuration = self.library.configuration_class(
            is_client=is_client,
            alpn_protocols=[settings.alpn],
            idle_timeout=settings.idle_timeout_s,
            max_datagram_size=settings.max_udp_payload_bytes,
            max_datagram_frame_size=65536,
            connection_id_length=CONNECTION_ID_BYTES,
        )
        if is_client:
            # Trust is decided by lanparty.transport.trust after the handshake;
            # the library still checks the handshake signature.
            configuration.verify_mode = 0  # ssl.CERT_NONE
            configuration.server_name = server_name
            if hasattr(configuration, "probe_datagram_size"):
                configuration.probe_datagram_size = False
        else:
            assert self._identity is not None
            self.library.load_identity(
                configuration, self._identity.cert_pem, self._identity.key_pem
            )
        return configuration

    def connect(self, address: Address, server_name: str) -> Connection:
        """Start a client connection to ``address`` (the handshake runs in the pump)."""
        configuration = self._configuration(is_client=True, server_name=server_name)
        quic = self.library.connection_class(configuration=configuration)
        connection = Connection(
            self.library, quic, self.settings, address, self.flush, is_client=True
        )
        connection.local_address = self.udp.local_address()
        self._connections.add(connection)
        self._by_connection_id[connection.host_connection_id] = connection
        quic.connect(address, now=trio.current_time())
        self.flush(connection)
        return connection

    def _accept(self, data: bytes, address: Address) -> Connection | None:
        """A new server connection, only for a well-formed client Initial."""
        if self._identity is None or len(data) < MIN_INITIAL_DATAGRAM_BYTES:
            return None
        library = self.library
        try:
            header = library.pull_quic_header(library.buffer_class(data=data), CONNECTION_ID_BYTES)
        except Exception:
            return None
        if header.packet_type != library.initial_packet_type or header.version != 1:
            return None
        configuration = self._configuration(is_client=False)
        quic = library.connection_class(
            configuration=configuration,
            original_destination_connection_id=header.destination_cid,
        )
        if len(self._handshaking) >= self.settings.max_pending_handshakes:
            # Oldest out: a flood of Initials cannot lock newcomers out for good.
            oldest = next(iter(self._handshaking))
            oldest.terminated = True
            self._forget(oldest)
        connection = Connection(library, quic, self.settings, address, self.flush, is_client=False)
        connection.local_address = self.udp.local_address()
        self._handshaking[connection] = None
        self._connections.add(connection)
        self._by_connection_id[bytes(header.destination_cid)] = connection
        self._by_connection_id[connection.host_connection_id] = connection
        return connection

    def _route(self, data: bytes, address: Address) -> Connection | None:
        if not data:
            return None
        if data[0] & _LONG_HEADER_BIT:
            # Long header: version(4), DCID length(1), DCID.
            dcid = data[6 : 6 + data[5]] if len(data) > 6 else b""
        else:
            dcid = data[1 : 1 + CONNECTION_ID_BYTES]
        connection = self._by_connection_id.get(dcid)
        if connection is None:
            connection = self._accept(data, address)
        return connection

    # ------------------------------------------------------------------- pump

    async def run(self) -> None:
        """Pump the socket until cancelled."""
        udp = self.udp
        while True:
            with trio.CancelScope(deadline=self._wake_at) as self._wait_scope:
                await udp.wait_readable()
            self._wait_scope = None
            now = trio.current_time()
            incoming: dict[Connection, list[Datagram]] = {}
            for datagram in udp.receive_batch():
                connection = self._route(*datagram)
                if connection is None:
                    self.ignored_datagrams += 1
                elif not connection.terminated:
                    batch = incoming.get(connection)
                    if batch is None:
                        incoming[connection] = [datagram]
                    else:
                        batch.append(datagram)
            touched: dict[Connection, None] = {}
            for connection, batch in incoming.items():
                connection.receive_udp(batch, now)
                touched[connection] = None
            self._fire_timers(now, touched)
            for connection in touched:
                self._service(connection, now)

    def _service(self, connection: Connection, now: float) -> None:
        was_established = connection.is_established
        connection.process_events()
        connection.deliver_datagrams()
        self._send(connection, now)
        connection.process_events()
        if connection.issued_connection_ids or connection.retired_connection_ids:
            self._update_connection_ids(connection)
        if connection.terminated:
            self._forget(connection)
            return
        self._schedule(connection)
        if not was_established and connection.is_established:
            self._handshaking.pop(connection, None)
            log.debug(
                events.CONNECTION_OPENED,
                peer=connection.peer_address,
                max_datagram_payload=connection.max_datagram_payload,
            )
            if self._on_new_connection is not None:
                self._on_new_connection(connection)

    def flush(self, connection: Connection) -> None:
        """Send a connection's pending output now (called by its user tasks too)."""
        if connection.terminated:
            return
        now = trio.current_time()
        self._send(connection, now)
        connection.process_events()
        if connection.terminated:
            self._forget(connection)
        else:
            self._schedule(connection)

    def _send(self, connection: Connection, now: float) -> None:
        datagrams = connection.transmit(now)
        if datagrams:
            self.dropped_udp_datagrams += self.udp.send_batch(datagrams)

    # ----------------------------------------------------------------- timers

    def _schedule(self, connection: Connection) -> None:
        at = connection.timer_at()
        if at is None:
            self._scheduled.pop(connection, None)
            return
        scheduled = self._scheduled.get(connection)
        # Only an earlier deadline needs a heap entry: a later one is found
        # when the earlier entry fires and asks the connection again.
        if scheduled is not None and scheduled <= at:
            return
        self._scheduled[connection] = at
        heapq.heappush(self._timers, (at, next(self._sequence), connection))
        if at < self._wake_at:
            self._wake_at = at
            if self._wait_scope is not None:
                self._wait_scope.deadline = at

    def _fire_timers(self, now: float, touched: dict[Connection, None]) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            at, _, connection = heapq.heappop(timers)
            if self._scheduled.get(connection) != at:
                continue
            del self._scheduled[connection]
            if connection.terminated:
                continue
            real_at = connection.timer_at()
            if real_at is not None and real_at <= now:
                connection.handle_timer(now)
            touched[connection] = None
        self._wake_at = timers[0][0] if timers else math.inf

    def _update_connection_ids(self, connection: Connection) -> None:
        for connection_id in connection.issued_connection_ids:
            self._by_connection_id[connection_id] = connection
        for connection_id in connection.retired_connection_ids:
            if self._by_connection_id.get(connection_id) is connection:
                del self._by_connection_id[connection_id]
        connection.issued_connection_ids.clear()
        connection.retired_connection_ids.clear()

    def _forget(self, connection: Connection) -> None:
        self._connections.discard(connection)
        self._handshaking.pop(connection, None)
        self._scheduled.pop(connection, None)
        for connection_id in [k for k, c in self._by_connection_id.items() if c is connection]:
            del self._by_connection_id[connection_id]
        info = connection.close_info
        log.debug(
            events.CONNECTION_CLOSED,
            peer=connection.peer_address,
            reason=info.describe() if info else "terminated",
            **connection.counters.snapshot().log_fields(),
        )

    def close(self) -> None:
        self.udp.close()
