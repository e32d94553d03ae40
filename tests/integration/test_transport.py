"""The QUIC transport over real UDP sockets on loopback, for both backends."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
import trio

from lanparty.ctrl import Disconnect, Received
from lanparty.errors import TransportError
from lanparty.proto import DropReason
from lanparty.transport import (
    CLOSE_NORMAL,
    Connection,
    ConnectionClosedError,
    PinnedCertificate,
    QuicBackend,
    ServerIdentity,
    SpkiPin,
    SystemTrust,
    TransportSettings,
    TrustError,
    load_or_create_dev_identity,
)
from lanparty.transport.connection import max_payload_for
from lanparty.transport.endpoint import Endpoint
from lanparty.transport.settings import DEFAULT_MAX_UDP_PAYLOAD_BYTES
from lanparty.transport.udp import UdpSocket
from tests.integration.transport_harness import (
    CONTROL_MESSAGE,
    connect,
    echo_handler,
    round_trip,
    running_server,
    wait_handler,
)
from tests.pki import CertificateAuthority


async def test_handshake_with_spki_pin_then_control_and_datagrams_both_ways(
    dev_identity: ServerIdentity, backend: QuicBackend
) -> None:
    settings = TransportSettings(backend=backend)
    async with (
        running_server(dev_identity, echo_handler, settings) as server,
        connect(server, SpkiPin.parse(dev_identity.spki_pin), settings) as connection,
    ):
        assert connection.backend == backend.value
        assert connection.cipher_suite.startswith("TLS_")
        assert connection.max_datagram_payload == max_payload_for(
            DEFAULT_MAX_UDP_PAYLOAD_BYTES, 65536
        )
        await round_trip(connection, CONTROL_MESSAGE)
        await round_trip(connection, Disconnect(reason="just a test"))

        frames = [bytes([i]) * (60 + i) for i in range(50)]
        assert connection.send_datagrams(frames) == 50
        received: list[bytes] = []
        with trio.fail_after(10):
            while len(received) < 50:
                received.extend(await connection.receive_datagrams())
        # Loopback does not lose or reorder these few frames.
        assert received == frames
        assert connection.counters.tx_frames == 50
        assert connection.counters.rx_frames == 50
        stats = await round_trip(connection)
        assert (stats.rx_frames, stats.tx_frames) == (50, 50)
        assert stats.rx_bytes == sum(len(f) for f in frames)


async def test_pinned_certificate_file_in_der_and_pem(
    dev_identity: ServerIdentity, backend: QuicBackend, pem_file: Callable[[str, bytes], Path]
) -> None:
    settings = TransportSettings(backend=backend)
    der = pem_file("relay.der", dev_identity.certificate_der())
    pem = pem_file("relay.pem", dev_identity.cert_pem)
    async with running_server(dev_identity, echo_handler, settings) as server:
        for path in (der, pem):
            async with connect(server, PinnedCertificate.from_file(path), settings) as connection:
                await round_trip(connection)


async def test_ca_trust_and_system_store_check_the_server_name(
    backend: QuicBackend, pem_file: Callable[[str, bytes], Path]
) -> None:
    ca = CertificateAuthority()
    identity = ca.issue("relay.example.net")
    ca_path = pem_file("ca.pem", ca.pem())
    settings = TransportSettings(backend=backend)
    async with running_server(identity, echo_handler, settings) as server:
        for trust in (PinnedCertificate.from_file(ca_path), SystemTrust(ca_file=ca_path)):
            async with connect(server, trust, settings, "relay.example.net") as connection:
                await round_trip(connection)
            with pytest.raises(TrustError, match=r"wrong\.example\.net"):
                async with connect(server, trust, settings, "wrong.example.net"):
                    pytest.fail("connected despite the wrong server name")


async def test_wrong_pin_is_refused_with_both_pins_named(
    dev_identity: ServerIdentity, backend: QuicBackend, tmp_path: Path
) -> None:
    other = load_or_create_dev_identity(tmp_path)
    settings = TransportSettings(backend=backend)
    async with running_server(dev_identity, echo_handler, settings) as server:
        with pytest.raises(TrustError) as caught:
            async with connect(server, SpkiPin.parse(other.spki_pin), settings):
                pytest.fail("connected despite the wrong pin")
        assert other.spki_pin in str(caught.value)
        assert dev_identity.spki_pin in str(caught.value)
        # The refused connection is closed; the server serves the next one.
        async with connect(server, SpkiPin.parse(dev_identity.spki_pin), settings) as connection:
            await round_trip(connection)


async def test_wrong_alpn_is_refused_in_the_handshake(
    dev_identity: ServerIdentity, backend: QuicBackend
) -> None:
    server_settings = TransportSettings(backend=backend)
    client_settings = attrs.evolve(server_settings, alpn="other/1", handshake_timeout_s=5)
    async with running_server(dev_identity, echo_handler, server_settings) as server:
        with pytest.raises(ConnectionClosedError) as caught:
            async with connect(server, SpkiPin.parse(dev_identity.spki_pin), client_settings):
                pytest.fail("connected with a foreign ALPN")
        assert caught.value.info.by_peer
        assert not server.connections or all(not c.is_established for c in server.connections)


async def test_oversize_frame_is_refused_without_wedging_the_connection(
    dev_identity: ServerIdentity, backend: QuicBackend
) -> None:
    settings = TransportSettings(backend=backend)
    async with (
        running_server(dev_identity, echo_handler, settings) as server,
        connect(server, SpkiPin.parse(dev_identity.spki_pin), settings) as connection,
    ):
        largest = connection.max_datagram_payload
        assert not connection.send_datagram(b"x" * (largest + 1))
        assert connection.counters.drops[DropReason.OVERSIZE] == 1
        # The largest allowed frame still fits one packet, both ways.
        assert connection.send_datagram(b"y" * largest)
        with trio.fail_after(10):
            echoed = await connection.receive_datagrams()
        assert echoed == [b"y" * largest]
        await round_trip(connection)


async def test_send_burst_stays_within_the_queue_bound_and_counts_drops(
    dev_identity: ServerIdentity, backend: QuicBackend
) -> None:
    bound = 64
    settings = TransportSettings(backend=backend, send_queue_frames=bound)
    burst = 20_000
    async with (
        running_server(dev_identity, wait_handler, settings) as server,
        connect(server, SpkiPin.parse(dev_identity.spki_pin), settings) as connection,
    ):
        frame = b"z" * 1200
        for _ in range(burst):
            connection.queue_datagram(frame)
            assert connection.send_queue_length <= bound
        connection.flush()
        counters = connection.counters
        dropped = counters.drops[DropReason.SEND_QUEUE_FULL]
        assert dropped > 0
        assert counters.tx_frames + connection.send_queue_length + dropped == burst
        with trio.fail_after(20):
            while connection.send_queue_length:
                await trio.sleep(0.01)
        (server_side,) = server.connections
        with trio.fail_after(10):
            while server_side.counters.rx_frames < counters.tx_frames * 0.9:
                await trio.sleep(0.01)
        # Still usable afterwards: a control message goes through.
        connection.send_control(CONTROL_MESSAGE)
        assert await server_side.receive_control() == CONTROL_MESSAGE


async def test_frames_before_the_handshake_are_refused_and_counted(
    dev_identity: ServerIdentity, backend: QuicBackend
) -> None:
    settings = TransportSettings(backend=backend)
    async with running_server(dev_identity, echo_handler, settings) as server:
        endpoint = Endpoint(UdpSocket.bind("127.0.0.1", 0), settings)
        try:
            connection = endpoint.connect(server.address, "lanparty-relay.local")
            assert not connection.send_datagram(b"early")
            assert connection.counters.drops[DropReason.NOT_ESTABLISHED] == 1
        finally:
            endpoint.close()


async def test_idle_timeout_closes_a_silent_peer(
    dev_identity: ServerIdentity, backend: QuicBackend
) -> None:
    server_settings = TransportSettings(backend=backend, idle_timeout_s=1.0)
    # The client sends nothing after the handshake: no keep-alive either.
    client_settings = attrs.evolve(server_settings, keepalive_interval_s=3600)
    closed: list[ConnectionClosedError] = []

    async def record_close(connection: Connection) -> None:
        try:
            while True:
                await connection.receive_control()
        except ConnectionClosedError as exc:
            closed.append(exc)

    async with running_server(dev_identity, record_close, server_settings) as server:
        async with connect(server, SpkiPin.parse(dev_identity.spki_pin), client_settings) as c:
            with trio.fail_after(15):
                info = await c.wait_closed()
            assert info.idle_timeout
        with trio.fail_after(15):
            while not closed:
                await trio.sleep(0.05)
        assert closed[0].info.idle_timeout


async def test_keepalive_holds_an_idle_connection_open(
    dev_identity: ServerIdentity, backend: QuicBackend
) -> None:
    settings = TransportSettings(backend=backend, idle_timeout_s=1.0, keepalive_interval_s=0.1)
    async with (
        running_server(dev_identity, echo_handler, settings) as server,
        connect(server, SpkiPin.parse(dev_identity.spki_pin), settings) as connection,
    ):
        # Several idle timeouts pass with no application traffic at all.
        await trio.sleep(3.5)
        assert connection.is_established
        await round_trip(connection)


async def test_garbage_udp_is_ignored_and_the_server_keeps_serving(
    dev_identity: ServerIdentity, backend: QuicBackend
) -> None:
    settings = TransportSettings(backend=backend)
    async with (
        running_server(dev_identity, echo_handler, settings) as server,
        connect(server, SpkiPin.parse(dev_identity.spki_pin), settings) as connection,
    ):
        junk = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with junk:
            for payload in (b"", b"\x00", b"\xc0" * 1300, b"\x40" + b"\x01" * 60, bytes(2000)):
                await junk.sendto(payload, server.address)
        await round_trip(connection)
        assert server.endpoint.ignored_datagrams >= 4


async def test_server_close_is_seen_by_the_endpoint(
    dev_identity: ServerIdentity, backend: QuicBackend
) -> None:
    settings = TransportSettings(backend=backend)

    async def disconnect_at_once(connection: Connection) -> None:
        await connection.receive_control()
        connection.send_control(Disconnect(reason="relay shutting down"))
        connection.close(CLOSE_NORMAL, "shutdown")
        await connection.wait_closed()

    async with (
        running_server(dev_identity, disconnect_at_once, settings) as server,
        connect(server, SpkiPin.parse(dev_identity.spki_pin), settings) as connection,
    ):
        connection.send_control(CONTROL_MESSAGE)
        assert await connection.receive_control() == Disconnect(reason="relay shutting down")
        with trio.fail_after(10):
            info = await connection.wait_closed()
        assert info.by_peer
        assert info.error_code == CLOSE_NORMAL
        with pytest.raises(ConnectionClosedError):
            await connection.receive_datagrams()


async def test_relay_cannot_speak_before_the_endpoint_opens_the_control_stream(
    dev_identity: ServerIdentity, backend: QuicBackend
) -> None:
    settings = TransportSettings(backend=backend)
    outcome: list[Exception] = []
    tried = trio.Event()

    async def speak_first(connection: Connection) -> None:
        try:
            connection.send_control(Disconnect(reason="too early"))
        except TransportError as exc:
            outcome.append(exc)
        tried.set()
        await echo_handler(connection)

    async with (
        running_server(dev_identity, speak_first, settings) as server,
        connect(server, SpkiPin.parse(dev_identity.spki_pin), settings) as connection,
    ):
        with trio.fail_after(10):
            await tried.wait()
        # The connection survived the refused send: the endpoint's hello works.
        await round_trip(connection)
    assert len(outcome) == 1
    assert "not opened the control stream" in str(outcome[0])


async def test_a_library_exception_closes_only_that_connection(
    dev_identity: ServerIdentity, backend: QuicBackend
) -> None:
    settings = TransportSettings(backend=backend)
    pin = SpkiPin.parse(dev_identity.spki_pin)
    async with (
        running_server(dev_identity, echo_handler, settings) as server,
        connect(server, pin, settings) as doomed,
        connect(server, pin, settings) as survivor,
    ):
        await round_trip(doomed)
        (victim,) = (c for c in server.connections if c.peer_address[1] == doomed.local_address[1])

        def explode(*_args: object) -> None:
            raise RuntimeError("simulated library failure")

        victim._engine._quic.receive_datagram = explode
        victim._engine._quic.receive_many_datagrams = explode
        doomed.send_datagram(b"\x10" + bytes(63))
        with trio.fail_after(10):
            info = await doomed.wait_closed()
        assert info.by_peer
        assert victim.close_info is not None
        assert "simulated library failure" in victim.close_info.reason
        await round_trip(survivor)


async def test_a_sender_can_wait_for_room_instead_of_dropping(
    dev_identity: ServerIdentity, backend: QuicBackend
) -> None:
    bound = 32
    settings = TransportSettings(backend=backend, send_queue_frames=bound)
    async with (
        running_server(dev_identity, wait_handler, settings) as server,
        connect(server, SpkiPin.parse(dev_identity.spki_pin), settings) as connection,
    ):
        frame = b"w" * 1200
        for _ in range(2000):
            await connection.wait_send_room()
            assert connection.queue_datagram(frame)
            connection.flush()
        assert connection.counters.drops[DropReason.SEND_QUEUE_FULL] == 0
        assert connection.counters.tx_frames + connection.send_queue_length == 2000


async def test_a_flood_of_initials_stays_bounded_and_a_real_client_still_connects(
    dev_identity: ServerIdentity, backend: QuicBackend
) -> None:
    settings = TransportSettings(backend=backend, max_pending_handshakes=8)
    async with running_server(dev_identity, echo_handler, settings) as server:
        # Real client Initials from sockets that never answer: 40 of them.
        for _ in range(40):
            endpoint = Endpoint(UdpSocket.bind("127.0.0.1", 0), settings)
            try:
                endpoint.connect(server.address, "lanparty-relay.local")
            finally:
                endpoint.close()
        with trio.fail_after(10):
            while len(server.connections) < 8:
                await trio.sleep(0.01)
        await trio.sleep(0.2)
        assert len(server.connections) == 8
        async with connect(server, SpkiPin.parse(dev_identity.spki_pin), settings) as connection:
            await round_trip(connection)


@pytest.mark.parametrize("with_message", [True, False], ids=["message-then-fin", "fin-only"])
async def test_fin_on_the_control_stream_is_an_ordinary_close(
    dev_identity: ServerIdentity, backend: QuicBackend, with_message: bool
) -> None:
    settings = TransportSettings(backend=backend)
    seen: list[Received] = []
    outcome: list[ConnectionClosedError] = []
    started = trio.Event()

    async def read_control(connection: Connection) -> None:
        started.set()
        try:
            while True:
                seen.append(await connection.receive_control())
        except ConnectionClosedError as exc:
            outcome.append(exc)

    async with (
        running_server(dev_identity, read_control, settings) as server,
        connect(server, SpkiPin.parse(dev_identity.spki_pin), settings) as connection,
    ):
        with trio.fail_after(10):
            await started.wait()
        if with_message:
            connection.send_control(CONTROL_MESSAGE)
        connection._engine._quic.send_stream_data(0, b"", end_stream=True)
        connection.flush()
        with trio.fail_after(10):
            info = await connection.wait_closed()
            while not outcome:
                await trio.sleep(0.01)
        assert info.by_peer
        assert info.error_code == CLOSE_NORMAL
    assert seen == ([CONTROL_MESSAGE] if with_message else [])
    (closed,) = outcome
    assert closed.info.by_peer
    assert closed.info.error_code == CLOSE_NORMAL
    assert "ended its control stream" in closed.info.reason
