"""Two QUIC connections in memory, client and server, on a fake clock.

No sockets and no Trio run: what one side transmits is fed to the other at
the time the test says, as aioquic tests its own connection. ``EnginePair``
drives the library adapters (``QuicEngine``), ``ConnectionPair`` our
``Connection`` the way the endpoint's pump does.
"""

from __future__ import annotations

from collections.abc import Callable

from lanparty.transport import Connection, QuicBackend, ServerIdentity, TransportSettings
from lanparty.transport.backend import QuicEngine, load_library
from lanparty.transport.initial import parse_client_initial
from lanparty.transport.udp import Address, Datagram

CLIENT_ADDRESS: Address = ("192.0.2.1", 50000)
SERVER_ADDRESS: Address = ("192.0.2.2", 4433)
SERVER_NAME = "lanparty-relay.local"
CONNECTION_ID_BYTES = 8


def client_engine(backend: QuicBackend, settings: TransportSettings) -> QuicEngine:
    library = load_library(backend)
    return library.client_connection(settings, SERVER_NAME, connection_id_bytes=CONNECTION_ID_BYTES)


def server_engine(
    backend: QuicBackend,
    settings: TransportSettings,
    identity: ServerIdentity,
    first_flight: list[Datagram],
) -> QuicEngine:
    """A server connection for the client whose first flight this is (as Admission admits it)."""
    library = load_library(backend)
    configuration = library.server_configuration(
        settings, identity.cert_pem, identity.key_pem, connection_id_bytes=CONNECTION_ID_BYTES
    )
    initial = parse_client_initial(first_flight[0][0])
    assert initial is not None
    return library.server_connection(
        configuration, original_destination_cid=initial.destination_cid, retry_source_cid=None
    )


def _arriving_from(address: Address, datagrams: list[Datagram]) -> list[Datagram]:
    return [(data, address) for data, _ in datagrams]


class EnginePair:
    """A client and a server ``QuicEngine``; ``exchange`` delivers until both are quiet."""

    def __init__(
        self,
        backend: QuicBackend,
        identity: ServerIdentity,
        settings: TransportSettings | None = None,
    ) -> None:
        settings = settings or TransportSettings(backend=backend)
        self.now = 0.0
        self.client = client_engine(backend, settings)
        self.client.connect(SERVER_ADDRESS, self.now)
        first_flight = self.client.datagrams_to_send(self.now)
        self.server = server_engine(backend, settings, identity, first_flight)
        for data, _ in first_flight:
            self.server.receive_datagram(data, CLIENT_ADDRESS, self.now)

    def exchange(self, rounds: int = 20) -> None:
        for _ in range(rounds):
            self.now += 0.001
            moved = False
            for sender, receiver, address in (
                (self.client, self.server, CLIENT_ADDRESS),
                (self.server, self.client, SERVER_ADDRESS),
            ):
                for data, _ in sender.datagrams_to_send(self.now):
                    receiver.receive_datagram(data, address, self.now)
                    moved = True
            if not moved:
                return


class ConnectionPair:
    """A client and a server ``Connection``, pumped like the endpoint pumps them.

    ``deliver`` decides whether a datagram reaches the other side (the
    network); ``step`` is one wake-up of both pumps at the current time.
    """

    def __init__(
        self,
        backend: QuicBackend,
        identity: ServerIdentity,
        settings: TransportSettings | None = None,
        *,
        server_settings: TransportSettings | None = None,
    ) -> None:
        self.settings = settings or TransportSettings(backend=backend)
        server_settings = server_settings or self.settings
        self.now = 0.0
        self.deliver: Callable[[Connection, bytes], bool] = lambda receiver, data: True
        self.sent_at: dict[Connection, list[float]] = {}
        engine = client_engine(backend, self.settings)
        self.client = Connection(engine, self.settings, SERVER_ADDRESS, self.flush, is_client=True)
        engine.connect(SERVER_ADDRESS, self.now)
        first_flight = self.client.transmit(self.now)
        self.server = Connection(
            server_engine(backend, server_settings, identity, first_flight),
            self.settings,
            CLIENT_ADDRESS,
            self.flush,
            is_client=False,
        )
        self.server.handshake_deadline = self.now + self.settings.handshake_timeout_s
        self.sent_at = {self.client: [self.now], self.server: []}
        self._inbox: dict[Connection, list[Datagram]] = {
            self.client: [],
            self.server: _arriving_from(CLIENT_ADDRESS, first_flight),
        }

    def peer_of(self, connection: Connection) -> Connection:
        return self.server if connection is self.client else self.client

    def step(self) -> bool:
        """Feed each side what reached it, fire due timers, transmit; True if anything moved."""
        moved = False
        for connection in (self.client, self.server):
            if connection.terminated:
                continue
            inbox, self._inbox[connection] = self._inbox[connection], []
            if inbox:
                connection.receive_udp(inbox, self.now)
                moved = True
            at = connection.timer_at()
            if at is not None and at <= self.now:
                connection.handle_timer(self.now)
            connection.process_events()
            if not connection.terminated:
                moved |= self._transmit(connection)
        return moved

    def flush(self, connection: Connection) -> None:
        """A user task's send: transmitted at once, as the endpoint does."""
        self._transmit(connection)

    def _transmit(self, connection: Connection) -> bool:
        if connection.terminated:
            return False
        sent = connection.transmit(self.now)
        connection.process_events()
        if not sent:
            return False
        self.sent_at[connection].append(self.now)
        peer = self.peer_of(connection)
        source = CLIENT_ADDRESS if connection is self.client else SERVER_ADDRESS
        self._inbox[peer] += [(data, source) for data, _ in sent if self.deliver(peer, data)]
        return True

    def exchange(self, rounds: int = 50) -> None:
        """Steps 1 ms apart until nothing moves."""
        for _ in range(rounds):
            self.now += 0.001
            if not self.step():
                return

    def handshake(self) -> None:
        self.exchange()
        assert self.client.is_established
        assert self.server.is_established

    def next_timer(self) -> float | None:
        timers = [
            at
            for connection in (self.client, self.server)
            if not connection.terminated and (at := connection.timer_at()) is not None
        ]
        return min(timers, default=None)

    def run_until(self, end: float) -> None:
        """Jump from timer to timer (and exchange what they cause) until ``end``."""
        for _ in range(100_000):
            at = self.next_timer()
            if at is None or at > end:
                self.now = max(self.now, end)
                return
            self.now = max(self.now, at)
            self.step()
            self.exchange()
        raise AssertionError("the timers never reached the end")
