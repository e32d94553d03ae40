"""A server under a bounded flood of Initials keeps no state it should not keep.

Every flood here is a few hundred datagrams on loopback; the assertions are
on counts and states (connections, routed connection IDs, objects alive),
never on durations.
"""

from __future__ import annotations

import contextlib
import gc
import socket
import weakref
from collections.abc import Iterator

import attrs
import pytest
import trio

from lanparty.ctrl import Disconnect, DisconnectReason
from lanparty.errors import TransportError
from lanparty.transport import (
    Connection,
    QuicBackend,
    RetryPolicy,
    ServerIdentity,
    SpkiPin,
    TransportSettings,
    open_connection,
)
from lanparty.transport import endpoint as endpoint_module
from lanparty.transport.admission import InitialDrop
from tests.integration.transport_harness import (
    connect,
    echo_handler,
    round_trip,
    running_server,
    wait_handler,
    wait_until,
)
from tests.quic_initials import first_flight, junk_initial

FLOOD_DATAGRAMS = 300


@pytest.fixture
def connections_made(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the server ``Connection`` objects endpoints create while the test runs."""
    made = [0]

    class CountedConnection(Connection):
        def __init__(self, *args: object, **kwargs: object) -> None:
            made[0] += not kwargs["is_client"]
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(endpoint_module, "Connection", CountedConnection)
    return made


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def _send_all(sock: trio.socket.SocketType, datagrams: list[bytes], to: object) -> None:
    for index, datagram in enumerate(datagrams):
        await sock.sendto(datagram, to)
        if index % 32 == 31:
            await trio.sleep(0)  # let the server drain; loopback drops what overflows


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_a_junk_initial_flood_creates_no_connection_state(
    dev_identity: ServerIdentity, backend: QuicBackend, host: str, connections_made: list[int]
) -> None:
    settings = TransportSettings(backend=backend, retry=RetryPolicy.AUTO)
    async with running_server(dev_identity, echo_handler, settings, host=host) as server:
        counters = server.endpoint.counters
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with trio.socket.socket(family, socket.SOCK_DGRAM) as sock:
            await _send_all(sock, [junk_initial() for _ in range(FLOOD_DATAGRAMS)], server.address)
            await wait_until(
                lambda: counters.initials_dropped[InitialDrop.UNDECRYPTABLE] == FLOOD_DATAGRAMS
            )
        assert connections_made[0] == 0
        assert not server.connections
        assert server.endpoint.routed_connection_ids == 0
        assert counters.retries_sent == 0
        # A real client still gets in, and is the only connection made.
        pin = SpkiPin.parse(dev_identity.spki_pin)
        async with open_connection(host, server.address[1], pin, settings=settings) as connection:
            await round_trip(connection)
        assert connections_made[0] == 1


async def test_replayed_real_initials_turn_into_retries_once_they_come_fast(
    dev_identity: ServerIdentity, connections_made: list[int]
) -> None:
    settings = TransportSettings(
        retry=RetryPolicy.AUTO,
        retry_above_handshakes_per_s=20,
        max_connections_per_source=1000,
    )
    # Different clients' first datagrams (each a different connection ID).
    initials = [first_flight(QuicBackend.QH3)[0] for _ in range(120)]
    async with running_server(dev_identity, wait_handler, settings) as server:
        counters = server.endpoint.counters
        with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            await _send_all(sock, initials, server.address)
            await wait_until(lambda: counters.retries_sent + connections_made[0] == len(initials))
        # The first burst became connections; the rest only cost a Retry each.
        assert counters.retries_sent > 0
        assert connections_made[0] >= 20
        assert len(server.connections) == connections_made[0]
        assert sum(counters.initials_dropped.values()) == 0


async def test_with_retry_always_replayed_initials_make_no_connection(
    dev_identity: ServerIdentity, connections_made: list[int]
) -> None:
    settings = TransportSettings(retry=RetryPolicy.ALWAYS)
    initials = [first_flight(QuicBackend.AIOQUIC)[0] for _ in range(100)]
    async with running_server(dev_identity, wait_handler, settings) as server:
        counters = server.endpoint.counters
        with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            await _send_all(sock, initials * 2, server.address)
            await wait_until(lambda: counters.retries_sent == 2 * len(initials))
        assert connections_made[0] == 0
        assert server.endpoint.routed_connection_ids == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_the_per_source_cap_holds(
    dev_identity: ServerIdentity, backend: QuicBackend, host: str
) -> None:
    settings = TransportSettings(backend=backend, max_connections_per_source=2)
    pin = SpkiPin.parse(dev_identity.spki_pin)
    async with running_server(dev_identity, echo_handler, settings, host=host) as server:
        counters = server.endpoint.counters
        port = server.address[1]
        async with (
            open_connection(host, port, pin, settings=settings) as first,
            open_connection(host, port, pin, settings=settings),
        ):
            # A third from the same address is answered with a Retry, proves its
            # address and is still refused before any state: the two there are
            # established, not handshakes it could replace.
            impatient = attrs.evolve(settings, handshake_timeout_s=1.0)
            with pytest.raises(TransportError, match="no QUIC handshake"):
                async with open_connection(host, port, pin, settings=impatient):
                    pytest.fail("a third connection from a source capped at two")
            assert counters.initials_dropped[InitialDrop.SOURCE_LIMIT] >= 1
            assert counters.retries_sent >= 1
            assert len(server.connections) == 2
            first.close()
            await wait_until(lambda: len(server.connections) == 1)
            # One left: there is room again.
            async with open_connection(host, port, pin, settings=settings) as again:
                await round_trip(again)
                assert len(server.connections) == 2


async def test_handshakes_forged_from_a_source_cannot_lock_its_real_client_out(
    dev_identity: ServerIdentity, backend: QuicBackend
) -> None:
    settings = TransportSettings(backend=backend, max_connections_per_source=2)
    async with running_server(dev_identity, echo_handler, settings) as server:
        counters = server.endpoint.counters
        # Initials that never complete fill the source (as a spoofer's would).
        with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            await _send_all(sock, [first_flight(backend)[0] for _ in range(2)], server.address)
            await wait_until(lambda: len(server.connections) == 2)
        # The real client is answered with a Retry, proves its address and
        # takes the place of one of them.
        async with connect(server, SpkiPin.parse(dev_identity.spki_pin), settings) as connection:
            await round_trip(connection)
            assert counters.retries_sent >= 1
            assert len(server.connections) == 2
            assert sum(c.is_established for c in server.connections) == 1


async def test_the_oldest_pending_handshake_makes_room_for_a_new_one(
    dev_identity: ServerIdentity, backend: QuicBackend
) -> None:
    settings = TransportSettings(
        backend=backend, max_pending_handshakes=8, max_connections_per_source=1000
    )
    initials = [first_flight(backend)[0] for _ in range(40)]
    async with running_server(dev_identity, echo_handler, settings) as server:
        with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            await _send_all(sock, initials, server.address)
            await wait_until(
                lambda: server.endpoint.counters.retries_sent + len(server.connections) >= 8
            )
        assert len(server.connections) <= 8
        async with connect(server, SpkiPin.parse(dev_identity.spki_pin), settings) as connection:
            await round_trip(connection)


async def test_a_forgotten_connection_is_freed_without_the_cyclic_gc(
    dev_identity: ServerIdentity, backend: QuicBackend, no_cyclic_gc: None
) -> None:
    settings = TransportSettings(backend=backend)
    async with running_server(dev_identity, wait_handler, settings) as server:
        async with connect(server, SpkiPin.parse(dev_identity.spki_pin), settings) as client:
            await wait_until(lambda: len(server.connections) == 1)
            (server_side,) = server.connections
            server_connection = weakref.ref(server_side)
            server_quic = weakref.ref(server_side._engine._quic)
            del server_side
            client_connection = weakref.ref(client)
            del client
        await wait_until(lambda: not server.connections)
        assert server.endpoint.routed_connection_ids == 0
        await wait_until(lambda: server_connection() is None)
        await wait_until(lambda: client_connection() is None)
        # The library's own connection object too (its cycles are cut on release).
        assert server_quic() is None


async def test_one_busy_peer_does_not_hold_back_another(
    dev_identity: ServerIdentity, backend: QuicBackend
) -> None:
    settings = TransportSettings(backend=backend)
    quiet_settings = attrs.evolve(settings)
    pin = SpkiPin.parse(dev_identity.spki_pin)
    async with (
        running_server(dev_identity, echo_handler, settings) as server,
        connect(server, pin, settings) as busy,
        connect(server, pin, quiet_settings) as quiet,
    ):
        frame = b"b" * 1200
        for _ in range(20):
            busy.send_datagrams([frame] * 200)
            await trio.sleep(0)
        # The quiet peer's control round trip goes through while the busy one floods.
        await round_trip(quiet)
        assert quiet.is_established
        assert busy.is_established


async def test_a_handshake_that_never_completes_is_given_up(
    dev_identity: ServerIdentity, backend: QuicBackend
) -> None:
    settings = TransportSettings(backend=backend, retry=RetryPolicy.NEVER, handshake_timeout_s=0.3)
    async with running_server(dev_identity, wait_handler, settings) as server:
        admission = server.endpoint.admission
        assert admission is not None
        with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            await _send_all(sock, [first_flight(backend)[0] for _ in range(5)], server.address)
            await wait_until(lambda: len(server.connections) == 5)
            # The client never answers: its places are freed, not kept for the idle timeout.
            await wait_until(lambda: not server.connections)
        assert server.endpoint.routed_connection_ids == 0
        assert admission.connections_from(b"\x7f\x00\x00\x01") == 0


async def test_a_send_racing_the_peer_s_close_leaves_nothing_behind(
    dev_identity: ServerIdentity, backend: QuicBackend
) -> None:
    """Found by the churn soak: such a send terminated the connection, which then stayed
    for the server's life, holding its IDs and a slot of its source's cap."""
    settings = TransportSettings(backend=backend)
    peer_closed = trio.Event()

    async def send_after_close(connection: Connection) -> None:
        await connection.receive_control()
        await peer_closed.wait()
        await trio.sleep(0.05)  # the pump has fed the peer's CONNECTION_CLOSE to the library
        with contextlib.suppress(TransportError):
            connection.send_control(Disconnect(reason=DisconnectReason.RELAY_SHUTDOWN))
        await trio.sleep_forever()

    async with running_server(dev_identity, send_after_close, settings) as server:
        async with connect(server, SpkiPin.parse(dev_identity.spki_pin), settings) as client:
            client.send_control(Disconnect(reason=DisconnectReason.LEAVING))
            await wait_until(lambda: len(server.connections) == 1)
        peer_closed.set()
        await wait_until(lambda: not server.connections)
        assert server.endpoint.routed_connection_ids == 0
        assert server.endpoint.admission is not None
        assert server.endpoint.admission.connections_from(bytes([127, 0, 0, 1])) == 0
