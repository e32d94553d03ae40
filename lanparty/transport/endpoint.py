"""One UDP socket and the connections on it: the pump, the demux, the timers.

The pump follows the shape the measurements favour: one wake-up drains the
datagrams the socket holds, feeds them to their connections, fires due
timers, then each touched connection builds and sends its output once.
Sends from user tasks (``Connection.send_datagram``) flush synchronously, so
a frame never waits for the pump.

Fairness: a wake-up feeds each connection at most an even share of the
datagrams waiting (at least ``MIN_FEED_SHARE``, at most ``MAX_FEED_SHARE``);
a busier connection's rest waits for the next round, which comes at once,
and a connection with ``MAX_CONNECTION_BACKLOG`` waiting has its newest
datagrams dropped (counted), before any decryption. One busy peer cannot
hold the others' frames back. The upper bound matters under a flood: a read
with GRO can bring two thousand datagrams for one connection, and a round
that fed them all lasted 20-56 ms (every other peer's frame waited behind
it) and came to the relay's rate limits at a single ``now``, so a client
under a 10 Gbit/s limit was cut to its 256 KiB burst per round.

A datagram for an unknown connection ID goes to ``Admission`` before any
connection state exists: it becomes a connection, a Retry, or a counted drop.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections.abc import Callable

import structlog
import trio

from lanparty.obs import events
from lanparty.transport.admission import (
    Admission,
    Admit,
    Drop,
    EndpointCounters,
    InitialDrop,
    SendRetry,
)
from lanparty.transport.backend import QuicLibrary, ServerConfiguration, load_library
from lanparty.transport.certs import ServerIdentity
from lanparty.transport.connection import Connection
from lanparty.transport.settings import TransportSettings
from lanparty.transport.udp import RECEIVE_BATCH_LIMIT, Address, Datagram, UdpSocket

log = structlog.get_logger(component="transport")


class _RoutinePeerCloseFilter(logging.Filter):
    """qh3 logs every peer close as a warning; our connection_closed event says it better."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Native peer close")


logging.getLogger("quic").addFilter(_RoutinePeerCloseFilter())

CONNECTION_ID_BYTES = 8
_LONG_HEADER_BIT = 0x80
# The least a connection with datagrams waiting is fed per wake-up.
MIN_FEED_SHARE = 16
# The most a connection is fed per wake-up: a round stays a few ms long under
# a flood, and what one round feeds a connection (128 full datagrams, about
# 190 KB of frames) stays under the relay's default byte-bucket burst (256
# KiB), which is refilled once per round.
MAX_FEED_SHARE = 128
# Datagrams waiting for one connection beyond which its newest are dropped
# (more than one read can bring: recvmmsg and GRO give up to ~2000 at once).
MAX_CONNECTION_BACKLOG = 16 * RECEIVE_BATCH_LIMIT
# Heap entries of forgotten or moved deadlines tolerated beyond twice the live ones.
_ORPHANED_TIMERS_KEPT = 64


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
        self.counters = EndpointCounters()
        self._on_new_connection = on_new_connection
        self._by_connection_id: dict[bytes, Connection] = {}
        self._connections: set[Connection] = set()
        # Server connections still in their handshake, oldest first.
        self._handshaking: dict[Connection, None] = {}
        # Received datagrams not yet fed, per connection (fairness).
        self._backlog: dict[Connection, list[Datagram]] = {}
        # The timer heap holds (deadline, sequence) only: a forgotten
        # connection's stale entries must not keep it alive.
        self._timers: list[tuple[float, int]] = []
        self._timer_owner: dict[int, Connection] = {}
        self._scheduled: dict[Connection, tuple[float, int]] = {}
        # Each scheduled connection's real deadline, which its heap entry may precede.
        self._due: dict[Connection, float] = {}
        self._sequence = itertools.count()
        self._wake_at = math.inf
        self._wait_scope: trio.CancelScope | None = None
        self._server_configuration: ServerConfiguration | None = None
        self.admission: Admission | None = None
        if identity is not None:
            self._server_configuration = self.library.server_configuration(
                settings,
                identity.cert_pem,
                identity.key_pem,
                connection_id_bytes=CONNECTION_ID_BYTES,
            )
            self.admission = Admission(
                settings,
                connection_id_bytes=CONNECTION_ID_BYTES,
                retry_when_padded=not self.library.credits_padding,
            )

    @property
    def connections(self) -> frozenset[Connection]:
        return frozenset(self._connections)

    @property
    def ignored_datagrams(self) -> int:
        return self.counters.ignored_datagrams

    @property
    def dropped_udp_datagrams(self) -> int:
        return self.counters.dropped_udp_datagrams

    @property
    def routed_connection_ids(self) -> int:
        """How many connection IDs route to a connection (for tests and metrics)."""
        return len(self._by_connection_id)

    # ------------------------------------------------------------ connections

    def connect(self, address: Address, server_name: str) -> Connection:
        """Start a client connection to ``address`` (the handshake runs in the pump)."""
        engine = self.library.client_connection(
            self.settings, server_name, connection_id_bytes=CONNECTION_ID_BYTES
        )
        connection = Connection(engine, self.settings, address, self.flush, is_client=True)
        connection.local_address = self.udp.local_address()
        self._connections.add(connection)
        self._add_connection_id(connection, connection.host_connection_id)
        engine.connect(address, trio.current_time())
        self.flush(connection)
        return connection

    def _accept(self, data: bytes, address: Address, now: float) -> Connection | None:
        """A new server connection if ``Admission`` admits this datagram."""
        admission = self.admission
        decision = None if admission is None else admission.decide(data, address, now)
        if decision is None:
            self.counters.ignored_datagrams += 1
            return None
        if isinstance(decision, Drop):
            self.counters.initials_dropped[decision.reason] += 1
            return None
        if isinstance(decision, SendRetry):
            self.counters.retries_sent += 1
            self.counters.dropped_udp_datagrams += self.udp.send_batch([(decision.packet, address)])
            return None
        assert admission is not None
        if decision.over_source_cap and not self._evict_unvalidated(decision.source):
            self.counters.initials_dropped[InitialDrop.SOURCE_LIMIT] += 1
            return None
        return self._open_server_connection(admission, decision, address, now)

    def _evict_unvalidated(self, source: bytes) -> bool:
        """Drop the oldest handshake from ``source`` whose address was never validated."""
        for connection in self._handshaking:
            if connection.source_key == source and not connection.address_validated:
                connection.abort("replaced by a client that proved its address")
                self._forget(connection)
                return True
        return False

    def _open_server_connection(
        self, admission: Admission, admit: Admit, address: Address, now: float
    ) -> Connection:
        if len(self._handshaking) >= self.settings.max_pending_handshakes:
            # Oldest out: a flood of Initials cannot lock newcomers out for good.
            oldest = next(iter(self._handshaking))
            oldest.abort("too many handshakes at once")
            self._forget(oldest)
        assert self._server_configuration is not None
        engine = self.library.server_connection(
            self._server_configuration,
            original_destination_cid=admit.original_destination_cid,
            retry_source_cid=admit.retry_source_cid,
        )
        connection = Connection(engine, self.settings, address, self.flush, is_client=False)
        connection.local_address = self.udp.local_address()
        connection.source_key = admit.source
        connection.address_validated = admit.retry_source_cid is not None
        connection.handshake_deadline = now + self.settings.handshake_timeout_s
        admission.opened(admit.source)
        self._handshaking[connection] = None
        self._connections.add(connection)
        self._add_connection_id(connection, admit.initial.destination_cid)
        self._add_connection_id(connection, connection.host_connection_id)
        return connection

    def _route(self, data: bytes, address: Address, now: float) -> Connection | None:
        if not data:
            self.counters.ignored_datagrams += 1
            return None
        if data[0] & _LONG_HEADER_BIT:
            # Long header: version(4), DCID length(1), DCID.
            dcid = data[6 : 6 + data[5]] if len(data) > 6 else b""
        else:
            dcid = data[1 : 1 + CONNECTION_ID_BYTES]
        connection = self._by_connection_id.get(dcid)
        if connection is None:
            connection = self._accept(data, address, now)
        return connection

    # ------------------------------------------------------------------- pump

    async def run(self) -> None:
        """Pump the socket until cancelled."""
        udp = self.udp
        while True:
            # One cancel scope lives until a timer is due: its deadline follows
            # the earliest timer, and no scope is made and torn down per wake-up.
            with trio.CancelScope(deadline=self._wake_at) as scope:
                self._wait_scope = scope
                while True:
                    if self._backlog:
                        # Datagrams still wait from the last round: serve them now.
                        await trio.lowlevel.checkpoint()
                    else:
                        await udp.wait_readable()
                    self._round(udp.receive_batch(), trio.current_time())
                    if scope.deadline != self._wake_at:
                        scope.deadline = self._wake_at
            self._wait_scope = None
            self._round([], trio.current_time())

    def _round(self, datagrams: list[Datagram], now: float) -> None:
        """One wake-up's work; its locals go with it, so a forgotten connection is freed."""
        self._demux(datagrams, now)
        touched: dict[Connection, None] = {}
        self._feed(now, touched)
        self._fire_timers(now, touched)
        for connection in touched:
            self._service(connection, now)
        self._drop_stale_timers()

    def _demux(self, datagrams: list[Datagram], now: float) -> None:
        """Queue each datagram for its connection (creating server connections)."""
        backlog = self._backlog
        for datagram in datagrams:
            connection = self._route(*datagram, now)
            if connection is None or connection.terminated:
                continue
            waiting = backlog.get(connection)
            if waiting is None:
                backlog[connection] = [datagram]
            elif len(waiting) < MAX_CONNECTION_BACKLOG:
                waiting.append(datagram)
            else:
                self.counters.receive_backlog_dropped += 1

    def _feed(self, now: float, touched: dict[Connection, None]) -> None:
        """Feed each connection with datagrams waiting at most an even share of them."""
        backlog = self._backlog
        if not backlog:
            return
        waiting_total = sum(len(waiting) for waiting in backlog.values())
        share = min(MAX_FEED_SHARE, max(MIN_FEED_SHARE, -(-waiting_total // len(backlog))))
        for connection, waiting in list(backlog.items()):
            if connection.terminated:
                del backlog[connection]
                self._forget(connection)
                continue
            if len(waiting) <= share:
                del backlog[connection]
                batch = waiting
            else:
                batch = waiting[:share]
                # To the back of the line for the next round.
                del backlog[connection]
                backlog[connection] = waiting[share:]
            connection.receive_udp(batch, now)
            touched[connection] = None

    def _service(self, connection: Connection, now: float) -> None:
        if connection.terminated:
            self._forget(connection)
            return
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
            # A send to a connection that was closing (e.g. a peer_left racing its
            # close) may be what terminated it: forget it here, or nothing else will.
            self._forget(connection)
            return
        now = trio.current_time()
        self._send(connection, now)
        connection.process_events()
        if connection.terminated:
            self._forget(connection)
        else:
            self._schedule(connection)
            self._drop_stale_timers()

    def _send(self, connection: Connection, now: float) -> None:
        datagrams = connection.transmit(now)
        if datagrams:
            self.counters.dropped_udp_datagrams += self.udp.send_batch(datagrams)

    # ----------------------------------------------------------------- timers

    def _schedule(self, connection: Connection) -> None:
        """Note the connection's deadline; called after every call into it."""
        at = connection.timer_at()
        if at is None:
            self._unschedule(connection)
            return
        self._due[connection] = at
        scheduled = self._scheduled.get(connection)
        # Only an earlier deadline needs a heap entry: a later one replaces
        # the earlier entry when that reaches the top (_drop_stale_timers).
        if scheduled is not None and scheduled[0] <= at:
            return
        self._push_timer(connection, at)

    def _push_timer(self, connection: Connection, at: float) -> None:
        scheduled = self._scheduled.get(connection)
        if scheduled is not None:
            del self._timer_owner[scheduled[1]]
        sequence = next(self._sequence)
        self._scheduled[connection] = (at, sequence)
        self._timer_owner[sequence] = connection
        timers = self._timers
        if len(timers) > 2 * len(self._timer_owner) + _ORPHANED_TIMERS_KEPT:
            # Entries whose deadline moved earlier wait in the heap until their own
            # time (seconds away for a keep-alive): one per packet under load.
            owner = self._timer_owner
            timers[:] = [entry for entry in timers if entry[1] in owner]
            heapq.heapify(timers)
        heapq.heappush(timers, (at, sequence))
        if at < self._wake_at:
            self._wake_at = at
            if self._wait_scope is not None:
                self._wait_scope.deadline = at

    def _drop_stale_timers(self) -> None:
        """Make the earliest entry a real deadline before the pump sleeps on it.

        A connection whose deadline moved later (an ACK came, a delayed ACK
        went out with a packet) leaves its earlier entry behind; waking up
        for it would cost a wake-up for nothing, at every packet. Every call
        into a connection ends with ``_schedule``, so ``_due`` holds its real
        deadline and the library need not be asked again.
        """
        timers = self._timers
        while timers:
            at, sequence = timers[0]
            connection = self._timer_owner.get(sequence)
            if connection is None:
                heapq.heappop(timers)
                continue
            due = self._due[connection]
            if due <= at:
                break
            heapq.heappop(timers)
            del self._timer_owner[sequence]
            del self._scheduled[connection]
            self._push_timer(connection, due)
        self._wake_at = timers[0][0] if timers else math.inf
        if self._wait_scope is not None and self._wait_scope.deadline != self._wake_at:
            self._wait_scope.deadline = self._wake_at

    def _unschedule(self, connection: Connection) -> None:
        self._due.pop(connection, None)
        scheduled = self._scheduled.pop(connection, None)
        if scheduled is not None:
            del self._timer_owner[scheduled[1]]

    def _fire_timers(self, now: float, touched: dict[Connection, None]) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, sequence = heapq.heappop(timers)
            connection = self._timer_owner.pop(sequence, None)
            if connection is None:
                continue
            del self._scheduled[connection]
            if connection.terminated:
                self._forget(connection)
                continue
            real_at = connection.timer_at()
            if real_at is not None and real_at <= now:
                connection.handle_timer(now)
            touched[connection] = None
        self._wake_at = timers[0][0] if timers else math.inf

    # ------------------------------------------------------- connection IDs

    def _add_connection_id(self, connection: Connection, connection_id: bytes) -> None:
        self._by_connection_id[connection_id] = connection
        connection.connection_ids.add(connection_id)

    def _update_connection_ids(self, connection: Connection) -> None:
        for connection_id in connection.issued_connection_ids:
            self._add_connection_id(connection, connection_id)
        for connection_id in connection.retired_connection_ids:
            connection.connection_ids.discard(connection_id)
            if self._by_connection_id.get(connection_id) is connection:
                del self._by_connection_id[connection_id]
        connection.issued_connection_ids.clear()
        connection.retired_connection_ids.clear()

    def _forget(self, connection: Connection) -> None:
        if connection not in self._connections:
            return
        self._connections.discard(connection)
        self._handshaking.pop(connection, None)
        self._backlog.pop(connection, None)
        self._unschedule(connection)
        for connection_id in connection.connection_ids:
            if self._by_connection_id.get(connection_id) is connection:
                del self._by_connection_id[connection_id]
        connection.connection_ids.clear()
        if connection.source_key is not None and self.admission is not None:
            self.admission.closed(connection.source_key)
        connection.release()
        info = connection.close_info
        log.debug(
            events.CONNECTION_CLOSED,
            peer=connection.peer_address,
            reason=info.describe() if info else "terminated",
            **connection.counters.snapshot().log_fields(),
        )

    def close(self) -> None:
        """Close the socket and forget every connection still here (they end unannounced).

        Call it once the pump has stopped: a connection and its endpoint
        refer to each other until it is forgotten.
        """
        for connection in list(self._connections):
            connection.abort("the endpoint closed")
            self._forget(connection)
        self.udp.close()
